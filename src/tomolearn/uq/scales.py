"""Uncertainty scales for the per-pixel intervals (ensemble spread, data residual, constant)
and how well a scale map tracks the error."""

from __future__ import annotations

import math
from typing import Tuple

import torch
import torch.nn.functional as F

from .checks import (_check_1d, _check_data, _check_images, _check_same_shape, _check_scale,
                     _check_tensor, _wide)

__all__ = ["scale_from_ensemble", "scale_from_residual", "split_scale",
           "uncertainty_error_correlation", "spearman", "constant_scale"]


# -- scale heuristics ---------------------------------------------------------------------------
def _floored(s: torch.Tensor, floor: float) -> torch.Tensor:
    """Clamp each image of ``s`` (N, C, H, W) at ``floor`` times its mean (and at 1e-12)."""
    mean = s.reshape(s.shape[0], -1).mean(1).reshape(-1, *([1] * (s.ndim - 1)))
    return torch.maximum(s, floor * mean).clamp_min(1e-12)


def scale_from_ensemble(predictions: torch.Tensor,
                        floor: float = 0.05) -> Tuple[torch.Tensor, torch.Tensor]:
    """Mean and per-pixel standard deviation of an ensemble of reconstructions.

    Parameters
    ----------
    predictions : torch.Tensor, shape (K, N, 1, H, W)
        ``K >= 2`` reconstructions of each of ``N`` images (ensemble members, MC dropout, ...).
    floor : float >= 0
        The std map is clamped below at ``floor`` times its per-image mean (and 1e-12), so
        pixels where all members agree still get a positive scale.

    Returns
    -------
    x_hat : torch.Tensor, (N, 1, H, W)
        Ensemble mean, image units.
    scale : torch.Tensor, (N, 1, H, W)
        Sample standard deviation over ``K`` (Bessel-corrected), floored, image units.
    """
    _check_tensor(predictions, "predictions", 5, "(K, N, 1, H, W)", allow_complex=True)
    if predictions.shape[0] < 2:
        raise ValueError(f"an ensemble needs K >= 2 members, got predictions of shape "
                         f"{tuple(predictions.shape)}")
    if not floor >= 0:
        raise ValueError(f"floor must be >= 0, got {floor}")
    p = predictions.detach()
    return p.mean(0), _floored(p.std(0, correction=1), floor)


def _gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    if sigma <= 0:
        return x
    radius = max(1, math.ceil(3 * sigma))
    t = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    c = x.shape[1]
    kx = k.reshape(1, 1, 1, -1).repeat(c, 1, 1, 1)
    ky = k.reshape(1, 1, -1, 1).repeat(c, 1, 1, 1)
    x = F.conv2d(F.pad(x, (radius, radius, 0, 0), mode="replicate"), kx, groups=c)
    return F.conv2d(F.pad(x, (0, 0, radius, radius), mode="replicate"), ky, groups=c)


def scale_from_residual(op, x_hat: torch.Tensor, y: torch.Tensor, blur_sigma: float = 1.0,
                        floor: float = 0.1) -> torch.Tensor:
    """Per-pixel scale from the back-projected data residual ``|A^T (A x_hat - y)|``.

    Pixels whose reconstruction disagrees with the data get wider intervals.  The map is
    blurred with a Gaussian of standard deviation ``blur_sigma`` pixels, divided by its
    per-image mean, a constant ``floor`` is added, and the result is divided by
    ``1 + floor`` so that each image's map has mean 1 (a perfectly data-consistent image gets
    the constant map 1).  Dimensionless; ``lam`` of :class:`PixelIntervals` carries the unit.

    Parameters
    ----------
    op : tomolearn.operators.LinearOperator
        Forward operator, ``(N, 1, H, W) -> (N, 1, A, D)``.
    x_hat : torch.Tensor, shape (N, 1, H, W)
    y : torch.Tensor, shape (N, 1, A, D)
    blur_sigma : float >= 0
        Gaussian smoothing in pixels (0: none).
    floor : float > 0
        Constant added to the normalised map (keeps the scale > 0).

    Returns
    -------
    torch.Tensor, shape (N, 1, H, W), same dtype as ``x_hat``; > 0, mean 1 per image.
    """
    _check_images(x_hat, "x_hat")
    _check_data(y)
    if y.shape[0] != x_hat.shape[0]:
        raise ValueError(f"`x_hat` and `y` must hold the same number of images, got "
                         f"{x_hat.shape[0]} and {y.shape[0]}")
    if not floor > 0 or not blur_sigma >= 0:
        raise ValueError(f"need floor > 0 and blur_sigma >= 0, got floor={floor}, "
                         f"blur_sigma={blur_sigma}")
    with torch.no_grad():
        r = _gaussian_blur(op.adjoint(op(x_hat.detach()) - y.detach()).abs(), float(blur_sigma))
        mean = r.reshape(r.shape[0], -1).mean(1).reshape(-1, 1, 1, 1)
        unit = torch.where(mean > 0, r / torch.where(mean > 0, mean, 1.0), torch.ones_like(r))
        return ((unit + floor) / (1.0 + floor)).to(x_hat.real.dtype)


def split_scale(output, op, y: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, str]:
    """``(x_hat, scale, kind)`` of a reconstruction callable's output.

    A reconstruction callable returns either ``x_hat`` (N, 1, H, W), which then gets the
    data-residual scale (:func:`scale_from_residual` with ``op`` and data ``y``, kind
    ``"residual"``), or ``(x_hat, scale)`` with its own per-pixel scale, e.g. an ensemble's
    standard deviation (:func:`scale_from_ensemble`, kind ``"own"``).  Both are detached.
    """
    if isinstance(output, tuple):
        if len(output) != 2:
            raise ValueError(f"a reconstruction callable returns x_hat or (x_hat, scale), got a "
                             f"tuple of {len(output)}")
        x_hat = _check_images(output[0], "x_hat").detach()
        return x_hat, _check_scale(output[1], x_hat).detach(), "own"
    x_hat = _check_images(output, "x_hat").detach()
    return x_hat, scale_from_residual(op, x_hat, y), "residual"


def uncertainty_error_correlation(scale: torch.Tensor, x_hat: torch.Tensor,
                                  x_true: torch.Tensor) -> torch.Tensor:
    """How well an uncertainty map tracks the true error: per-image Pearson correlation.

    For each image, the Pearson correlation over its pixels between the map ``scale`` and the
    absolute error ``|x_true - x_hat|``: 1 when the map is an affine image of the error, about
    0 when it says nothing about where the errors are.

    Parameters
    ----------
    scale, x_hat, x_true : torch.Tensor, shape (N, 1, H, W)

    Returns
    -------
    torch.Tensor, shape (N,), float64; NaN for an image whose map or error is constant.
    """
    _check_images(x_hat, "x_hat")
    _check_images(x_true, "x_true")
    _check_same_shape(x_hat, x_true, "x_hat", "x_true")
    s = _check_scale(scale, x_hat).detach().double().reshape(x_hat.shape[0], -1)
    e = (_wide(x_true.detach()) - _wide(x_hat.detach())).abs().reshape(x_hat.shape[0], -1)
    s = s - s.mean(1, keepdim=True)
    e = e - e.mean(1, keepdim=True)
    den = torch.sqrt((s * s).sum(1) * (e * e).sum(1))
    num = (s * e).sum(1)
    return torch.where(den > 0, num / torch.where(den > 0, den, 1.0),
                       torch.full_like(num, float("nan")))


def spearman(a: torch.Tensor, b: torch.Tensor) -> float:
    """Spearman rank correlation of two (n,) samples (ties get their mean rank); NaN if constant."""
    a, b = _check_1d(a, "a"), _check_1d(b, "b")
    if a.numel() != b.numel() or a.numel() < 2:
        raise ValueError(f"need two samples of one size >= 2, got {a.numel()} and {b.numel()}")

    def ranks(v):
        order = torch.argsort(v)
        r = torch.empty_like(v)
        r[order] = torch.arange(1, v.numel() + 1, dtype=v.dtype)
        for value in torch.unique(v):  # mean rank of ties
            tie = v == value
            if tie.sum() > 1:
                r[tie] = r[tie].mean()
        return r

    ra, rb = ranks(a), ranks(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    den = float(torch.sqrt((ra * ra).sum() * (rb * rb).sum()))
    return float((ra * rb).sum()) / den if den > 0 else float("nan")


def constant_scale(x_hat: torch.Tensor, value: float = 1.0) -> torch.Tensor:
    """The constant scale map ``value`` (> 0) of ``x_hat``'s shape (N, 1, H, W): plain ``+- lam``."""
    _check_images(x_hat, "x_hat")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"value must be a finite number > 0, got {value}")
    return torch.full_like(x_hat, float(value))
