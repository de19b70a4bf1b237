"""Split-conformal quantiles, conformal risk control, per-pixel intervals and image-level
error bounds (references in :mod:`tomolearn.uq`)."""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Optional, Tuple

import torch

from .checks import (_TOL, Scale, _check_1d, _wide, _check_alpha, _check_images, _check_mask,
                     _check_same_shape, _check_scale, _check_tensor)

__all__ = ["conformal_quantile", "conformal_risk_control", "pixel_ratios", "PixelIntervals",
           "image_rmse", "ImageErrorBound"]


# -- split conformal ----------------------------------------------------------------------------
def conformal_quantile(scores: torch.Tensor, alpha: float) -> float:
    """Finite-sample split-conformal quantile of calibration scores [1]_.

    Parameters
    ----------
    scores : torch.Tensor, shape (n,)
        Non-conformity scores of ``n`` calibration samples (any unit); ``+inf`` allowed.
    alpha : float in (0, 1)
        Miscoverage level.

    Returns
    -------
    float
        The ``k``-th smallest score with ``k = ceil((n + 1)(1 - alpha))``.  If a new
        score is exchangeable with the calibration scores then
        ``P(score_new <= q) >= 1 - alpha`` (and ``<= 1 - alpha + 1/(n+1)`` without ties).
        ``+inf`` when ``k > n``, i.e. when ``n < 1/alpha - 1``: too few calibration
        samples for level ``alpha``, and no finite bound is valid.
    """
    scores = _check_1d(scores, "scores")
    alpha = _check_alpha(alpha)
    n = scores.numel()
    k = math.ceil((n + 1) * (1.0 - alpha) - _TOL)
    if k > n:
        return math.inf
    return float(torch.sort(scores).values[max(k, 1) - 1])


def conformal_risk_control(losses_per_lambda: torch.Tensor, lambdas: torch.Tensor, alpha: float,
                           loss_bound: float = 1.0) -> float:
    """Conformal risk control on a grid: the smallest lambda with a bounded expected loss [2]_.

    Parameters
    ----------
    losses_per_lambda : torch.Tensor, shape (n, L)
        ``losses[i, l]`` is the loss of calibration sample ``i`` at ``lambdas[l]``; each row
        must be non-increasing in ``l`` and lie in ``[0, loss_bound]``.
    lambdas : torch.Tensor, shape (L,)
        Strictly increasing parameter grid (e.g. interval half-widths).
    alpha : float in (0, 1)
        Target risk, in the loss's unit (must exceed ``loss_bound / (n + 1)`` for a finite answer).
    loss_bound : float
        ``B``, an upper bound of the loss (1 for a fraction).

    Returns
    -------
    float
        ``lam_hat = min{lambdas[l] : n/(n+1) * mean_i losses[i, l] + B/(n+1) <= alpha}``.
        For an exchangeable new sample, ``E[loss_new(lam_hat)] <= alpha``.  ``+inf`` when no
        grid point qualifies (the guarantee then needs a ``lambda`` at which every loss is 0).

    Raises
    ------
    ValueError
        On a bad shape, a grid that is not increasing, losses outside ``[0, B]`` or not
        non-increasing along the grid.
    """
    alpha = _check_alpha(alpha)
    if isinstance(loss_bound, bool) or not isinstance(loss_bound, numbers.Real) \
            or not (math.isfinite(loss_bound) and loss_bound > 0):
        raise ValueError(f"loss_bound must be a finite number > 0, got {loss_bound!r}")
    losses = _check_tensor(losses_per_lambda, "losses_per_lambda", 2, "(n, L)").detach().double()
    lambdas = _check_1d(lambdas, "lambdas")
    n, n_lam = losses.shape
    if lambdas.numel() != n_lam:
        raise ValueError(f"`lambdas` must have one entry per column of `losses_per_lambda` "
                         f"({n_lam}), got {lambdas.numel()}")
    if n_lam > 1 and not (lambdas[1:] > lambdas[:-1]).all():
        raise ValueError("`lambdas` must be strictly increasing")
    if (losses < 0).any() or (losses > loss_bound).any():
        raise ValueError(f"losses must lie in [0, loss_bound={loss_bound}], got range "
                         f"[{float(losses.min())}, {float(losses.max())}]")
    if n_lam > 1 and (losses[:, 1:] > losses[:, :-1] + 1e-12).any():
        raise ValueError("losses must be non-increasing in lambda (conformal risk control needs "
                         "a monotone loss family)")
    # n/(n+1) * mean + B/(n+1) <= alpha  <=>  sum_i loss_i <= (n+1) alpha - B
    ok = losses.sum(0) <= (n + 1) * alpha - loss_bound + _TOL
    idx = torch.nonzero(ok)
    return float(lambdas[idx[0, 0]]) if idx.numel() else math.inf


# -- per-pixel intervals ------------------------------------------------------------------------
def pixel_ratios(x_hat: torch.Tensor, x_true: torch.Tensor, scale: Scale) -> torch.Tensor:
    """Normalised per-pixel errors ``|x_true - x_hat| / scale`` (float64), shape (N, 1, H, W).

    A pixel lies in the interval ``[x_hat - lam * s, x_hat + lam * s]`` iff its ratio is
    ``<= lam``.  ``scale`` is a positive map of ``x_hat``'s shape or a positive number.
    """
    _check_images(x_hat, "x_hat")
    _check_images(x_true, "x_true")
    _check_same_shape(x_hat, x_true, "x_hat", "x_true")
    scale = _check_scale(scale, x_hat)
    return (_wide(x_true.detach()) - _wide(x_hat.detach())).abs() / scale.detach().double()


@dataclass(frozen=True)
class PixelIntervals:
    """Per-pixel intervals ``[x_hat - lam * s, x_hat + lam * s]`` calibrated by conformal risk control.

    The scheme of [3]_ with the risk-control calibration of [2]_: ``s`` is a heuristic
    per-pixel scale map (> 0, in image units; see :func:`scale_from_residual`,
    :func:`scale_from_ensemble`, :func:`constant_scale`), the loss of an image is the fraction
    of its pixels outside the interval (bounded by ``B = 1``, non-increasing in ``lam``), and
    ``lam`` is

        ``lam_hat = inf{lam >= 0 : n/(n+1) * mean_i loss_i(lam) + 1/(n+1) <= alpha}``

    computed exactly: the empirical risk is a step function of ``lam`` that jumps at the
    per-pixel ratios ``|x - x_hat| / s``, so ``lam_hat`` is one of them (no grid).

    Guarantee: for a new image exchangeable with the ``n`` calibration images (same
    distribution, same reconstruction method, same scale heuristic),
    ``E[fraction of its pixels outside the intervals] <= alpha``.  It is a guarantee on the
    average over images, not for every image, and not under distribution shift.

    Attributes
    ----------
    lam : float
        ``lam_hat`` (dimensionless; ``+inf`` when ``n < 1/alpha - 1``).
    alpha : float
        Target expected miscoverage (fraction of pixels).
    n : int
        Number of calibration images.
    risk : float
        Empirical mean fraction of miscovered calibration pixels at ``lam``.
    """

    lam: float
    alpha: float
    n: int
    risk: float

    @classmethod
    def calibrate(cls, x_hat: torch.Tensor, x_true: torch.Tensor, scale: Scale, alpha: float,
                  mask: Optional[torch.Tensor] = None) -> "PixelIntervals":
        """Calibrate ``lam`` on reconstructions and ground truths of ``n`` images.

        Parameters
        ----------
        x_hat, x_true : torch.Tensor, shape (n, 1, H, W)
            Reconstructions and ground truths, image units.
        scale : torch.Tensor of shape (n, 1, H, W), or float
            Heuristic scale map, > 0 everywhere, image units.
        alpha : float in (0, 1)
            Target expected fraction of miscovered pixels.
        mask : torch.Tensor of bool, shape (H, W) or (n, 1, H, W), optional
            Pixels that count (e.g. the field of view); the loss of an image is then the
            fraction of its masked pixels outside the interval.  Use the same mask later.
        """
        return cls.from_ratios(pixel_ratios(x_hat, x_true, scale), alpha, mask)

    @classmethod
    def from_ratios(cls, ratios: torch.Tensor, alpha: float,
                    mask: Optional[torch.Tensor] = None) -> "PixelIntervals":
        """Calibrate from precomputed :func:`pixel_ratios` (n, 1, H, W) (e.g. gathered in batches)."""
        alpha = _check_alpha(alpha)
        _check_tensor(ratios, "ratios", 4, "(n, 1, H, W)")
        if (ratios < 0).any():
            raise ValueError("`ratios` must be >= 0 (they are |x - x_hat| / scale)")
        mask = _check_mask(mask, ratios.shape)
        n = ratios.shape[0]
        r = ratios.detach().double().reshape(n, -1)
        if mask is None:
            w = torch.full_like(r, 1.0 / r.shape[1])
        else:
            m = mask.reshape(n, -1)
            w = m.double() / m.sum(1, keepdim=True).double()
            r, w = r[m], w[m]
        r, w = r.reshape(-1), w.reshape(-1)
        # n * risk(lam) = sum of the weights of the ratios > lam (each image weighs 1 in all).
        threshold = (n + 1) * alpha - 1.0
        if threshold < -_TOL:
            return cls(math.inf, alpha, n, 0.0)
        order = torch.argsort(r, stable=True)
        r, w = r[order], w[order]
        at_least = torch.flip(torch.cumsum(torch.flip(w, (0,)), 0), (0,))  # sum_{m >= k} w_m
        above = torch.cat((at_least[1:], at_least.new_zeros(1)))           # sum_{m > k} w_m
        k = int(torch.nonzero(above <= threshold + _TOL)[0, 0])
        lam = float(r[k])
        risk = float(w[r > lam].sum()) / n
        return cls(lam, alpha, n, risk)

    def interval(self, x_hat: torch.Tensor, scale: Scale) -> Tuple[torch.Tensor, torch.Tensor]:
        """Lower and upper interval bounds ``x_hat -+ lam * scale``, each (N, 1, H, W), image units.

        Real images only: for a complex image the calibrated region of a pixel is the disc
        ``|x - x_hat| <= lam * scale`` of radius ``width(scale) / 2``.
        """
        _check_images(x_hat, "x_hat")
        if x_hat.is_complex():
            raise TypeError("a complex image's region is a disc |x - x_hat| <= lam * scale, not "
                            "an interval; its radius is width(scale) / 2")
        s = _check_scale(scale, x_hat)
        half = self.width(s) / 2
        return x_hat - half, x_hat + half

    def width(self, scale: Scale) -> torch.Tensor:
        """Interval widths ``2 * lam * scale`` (same shape as ``scale``; image units; inf if lam is)."""
        if isinstance(scale, numbers.Real) and not isinstance(scale, bool):
            scale = torch.tensor(float(scale), dtype=torch.float64)
        _check_tensor(scale, "scale")
        if not (torch.isfinite(scale).all() and (scale > 0).all()):
            raise ValueError(f"`scale` must be finite and > 0, its minimum is {float(scale.min())}")
        if math.isinf(self.lam):
            return torch.full_like(scale, math.inf)
        return 2.0 * self.lam * scale

    def coverage(self, x_hat: torch.Tensor, scale: Scale, x_true: torch.Tensor,
                 mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Fraction of each image's (masked) pixels inside its interval, shape (N,), float64.

        Computed as ``mean(|x_true - x_hat| / scale <= lam)``, the same arithmetic as the
        calibration.
        """
        ratios = pixel_ratios(x_hat, x_true, scale)
        inside = (ratios <= self.lam).double()
        mask = _check_mask(mask, ratios.shape)
        n = ratios.shape[0]
        if mask is None:
            return inside.reshape(n, -1).mean(1)
        m = mask.reshape(n, -1).double()
        return (inside.reshape(n, -1) * m).sum(1) / m.sum(1)


# -- image-level bound --------------------------------------------------------------------------
def image_rmse(x_hat: torch.Tensor, x_true: torch.Tensor) -> torch.Tensor:
    """Root-mean-square error per image, (N,) float64, image units. Inputs (N, 1, H, W)."""
    _check_images(x_hat, "x_hat")
    _check_images(x_true, "x_true")
    _check_same_shape(x_hat, x_true, "x_hat", "x_true")
    d = (_wide(x_hat.detach()) - _wide(x_true.detach())).abs()
    return d.square().reshape(d.shape[0], -1).mean(1).sqrt()


@dataclass(frozen=True)
class ImageErrorBound:
    """A bound on a per-image loss by split conformal prediction [1]_.

    ``bound`` is the :func:`conformal_quantile` of the calibration losses, so that for a new
    image exchangeable with the calibration images ``P(loss_new <= bound) >= 1 - alpha``
    (and ``<= 1 - alpha + 1/(n+1)`` when the losses have no ties).  The probability is over
    the calibration set and the new image together.

    Attributes
    ----------
    bound : float
        In the loss's unit (image units for the RMSE); ``+inf`` when ``n < 1/alpha - 1``.
    alpha : float
    n : int
    """

    bound: float
    alpha: float
    n: int

    @classmethod
    def calibrate(cls, losses: torch.Tensor, alpha: float) -> "ImageErrorBound":
        """Calibrate on per-image losses of shape (n,) (any unit; e.g. :func:`image_rmse`)."""
        losses = _check_1d(losses, "losses")
        return cls(conformal_quantile(losses, alpha), _check_alpha(alpha), losses.numel())

    @classmethod
    def from_images(cls, x_hat: torch.Tensor, x_true: torch.Tensor,
                    alpha: float) -> "ImageErrorBound":
        """Calibrate the RMSE bound on reconstructions and ground truths (n, 1, H, W)."""
        return cls.calibrate(image_rmse(x_hat, x_true), alpha)

    def covers(self, losses: torch.Tensor) -> torch.Tensor:
        """Bool tensor (N,): whether each loss (N,) is ``<= bound``."""
        return _check_1d(losses, "losses") <= self.bound
