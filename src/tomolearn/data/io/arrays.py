"""Images from NumPy files (``.npy``, ``.npz``): ``(D, H, W)`` float32 volumes, values as stored."""

from __future__ import annotations

from typing import Optional

import numpy as np
import torch

from .paths import PathLike, as_path

__all__ = ["read_array"]


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
        Missing file; wrong suffix, unreadable file, non-numeric dtype or a
        shape that is neither 2-D nor 3-D; `key` missing or needed (the
        message lists the keys).
    """
    path = as_path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix not in (".npy", ".npz"):
        raise ValueError(f"{path}: expected a .npy or .npz file, got suffix {path.suffix!r}")
    try:
        loaded = np.load(path, allow_pickle=False)
    except Exception as e:
        raise ValueError(f"{path}: unreadable NumPy file ({type(e).__name__}: {e})") from e
    if isinstance(loaded, np.ndarray):
        if key is not None:
            raise ValueError(f"{path}: key={key!r} given but a .npy file holds one array")
        return _to_volume(loaded, str(path))
    with loaded:
        keys = list(loaded.files)
        if not keys:
            raise ValueError(f"{path}: .npz file holds no arrays")
        if key is None:
            if len(keys) > 1:
                raise ValueError(f"{path}: .npz file holds {len(keys)} arrays; pass key= "
                                 f"one of {keys}")
            key = keys[0]
        if key not in keys:
            raise KeyError(f"{path}: no array {key!r} in .npz file; keys: {keys}")
        return _to_volume(loaded[key], f"{path}[{key!r}]")
