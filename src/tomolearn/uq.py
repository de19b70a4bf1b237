"""Uncertainty quantification: distribution-free bounds, shift detection, generalisation report.

"How wrong can this reconstruction be?"  Everything here is *distribution-free*:
the guarantees hold for any reconstruction method and any image distribution,
provided the calibration images and the new image are exchangeable (e.g.
i.i.d. draws from the same distribution).  They say nothing under a
distribution shift -- which is why the module also detects shifts and
reports how the bounds hold up on shifted data.

Contents
--------
* :func:`conformal_quantile` -- the finite-sample split-conformal quantile [1]_.
* :class:`PixelIntervals` -- per-pixel intervals ``x_hat +- lam * s`` whose
  expected fraction of miscovered pixels is at most ``alpha``, calibrated by
  conformal risk control [2]_ as in the image-to-image regression scheme of [3]_.
* :class:`ImageErrorBound` -- a bound on a per-image loss (default the RMSE)
  holding with probability ``>= 1 - alpha`` (split conformal [1]_), and
  :func:`conformal_risk_control` for a monotone loss family on a grid [2]_.
* Scale heuristics: :func:`scale_from_ensemble`, :func:`scale_from_residual`,
  :func:`constant_scale`; :func:`split_scale`; how well a map tracks the error:
  :func:`uncertainty_error_correlation`, :func:`spearman`.
* Shift detection: :func:`data_consistency`, :func:`conformal_pvalues` [4]_,
  :func:`auroc`.
* :func:`generalisation_report`, :func:`format_markdown`,
  :func:`plot_generalisation`.

Conventions: images are torch tensors ``(N, 1, H, W)`` in image units
(attenuation per pixel length; ``[0, 1]`` for the ellipses benchmark), data
``(N, 1, n_angles, n_detectors)``.  ``alpha`` is a miscoverage level in
``(0, 1)``.  Rank computations such as ``ceil((n + 1)(1 - alpha))`` are
evaluated with a 1e-9 tolerance so that decimal levels like ``alpha = 0.3``
give the rank intended by the formula and not one shifted by float rounding.

References
----------
.. [1] A. N. Angelopoulos and S. Bates, "A gentle introduction to conformal
       prediction and distribution-free uncertainty quantification",
       arXiv:2107.07511, 2021.
.. [2] A. N. Angelopoulos, S. Bates, A. Fisch, L. Lei and T. Schuster,
       "Conformal risk control", ICLR 2024. arXiv:2208.02814.
.. [3] A. N. Angelopoulos, A. P. Kohli, S. Bates, M. I. Jordan, J. Malik,
       T. Alshaabi, S. Upadhyayula and Y. Romano, "Image-to-image regression
       with distribution-free uncertainty quantification and applications in
       imaging", ICML 2022. arXiv:2202.05265.
.. [4] V. Vovk, A. Gammerman and G. Shafer, "Algorithmic Learning in a Random
       World", Springer, 2005 (conformal p-values); V. Vovk, "Conditional
       validity of inductive conformal predictors", ACML 2012.
"""

from __future__ import annotations

import io
import math
import numbers
import time
import warnings
from dataclasses import dataclass
from typing import Callable, Dict, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F

__all__ = [
    "conformal_quantile", "conformal_risk_control", "PixelIntervals", "ImageErrorBound",
    "image_rmse", "pixel_ratios", "scale_from_ensemble", "scale_from_residual", "constant_scale",
    "split_scale", "uncertainty_error_correlation", "spearman",
    "data_consistency", "relative_noise_std", "conformal_pvalues", "auroc",
    "generalisation_report", "format_markdown", "plot_generalisation", "generalisation_figure",
]

#: Tolerance of rank and risk comparisons against expressions in ``alpha`` (see module doc).
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


def _check_tensor(t, name: str, ndim: Optional[int] = None, what: str = "") -> torch.Tensor:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"`{name}` must be a torch.Tensor, got {type(t).__name__}")
    if not t.dtype.is_floating_point:
        raise TypeError(f"`{name}` must have a real floating dtype, got {t.dtype}")
    if ndim is not None and t.ndim != ndim:
        raise ValueError(f"`{name}` must have shape {what} ({ndim}-D), got shape {tuple(t.shape)}")
    if t.numel() == 0:
        raise ValueError(f"`{name}` is empty (shape {tuple(t.shape)})")
    if torch.isnan(t).any():
        raise ValueError(f"`{name}` contains nan")
    return t


def _check_images(t, name: str) -> torch.Tensor:
    _check_tensor(t, name, 4, "(N, 1, H, W)")
    if not torch.isfinite(t).all():
        raise ValueError(f"`{name}` contains non-finite values (inf)")
    return t


def _check_same_shape(a: torch.Tensor, b: torch.Tensor, na: str, nb: str) -> None:
    if a.shape != b.shape:
        raise ValueError(f"`{na}` and `{nb}` must have the same shape, got {tuple(a.shape)} "
                         f"and {tuple(b.shape)}")


def _check_scale(scale, x_hat: torch.Tensor) -> torch.Tensor:
    """A positive finite scale map of ``x_hat``'s shape (a positive number means a constant map)."""
    if isinstance(scale, numbers.Real) and not isinstance(scale, bool):
        if not (math.isfinite(scale) and scale > 0):
            raise ValueError(f"a constant scale must be a finite number > 0, got {scale}")
        return torch.full_like(x_hat, float(scale))
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
    return (x_true.detach().double() - x_hat.detach().double()).abs() / scale.detach().double()


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
        """Lower and upper interval bounds ``x_hat -+ lam * scale``, each (N, 1, H, W), image units."""
        _check_images(x_hat, "x_hat")
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
    d = x_hat.detach().double() - x_true.detach().double()
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
    _check_tensor(predictions, "predictions", 5, "(K, N, 1, H, W)")
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
    _check_tensor(y, "y", 4, "(N, 1, A, D)")
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
        return ((unit + floor) / (1.0 + floor)).to(x_hat.dtype)


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
    e = (x_true.detach().double() - x_hat.detach().double()).abs().reshape(x_hat.shape[0], -1)
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


# -- shift detection ----------------------------------------------------------------------------
def relative_noise_std(y: torch.Tensor, level: float = 0.025) -> torch.Tensor:
    """Noise std estimate ``level * mean(|y|)`` per sample, (N,) float64, data units.

    The default noise model of the ellipses benchmark (white Gaussian noise of std
    0.025 mean(|y_clean|)); uses only the measured data, never the ground truth.
    ``y`` has shape (N, 1, A, D).
    """
    _check_tensor(y, "y", 4, "(N, 1, A, D)")
    return level * y.detach().double().abs().reshape(y.shape[0], -1).mean(1)


def data_consistency(op, x_hat: torch.Tensor, y: torch.Tensor,
                     sigma: Union[torch.Tensor, float]) -> torch.Tensor:
    """Normalised data residual ``||A x_hat - y||_2 / (sigma sqrt(m))`` per image, (N,) float64.

    ``m`` is the number of measurements per image.  If ``x_hat`` is the truth and the noise is
    white with std ``sigma`` the value is about 1 (within ``~1/sqrt(2m)``); large values flag
    images the reconstruction does not explain -- a distribution-shift score that needs no
    ground truth.

    Parameters
    ----------
    op : tomolearn.operators.LinearOperator
    x_hat : torch.Tensor, (N, 1, H, W)
    y : torch.Tensor, (N, 1, A, D)
    sigma : float or torch.Tensor of shape (N,)
        Noise standard deviation per image (data units), > 0.
    """
    _check_images(x_hat, "x_hat")
    _check_tensor(y, "y", 4, "(N, 1, A, D)")
    n = y.shape[0]
    if x_hat.shape[0] != n:
        raise ValueError(f"`x_hat` and `y` must hold the same number of images, got "
                         f"{x_hat.shape[0]} and {n}")
    if isinstance(sigma, numbers.Real) and not isinstance(sigma, bool):
        sigma = torch.full((n,), float(sigma), dtype=torch.float64)
    _check_tensor(sigma, "sigma", 1, f"(N,) = ({n},)")
    if sigma.shape != (n,):
        raise ValueError(f"`sigma` must be a float or have shape (N,) = ({n},), "
                         f"got {tuple(sigma.shape)}")
    if not (torch.isfinite(sigma).all() and (sigma > 0).all()):
        raise ValueError(f"`sigma` must be finite and > 0, got minimum {float(sigma.min())}")
    res = (op(x_hat) - y).double().reshape(n, -1)
    m = res.shape[1]
    return res.norm(dim=1) / (sigma.to(res.device).double() * math.sqrt(m))


def conformal_pvalues(calibration_scores: torch.Tensor, test_scores: torch.Tensor) -> torch.Tensor:
    """Conformal p-values of test scores against calibration scores [4]_, (m,) float64.

    ``p_j = (1 + #{i : cal_i >= test_j}) / (n + 1)``; larger scores are stranger.  If the test
    score is exchangeable with the ``n`` calibration scores, ``P(p <= a) <= a`` for every
    ``a`` in [0, 1] (a valid p-value); a small p-value flags a likely distribution shift.
    Inputs: ``calibration_scores`` (n,), ``test_scores`` (m,).
    """
    cal = torch.sort(_check_1d(calibration_scores, "calibration_scores")).values
    test = _check_1d(test_scores, "test_scores")
    n = cal.numel()
    n_ge = n - torch.searchsorted(cal, test.to(cal.device), side="left")
    return (1.0 + n_ge.double()) / (n + 1.0)


def auroc(scores_in: torch.Tensor, scores_out: torch.Tensor) -> float:
    """Area under the ROC curve for separating out-of-distribution by larger scores.

    The Mann-Whitney statistic ``P(s_out > s_in) + P(s_out == s_in) / 2`` over all pairs:
    1.0 when every out-of-distribution score is larger, 0.5 for indistinguishable ones,
    0.0 when all are smaller.  Inputs: ``scores_in`` (n,), ``scores_out`` (m,).
    """
    a = torch.sort(_check_1d(scores_in, "scores_in")).values
    b = _check_1d(scores_out, "scores_out")
    less = torch.searchsorted(a, b, side="left").double()
    ties = torch.searchsorted(a, b, side="right").double() - less
    return float((less + 0.5 * ties).sum() / (a.numel() * b.numel()))


# -- generalisation report ----------------------------------------------------------------------
def _resolve_shift(name: str):
    """(family, spec, dataset label) of a shift name."""
    from .data import FAMILIES, SHIFTS, SimulationSpec, shifted_spec

    if name == "none":
        return "ellipses", SimulationSpec(), "ellipses/test"
    if name in FAMILIES and name != "ellipses":
        return name, SimulationSpec(), f"{name}/test"
    if name in SHIFTS:
        return "ellipses", shifted_spec(SimulationSpec(), name), f"ellipses-{name}/test"
    raise ValueError(f"unknown shift {name!r}; expected 'none', an image family other than "
                     f"ellipses ({', '.join(sorted(f for f in FAMILIES if f != 'ellipses'))}) "
                     f"or a measurement shift ({', '.join(SHIFTS)})")


def _finite_or_none(v: float) -> Optional[float]:
    return float(v) if math.isfinite(v) else None


def _run(recon, op, dataset, n: int, batch_size: int, noise_std, tick,
         intervals: Optional[PixelIntervals] = None) -> dict:
    """Reconstruct the first n samples of ``dataset`` batch by batch; per-image statistics.

    Without ``intervals`` the pixel ratios (for calibration) are kept, with them only the
    per-image coverage and mean width, so memory stays O(batch) on the test sets.
    """
    from .metrics import psnr, ssim

    out: Dict[str, list] = {}
    seconds = 0.0
    for start in range(0, n, batch_size):
        y, x = dataset.batch(range(start, min(start + batch_size, n)))
        with torch.no_grad():
            t0 = time.perf_counter()
            output = recon(y)
            seconds += time.perf_counter() - t0
            first = output[0] if isinstance(output, tuple) else output
            if not isinstance(first, torch.Tensor) or first.shape != x.shape:
                got = tuple(first.shape) if isinstance(first, torch.Tensor) else type(first).__name__
                raise ValueError(f"a reconstruction callable must return images of shape "
                                 f"{tuple(x.shape)} (or a pair of them: x_hat, scale), got {got}")
            x_hat, scale, kind = split_scale(output, op, y)
            x_hat, scale = x_hat.to(x.dtype), scale.to(x.dtype)
            stats = {"psnr": psnr(x_hat, x), "ssim": ssim(x_hat, x), "rmse": image_rmse(x_hat, x),
                     "dc": data_consistency(op, x_hat, y, noise_std(y)),
                     "corr": uncertainty_error_correlation(scale, x_hat, x),
                     "mean_scale": scale.double().reshape(x.shape[0], -1).mean(1)}
            if intervals is None:
                stats["ratios"] = pixel_ratios(x_hat, x, scale)
            else:
                stats["coverage"] = intervals.coverage(x_hat, scale, x)
                stats["width"] = intervals.width(scale).reshape(x.shape[0], -1).mean(1)
        for k, v in stats.items():
            out.setdefault(k, []).append(v)
        tick(y.shape[0])
    res = {k: torch.cat(v) for k, v in out.items()}
    res["seconds"] = seconds
    res["scale_kind"] = kind
    return res


def _nanmean_or_none(t: torch.Tensor) -> Optional[float]:
    t = t[~torch.isnan(t)]
    return float(t.mean()) if t.numel() else None


def generalisation_report(methods: Dict[str, Callable], shifts: Sequence[str], n: int = 100,
                          alpha: float = 0.1, calibration_n: int = 200,
                          progress: Optional[Callable[[int, int], None]] = None,
                          batch_size: int = 50,
                          noise_std: Callable[[torch.Tensor], torch.Tensor] = relative_noise_std
                          ) -> dict:
    """Quality, distribution-free bounds and shift detection of methods under distribution shifts.

    For each method, calibrated once on the ellipses *validation* split (its first
    ``calibration_n`` samples; held out from training and testing): per-pixel intervals
    (:class:`PixelIntervals`, scale from :func:`scale_from_residual`), an RMSE bound
    (:class:`ImageErrorBound`), and the data-consistency scores (:func:`data_consistency` with
    ``sigma = noise_std(y)``) that shift detection compares against.  Then on the first ``n``
    test samples of every shift: PSNR/SSIM (DIVal convention), time per image, the bounds'
    empirical coverage, and the detection AUROC of data consistency (in-distribution test
    scores against this shift's) and the fraction flagged (conformal p-value < alpha).  The
    bounds are guaranteed only for "none"; on the shifts the report shows whether they hold.

    Parameters
    ----------
    methods : dict
        ``name -> factory``; ``factory(op)`` returns a callable mapping data (B, 1, A, D) to
        images (B, 1, H, W) for operator ``op`` (learned models rebind to ``op`` in there),
        or to a pair ``(x_hat, scale)`` whose per-pixel ``scale`` (e.g. a deep ensemble's
        standard deviation) replaces the data-residual scale (see :func:`split_scale`).
    shifts : sequence of str
        ``"none"`` (ellipses, default spec), an image family of ``tomolearn.data.FAMILIES``
        other than ellipses, or a measurement shift of ``tomolearn.data.SHIFTS`` (applied to
        ellipses).  ``"none"`` is added first if missing, so that gaps can be computed.
    n : int
        Test samples per shift.
    alpha : float in (0, 1)
        Miscoverage level of both bounds and false-alarm level of the detector.  Finite
        bounds need ``calibration_n >= 1/alpha - 1``; otherwise they are infinite (reported
        as null, coverage 1) and nothing is flagged.
    calibration_n : int
        Calibration samples (ellipses validation split).
    progress : callable(done, total), optional
        Called after every batch with the images processed so far and in all.
    batch_size : int
    noise_std : callable
        ``noise_std(y) -> (N,)`` noise std estimate from the data alone; default
        :func:`relative_noise_std` (0.025 mean(|y|), the benchmark's noise model).

    Returns
    -------
    dict
        ``{"results": rows, "alpha": alpha, "calibration": {...}}``; one row per (method,
        shift) with ``method, dataset, shift, n, psnr, psnr_std, ssim, ssim_std,
        seconds_per_image, psnr_gap, ssim_gap`` (gap = in-distribution minus this shift),
        ``alpha, coverage, interval_width, rmse_bound, bound_coverage, detection_auroc``
        (null for "none"), ``flagged``, ``scale`` ("residual" or "own"),
        ``uncertainty_error_correlation`` (mean over images of the pixel-wise Pearson
        correlation of the scale map with the absolute error,
        :func:`uncertainty_error_correlation`) and ``uncertainty_rmse_spearman`` (Spearman
        correlation over images of the mean scale with the RMSE; null for the residual scale,
        which has mean 1 in every image); ``calibration`` holds per method ``lambda``,
        ``pixel_risk``, ``rmse_bound``, ``scale`` and the mean calibration data-consistency
        score.
        Infinite values are given as null (None) so the dict is valid JSON.
    """
    from .data import SimulatedDataset, SimulationSpec

    alpha = _check_alpha(alpha)
    if not isinstance(methods, dict) or not methods:
        raise ValueError("methods must be a non-empty dict of name -> factory(op)")
    for name, factory in methods.items():
        if not callable(factory):
            raise TypeError(f"methods[{name!r}] must be callable factory(op), "
                            f"got {type(factory).__name__}")
    if isinstance(shifts, str):
        raise TypeError(f"shifts must be a list of names, got the string {shifts!r}")
    shifts = list(dict.fromkeys(shifts))
    if "none" not in shifts:
        shifts.insert(0, "none")
    resolved = {s: _resolve_shift(s) for s in shifts}
    for name, value in (("n", n), ("calibration_n", calibration_n), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    if n < 2 or calibration_n < 2:
        raise ValueError(f"need n >= 2 and calibration_n >= 2, got n={n}, "
                         f"calibration_n={calibration_n}")
    if calibration_n < 1 / alpha - 1 - _TOL:
        warnings.warn(f"calibration_n={calibration_n} < 1/alpha - 1 = {1 / alpha - 1:g}: the "
                      f"bounds at alpha={alpha} are infinite", RuntimeWarning, stacklevel=2)

    total = len(methods) * (calibration_n + n * len(shifts))
    done = [0]

    def tick(k):
        done[0] += k
        if progress is not None:
            progress(done[0], total)

    calibration_ds = SimulatedDataset("ellipses", "validation", SimulationSpec(),
                                      size=calibration_n)
    rows, calibration = [], {}
    for method, factory in methods.items():
        op = calibration_ds.operator()
        cal = _run(factory(op), op, calibration_ds, calibration_n, batch_size, noise_std, tick)
        intervals = PixelIntervals.from_ratios(cal["ratios"], alpha)
        rmse_bound = ImageErrorBound.calibrate(cal["rmse"], alpha)
        calibration[method] = {
            "lambda": _finite_or_none(intervals.lam), "pixel_risk": intervals.risk,
            "rmse_bound": _finite_or_none(rmse_bound.bound),
            "data_consistency_mean": float(cal["dc"].mean()), "scale": cal["scale_kind"],
        }
        per_shift = {}
        for shift in shifts:
            family, spec, label = resolved[shift]
            ds = SimulatedDataset(family, "test", spec, size=n)
            op = ds.operator()
            res = _run(factory(op), op, ds, n, batch_size, noise_std, tick, intervals)
            pvals = conformal_pvalues(cal["dc"], res["dc"])
            per_shift[shift] = res
            rows.append({
                "method": method, "dataset": label, "shift": shift, "n": n,
                "psnr": float(res["psnr"].mean()), "psnr_std": float(res["psnr"].std()),
                "ssim": float(res["ssim"].mean()), "ssim_std": float(res["ssim"].std()),
                "seconds_per_image": res["seconds"] / n,
                "alpha": alpha,
                "coverage": float(res["coverage"].mean()),
                "interval_width": _finite_or_none(float(res["width"].mean())),
                "rmse_bound": _finite_or_none(rmse_bound.bound),
                "bound_coverage": float(rmse_bound.covers(res["rmse"]).double().mean()),
                "flagged": float((pvals < alpha).double().mean()),
                "scale": res["scale_kind"],
                "uncertainty_error_correlation": _nanmean_or_none(res["corr"]),
                # the residual scale has mean 1 in every image: no image-level information
                "uncertainty_rmse_spearman": None if res["scale_kind"] == "residual" else
                _finite_or_none(spearman(res["mean_scale"], res["rmse"])),
            })
        ref = per_shift["none"]
        for row in rows[-len(shifts):]:
            res = per_shift[row["shift"]]
            row["psnr_gap"] = float(ref["psnr"].mean() - res["psnr"].mean())
            row["ssim_gap"] = float(ref["ssim"].mean() - res["ssim"].mean())
            row["detection_auroc"] = (None if row["shift"] == "none"
                                      else auroc(ref["dc"], res["dc"]))
    return {"results": rows, "alpha": alpha,
            "calibration": {"dataset": "ellipses/validation", "n": calibration_n,
                            "noise_std": getattr(noise_std, "__name__",
                                                                      repr(noise_std)),
                            "methods": calibration}}


def format_markdown(report: dict) -> str:
    """One Markdown table of a :func:`generalisation_report` (rows in report order)."""
    if not isinstance(report, dict) or "results" not in report:
        raise ValueError("expected the dict returned by generalisation_report (with 'results')")

    def f(v, spec):
        return "–" if v is None else format(v, spec)

    lines = ["| method | shift | dataset | n | PSNR | ± | SSIM | ΔPSNR | ΔSSIM | pixel coverage "
             "| width | RMSE bound | bound coverage | detection AUROC | flagged | scale "
             "| map–error r | map–RMSE ρ |",
             "|" + "---|" * 18]
    for r in report["results"]:
        lines.append(
            f"| {r['method']} | {r['shift']} | {r['dataset']} | {r['n']} | {r['psnr']:.2f} | "
            f"{r['psnr_std']:.2f} | {r['ssim']:.3f} | {r['psnr_gap']:+.2f} | {r['ssim_gap']:+.3f} | "
            f"{f(r.get('coverage'), '.3f')} | {f(r.get('interval_width'), '.4f')} | "
            f"{f(r.get('rmse_bound'), '.4f')} | {f(r.get('bound_coverage'), '.2f')} | "
            f"{f(r.get('detection_auroc'), '.2f')} | {f(r.get('flagged'), '.2f')} | "
            f"{r.get('scale') or '–'} | {f(r.get('uncertainty_error_correlation'), '.2f')} | "
            f"{f(r.get('uncertainty_rmse_spearman'), '.2f')} |")
    return "\n".join(lines) + "\n"


def plot_generalisation(report: dict, path) -> None:
    """Grouped bar chart of PSNR (dB) per shift, one bar per method, written atomically as PNG."""
    from .files import atomic_write_bytes

    atomic_write_bytes(path, generalisation_figure(report))


def generalisation_figure(report: dict) -> bytes:
    """PNG bytes of :func:`plot_generalisation`'s chart (for embedding in a report)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows = report.get("results") if isinstance(report, dict) else None
    if not rows:
        raise ValueError("expected the dict returned by generalisation_report with result rows")
    methods = list(dict.fromkeys(r["method"] for r in rows))
    shifts = list(dict.fromkeys(r["shift"] for r in rows))
    value = {(r["method"], r["shift"]): r["psnr"] for r in rows}
    fig = Figure(figsize=(max(6.0, 1.1 * len(shifts) + 2), 4.0))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    width = 0.8 / len(methods)
    for i, m in enumerate(methods):
        xs = [j + (i - (len(methods) - 1) / 2) * width for j in range(len(shifts))]
        ax.bar(xs, [value.get((m, s), float("nan")) for s in shifts], width, label=m)
    ax.set_xticks(range(len(shifts)))
    ax.set_xticklabels(shifts, rotation=30, ha="right")
    ax.set_ylabel("PSNR (dB)")
    ax.set_title("Reconstruction quality under distribution shift")
    ax.legend(fontsize="small")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120)
    return buf.getvalue()
