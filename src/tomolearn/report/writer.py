"""Writing a report: :func:`write_report` renders every figure, builds the page and the
metrics, and only then writes ``index.html`` and ``metrics.json``, atomically."""

from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path
from typing import List, Sequence, Tuple

from ..files import atomic_write_bytes
from .directory import check_report_dir
from .figures import render_case_figure
from .page import _build_html
from .tables import format_table
from .values import _check_cases, _check_rows, _image, _jsonable


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
        (``reference_psnr`` / ``reference_ssim`` / ``reference_source`` add reference columns).
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
        Extra figures (e.g. :func:`tomolearn.studies.generalisation_figure`), shown
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
