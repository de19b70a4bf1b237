"""The report directory: may a report be written there (:func:`check_report_dir`)."""

from __future__ import annotations

from pathlib import Path


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
