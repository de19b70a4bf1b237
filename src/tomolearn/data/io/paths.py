"""Path arguments of the file readers: the accepted types and their conversion."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Union

__all__ = ["PathLike", "as_path"]

#: What the readers accept as a file or directory name.
PathLike = Union[str, os.PathLike]


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
