"""The metrics tables: plain text for a terminal (:func:`format_table`) and HTML for the page.

Rows follow DESIGN.md's JSON (``method, dataset, n, psnr, psnr_std, ssim,
ssim_std, seconds_per_image`` plus optional keys: DIVal's published
figures (``reference_psnr``, ``reference_ssim``, ``reference_source``), a generalisation
study's ΔPSNR, conformal bounds).
"""

from __future__ import annotations

import math
from typing import List, Sequence

from .values import _check_rows, _e, _fmt, _fmt_seconds, _num


def _has_reference(rows) -> bool:
    return any(_num(r.get("reference_psnr")) is not None or
               _num(r.get("reference_ssim")) is not None for r in rows)


def _reference_source(rows) -> str:
    """Whose published figures the reference columns hold (e.g. "DIVal")."""
    return next((str(r["reference_source"]) for r in rows if r.get("reference_source")),
                "published")


def format_table(rows: Sequence[dict]) -> str:
    """Plain-text table of metric rows for a terminal.

    Columns: method, dataset, n, PSNR (dB) ± std, SSIM ± std, time per image,
    and the published PSNR/SSIM when any row carries ``reference_psnr`` /
    ``reference_ssim`` (headed by their ``reference_source``, e.g. "DIVal").
    """
    rows = _check_rows(list(rows))
    ref = _has_reference(rows)
    wm = max([6] + [len(str(r["method"])) for r in rows]) + 2
    wd = max([7] + [len(str(r["dataset"])) for r in rows]) + 2
    head = (f"{'method':<{wm}}{'dataset':<{wd}}{'n':>4}{'PSNR dB':>16}{'SSIM':>16}{'time/img':>11}"
            + (f"{_reference_source(rows) + ' PSNR':>12}{_reference_source(rows) + ' SSIM':>12}"
               if ref else ""))
    lines = [head, "-" * len(head)]
    for r in rows:
        line = (f"{str(r['method']):<{wm}}{str(r['dataset']):<{wd}}{int(r['n']):>4}"
                f"{_fmt(r['psnr'], '.2f') + ' ± ' + _fmt(r['psnr_std'], '.2f'):>16}"
                f"{_fmt(r['ssim'], '.3f') + ' ± ' + _fmt(r['ssim_std'], '.3f'):>16}"
                f"{_fmt_seconds(r['seconds_per_image']):>11}")
        if ref:
            line += (f"{_fmt(r.get('reference_psnr'), '.2f'):>12}"
                     f"{_fmt(r.get('reference_ssim'), '.3f'):>12}")
        lines.append(line)
    return "\n".join(lines)


#: How the metrics table names the ``scale`` of a row's uncertainty map.
_SCALE_NAMES = {"own": "ensemble spread", "residual": "data residual"}


def _metrics_table_html(rows: List[dict], level: int = 3) -> str:
    """The quality table (PSNR, SSIM, time, DIVal's figures) and, when rows carry bounds, the
    bounds table (coverage, RMSE bound, flags, the uncertainty map's source and its
    correlation with the error, headed ``<h{level}>``), one row per method and dataset in
    both."""
    if not rows:
        return "<p class='note'>No metric rows.</p>"
    ref = _has_reference(rows)
    bounds = any(_num(r.get("coverage")) is not None for r in rows)
    gaps = any("psnr_delta" in r for r in rows)          # rows of a generalisation study
    detection = any("detection_auroc" in r for r in rows)
    best = {}
    for r in rows:
        p = _num(r.get("psnr"))
        if p is not None and p > best.get(r["dataset"], -math.inf):
            best[r["dataset"]] = p

    def table(head: str, cells_of) -> str:
        out, previous = ["<tr><th class='l'>method</th><th class='l'>dataset</th><th>n</th>"
                         + head + "</tr>"], None
        for r in rows:
            group = " class='group'" if previous is not None and r["dataset"] != previous else ""
            previous = r["dataset"]
            out.append(f"<tr{group}><td class='l'>{_e(r['method'])}</td>"
                       f"<td class='l'>{_e(r['dataset'])}</td><td>{_e(r['n'])}</td>"
                       + "".join(cells_of(r)) + "</tr>")
        return "<div class='wide'><table>" + "".join(out) + "</table></div>"

    def quality(r):
        is_best = _num(r.get("psnr")) is not None and _num(r.get("psnr")) == best.get(r["dataset"])
        cells = [f"<td{' class=best' if is_best else ''}>{_fmt(r['psnr'], '.2f')} ± "
                 f"{_fmt(r['psnr_std'], '.2f')}</td>",
                 f"<td>{_fmt(r['ssim'], '.3f')} ± {_fmt(r['ssim_std'], '.3f')}</td>",
                 f"<td>{_e(_fmt_seconds(r['seconds_per_image']))}</td>"]
        if gaps:
            cells.append(f"<td>{_fmt(r.get('psnr_delta'), '+.2f')}</td>")
        if ref:
            cells += [f"<td class='ref'>{_fmt(r.get('reference_psnr'), '.2f')}</td>",
                      f"<td class='ref'>{_fmt(r.get('reference_ssim'), '.3f')}</td>"]
        return cells

    def bound_cells(r):
        return [f"<td>{_fmt(r.get('coverage'), '.3f')}</td>",
                f"<td>{_fmt(r.get('interval_width'), '.4f')}</td>",
                f"<td>{_fmt(r.get('rmse_bound'), '.4f')}</td>",
                f"<td>{_fmt(r.get('bound_coverage'), '.2f')}</td>",
                f"<td>{_fmt(r.get('flagged'), '.2f')}</td>",
                *([f"<td>{_fmt(r.get('detection_auroc'), '.2f')}</td>"] if detection else []),
                f"<td class='l'>{_e(_SCALE_NAMES.get(r.get('scale'), r.get('scale') or ''))}</td>",
                f"<td>{_fmt(r.get('uncertainty_error_correlation'), '.2f')}</td>"]

    html = table("<th>PSNR (dB)</th><th>SSIM</th><th>time / image</th>"
                 + ("<th>ΔPSNR (dB)</th>" if gaps else "")
                 + (f"<th>{_e(_reference_source(rows))} PSNR</th><th>{_e(_reference_source(rows))} "
                    "SSIM</th>" if ref else ""), quality)
    note = ("PSNR and SSIM use the DIVal convention (data range = max − min of each ground truth); "
            "± is the standard deviation over the n images; bold marks the best PSNR per dataset.")
    if gaps:
        note += (" ΔPSNR: the method's PSNR on this dataset minus its in-distribution PSNR "
                 "(negative: worse under the shift; every Δ tomolearn prints is row minus "
                 "reference).")
    if ref:
        note += (f" {_reference_source(rows)} columns: published results for the task's "
                 "standard setting (for CT ellipses, DIVal's: 30 angles, 2.5 % noise, full test "
                 "split), shown for orientation only.")
    html += f"<p class='note'>{_e(note)}</p>"
    if bounds:
        alpha = next((r["alpha"] for r in rows if _num(r.get("alpha")) is not None), None)
        html += (f"<h{level}>Bounds and uncertainty maps, per method</h{level}>"
                 + table("<th>pixel coverage</th><th>interval width</th><th>RMSE bound</th>"
                         "<th>bound holds</th><th>flagged</th>"
                         + ("<th>shift AUROC</th>" if detection else "")
                         + "<th class='l'>uncertainty map</th><th>map–error r</th>", bound_cells))
        note = (f"Level alpha = {alpha}. Pixel coverage: the mean fraction of pixels inside their "
                "conformal interval (guaranteed >= 1 - alpha in expectation on in-distribution "
                "data); interval width: mean over pixels and images, image units; the RMSE bound "
                "holds with probability >= 1 - alpha per in-distribution image, 'bound holds' is "
                "the observed fraction; 'flagged': the fraction of images whose data-consistency "
                "p-value is below alpha. "
                + ("Shift AUROC: how well the data-consistency score separates this dataset from "
                   "the in-distribution test images (1: perfectly, 0.5: not at all; the test is "
                   "one-sided, so data fitted better than in calibration score below 0.5). "
                   if detection else "")
                + "Uncertainty map: what the map's shape comes from (the "
                "spread of a deep ensemble's members, or the back-projected data residual); "
                "map–error r: the Pearson correlation over pixels of the uncertainty map with the "
                "absolute error, mean over the images (1: the map shows exactly where the errors "
                "are; 0: it does not). Blank: not calibrated for that method.")
        html += f"<p class='note'>{_e(note)}</p>"
    return html
