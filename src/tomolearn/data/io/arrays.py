"""NumPy files (``.npy``, ``.npz``): safe loading, and images as ``(D, H, W)`` float32 volumes.

:func:`load_npy`, :func:`npy_header`, :func:`npz_keys` and :func:`load_npz`
never unpickle: a file that is not a NumPy array file, is truncated, or holds
Python objects is a ``ValueError`` saying so ("not a readable NumPy array
file"), never numpy's advice to pass ``allow_pickle``.
"""

from __future__ import annotations

import re
import zipfile
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from numpy.lib import format as npy_format

from .paths import PathLike, as_path

__all__ = ["load_npy", "load_npz", "npy_header", "npz_keys", "read_array"]

_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
_OBJECTS = "it holds Python objects (pickled data), not a numeric array; tomolearn never unpickles"


def _unreadable(where, reason: str) -> ValueError:
    return ValueError(f"{where}: not a readable NumPy array file ({reason})")


def _reason(e: BaseException) -> str:
    """numpy's message for a failed load, without its advice to enable pickles."""
    text = re.sub(r"<[^<>]* at 0x[0-9a-f]+>", "...", str(e))  # no object addresses
    if "pickle" in text.lower() or "Object arrays" in text or "Python objects" in text:
        return _OBJECTS
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def npy_header(path: PathLike) -> Tuple[tuple, np.dtype]:
    """``(shape, dtype)`` of a ``.npy`` file from its header, without reading the data.

    Raises
    ------
    FileNotFoundError
        If `path` is missing.
    ValueError
        ``"PATH: not a readable NumPy array file (...)"``: no NumPy header, a
        damaged header, an object dtype, or fewer data bytes than the header says.
    """
    path = as_path(path)
    with open(path, "rb") as f:
        if f.read(len(_NPY_MAGIC)) != _NPY_MAGIC:
            raise _unreadable(path, "it does not start with the NumPy header '\\x93NUMPY'")
        f.seek(0)
        try:
            version = npy_format.read_magic(f)
            read = npy_format.read_array_header_1_0 if version == (1, 0) else \
                npy_format.read_array_header_2_0
            shape, _, dtype = read(f)
        except Exception as e:  # numpy raises ValueError, EOFError, SyntaxError, ...
            raise _unreadable(path, f"damaged header: {_reason(e)}") from None
        start = f.tell()
    if dtype.hasobject:
        raise _unreadable(path, _OBJECTS)
    need = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    have = path.stat().st_size - start
    if have < need:
        raise _unreadable(path, f"truncated: its header says {shape} {dtype} ({need} bytes), the "
                                f"file holds {have} bytes of data")
    return tuple(shape), dtype


def load_npy(path: PathLike, mmap_mode: Optional[str] = None) -> np.ndarray:
    """The array of a ``.npy`` file (``mmap_mode`` as for :func:`numpy.load`), never unpickled.

    Raises ``FileNotFoundError``, or ``ValueError`` as :func:`npy_header` does.
    """
    path = as_path(path)
    npy_header(path)
    try:
        return np.load(path, allow_pickle=False, mmap_mode=mmap_mode)
    except OSError:
        raise
    except Exception as e:
        raise _unreadable(path, _reason(e)) from None


def _open_npz(path):
    with open(path, "rb") as f:
        if f.read(4) not in _ZIP_MAGIC:
            raise _unreadable(path, "an .npz file is a zip archive, and this is not one")
    try:
        return np.load(path, allow_pickle=False)
    except Exception as e:  # a damaged zip: BadZipFile, ...
        raise _unreadable(path, _reason(e)) from None


def npz_keys(path: PathLike) -> List[str]:
    """The array names in an ``.npz`` file.  Raises ``FileNotFoundError`` or ``ValueError``."""
    path = as_path(path)
    with _open_npz(path) as z:
        return list(z.files)


def load_npz(path: PathLike, keys: Optional[Sequence[str]] = None) -> Dict[str, np.ndarray]:
    """Arrays of an ``.npz`` file by name: `keys` (those present; all if None), never unpickled.

    Raises
    ------
    FileNotFoundError, ValueError
        A missing file; ``"PATH['key']: not a readable NumPy array file (...)"``
        for a file or an array that cannot be read.
    """
    path = as_path(path)
    out = {}
    with _open_npz(path) as z:
        for key in (z.files if keys is None else [k for k in keys if k in z.files]):
            try:
                out[key] = z[key]
            except (zipfile.BadZipFile, EOFError, OSError, ValueError) as e:
                raise _unreadable(f"{path}[{key!r}]", _reason(e)) from None
    return out


def _to_volume(arr: np.ndarray, where: str) -> torch.Tensor:
    if arr.dtype == object or arr.dtype.kind not in "biuf":
        raise ValueError(f"{where}: array dtype {arr.dtype} is not real numeric")
    if arr.ndim == 2:
        arr = arr[None]
    elif arr.ndim != 3:
        raise ValueError(f"{where}: array has shape {arr.shape}; expected (H, W) or (D, H, W)")
    return torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))


def read_array(path: PathLike, key: Optional[str] = None) -> torch.Tensor:
    """Read an image from a ``.npy`` or ``.npz`` file.

    Parameters
    ----------
    path : str or os.PathLike
    key : str, optional
        Array name in an ``.npz`` file; needed when it holds several.

    Returns
    -------
    torch.Tensor, float32
        ``(1, H, W)`` for a 2-D array, ``(D, H, W)`` for a 3-D one; values
        unchanged (no unit conversion).

    Raises
    ------
    FileNotFoundError, ValueError, KeyError
        Missing file; wrong suffix, unreadable file (never unpickled),
        non-numeric dtype or a shape that is neither 2-D nor 3-D; `key`
        missing or needed (the message lists the keys).
    """
    path = as_path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix not in (".npy", ".npz"):
        raise ValueError(f"{path}: expected a .npy or .npz file, got suffix {path.suffix!r}")
    if suffix == ".npy":
        if key is not None:
            raise ValueError(f"{path}: key={key!r} given but a .npy file holds one array")
        return _to_volume(load_npy(path), str(path))
    keys = npz_keys(path)
    if not keys:
        raise ValueError(f"{path}: .npz file holds no arrays")
    if key is None:
        if len(keys) > 1:
            raise ValueError(f"{path}: .npz file holds {len(keys)} arrays; pass key= "
                             f"one of {keys}")
        key = keys[0]
    if key not in keys:
        raise KeyError(f"{path}: no array {key!r} in .npz file; keys: {keys}")
    return _to_volume(load_npz(path, [key])[key], f"{path}[{key!r}]")
