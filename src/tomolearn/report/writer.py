"""Writing a report: :func:`write_report` (one report) and :func:`write_report_sections` (one
page with a section per part, e.g. per task) render every figure, build the page and the
metrics, and only then write ``index.html`` and ``metrics.json``, atomically."""

from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path
from typing import List, Sequence, Tuple

from ..files import atomic_write_bytes
from .directory import check_report_dir
from .figures import render_case_figure
from .page import _build_html, _build_sections_html, _section_anchors
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
    meta = _checked_meta(meta, "meta")
    extra = _checked_figures(figures)
    case_figures = [render_case_figure(case, dpi=dpi) for case in cases]
    page = _build_html(cases, case_figures, rows, meta, extra)
    doc = {"results": rows, "meta": meta, "cases": _case_summaries(cases),
           "table": format_table(rows), "files": dict(_FILES)}
    return _write(out_dir, overwrite, page, doc)


def write_report_sections(out_dir, sections: Sequence[dict], meta: dict, *,
                          overwrite: bool = False, dpi: int = 90) -> Path:
    """Write one self-contained HTML report with a section per part (e.g. per task of
    ``tomolearn demo --task all``) and its metrics to ``out_dir``.

    Parameters
    ----------
    out_dir : str or Path
        As for :func:`write_report`: created if missing, refused when not empty unless
        ``overwrite`` (checked first and again just before writing); ``index.html`` and
        ``metrics.json`` are written atomically after every figure is rendered.
    sections : sequence of dict
        At least one, each ``{"task": str, "cases": [...], "rows": [...], "meta": {...}}``
        plus optionally ``"figures"`` (``(caption, PNG bytes)`` pairs); ``cases``, ``rows`` and
        ``meta`` as for :func:`write_report` (checked the same way, every section before any
        figure is rendered).  ``task`` names the section (a task kind): its nav link, and its
        anchors ``<task>``, ``<task>-metrics``, ``<task>-images``, ... (see
        :func:`~tomolearn.report.page.section_anchor`), so names must differ.  The section's
        ``meta["title"]`` heads it (``<h2>``) and its ``description``, ``settings``,
        ``timings`` and ``timing_note`` are shown in it.
    meta : dict
        The page's: ``title``, ``description``, ``settings`` (shared by the sections),
        ``timings`` (dict name -> seconds), ``command`` (the reproduce section), ``versions``,
        ``generated`` (default now).
    overwrite : bool
    dpi : int
        Figure resolution.

    Returns
    -------
    Path
        ``out_dir / "index.html"``.  ``out_dir / "metrics.json"`` holds ``{"sections":
        [{"task", "results": rows, "meta", "cases": [name, dataset, metrics, bounds, shape
        per case], "table": format_table(rows)}, ...], "results": every section's rows
        concatenated, "meta": meta, "table": the sections' tables, each under its name,
        "files": {...}}`` (non-finite numbers as null).
    """
    out_dir = Path(out_dir)
    check_report_dir(out_dir, overwrite)
    if isinstance(sections, (str, bytes, dict)) or not isinstance(sections, (list, tuple)):
        raise TypeError(f"sections must be a list of dicts, got {type(sections).__name__}")
    if not sections:
        raise ValueError("sections is empty; give at least one")
    checked = []
    for i, sec in enumerate(sections):
        if not isinstance(sec, dict):
            raise TypeError(f"sections[{i}] must be a dict, got {type(sec).__name__}")
        missing = [k for k in ("task", "cases", "rows", "meta") if k not in sec]
        if missing:
            raise ValueError(f"sections[{i}] lacks the key(s) {', '.join(missing)}")
        name = str(sec["task"])
        if name in [c["task"] for c in checked]:
            raise ValueError(f"section {name!r} given twice")
        checked.append({"task": name, "rows": _check_rows(sec["rows"]),
                        "cases": _check_cases(sec["cases"]),
                        "meta": _checked_meta(sec["meta"], f"sections[{i}]['meta']", stamp=False),
                        "figures": _checked_figures(sec.get("figures", ()))})
    meta = _checked_meta(meta, "meta")
    _section_anchors([c["task"] for c in checked])  # distinct anchors, before any rendering
    parts = [(c["task"], c["cases"], [render_case_figure(case, dpi=dpi) for case in c["cases"]],
              c["rows"], c["meta"], c["figures"]) for c in checked]
    page = _build_sections_html(parts, meta)
    docs = [{"task": c["task"], "results": c["rows"], "meta": c["meta"],
             "cases": _case_summaries(c["cases"]), "table": format_table(c["rows"])}
            for c in checked]
    doc = {"sections": docs, "results": [r for c in checked for r in c["rows"]], "meta": meta,
           "table": "\n\n".join(f"{d['task']}:\n{d['table']}" for d in docs),
           "files": dict(_FILES)}
    return _write(out_dir, overwrite, page, doc)


_FILES = {"html": "index.html", "metrics": "metrics.json"}


def _checked_meta(meta, what: str, stamp: bool = True) -> dict:
    """A copy of ``meta`` (a dict), with ``generated`` set (default now) if ``stamp``."""
    if not isinstance(meta, dict):
        raise TypeError(f"{what} must be a dict, got {type(meta).__name__}")
    meta = dict(meta)
    if stamp:
        meta.setdefault("generated", _dt.datetime.now().astimezone().isoformat(timespec="seconds"))
    return meta


def _checked_figures(figures) -> List[Tuple[str, bytes]]:
    """Extra figures as ``(caption, PNG bytes)`` pairs; ``ValueError`` for anything else."""
    extra = []
    for item in figures:
        if (not isinstance(item, (tuple, list)) or len(item) != 2 or not isinstance(item[1], bytes)
                or not item[1].startswith(b"\x89PNG")):
            raise ValueError("figures must be (caption, PNG bytes) pairs, got "
                             f"{type(item).__name__}")
        extra.append((str(item[0]), item[1]))
    return extra


def _case_summaries(cases: List[dict]) -> List[dict]:
    """What ``metrics.json`` keeps of each case: name, dataset, metrics, bounds, image shape."""
    return [{"name": c["name"], "dataset": c.get("dataset"), "metrics": c.get("metrics", {}),
             "bounds": c.get("bounds", {}),
             "shape": list(_image(c["ground_truth"], f"{c['name']}: ground_truth").shape)}
            for c in cases]


def _write(out_dir: Path, overwrite: bool, page: str, doc: dict) -> Path:
    """Write ``metrics.json`` (``doc``) and ``index.html`` (``page``) atomically, after checking
    ``out_dir`` again (rendering takes a while)."""
    metrics_bytes = (json.dumps(_jsonable(doc), indent=1, allow_nan=False) + "\n").encode("utf-8")
    check_report_dir(out_dir, overwrite)  # again: rendering takes a while
    out_dir.mkdir(parents=True, exist_ok=True)
    index = out_dir / "index.html"
    for path, data in ((out_dir / "metrics.json", metrics_bytes), (index, page.encode("utf-8"))):
        atomic_write_bytes(path, data)
    return index
