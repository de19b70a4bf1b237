"""Path arguments of the file readers: the accepted types, their conversion, file types."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Union

__all__ = ["PathLike", "as_path", "file_type"]

#: What the readers accept as a file or directory name.
PathLike = Union[str, os.PathLike]

#: Final suffixes that compress another format (``.nii.gz`` is a NIfTI file, not a "gz").
_COMPRESSION_SUFFIXES = (".gz", ".bz2", ".xz", ".zst")


def as_path(path, what: str = "path") -> Path:
    """``path`` (str, bytes or os.PathLike) as a :class:`pathlib.Path`.

    Raises
    ------
    TypeError
        For anything else; the message calls it `what`.
    """
    if isinstance(path, bytes):
        path = path.decode()
    try:
        return Path(path)
    except TypeError:
        raise TypeError(f"{what} must be a str or os.PathLike, got {type(path).__name__}") from None


def file_type(path) -> str:
    """The file type a name says, lower case: its suffix, or the last two when the last is a
    compression (``scan.nii.gz`` -> ``".nii.gz"``, ``a.tar.gz`` -> ``".tar.gz"``,
    ``x.NPY`` -> ``".npy"``); ``""`` without a suffix."""
    suffixes = [s.lower() for s in Path(path).suffixes]
    if len(suffixes) >= 2 and suffixes[-1] in _COMPRESSION_SUFFIXES:
        return "".join(suffixes[-2:])
    return suffixes[-1] if suffixes else ""
