"""The report's values: input checks and conversions, JSON data, number and HTML formatting.

Images and metric rows arrive as numpy arrays or torch tensors (any device)
and dicts; these helpers check them (naming what is wrong), turn them into
float64 numpy images or plain JSON data, and format numbers for tables.
"""

from __future__ import annotations

import html
import math
from pathlib import Path
from typing import List, Optional, Tuple

import numpy as np
import torch


#: Keys every metrics row must carry (DESIGN.md's JSON).
REQUIRED_ROW_KEYS = ("method", "dataset", "n", "psnr", "psnr_std", "ssim", "ssim_std",
                     "seconds_per_image")


# ---------------------------------------------------------------------------------------------
# input checks and conversions
# ---------------------------------------------------------------------------------------------
def _to_numpy(a, what: str) -> np.ndarray:
    """A float64 numpy copy of an array-like or torch tensor (any device)."""
    if hasattr(a, "detach"):  # torch.Tensor without importing torch here
        a = a.detach().cpu().numpy()
    try:
        arr = np.asarray(a, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise TypeError(f"{what} must be a real array, got {type(a).__name__}") from e
    return arr


def _image(a, what: str, shape: Optional[Tuple[int, int]] = None) -> np.ndarray:
    """A 2-D image; leading singleton axes ((1, H, W), (1, 1, H, W)) are squeezed."""
    arr = _to_numpy(a, what)
    while arr.ndim > 2 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 2:
        raise ValueError(f"{what} must be a 2-D array (H, W), got shape {tuple(arr.shape)}")
    if shape is not None and arr.shape != tuple(shape):
        raise ValueError(f"{what} must have the ground truth's shape {tuple(shape)}, "
                         f"got {tuple(arr.shape)}")
    return arr


def _check_rows(rows) -> List[dict]:
    if not isinstance(rows, (list, tuple)):
        raise TypeError(f"rows must be a list of dicts, got {type(rows).__name__}")
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise TypeError(f"rows[{i}] must be a dict, got {type(row).__name__}")
        missing = [k for k in REQUIRED_ROW_KEYS if k not in row]
        if missing:
            raise ValueError(f"rows[{i}] lacks the key(s) {', '.join(missing)}; every row needs "
                             f"{', '.join(REQUIRED_ROW_KEYS)}")
    return list(rows)


def _check_cases(cases) -> List[dict]:
    if not isinstance(cases, (list, tuple)):
        raise TypeError(f"cases must be a list of dicts, got {type(cases).__name__}")
    for i, case in enumerate(cases):
        if not isinstance(case, dict):
            raise TypeError(f"cases[{i}] must be a dict, got {type(case).__name__}")
        missing = [k for k in ("name", "ground_truth", "sinogram", "reconstructions") if k not in case]
        if missing:
            raise ValueError(f"cases[{i}] lacks the key(s) {', '.join(missing)}")
        if not isinstance(case["reconstructions"], dict):
            raise TypeError(f"cases[{i}]['reconstructions'] must be a dict method -> (H, W) array")
    return list(cases)


def _jsonable(obj):
    """Plain JSON data: numpy/torch scalars and arrays to Python, non-finite floats to None."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if hasattr(obj, "detach"):
        obj = obj.detach().cpu().numpy()
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    if obj is None or isinstance(obj, str):
        return obj
    if isinstance(obj, Path):
        return str(obj)
    return str(obj)


# ---------------------------------------------------------------------------------------------
# formatting
# ---------------------------------------------------------------------------------------------
def _num(value) -> Optional[float]:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _fmt(value, spec: str, missing: str = "–") -> str:
    v = _num(value)
    return missing if v is None else format(v, spec)


def _fmt_seconds(seconds) -> str:
    s = _num(seconds)
    if s is None:
        return "–"
    if s < 1e-3:
        return f"{s * 1e6:.0f} µs"
    if s < 1:
        return f"{s * 1e3:.1f} ms"
    return f"{s:.2f} s"


def _e(value) -> str:
    """``str(value)`` escaped for HTML text and attribute values."""
    return html.escape(str(value), quote=True)


def display_image(a: torch.Tensor) -> np.ndarray:
    """A displayable float32 numpy copy (the magnitude of complex values)."""
    a = a.detach()
    return (a.abs() if a.is_complex() else a).float().cpu().numpy()


def display_data(y: torch.Tensor) -> np.ndarray:
    """Data ``(*lead, A, D)`` as one displayable ``(A, D)`` image: leading axes (coils) combined
    by root-sum-of-squares, complex data (k-space) as log magnitude ``log(1 + |y| / (1e-3
    max|y|))`` so that more than the centre shows."""
    y = y.detach()
    mag = y.abs().double()
    if mag.ndim > 2:
        mag = mag.square().reshape((-1,) + tuple(mag.shape[-2:])).sum(0).sqrt()
    if y.is_complex():
        mag = torch.log1p(mag / (1e-3 * mag.max()).clamp_min(1e-30))
    return mag.float().cpu().numpy()
