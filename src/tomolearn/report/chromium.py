"""Headless rendering of a report: a PNG screenshot of its page taken by Chromium.

:func:`find_chromium` locates a Chromium/Chrome executable; :func:`render_png`
runs it headless on an HTML file (e.g. ``scripts/render_report.py``), so a
report's layout can be checked without a desktop browser.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Optional

import numpy as np

from ..files import atomic_write_bytes


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


def _find_chromium():
    """:func:`find_chromium` as ``tomolearn.report`` exports it at the time of the call.

    ``tomolearn.report.find_chromium`` is where the browser lookup is replaced (tests
    patch it to simulate a machine without Chromium), as when this was one module, so
    :func:`render_png` looks the function up there rather than in this module.
    """
    return getattr(sys.modules[__package__], "find_chromium", find_chromium)


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
    # imported here: Pillow (installed with matplotlib) is needed by full-page screenshots only
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
    exe = _find_chromium()(chromium)
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
