"""The report's self-contained HTML page.

One page with inline CSS and every figure embedded as a base64 PNG ``data:``
URI; a Content-Security-Policy forbids the browser from fetching anything,
so the page opens offline and can be mailed or archived as one file.
Sections: settings, metrics, flagged images, extra figures, per-image
figures, timings, how to reproduce, versions.  A multi-section page (one
section per task of ``tomolearn demo --task all``) repeats the first six per
section, one heading level down and with anchors prefixed by the section's
name, under one shared header, reproduce section and versions.
"""

from __future__ import annotations

import base64
import datetime as _dt
import json
import re
import struct
from typing import Dict, List, Optional, Tuple

from .tables import _metrics_table_html
from .values import _e, _fmt, _fmt_seconds, _jsonable, _num


_CSS = """
:root { --fg: #1d232a; --muted: #5b6570; --line: #d5dae0; --accent: #1f5fa8; --bad: #b00020; }
* { box-sizing: border-box; }
body { margin: 0; background: #f4f6f8; color: var(--fg);
       font: 15px/1.45 -apple-system, "Segoe UI", Roboto, "DejaVu Sans", Arial, sans-serif; }
main { max-width: 1320px; margin: 0 auto; padding: 24px 28px 40px; background: #fff; }
h1 { font-size: 26px; margin: 0 0 6px; }
h2 { font-size: 20px; margin: 30px 0 10px; padding-bottom: 4px; border-bottom: 2px solid var(--line); }
h3 { font-size: 16px; margin: 20px 0 8px; color: var(--accent); }
h4 { font-size: 15px; margin: 16px 0 6px; color: var(--accent); }
section { margin-top: 34px; }
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


def _flags_html(cases: List[dict], prefix: str = "", level: int = 2) -> str:
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
    return (f"<h{level} id='{prefix}flagged'>Error bounds and flagged images</h{level}>" + summary
            + "<table><tr><th class='l'>image</th><th class='l'>method</th><th>RMSE bound</th>"
            "<th>p-value</th><th class='l'>status</th></tr>" + "".join(items) + "</table>")


def _png_size(png: bytes) -> Tuple[int, int]:
    """(width, height) in pixels from a PNG's IHDR chunk."""
    return struct.unpack(">II", png[16:24])


def _figure_html(png: bytes, alt: str, caption: Optional[str] = None) -> str:
    """One embedded PNG (data URI) at its own pixel size, optionally captioned."""
    w, h = _png_size(png)
    b64 = base64.b64encode(png).decode("ascii")
    cap = f"<figcaption>{_e(caption)}</figcaption>" if caption else ""
    return (f"<figure><img alt='{_e(alt)}' width='{w}' height='{h}' "
            f"src='data:image/png;base64,{b64}'>{cap}</figure>")


def _head(title: str) -> List[str]:
    """The document's head and the opening of its body."""
    return [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        "<meta http-equiv='Content-Security-Policy' content=\"default-src 'none'; img-src data:; "
        "style-src 'unsafe-inline'\">",
        "<meta name='viewport' content='width=device-width, initial-scale=1'>",
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body><main>",
    ]


def _nav(links: List[Tuple[str, str]]) -> str:
    """``<nav>`` of ``(anchor id, label)`` links."""
    return "<nav>" + "".join(f"<a href='#{_e(i)}'>{_e(label)}</a>" for i, label in links) + "</nav>"


def _section_html(cases, figures, rows, meta, extra_figures=(), *, prefix: str = "",
                  level: int = 2) -> Tuple[List[Tuple[str, str]], List[str]]:
    """One report's body: settings, metrics, flagged images, extra figures, per-image figures
    and timings, headed ``<h{level}>`` with anchors ``prefix + "metrics"`` etc.  Returns
    ``(nav links as (id, label), HTML parts)``; a single report and each section of a
    multi-section report are this."""
    h, sub = f"h{level}", f"h{level + 1}"
    settings = meta.get("settings")
    flags = _flags_html(cases, prefix, level)
    show_images = bool(cases) or not extra_figures  # a study report may have figures only
    nav = [(prefix + "metrics", "metrics")]
    nav += [(prefix + "flagged", "flagged images")] if flags else []
    nav += [(prefix + "figures", "figures")] if extra_figures else []
    nav += [(prefix + "images", "images")] if show_images else []
    nav.append((prefix + "timings", "timings"))

    fig_parts, current = [], object()
    for case, png in zip(cases, figures):
        dataset = case.get("dataset")
        if dataset != current:
            current = dataset
            if dataset:
                fig_parts.append(f"<{sub}>{_e(dataset)}</{sub}>")
        fig_parts.append(_figure_html(png, case["name"]))

    parts = []
    if isinstance(settings, dict) and settings:
        parts.append(f"<{h} id='{prefix}settings'>Settings</{h}>" + _kv_table(settings))
    parts += [f"<{h} id='{prefix}metrics'>Metrics</{h}>", _metrics_table_html(rows, level + 1), flags]
    if extra_figures:
        parts.append(f"<{h} id='{prefix}figures'>Figures</{h}>")
        parts += [_figure_html(png, caption, caption) for caption, png in extra_figures]
    if show_images:
        parts += [f"<{h} id='{prefix}images'>Images</{h}>",
                  "<p class='note'>Per image: ground truth, measured sinogram and each reconstruction "
                  "on the ground truth's grey scale; below, the absolute error of each method on one "
                  "colour scale shared by the methods of that image (compare methods within a row, "
                  "not across images).</p>"]
        parts += fig_parts or ["<p class='note'>No images.</p>"]
    parts += [f"<{h} id='{prefix}timings'>Timings</{h}>", _timings_html(rows, meta)]
    return nav, parts


def _tail(meta: dict) -> List[str]:
    """The reproduce section, the versions and the footer (one per page)."""
    command = meta.get("command") or "(command not recorded)"
    versions = meta.get("versions") if isinstance(meta.get("versions"), dict) else {}
    generated = meta.get("generated") or _dt.datetime.now().astimezone().isoformat(timespec="seconds")
    parts = ["<h2 id='reproduce'>Reproduce</h2>",
             "<p>Run this to produce this report again (same seed, same data):</p>",
             f"<pre>{_e(command)}</pre>"]
    if versions:
        parts.append("<h3>Versions</h3>" + _kv_table(versions))
    parts.append(f"<footer>generated {_e(generated)} · metrics also in metrics.json</footer>"
                 "</main></body></html>")
    return parts


def _title_and_lead(meta: dict) -> Tuple[str, str]:
    title = str(meta.get("title") or "tomolearn reconstruction report")
    description = meta.get("description") or (
        "Reconstructions of simulated tomographic measurements, their quality against the ground "
        "truth and their run time.")
    return title, description


def _build_html(cases, figures, rows, meta, extra_figures=()) -> str:
    """The page of one report (:func:`tomolearn.report.write_report`)."""
    title, description = _title_and_lead(meta)
    nav, body = _section_html(cases, figures, rows, meta, extra_figures)
    parts = _head(title) + [f"<h1>{_e(title)}</h1><p class='lead'>{_e(description)}</p>",
                            _nav(nav + [("reproduce", "reproduce")])]
    return "\n".join(parts + body + _tail(meta))


def section_anchor(name: str) -> str:
    """The anchor of a report section named ``name`` (e.g. a task kind): lower case, runs of
    other characters than letters, digits, ``_`` and ``-`` as one ``-``."""
    return re.sub(r"[^a-z0-9_-]+", "-", str(name).lower()).strip("-") or "section"


#: Anchors of the multi-section page's own headings, which no section may take.
_PAGE_ANCHORS = ("settings", "timings", "reproduce")


def _section_anchors(names) -> List[str]:
    """:func:`section_anchor` of each name; ``ValueError`` when two are equal or one is an
    anchor of the page's own headings."""
    anchors = [section_anchor(n) for n in names]
    for i, a in enumerate(anchors):
        if a in anchors[:i] or a in _PAGE_ANCHORS:
            raise ValueError(f"section {names[i]!r} has the anchor {a!r}, which another section "
                             "or the page already uses; give the sections distinct names")
    return anchors


def _build_sections_html(sections, meta) -> str:
    """The page of a multi-section report (:func:`tomolearn.report.write_report_sections`):
    a shared header, overall settings and a nav to the sections; per section an ``<h2>`` (its
    meta's title) and the body of :func:`_section_html` one heading level down, its anchors
    prefixed by :func:`section_anchor` of its name; overall timings, reproduce, versions.

    ``sections``: ``(name, cases, figures, rows, meta, extra_figures)`` tuples."""
    title, description = _title_and_lead(meta)
    anchors = _section_anchors([s[0] for s in sections])
    settings, timings = meta.get("settings"), meta.get("timings")
    nav = [(a, str(s[0])) for a, s in zip(anchors, sections)]
    body = []
    if isinstance(settings, dict) and settings:
        nav.insert(0, ("settings", "settings"))
        body.append("<h2 id='settings'>Settings</h2>" + _kv_table(settings))
    for anchor, (name, cases, figures, rows, smeta, extra) in zip(anchors, sections):
        stitle, sdesc = _title_and_lead(smeta)
        snav, sparts = _section_html(cases, figures, rows, smeta, extra, prefix=anchor + "-",
                                     level=3)
        body += [f"<section><h2 id='{_e(anchor)}'>{_e(stitle)}</h2>"
                 f"<p class='lead'>{_e(sdesc)}</p>", _nav(snav)] + sparts + ["</section>"]
    if isinstance(timings, dict) and timings:
        nav.append(("timings", "timings"))
        body.append("<h2 id='timings'>Timings</h2>" + _kv_table(
            {k: (_fmt_seconds(v) if _num(v) is not None else v) for k, v in timings.items()}))
    nav.append(("reproduce", "reproduce"))
    parts = _head(title) + [f"<h1>{_e(title)}</h1><p class='lead'>{_e(description)}</p>",
                            _nav(nav)]
    page = "\n".join(parts + body + _tail(meta))
    ids = re.findall(r"\sid='([^']*)'", page)
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:  # cannot happen with distinct anchors; a guard for later edits
        raise ValueError(f"the page repeats the anchor(s) {', '.join(dupes)}")
    return page
