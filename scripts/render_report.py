#!/usr/bin/env python
"""Render a tomolearn HTML report to a PNG screenshot with headless Chromium.

    python scripts/render_report.py report/index.html report.png
    python scripts/render_report.py report/index.html top.png --width 1400 --height 900

Without ``--height`` the whole page is captured.  Needs Chromium or Chrome
(``apt-get install chromium``; or ``--chromium PATH`` / ``$TOMOLEARN_CHROMIUM``).
"""

import argparse
import sys
from pathlib import Path

try:
    from tomolearn.report import render_png
except ImportError:  # run from a checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from tomolearn.report import render_png


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="example:\n  python scripts/render_report.py "
                                       "report/index.html report.png")
    p.add_argument("html", help="the report's index.html")
    p.add_argument("png", help="PNG file to write")
    p.add_argument("--width", type=int, default=1400, help="window and PNG width in pixels (default 1400)")
    p.add_argument("--height", type=int, default=None,
                   help="window height in pixels (default: the whole page)")
    p.add_argument("--chromium", default=None, help="Chromium/Chrome executable (default: found on PATH)")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds before giving up (default 120)")
    args = p.parse_args(argv)
    try:
        out = render_png(args.html, args.png, width=args.width, height=args.height,
                         chromium=args.chromium, timeout=args.timeout)
    except (RuntimeError, FileNotFoundError, ValueError) as e:
        print(f"render_report: {e}", file=sys.stderr)
        return 1
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
