"""Shift detection: data consistency of a reconstruction, conformal p-values against
calibration scores, and the AUROC of a detector."""

from __future__ import annotations

import math
import numbers
from typing import Union

import torch

from .checks import _check_1d, _check_data, _check_images, _check_tensor, _wide

__all__ = ["relative_noise_std", "data_consistency", "conformal_pvalues", "auroc"]


# -- shift detection ----------------------------------------------------------------------------
def relative_noise_std(y: torch.Tensor, level: float = 0.025) -> torch.Tensor:
    """Noise std estimate ``level * mean(|y|)`` per sample, (N,) float64, data units.

    The default noise model of the ellipses benchmark (white Gaussian noise of std
    0.025 mean(|y_clean|)); uses only the measured data, never the ground truth.
    ``y`` has shape (N, 1, A, D).
    """
    _check_data(y)
    return level * _wide(y.detach()).abs().reshape(y.shape[0], -1).mean(1)


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
    _check_data(y)
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
    res = _wide(op(x_hat) - y).reshape(n, -1)
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
