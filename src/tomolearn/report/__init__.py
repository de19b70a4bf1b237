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

:func:`write_report_sections` writes one such folder for several reports at
once (e.g. one per task of ``tomolearn demo --task all``): one page with a
section per report, ``metrics.json`` with ``{"sections": [...], "results":
every section's rows, ...}``.

Both files are written atomically (:func:`tomolearn.files.atomic_write_bytes`)
after every figure has been rendered in memory, so a failure leaves no
half-written report.

:func:`render_png` screenshots a report with headless Chromium, to check its
layout without a desktop browser (``scripts/render_report.py``).

Modules
-------
``values``
    Checks and conversions of the inputs (images, rows, cases), JSON and
    number formatting.
``figures``
    :func:`render_case_figure`: one image's panels as a PNG (matplotlib).
``tables``
    The metrics as a text table (:func:`format_table`) and as HTML tables.
``page``
    The self-contained HTML page (CSS, sections, embedded figures), of one
    report or of several as sections.
``directory``
    :func:`check_report_dir`: may a report be written to this folder.
``writer``
    :func:`write_report` and :func:`write_report_sections`: all of the above,
    written atomically.
``chromium``
    :func:`render_png` and :func:`find_chromium`: headless screenshots.
``versions``
    :func:`software_versions`: what a report records of the software.
"""

from .chromium import find_chromium, render_png
from .directory import check_report_dir  # noqa: F401
from .figures import render_case_figure
from .tables import format_table
from .values import REQUIRED_ROW_KEYS, display_data, display_image
from .versions import software_versions
from .writer import write_report, write_report_sections

__all__ = ["write_report", "write_report_sections", "render_case_figure", "format_table", "render_png", "find_chromium",
           "display_image", "display_data",
           "REQUIRED_ROW_KEYS", "software_versions"]
