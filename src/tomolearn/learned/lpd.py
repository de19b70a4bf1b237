"""Learned primal-dual reconstruction (Adler & Öktem 2018), as in the authors' reference code."""

from __future__ import annotations

import torch
from torch import nn

from .base import _Reconstructor
from .blocks import _conv_block


class LearnedPrimalDual(_Reconstructor):
    """Learned primal-dual reconstruction (Adler & Öktem 2018, IEEE TMI 37(6)).

    With ``K = A / ||A||`` (operator norm 1) and ``g = y / ||A||`` (the data
    scaled the same way, so that ``K x = g`` exactly when ``A x = y`` and
    the output keeps the image's units)::

        h = zeros(B, n_primal, H, W);  d = zeros(B, n_dual, A, D)
        for k in range(n_iter):
            d = d + Gamma_k([d, K h[:, 1:2], g])        # n_dual + 2 -> n_dual channels
            h = h + Lambda_k([h, K^T d[:, 0:1]])        # n_primal + 1 -> n_primal channels
        return h[:, 0:1]

    Every ``Gamma_k`` / ``Lambda_k`` (own weights per iteration) is 3x3 conv
    (-> ``channels``) - PReLU - 3x3 conv (-> ``channels``) - PReLU - 3x3 conv
    (-> n), with biases, per-channel PReLU slopes initialised to 0 and
    Glorot-uniform kernels with zero biases.

    Verified against the authors' reference implementation,
    ``adler-j/learned_primal_dual``, file ``ellipses/learned_primal_dual.py``
    (the ellipse experiment of the paper): operator multiplied by
    ``1 / power_method_opnorm(operator)`` and the training data generated
    with that scaled operator; zero initial primal and dual; the dual input
    is ``concat([dual, K(primal[..., 1:2]), y])``, the primal input
    ``concat([primal, K^T(dual[..., 0:1])])``; both updates residual;
    ``apply_conv`` = 3x3 ``conv2d``, 32 filters, ``padding='SAME'``, Xavier
    init; ``prelu`` after the first two convolutions (``adler.tensorflow``'s
    ``prelu``: one trainable slope per channel, initialised to 0); output
    ``primal[..., 0:1]``; ``n_iter=10, n_primal=5, n_dual=5``.  DIVal's
    ``PrimalDualNet`` (``dival/reconstructors/networks/iterative.py``) has the
    same data flow but adds batch norm, a 4th layer and leaky ReLU by
    default; this class follows the paper's code, not DIVal's defaults.

    With the defaults the model has 253,220 parameters (251,940 in the
    convolutions and 1,280 PReLU slopes).

    Parameters
    ----------
    op : LinearOperator
        Images ``(B, 1, H, W)`` to data ``(B, 1, A, D)``; both 2-D.
    n_iter, n_primal, n_dual, channels : int

    Attributes
    ----------
    operator_scale : float
        ``1 / op.norm()``, applied to both the operator and ``y``.
    """

    def __init__(self, op, n_iter: int = 10, n_primal: int = 5, n_dual: int = 5,
                 channels: int = 32):
        super().__init__()
        if n_primal < 2 or n_dual < 1:
            raise ValueError(f"need n_primal >= 2 and n_dual >= 1, got {n_primal}, {n_dual}")
        self._bind(op)
        self.n_iter, self.n_primal, self.n_dual = int(n_iter), int(n_primal), int(n_dual)
        ci, cd = self.image_channels, self.data_channels
        self.dual_blocks = nn.ModuleList(
            _conv_block((n_dual + 2) * cd, n_dual * cd, channels) for _ in range(self.n_iter))
        self.primal_blocks = nn.ModuleList(
            _conv_block((n_primal + 1) * ci, n_primal * ci, channels) for _ in range(self.n_iter))

    def _rebind(self) -> None:
        self.operator_scale = 1.0 / self.op.norm()

    def _reconstruct(self, y: torch.Tensor) -> torch.Tensor:
        # images and data as real channels (one each for CT; see _Reconstructor)
        s, ci, cd = self.operator_scale, self.image_channels, self.data_channels
        g = self.data_to_channels(s * y)
        B, real = y.shape[0], y.real.dtype
        primal = y.new_zeros((B, self.n_primal * ci) + tuple(self.op.domain_shape), dtype=real)
        dual = y.new_zeros((B, self.n_dual * cd) + tuple(g.shape[-2:]), dtype=real)
        for gamma, lam in zip(self.dual_blocks, self.primal_blocks):
            k_primal = self.data_to_channels(s * self.op(self.channels_to_image(primal[:, ci:])))
            dual = dual + gamma(torch.cat([dual, k_primal, g], dim=1))
            kt_dual = self.image_to_channels(s * self.op.adjoint(self.channels_to_data(dual)))
            primal = primal + lam(torch.cat([primal, kt_dual], dim=1))
        return self.channels_to_image(primal)
