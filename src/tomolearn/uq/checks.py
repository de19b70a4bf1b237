"""Input validation shared by the bounds: alpha, image batches, scales, masks (checked once,
at the boundary, with what was expected and what was given)."""

from __future__ import annotations

import math
import numbers
from typing import Optional, Union

import torch

_TOL = 1e-9

Scale = Union[torch.Tensor, float]


# -- validation helpers -------------------------------------------------------------------------
def _check_alpha(alpha) -> float:
    if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real):
        raise TypeError(f"alpha must be a real number in (0, 1), got {type(alpha).__name__}")
    alpha = float(alpha)
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must lie strictly between 0 and 1, got {alpha}")
    return alpha


def _wide(t: torch.Tensor) -> torch.Tensor:
    """``t`` in double precision, complex128 for complex tensors (``.double()`` would drop the
    imaginary part)."""
    return t.to(torch.complex128 if t.is_complex() else torch.float64)


def _check_tensor(t, name: str, ndim: Optional[int] = None, what: str = "",
                  allow_complex: bool = False) -> torch.Tensor:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"`{name}` must be a torch.Tensor, got {type(t).__name__}")
    if not (t.dtype.is_floating_point or (allow_complex and t.is_complex())):
        raise TypeError(f"`{name}` must have a real floating dtype"
                        f"{' or a complex one' if allow_complex else ''}, got {t.dtype}")
    if ndim is not None and t.ndim != ndim:
        raise ValueError(f"`{name}` must have shape {what} ({ndim}-D), got shape {tuple(t.shape)}")
    if t.numel() == 0:
        raise ValueError(f"`{name}` is empty (shape {tuple(t.shape)})")
    if torch.isnan(t).any():
        raise ValueError(f"`{name}` contains nan")
    return t


def _check_images(t, name: str) -> torch.Tensor:
    """Images (N, 1, H, W), real or complex (complex errors are moduli ``|x - x_hat|``)."""
    _check_tensor(t, name, 4, "(N, 1, H, W)", allow_complex=True)
    if not torch.isfinite(t).all():
        raise ValueError(f"`{name}` contains non-finite values (inf)")
    return t


def _check_data(y, name: str = "y") -> torch.Tensor:
    """Measurements (N, 1, *data_shape) with at least two data axes, real or complex."""
    _check_tensor(y, name, None, allow_complex=True)
    if y.ndim < 4:
        raise ValueError(f"`{name}` must have shape (N, 1, *data_shape) with a data shape of at "
                         f"least 2 axes, got shape {tuple(y.shape)}")
    return y


def _check_same_shape(a: torch.Tensor, b: torch.Tensor, na: str, nb: str) -> None:
    if a.shape != b.shape:
        raise ValueError(f"`{na}` and `{nb}` must have the same shape, got {tuple(a.shape)} "
                         f"and {tuple(b.shape)}")


def _check_scale(scale, x_hat: torch.Tensor) -> torch.Tensor:
    """A positive finite scale map of ``x_hat``'s shape (a positive number means a constant map)."""
    if isinstance(scale, numbers.Real) and not isinstance(scale, bool):
        if not (math.isfinite(scale) and scale > 0):
            raise ValueError(f"a constant scale must be a finite number > 0, got {scale}")
        return torch.full_like(x_hat, float(scale), dtype=x_hat.real.dtype)
    _check_tensor(scale, "scale")
    _check_same_shape(scale, x_hat, "scale", "x_hat")
    if not (torch.isfinite(scale).all() and (scale > 0).all()):
        raise ValueError("`scale` must be finite and > 0 everywhere (clamp heuristic maps with a "
                         f"small floor); its minimum is {float(scale.min())}")
    return scale


def _check_mask(mask, shape) -> Optional[torch.Tensor]:
    """None, or a bool mask broadcast to ``shape`` = (N, C, H, W) with >= 1 pixel per image."""
    if mask is None:
        return None
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
        raise TypeError(f"`mask` must be a bool torch.Tensor, got "
                        f"{getattr(mask, 'dtype', type(mask).__name__)}")
    if tuple(mask.shape) == tuple(shape[-2:]):
        mask = mask.expand(shape)
    elif tuple(mask.shape) != tuple(shape):
        raise ValueError(f"`mask` must have shape (H, W) = {tuple(shape[-2:])} or the images' "
                         f"shape {tuple(shape)}, got {tuple(mask.shape)}")
    if (mask.reshape(shape[0], -1).sum(1) == 0).any():
        raise ValueError("`mask` selects no pixel of some image")
    return mask


def _check_1d(t, name: str) -> torch.Tensor:
    if not isinstance(t, torch.Tensor):
        t = torch.as_tensor(t, dtype=torch.float64)
    _check_tensor(t, name, 1, "(n,)")
    return t.detach().to(torch.float64)
