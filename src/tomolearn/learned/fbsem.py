"""FBSEM-Net (Mehranian & Reader 2021): unrolled MAP-EM whose prior is a learned residual CNN.

Each of ``n_iter`` iterations takes one EM step and the CNN's regularised image, and fuses
them by the closed-form minimiser of the EM surrogate plus a quadratic prior centred on the
CNN's image (forward-backward splitting EM [1]_):

    x_em = x / s * A^T (y / (A x + b))                       (EM step; s = A^T 1)
    x_r  = x + c N_w(x / c)                                   (learned regularised image)
    x   <- argmin_u  sum_j s_j (u_j - x_em_j log u_j) + beta_j / 2 (u_j - x_r_j)^2
         = 2 x_em / (a + sqrt(a^2 + 4 g x_em / c)),  a = 1 - g x_r / c

with ``b`` the operator's additive background (``op.background_of(y)``: randoms + scatter in
PET; zero for operators without one), ``c`` each image's mean activity over the field of view
(the start image's, held fixed), and the prior weight ``beta_j = g s_j / c`` with a learned
``g_k > 0`` per iteration: weighting the prior by the sensitivity makes the update invariant
to the scale of the activity, so one network serves every count level's images.  The CNN
is shared by all iterations (as in [1]_); it sees the image divided by ``c``.

Shapes: ``forward(y)`` maps ``(B, 1, *op.range_shape)`` counts to ``(B, 1, H, W)``
non-negative images.  The operator must be non-negative (an emission projector); nothing here
knows the modality.

References
----------
.. [1] A. Mehranian and A. J. Reader, "Model-based deep learning PET image reconstruction using
       forward-backward splitting expectation-maximization", IEEE Trans. Radiat. Plasma Med.
       Sci. 5(1), 54-64, 2021.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from .base import _Reconstructor
from .blocks import ResidualDenoiser


def fused_em_prior_step(x_em: torch.Tensor, x_r: torch.Tensor, g, scale: torch.Tensor,
                        covered: torch.Tensor) -> torch.Tensor:
    """The non-negative root ``u`` of ``g u^2 / c + (1 - g x_r / c) u - x_em = 0`` per pixel
    (the minimiser above, divided through by ``s_j``), in its cancellation-free form on both
    signs of ``a = 1 - g x_r / c``; zero where ``covered`` is False (no sensitivity).

    ``x_em, x_r`` ``(B, 1, H, W)``; ``g`` > 0 scalar tensor; ``scale`` ``c`` ``(B, 1, 1, 1)``."""
    e = x_em.clamp_min(0) / scale
    a = 1 - g * x_r / scale
    root = torch.sqrt(a * a + 4 * g * e + 1e-20)
    positive = 2 * e / (a + root).clamp_min(1e-20)        # a >= 0: no cancellation
    negative = (root - a) / (2 * g)                      # a < 0: no cancellation
    u = torch.where(a >= 0, positive, negative) * scale
    return torch.where(covered, u, torch.zeros_like(u))


class FBSEMNet(_Reconstructor):
    """Unrolled forward-backward-splitting EM with a learned CNN prior (FBSEM-Net).

    Parameters
    ----------
    op : LinearOperator
        Non-negative real operator, images ``(B, 1, H, W)`` to counts ``(B, 1, *data)``; its
        ``background_of(y)`` (if it has one) is the additive term of the Poisson model.
    n_iter : int
        Unrolled iterations (10 in [1]_).
    channels, layers, norm
        Of the shared residual CNN (:class:`~tomolearn.learned.blocks.ResidualDenoiser`).
    g0 : float
        Initial prior weight ``g_k`` of every iteration (learned, kept positive as
        ``softplus``).
    init : {"initial", "uniform"}
        Start from the operator's classical reconstruction (``op.initial_reconstruction``:
        the scanner's OSEM for a PET projector), or from a uniform image of the data's total
        counts.
    """

    def __init__(self, op, n_iter: int = 10, channels: int = 32, layers: int = 5,
                 norm: str = "none", g0: float = 0.1, init: str = "initial"):
        super().__init__()
        if init not in ("initial", "uniform"):
            raise ValueError(f"init must be 'initial' or 'uniform', got {init!r}")
        if not (n_iter >= 1 and math.isfinite(g0) and g0 > 0):
            raise ValueError(f"need n_iter >= 1 and a finite g0 > 0, got n_iter={n_iter}, "
                             f"g0={g0}")
        self._bind(op)
        if self.is_complex:
            raise ValueError("FBSEMNet needs a real, non-negative (emission) operator; got a "
                             "complex one")
        self.n_iter, self.init = int(n_iter), init
        self.denoiser = ResidualDenoiser(1, channels, layers, norm)
        g_raw = math.log(math.expm1(g0))  # softplus^-1
        self.g_raw = nn.Parameter(torch.full((self.n_iter,), g_raw))

    @property
    def g(self) -> torch.Tensor:
        """The prior weights ``g_k = softplus(g_raw_k) > 0``, shape ``(n_iter,)``."""
        return nn.functional.softplus(self.g_raw)

    def _reconstruct(self, y: torch.Tensor) -> torch.Tensor:
        y = y.clamp_min(0)
        b = self.op.background_of(y)
        with torch.no_grad():
            sens = self.op.adjoint(torch.ones_like(y))
            covered = sens > 1e-6 * sens.amax(dim=(-2, -1), keepdim=True)
            if self.init == "initial":
                x = self.op.initial_reconstruction(y).clamp_min(0)
            else:  # uniform over the field of view, its projection holding the net trues
                data_axes = tuple(range(2, y.dim()))
                ones = covered.to(y.dtype)
                trues = (y - b).clamp_min(0).sum(data_axes)
                x = ones * (trues / self.op(ones).sum(data_axes).clamp_min(1e-12))[..., None, None]
            scale = ((x * covered).sum((-2, -1), keepdim=True)
                     / covered.sum((-2, -1), keepdim=True).clamp_min(1)).clamp_min(1e-12)
        safe = torch.where(covered, sens, torch.ones_like(sens))
        for k, g in enumerate(self.g):
            x_em = torch.where(covered, x / safe * self.op.adjoint(
                y / (self.op(x) + b).clamp_min(1e-12)), torch.zeros_like(x))
            x_r = x + scale * self.denoiser(x / scale).to(x.dtype)
            x = fused_em_prior_step(x_em, x_r, g.to(x.dtype), scale, covered)
        return x
