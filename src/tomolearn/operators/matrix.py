"""Small generic linear operators: the identity and a dense matrix (real or complex)."""

from __future__ import annotations

import math

import torch

from .base import LinearOperator

__all__ = ["Identity", "MatrixOperator"]


class Identity(LinearOperator):
    """The identity on ``(B, C, *shape)``."""

    def __init__(self, shape):
        super().__init__(shape, shape)

    def _forward(self, x):
        return x.clone()

    def _adjoint(self, y):
        return y.clone()

    def norm(self, *args, **kwargs):
        return 1.0


class MatrixOperator(LinearOperator):
    """A dense matrix acting on flattened samples: ``y = M x``.

    Parameters
    ----------
    matrix : torch.Tensor, shape (M, N)
        Real or complex matrix; registered as a buffer (moves with ``.to``).
    domain_shape, range_shape : tuple of int, optional
        Default ``(N,)`` and ``(M,)``.
    """

    def __init__(self, matrix: torch.Tensor, domain_shape=None, range_shape=None):
        if not isinstance(matrix, torch.Tensor) or matrix.dim() != 2:
            raise ValueError("matrix must be a 2-D torch.Tensor")
        m, n = matrix.shape
        domain_shape = (n,) if domain_shape is None else tuple(domain_shape)
        range_shape = (m,) if range_shape is None else tuple(range_shape)
        if math.prod(domain_shape) != n or math.prod(range_shape) != m:
            raise ValueError(
                f"matrix of shape {(m, n)} does not fit domain_shape {domain_shape} "
                f"and range_shape {range_shape}"
            )
        super().__init__(domain_shape, range_shape)
        self.register_buffer("matrix", matrix)

    def _cast(self, x):
        if self.matrix.is_complex() and not x.is_complex():
            x = x.to(torch.promote_types(x.dtype, torch.complex64))
        return x, self.matrix.to(dtype=x.dtype, device=x.device)

    def _forward(self, x):
        b, c = x.shape[:2]
        x, m = self._cast(x)
        out = x.reshape(b * c, -1) @ m.T
        return out.reshape((b, c) + self.range_shape)

    def _adjoint(self, y):
        b, c = y.shape[:2]
        y, m = self._cast(y)
        out = y.reshape(b * c, -1) @ m.conj()
        return out.reshape((b, c) + self.domain_shape)
