"""Learned gradient descent (after Adler & Öktem 2017): unrolled gradient steps, learned updates."""

from __future__ import annotations

import torch
from torch import nn

from .base import _Reconstructor
from .blocks import _conv_block


class LearnedGradientDescent(_Reconstructor):
    """Learned gradient descent (after Adler & Öktem 2017, "Solving ill-posed
    inverse problems using iterative deep neural networks").

    With the normalised operator ``K = A / ||A||`` and data ``g = y / ||A||``::

        x_0 = 0            (or op.initial_reconstruction(y), init="initial")
        for k in range(n_iter):
            dx  = Lambda_k([x_k, K^T (K x_k - g)])
            x_{k+1} = x_k + dx

    ``K^T (K x - g) = A^T (A x - y) / ||A||^2``, so the gradient has a fixed
    scale whatever the operator's units.  Each ``Lambda_k`` (own weights per
    iteration) is 3x3 conv (2 -> ``channels``) - PReLU - 3x3 conv - PReLU -
    3x3 conv (-> 1).  The paper's variant also carries memory channels and
    the gradient of a regulariser; this is the plain, memory-less form.

    Parameters
    ----------
    op : LinearOperator
        Images ``(B, 1, H, W)`` to data ``(B, 1, A, D)``.
    n_iter : int
    channels : int
    init : {"zero", "initial"}
        Starting point: zero, or the operator's first guess (FBP for the ray transform).

    Attributes
    ----------
    operator_scale : float
        ``1 / op.norm()``.
    """

    def __init__(self, op, n_iter: int = 10, channels: int = 32, init: str = "zero"):
        super().__init__()
        if init not in ("zero", "initial"):
            raise ValueError(f"init must be 'zero' or 'initial', got {init!r}")
        self.init = init
        self._bind(op)
        self.n_iter = int(n_iter)
        c = self.image_channels
        self.blocks = nn.ModuleList(_conv_block(2 * c, c, channels) for _ in range(self.n_iter))

    def _rebind(self) -> None:
        self.operator_scale = 1.0 / self.op.norm()

    def _reconstruct(self, y: torch.Tensor) -> torch.Tensor:
        s2 = self.operator_scale**2
        if self.init == "initial":
            x = self.op.initial_reconstruction(y)
        else:
            x = y.new_zeros((y.shape[0], 1) + tuple(self.op.domain_shape))
        for block in self.blocks:
            grad = s2 * self.op.adjoint(self.op(x) - y)
            h = self.image_to_channels(x)
            x = self.channels_to_image(h + block(torch.cat([h, self.image_to_channels(grad)], 1)))
        return x
