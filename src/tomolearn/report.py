"""Self-contained HTML reports of reconstruction results, and their rendering to PNG.

:func:`write_report` turns a list of displayed images ("cases") and a list of
metric rows into a folder holding

``index.html``
    One self-contained page: inline CSS, every figure a base64 PNG embedded
    as a ``data:`` URI, no external resource, so it opens offline and can be
    mailed or archived as one file.  A Content-Security-Policy forbids the
    browser from fetching anything.
``metrics.json``
    ``{"results": rows, "meta": meta, "cases": [...], "table": str, ...}``;
    ``results`` follow DESIGN.md's JSON (``method, dataset, n, psnr,
    psnr_std, ssim, ssim_std, seconds_per_image`` plus any extra keys).

Both files are written atomically (:func:`tomolearn.files.atomic_write_bytes`)
after every figure has been rendered in memory, so a failure leaves no
half-written report.

:func:`render_png` screenshots a report with headless Chromium, to check its
layout without a desktop browser (``scripts/render_report.py``).
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import io
import json
import math
import os
import re
import shutil
import struct
import subprocess
import tempfile
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from .files import atomic_write_bytes

__all__ = ["write_report", "render_case_figure", "format_table", "render_png", "find_chromium",
           "REQUIRED_ROW_KEYS"]

#: Keys every metrics row must carry (DESIGN.md's JSON).
REQUIRED_ROW_KEYS = ("method", "dataset", "n", "psnr", "psnr_std", "ssim", "ssim_std",
                     "seconds_per_image")

_MAP_KINDS = (("uncertainty", "uncertainty", "viridis"),
              ("interval_width", "interval width", "cividis"))


# ---------------------------------------------------------------------------------------------
# input checks and conversions
# ---------------------------------------------------------------------------------------------
def _to_numpy(a, what: str) -> np.ndarray:
    """A float64 numpy copy of an array-like or torch tensor (any device)."""
    if hasattr(a, "detach"):  # torch.Tensor without importing torch here
        a = a.detach().cpu().numpy()
    try:
        arr = np.asarray(a, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise TypeError(f"{what} must be a real array, got {type(a).__name__}") from e
    return arr


def _image(a, what: str, shape: Optional[Tuple[int, int]] = None) -> np.ndarray:
    """A 2-D image; leading singleton axes ((1, H, W), (1, 1, H, W)) are squeezed."""
    arr = _to_numpy(a, what)
    while arr.ndim > 2 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 2:
        raise ValueError(f"{what} must be a 2-D array (H, W), got shape {tuple(arr.shape)}")
    if shape is not None and arr.shape != tuple(shape):
        raise ValueError(f"{what} must have the ground truth's shape {tuple(shape)}, "
                         f"got {tuple(arr.shape)}")
    return arr


def _check_rows(rows) -> List[dict]:
    if not isinstance(rows, (list, tuple)):
        raise TypeError(f"rows must be a list of dicts, got {type(rows).__name__}")
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise TypeError(f"rows[{i}] must be a dict, got {type(row).__name__}")
        missing = [k for k in REQUIRED_ROW_KEYS if k not in row]
        if missing:
            raise ValueError(f"rows[{i}] lacks the key(s) {', '.join(missing)}; every row needs "
                             f"{', '.join(REQUIRED_ROW_KEYS)}")
    return list(rows)


def _check_cases(cases) -> List[dict]:
    if not isinstance(cases, (list, tuple)):
        raise TypeError(f"cases must be a list of dicts, got {type(cases).__name__}")
    for i, case in enumerate(cases):
        if not isinstance(case, dict):
            raise TypeError(f"cases[{i}] must be a dict, got {type(case).__name__}")
        missing = [k for k in ("name", "ground_truth", "sinogram", "reconstructions") if k not in case]
        if missing:
            raise ValueError(f"cases[{i}] lacks the key(s) {', '.join(missing)}")
        if not isinstance(case["reconstructions"], dict):
            raise TypeError(f"cases[{i}]['reconstructions'] must be a dict method -> (H, W) array")
    return list(cases)


def _jsonable(obj):
    """Plain JSON data: numpy/torch scalars and arrays to Python, non-finite floats to None."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if hasattr(obj, "detach"):
        obj = obj.detach().cpu().numpy()
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    if obj is None or isinstance(obj, str):
        return obj
    if isinstance(obj, Path):
        return str(obj)
    return str(obj)


def _num(value) -> Optional[float]:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _fmt(value, spec: str, missing: str = "–") -> str:
    v = _num(value)
    return missing if v is None else format(v, spec)


def _fmt_seconds(seconds) -> str:
    s = _num(seconds)
    if s is None:
        return "–"
    if s < 1e-3:
        return f"{s * 1e6:.0f} µs"
    if s < 1:
        return f"{s * 1e3:.1f} ms"
    return f"{s:.2f} s"


# ---------------------------------------------------------------------------------------------
# figures
# ---------------------------------------------------------------------------------------------
def _png_size(png: bytes) -> Tuple[int, int]:
    """(width, height) in pixels from a PNG's IHDR chunk."""
    return struct.unpack(">II", png[16:24])


def render_case_figure(case: dict, *, dpi: int = 90, panel_inches: float = 2.1) -> bytes:
    """One case as a PNG figure grid (bytes).

    Layout, one column per panel:

    * row 1: ground truth, sinogram, then every reconstruction, all images on
      the ground truth's grey scale (``vmin, vmax = gt.min(), gt.max()``), one
      grey colour bar (arrows where reconstructions leave that range); the
      sinogram has its own colour bar.  Titles carry PSNR
      (dB) and SSIM per method.
    * row 2: absolute error ``|x_hat - gt|`` per method on ONE colour scale
      shared by all methods of the case (0 to the 99.5th percentile of all
      their errors, arrow on the colour bar when clipped), one colour bar;
      titles carry the RMSE and, when ``case["bounds"]`` has the method, the
      certified RMSE bound (red and "FLAGGED" when flagged).
    * further rows, only when ``case["maps"]`` has them: uncertainty and
      interval-width maps, one shared scale and colour bar per row.

    Parameters
    ----------
    case : dict
        See :func:`write_report`.  Arrays may be numpy or torch, shapes
        ``(H, W)`` (leading singleton axes are dropped); sinogram ``(A, D)``.
    dpi : int
        Resolution; the figure is about ``(2.1 (2 + M) + 0.6) x 2.3 R`` inches
        for ``M`` methods and ``R`` rows.
    panel_inches : float
        Side of one panel in inches.

    Returns
    -------
    bytes
        The PNG file.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    name = str(case.get("name", "case"))
    gt = _image(case["ground_truth"], f"{name}: ground_truth")
    sino = _image(case["sinogram"], f"{name}: sinogram")
    recs = {str(m): _image(r, f"{name}: reconstructions[{m!r}]", gt.shape)
            for m, r in case["reconstructions"].items()}
    methods = list(recs)
    scores = case.get("metrics") or {}
    bounds = case.get("bounds") or {}
    maps = case.get("maps") or {}
    map_rows = []
    for key, label, cmap in _MAP_KINDS:
        present = {m: _image(maps[m][key], f"{name}: maps[{m!r}][{key!r}]", gt.shape)
                   for m in methods if isinstance(maps.get(m), dict) and maps[m].get(key) is not None}
        if present:
            map_rows.append((label, cmap, present))

    n_cols = 2 + max(1, len(methods))
    n_rows = 1 + (1 if methods else 0) + len(map_rows)
    fig = Figure(figsize=(panel_inches * n_cols + 0.6, (panel_inches + 0.5) * n_rows), dpi=dpi,
                 layout="constrained")
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(n_rows, n_cols + 1, width_ratios=[1.0] * n_cols + [0.07])
    title_kw = dict(fontsize=8.5)

    def image_axes(row, col):
        ax = fig.add_subplot(grid[row, col])
        ax.set_xticks([])
        ax.set_yticks([])
        return ax

    def label_axes(row, text):
        ax = fig.add_subplot(grid[row, 0:2])
        ax.set_axis_off()
        ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=9, wrap=True,
                transform=ax.transAxes)

    lo, hi = float(np.nanmin(gt)), float(np.nanmax(gt))
    if not hi > lo:
        hi = lo + 1.0
    grey = dict(cmap="gray", vmin=lo, vmax=hi, interpolation="nearest")

    ax = image_axes(0, 0)
    im_grey = ax.imshow(gt, **grey)
    ax.set_title(f"ground truth\nrange [{lo:.2g}, {hi:.2g}]", **title_kw)
    ax = image_axes(0, 1)
    im = ax.imshow(sino, cmap="gray", aspect="auto", interpolation="nearest")
    ax.set_title(f"sinogram\n{sino.shape[0]} angles × {sino.shape[1]} detectors", **title_kw)
    ax.set_xlabel("detector", fontsize=8)
    ax.set_ylabel("angle", fontsize=8)
    cb = fig.colorbar(im, ax=ax, fraction=0.08, pad=0.02)
    cb.ax.tick_params(labelsize=7)
    for j, m in enumerate(methods):
        ax = image_axes(0, 2 + j)
        ax.imshow(recs[m], **grey)
        s = scores.get(m) or {}
        ax.set_title(f"{m}\nPSNR {_fmt(s.get('psnr'), '.2f')} dB · SSIM {_fmt(s.get('ssim'), '.3f')}",
                     **title_kw)
    below = any(float(np.nanmin(r)) < lo for r in recs.values())
    above = any(float(np.nanmax(r)) > hi for r in recs.values())
    extend = {(True, True): "both", (True, False): "min", (False, True): "max"}.get((below, above),
                                                                                "neither")
    cb = fig.colorbar(im_grey, cax=fig.add_subplot(grid[0, n_cols]), extend=extend)
    cb.ax.tick_params(labelsize=7)
    cb.set_label("image value (ground-truth scale)", fontsize=7)

    if methods:
        errors = {m: np.abs(recs[m] - gt) for m in methods}
        pooled = np.concatenate([e.ravel() for e in errors.values()])
        top = float(np.nanpercentile(pooled, 99.5))
        true_max = float(np.nanmax(pooled))
        if not top > 0:
            top = true_max if true_max > 0 else 1.0
        for j, m in enumerate(methods):
            ax = image_axes(1, 2 + j)
            im_err = ax.imshow(errors[m], cmap="inferno", vmin=0.0, vmax=top, interpolation="nearest")
            rmse = float(np.sqrt(np.nanmean(errors[m] ** 2)))
            text = f"|{m} − truth|\nRMSE {rmse:.3g} · max {float(np.nanmax(errors[m])):.2g}"
            color = "black"
            b = bounds.get(m)
            if isinstance(b, dict) and b:
                text += f"\nRMSE bound {_fmt(b.get('rmse_bound'), '.3g')}"
                if b.get("flagged"):
                    text += " · FLAGGED"
                    color = "#b00020"
            ax.set_title(text, color=color, **title_kw)
        cb = fig.colorbar(im_err, cax=fig.add_subplot(grid[1, n_cols]),
                          extend="max" if true_max > top else "neither")
        cb.ax.tick_params(labelsize=7)
        cb.set_label("absolute error", fontsize=7)
        label_axes(1, "absolute error |x̂ − x|\none colour scale for\nall methods of this image\n"
                      f"(0 to {top:.2g}, 99.5th percentile)")

    for r, (label, cmap, present) in enumerate(map_rows, start=2):
        # 0 to the 99.5th percentile, like the error row: a few extreme pixels (an ensemble's
        # members disagreeing at the border) must not wash out every map
        values = np.concatenate([v.ravel() for v in present.values()])
        vmax, true_max = float(np.nanpercentile(values, 99.5)), float(np.nanmax(values))
        if not vmax > 0:
            vmax = true_max if true_max > 0 else 1.0
        for j, m in enumerate(methods):
            if m not in present:
                continue
            ax = image_axes(r, 2 + j)
            im_map = ax.imshow(present[m], cmap=cmap, vmin=0.0, vmax=vmax, interpolation="nearest")
            ax.set_title(f"{m}: {label}\nmean {float(np.nanmean(present[m])):.3g}", **title_kw)
        cb = fig.colorbar(im_map, cax=fig.add_subplot(grid[r, n_cols]),
                          extend="max" if true_max > vmax else "neither")
        cb.ax.tick_params(labelsize=7)
        cb.set_label(label, fontsize=7)
        label_axes(r, f"{label}\none colour scale for\nall methods of this image\n"
                      f"(0 to {vmax:.2g}, 99.5th percentile)")

    dataset = case.get("dataset")
    fig.suptitle(name + (f"  ({dataset})" if dataset else ""), fontsize=11, fontweight="bold")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, facecolor="white", metadata={"Software": None})
    return buf.getvalue()


# ---------------------------------------------------------------------------------------------
# tables
# ---------------------------------------------------------------------------------------------
def _has_reference(rows) -> bool:
    return any(_num(r.get("dival_psnr")) is not None or _num(r.get("dival_ssim")) is not None
               for r in rows)


def format_table(rows: Sequence[dict]) -> str:
    """Plain-text table of metric rows for a terminal.

    Columns: method, dataset, n, PSNR (dB) ± std, SSIM ± std, time per image,
    and DIVal's published PSNR/SSIM when any row carries ``dival_psnr`` /
    ``dival_ssim``.
    """
    rows = _check_rows(list(rows))
    ref = _has_reference(rows)
    wm = max([6] + [len(str(r["method"])) for r in rows]) + 2
    wd = max([7] + [len(str(r["dataset"])) for r in rows]) + 2
    head = (f"{'method':<{wm}}{'dataset':<{wd}}{'n':>4}{'PSNR dB':>16}{'SSIM':>16}{'time/img':>11}"
            + (f"{'DIVal PSNR':>12}{'DIVal SSIM':>12}" if ref else ""))
    lines = [head, "-" * len(head)]
    for r in rows:
        line = (f"{str(r['method']):<{wm}}{str(r['dataset']):<{wd}}{int(r['n']):>4}"
                f"{_fmt(r['psnr'], '.2f') + ' ± ' + _fmt(r['psnr_std'], '.2f'):>16}"
                f"{_fmt(r['ssim'], '.3f') + ' ± ' + _fmt(r['ssim_std'], '.3f'):>16}"
                f"{_fmt_seconds(r['seconds_per_image']):>11}")
        if ref:
            line += f"{_fmt(r.get('dival_psnr'), '.2f'):>12}{_fmt(r.get('dival_ssim'), '.3f'):>12}"
        lines.append(line)
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# HTML
# ---------------------------------------------------------------------------------------------
_CSS = """
:root { --fg: #1d232a; --muted: #5b6570; --line: #d5dae0; --accent: #1f5fa8; --bad: #b00020; }
* { box-sizing: border-box; }
body { margin: 0; background: #f4f6f8; color: var(--fg);
       font: 15px/1.45 -apple-system, "Segoe UI", Roboto, "DejaVu Sans", Arial, sans-serif; }
main { max-width: 1320px; margin: 0 auto; padding: 24px 28px 40px; background: #fff; }
h1 { font-size: 26px; margin: 0 0 6px; }
h2 { font-size: 20px; margin: 30px 0 10px; padding-bottom: 4px; border-bottom: 2px solid var(--line); }
h3 { font-size: 16px; margin: 20px 0 8px; color: var(--accent); }
p.lead { color: var(--muted); margin: 0 0 12px; max-width: 980px; }
nav { font-size: 14px; margin: 6px 0 14px; }
nav a { color: var(--accent); margin-right: 14px; text-decoration: none; }
table { border-collapse: collapse; font-size: 14px; margin: 6px 0 10px; }
div.wide { overflow-x: auto; }
th, td { padding: 4px 9px; border-bottom: 1px solid var(--line); text-align: right; white-space: nowrap; }
th { background: #eef1f4; font-weight: 600; white-space: normal; vertical-align: bottom; }
td.l, th.l { text-align: left; }
tr.group td { border-top: 2px solid var(--line); }
td.best { font-weight: 700; }
td.ref { color: var(--muted); }
table.kv td:first-child { text-align: left; color: var(--muted); white-space: nowrap; }
table.kv td { text-align: left; white-space: normal; }
.note { color: var(--muted); font-size: 13px; max-width: 1000px; }
figure { margin: 10px 0 18px; }
figure img { max-width: 100%; height: auto; border: 1px solid var(--line); display: block; }
pre { background: #f0f2f5; border: 1px solid var(--line); padding: 10px 12px; overflow-x: auto;
      font-size: 13px; white-space: pre-wrap; overflow-wrap: anywhere; }
.flag { color: var(--bad); font-weight: 700; }
.ok { color: #2e7d32; }
footer { margin-top: 30px; color: var(--muted); font-size: 12px; }
"""


def _e(value) -> str:
    return html.escape(str(value), quote=True)


#: How the metrics table names the ``scale`` of a row's uncertainty map.
_SCALE_NAMES = {"own": "ensemble spread", "residual": "data residual"}


def _metrics_table_html(rows: List[dict]) -> str:
    """The quality table (PSNR, SSIM, time, DIVal's figures) and, when rows carry bounds, the
    bounds table (coverage, RMSE bound, flags, the uncertainty map's source and its
    correlation with the error), one row per method and dataset in both."""
    if not rows:
        return "<p class='note'>No metric rows.</p>"
    ref = _has_reference(rows)
    bounds = any(_num(r.get("coverage")) is not None for r in rows)
    gaps = any("psnr_gap" in r for r in rows)          # rows of a generalisation study
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
            cells.append(f"<td>{_fmt(r.get('psnr_gap'), '+.2f')}</td>")
        if ref:
            cells += [f"<td class='ref'>{_fmt(r.get('dival_psnr'), '.2f')}</td>",
                      f"<td class='ref'>{_fmt(r.get('dival_ssim'), '.3f')}</td>"]
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
                 + ("<th>PSNR drop (dB)</th>" if gaps else "")
                 + ("<th>DIVal PSNR</th><th>DIVal SSIM</th>" if ref else ""), quality)
    note = ("PSNR and SSIM use the DIVal convention (data range = max − min of each ground truth); "
            "± is the standard deviation over the n images; bold marks the best PSNR per dataset.")
    if gaps:
        note += (" PSNR drop: the method's in-distribution PSNR minus its PSNR on this dataset "
                 "(positive: worse under the shift).")
    if ref:
        note += (" DIVal columns: published results on the standard ellipses benchmark "
                 "(30 angles, 2.5 % noise, full test split), shown for orientation only.")
    html += f"<p class='note'>{_e(note)}</p>"
    if bounds:
        alpha = next((r["alpha"] for r in rows if _num(r.get("alpha")) is not None), None)
        html += ("<h3>Bounds and uncertainty maps, per method</h3>"
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


def _kv_table(d: dict) -> str:
    rows = []
    for k, v in d.items():
        if isinstance(v, (dict, list, tuple)):
            v = json.dumps(_jsonable(v), sort_keys=False)
        elif isinstance(v, float):
            v = format(v, ".6g")
        rows.append(f"<tr><td>{_e(k)}</td><td>{_e(v)}</td></tr>")
    return "<table class='kv'>" + "".join(rows) + "</table>"


def _timings_html(rows: List[dict], meta: dict) -> str:
    per_method: Dict[str, List[float]] = {}
    for r in rows:
        s, n = _num(r.get("seconds_per_image")), _num(r.get("n"))
        if s is not None and n is not None:
            acc = per_method.setdefault(str(r["method"]), [0.0, 0.0])
            acc[0] += s * n
            acc[1] += n
    parts = []
    if per_method:
        body = "".join(
            f"<tr><td class='l'>{_e(m)}</td><td>{int(n)}</td><td>{_e(_fmt_seconds(t / n if n else None))}"
            f"</td><td>{_e(_fmt_seconds(t))}</td></tr>" for m, (t, n) in per_method.items())
        parts.append("<table><tr><th class='l'>method</th><th>images</th><th>mean time / image</th>"
                     "<th>total</th></tr>" + body + "</table>")
    timings = meta.get("timings")
    if isinstance(timings, dict) and timings:
        parts.append(_kv_table({k: (_fmt_seconds(v) if _num(v) is not None else v)
                                for k, v in timings.items()}))
    note = meta.get("timing_note") or ("Wall-clock time per image of each reconstruction call; "
                                       "timings depend on the machine and its load.")
    parts.append(f"<p class='note'>{_e(note)}</p>")
    return "".join(parts)


def _flags_html(cases: List[dict]) -> str:
    items, any_bounds = [], False
    for case in cases:
        for m, b in (case.get("bounds") or {}).items():
            if not isinstance(b, dict):
                continue
            any_bounds = True
            flagged = bool(b.get("flagged"))
            items.append(
                f"<tr><td class='l'>{_e(case['name'])}</td><td class='l'>{_e(m)}</td>"
                f"<td>{_fmt(b.get('rmse_bound'), '.4g')}</td><td>{_fmt(b.get('p_value'), '.3g')}</td>"
                f"<td class='l {'flag' if flagged else 'ok'}'>{'FLAGGED' if flagged else 'ok'}</td></tr>")
    if not any_bounds:
        return ""
    n_flag = sum("FLAGGED" in i for i in items)
    summary = (f"<p><span class='flag'>{n_flag} image/method pair(s) flagged</span>: the image looks "
               "unlike the calibration data (small p-value), so its RMSE bound is not guaranteed.</p>"
               if n_flag else "<p class='ok'>No image flagged.</p>")
    return ("<h2 id='flagged'>Error bounds and flagged images</h2>" + summary
            + "<table><tr><th class='l'>image</th><th class='l'>method</th><th>RMSE bound</th>"
            "<th>p-value</th><th class='l'>status</th></tr>" + "".join(items) + "</table>")


def _figure_html(png: bytes, alt: str, caption: Optional[str] = None) -> str:
    """One embedded PNG (data URI) at its own pixel size, optionally captioned."""
    w, h = _png_size(png)
    b64 = base64.b64encode(png).decode("ascii")
    cap = f"<figcaption>{_e(caption)}</figcaption>" if caption else ""
    return (f"<figure><img alt='{_e(alt)}' width='{w}' height='{h}' "
            f"src='data:image/png;base64,{b64}'>{cap}</figure>")


def _build_html(cases, figures, rows, meta, extra_figures=()) -> str:
    title = str(meta.get("title") or "tomolearn reconstruction report")
    description = meta.get("description") or (
        "Reconstructions of simulated tomographic measurements, their quality against the ground "
        "truth and their run time.")
    settings = meta.get("settings")
    command = meta.get("command") or "(command not recorded)"
    versions = meta.get("versions") if isinstance(meta.get("versions"), dict) else {}
    flags = _flags_html(cases)

    nav = ["<a href='#metrics'>metrics</a>"]
    if flags:
        nav.append("<a href='#flagged'>flagged images</a>")
    if extra_figures:
        nav.append("<a href='#figures'>figures</a>")
    show_images = bool(cases) or not extra_figures  # a study report may have figures only
    nav += (["<a href='#images'>images</a>"] if show_images else []) + [
            "<a href='#timings'>timings</a>",
            "<a href='#reproduce'>reproduce</a>"]

    fig_parts, current = [], object()
    for case, png in zip(cases, figures):
        dataset = case.get("dataset")
        if dataset != current:
            current = dataset
            if dataset:
                fig_parts.append(f"<h3>{_e(dataset)}</h3>")
        fig_parts.append(_figure_html(png, case["name"]))

    generated = meta.get("generated") or _dt.datetime.now().astimezone().isoformat(timespec="seconds")
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        "<meta http-equiv='Content-Security-Policy' content=\"default-src 'none'; img-src data:; "
        "style-src 'unsafe-inline'\">",
        "<meta name='viewport' content='width=device-width, initial-scale=1'>",
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body><main>",
        f"<h1>{_e(title)}</h1><p class='lead'>{_e(description)}</p>",
        "<nav>" + "".join(nav) + "</nav>",
    ]
    if isinstance(settings, dict) and settings:
        parts.append("<h2 id='settings'>Settings</h2>" + _kv_table(settings))
    parts += ["<h2 id='metrics'>Metrics</h2>", _metrics_table_html(rows), flags]
    if extra_figures:
        parts.append("<h2 id='figures'>Figures</h2>")
        parts += [_figure_html(png, caption, caption) for caption, png in extra_figures]
    if show_images:
        parts += ["<h2 id='images'>Images</h2>",
                  "<p class='note'>Per image: ground truth, measured sinogram and each reconstruction "
                  "on the ground truth's grey scale; below, the absolute error of each method on one "
                  "colour scale shared by the methods of that image (compare methods within a row, "
                  "not across images).</p>"]
        parts += fig_parts or ["<p class='note'>No images.</p>"]
    parts += ["<h2 id='timings'>Timings</h2>", _timings_html(rows, meta),
              "<h2 id='reproduce'>Reproduce</h2>",
              "<p>Run this to produce this report again (same seed, same data):</p>",
              f"<pre>{_e(command)}</pre>"]
    if versions:
        parts.append("<h3>Versions</h3>" + _kv_table(versions))
    parts.append(f"<footer>generated {_e(generated)} · metrics also in metrics.json</footer>"
                 "</main></body></html>")
    return "\n".join(parts)


# ---------------------------------------------------------------------------------------------
# public entry point
# ---------------------------------------------------------------------------------------------
def check_report_dir(out_dir, overwrite: bool) -> None:
    """Refuse a report directory that is a file, or not empty without ``overwrite``.

    Raises :class:`NotADirectoryError` or :class:`FileExistsError`; call it
    before long work so nothing is computed for a report that cannot be written.
    """
    out_dir = Path(out_dir)
    if out_dir.exists():
        if not out_dir.is_dir():
            raise NotADirectoryError(f"report directory {out_dir} exists and is not a directory")
        if any(out_dir.iterdir()) and not overwrite:
            raise FileExistsError(f"report directory {out_dir} exists and is not empty; pass "
                                  "--overwrite (overwrite=True) to replace its report, or choose "
                                  "another directory")


def write_report(out_dir, cases: List[dict], rows: List[dict], meta: dict, *,
                 overwrite: bool = False, dpi: int = 90,
                 figures: Sequence[Tuple[str, bytes]] = ()) -> Path:
    """Write a self-contained HTML report and its metrics to ``out_dir``.

    Parameters
    ----------
    out_dir : str or Path
        Created if missing.  Refused (:class:`FileExistsError`, nothing
        written) when it exists and is not empty, unless ``overwrite``; with
        ``overwrite`` only ``index.html`` and ``metrics.json`` are replaced,
        other files are left alone.
    cases : list of dict
        One per displayed image::

            {"name": str, "dataset": str,
             "ground_truth": (H, W) array, "sinogram": (A, D) array,
             "reconstructions": {method: (H, W) array},
             "metrics": {method: {"psnr": float (dB), "ssim": float}},
             "maps": {method: {"uncertainty": (H, W), "interval_width": (H, W)}},   # optional
             "bounds": {method: {"rmse_bound": float, "flagged": bool,
                                 "p_value": float}}}                               # optional

        numpy arrays or torch tensors (any device).  Images are shown on the
        ground truth's value scale (no unit conversion).
    rows : list of dict
        Metric rows, DESIGN.md's JSON: ``method, dataset, n, psnr (dB),
        psnr_std, ssim, ssim_std, seconds_per_image`` plus any extra keys
        (``dival_psnr`` / ``dival_ssim`` add reference columns).
    meta : dict
        Free-form, JSON-serialisable; used keys: ``title``, ``description``,
        ``settings`` (dict, shown as a table), ``command`` (str, shown in the
        "reproduce" section), ``versions`` (dict), ``timings`` (dict name ->
        seconds), ``timing_note`` (str, how times were taken),
        ``generated`` (timestamp string; default now).
    overwrite : bool
    dpi : int
        Figure resolution (90 keeps a 10-image report around 1-2 MB).
    figures : sequence of (caption, PNG bytes)
        Extra figures (e.g. :func:`tomolearn.uq.generalisation_figure`), shown
        after the metrics.

    Returns
    -------
    Path
        ``out_dir / "index.html"``.  ``out_dir / "metrics.json"`` holds
        ``{"results": rows, "meta": meta, "cases": [name, dataset, metrics,
        bounds per case], "table": format_table(rows), "files": {...}}``
        (non-finite numbers as null).
    """
    out_dir = Path(out_dir)
    check_report_dir(out_dir, overwrite)
    rows = _check_rows(rows)
    cases = _check_cases(cases)
    if not isinstance(meta, dict):
        raise TypeError(f"meta must be a dict, got {type(meta).__name__}")
    meta = dict(meta)
    meta.setdefault("generated", _dt.datetime.now().astimezone().isoformat(timespec="seconds"))

    extra = []
    for item in figures:
        if (not isinstance(item, (tuple, list)) or len(item) != 2 or not isinstance(item[1], bytes)
                or not item[1].startswith(b"\x89PNG")):
            raise ValueError("figures must be (caption, PNG bytes) pairs, got "
                             f"{type(item).__name__}")
        extra.append((str(item[0]), item[1]))
    case_figures = [render_case_figure(case, dpi=dpi) for case in cases]
    page = _build_html(cases, case_figures, rows, meta, extra)
    doc = {
        "results": rows,
        "meta": meta,
        "cases": [{"name": c["name"], "dataset": c.get("dataset"), "metrics": c.get("metrics", {}),
                   "bounds": c.get("bounds", {}),
                   "shape": list(_image(c["ground_truth"], f"{c['name']}: ground_truth").shape)}
                  for c in cases],
        "table": format_table(rows),
        "files": {"html": "index.html", "metrics": "metrics.json"},
    }
    metrics_bytes = (json.dumps(_jsonable(doc), indent=1, allow_nan=False) + "\n").encode("utf-8")

    check_report_dir(out_dir, overwrite)  # again: rendering takes a while
    out_dir.mkdir(parents=True, exist_ok=True)
    index = out_dir / "index.html"
    for path, data in ((out_dir / "metrics.json", metrics_bytes), (index, page.encode("utf-8"))):
        atomic_write_bytes(path, data)
    return index


# ---------------------------------------------------------------------------------------------
# headless rendering
# ---------------------------------------------------------------------------------------------
_CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_chromium(chromium=None) -> Optional[str]:
    """Path of a Chromium/Chrome executable, or None.

    Order: the argument, ``$TOMOLEARN_CHROMIUM``, ``/usr/bin/chromium``, then
    ``chromium``, ``chromium-browser``, ``google-chrome``,
    ``google-chrome-stable`` on ``PATH``.
    """
    candidates = [chromium, os.environ.get("TOMOLEARN_CHROMIUM"), "/usr/bin/chromium"]
    candidates += [shutil.which(n) for n in _CHROMIUM_NAMES]
    for c in candidates:
        if not c:
            continue
        path = shutil.which(str(c)) or (str(c) if os.path.isfile(str(c)) and os.access(str(c), os.X_OK)
                                        else None)
        if path:
            return path
    return None


def _estimate_height(page: str, width: int) -> int:
    """Generous page height in pixels: embedded figures, table rows and text blocks."""
    height = 600
    for w, h in re.findall(r"<img[^>]*?width='(\d+)' height='(\d+)'", page):
        w, h = int(w), int(h)
        height += int(h * min(1.0, (width - 80) / max(w, 1))) + 40
    height += 34 * page.count("<tr") + 60 * (page.count("<h2") + page.count("<h3") + page.count("<p"))
    height += 20 * page.count("\n", page.find("<pre>"), page.find("</pre>")) if "<pre>" in page else 0
    return min(height, 16000)


def _trim_bottom(png_bytes: bytes, margin: int = 24) -> bytes:
    """Crop trailing rows equal to the bottom row's colour (the empty page below the content)."""
    from PIL import Image

    img = Image.open(io.BytesIO(png_bytes)).convert("RGB")
    arr = np.asarray(img)
    background = arr[-1, -1]
    differs = np.any(np.abs(arr.astype(np.int16) - background.astype(np.int16)) > 2, axis=(1, 2))
    rows = np.flatnonzero(differs)
    if rows.size == 0:
        return png_bytes
    bottom = min(arr.shape[0], int(rows[-1]) + 1 + margin)
    if bottom >= arr.shape[0]:
        return png_bytes
    out = io.BytesIO()
    img.crop((0, 0, arr.shape[1], bottom)).save(out, format="PNG", optimize=True)
    return out.getvalue()


def render_png(html_path, png_path, *, width: int = 1400, height: Optional[int] = None,
               chromium=None, timeout: float = 120.0) -> Path:
    """Render an HTML file to a PNG screenshot with headless Chromium.

    Parameters
    ----------
    html_path : str or Path
        The page (e.g. a report's ``index.html``).
    png_path : str or Path
        Where to write the PNG (atomically; parent folders are created).
    width : int
        Window width in CSS pixels = PNG width in pixels (device scale 1).
    height : int, optional
        Window height in pixels.  Default: the whole page — the window is made
        taller than the page's estimated height (at most 16000 px) and the
        empty bottom is cropped away.
    chromium : str or Path, optional
        The browser executable; default :func:`find_chromium`.
    timeout : float
        Seconds before the browser is killed.

    Returns
    -------
    Path
        ``png_path``.

    Raises
    ------
    RuntimeError
        No Chromium found, or it failed, timed out or wrote no screenshot.
    """
    html_path, png_path = Path(html_path).resolve(), Path(png_path)
    if not html_path.is_file():
        raise FileNotFoundError(f"no HTML file at {html_path}")
    if not (isinstance(width, int) and width > 0):
        raise ValueError(f"width must be a positive int, got {width!r}")
    if height is not None and not (isinstance(height, int) and height > 0):
        raise ValueError(f"height must be a positive int or None, got {height!r}")
    exe = find_chromium(chromium)
    if exe is None:
        raise RuntimeError(
            "no Chromium found to render the report: looked for " + (f"{chromium}, " if chromium else "")
            + "$TOMOLEARN_CHROMIUM, /usr/bin/chromium and " + ", ".join(_CHROMIUM_NAMES)
            + " on PATH; install one (e.g. `apt-get install chromium`) or pass chromium=PATH")
    full_page = height is None
    if full_page:
        height = _estimate_height(html_path.read_text(encoding="utf-8", errors="replace"), width)
    with tempfile.TemporaryDirectory(prefix="tomolearn-chromium-") as tmp:
        shot = Path(tmp) / "shot.png"
        cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               "--disable-dev-shm-usage", "--force-device-scale-factor=1",
               f"--user-data-dir={Path(tmp) / 'profile'}", "--hide-scrollbars",
               f"--window-size={width},{height}", f"--screenshot={shot}", html_path.as_uri()]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                                  stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired as e:
            raise RuntimeError(f"{exe} did not finish rendering {html_path} within {timeout:g} s") from e
        if not shot.is_file() or shot.stat().st_size == 0:
            tail = (proc.stderr or "").strip().splitlines()[-8:]
            raise RuntimeError(f"{exe} wrote no screenshot of {html_path} (exit status "
                               f"{proc.returncode}); its last messages:\n" + "\n".join(tail))
        data = shot.read_bytes()
    if full_page:
        data = _trim_bottom(data)
    atomic_write_bytes(png_path, data)
    return png_path
