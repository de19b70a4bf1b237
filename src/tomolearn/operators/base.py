"""The operator protocol: batched linear operators with exact adjoints.

Every forward model in tomolearn (CT ray transforms today; MRI, PET and EIT
later) is a :class:`LinearOperator` (or, for nonlinear physics, an
:class:`Operator`).  Operators are ``torch.nn.Module`` objects that map batched
tensors of shape ``(B, C, *domain_shape)`` to ``(B, C, *range_shape)``.

A linear operator implements two raw methods, ``_forward`` and ``_adjoint``,
on already-validated tensors.  The public ``forward`` (``A(x)``) and
``adjoint`` (``A.adjoint(y)``, ``A.T(y)``) validate their input and route
through a custom ``torch.autograd.Function`` whose backward pass is the other
direction of the operator, so back-propagation through ``A(x)`` is exact and
costs one adjoint, and double backward works.

Operators compose: ``A @ B``, ``2.0 * A``, ``A + B``, ``A - B``, ``-A``,
``A.T``.  ``A.norm()`` estimates the operator 2-norm by power iteration with a
fixed seed and caches it.

Concrete operators live with their physics (``tomolearn.modalities``); the
small generic ones (identity, dense matrix) in :mod:`tomolearn.operators.matrix`.
"""

from __future__ import annotations

import math
from typing import Dict, Tuple

import torch
from torch import nn

__all__ = ["Operator", "LinearOperator"]

Shape = Tuple[int, ...]


def _as_shape(shape, name: str) -> Shape:
    try:
        shape = tuple(int(s) for s in shape)
    except TypeError:
        raise TypeError(f"{name} must be a sequence of ints, got {shape!r}") from None
    if len(shape) == 0 or any(s <= 0 for s in shape):
        raise ValueError(f"{name} must be a non-empty tuple of positive ints, got {shape}")
    return shape


class Operator(nn.Module):
    """Base class of all forward operators (linear or not).

    Maps ``(B, C, *domain_shape)`` to ``(B, C, *range_shape)``.  A nonlinear
    operator overrides :meth:`_forward` with differentiable torch code; its
    Jacobian-vector products then come from autograd
    (``torch.func.jvp`` / ``torch.autograd.grad``).

    Parameters
    ----------
    domain_shape, range_shape : tuple of int
        Shapes of one channel of one sample in the domain and in the range.
    """

    #: Whether complex inputs are accepted.
    supports_complex: bool = True
    #: Whether only complex inputs make sense (e.g. MRI's Fourier sampling: real input is
    #: almost always a forgotten ``torch.complex``); real input is then refused.
    requires_complex: bool = False

    def __init__(self, domain_shape, range_shape):
        super().__init__()
        self.domain_shape: Shape = _as_shape(domain_shape, "domain_shape")
        self.range_shape: Shape = _as_shape(range_shape, "range_shape")

    # -- validation -------------------------------------------------------
    def _check(self, x, shape: Shape, what: str) -> None:
        name = type(self).__name__
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{name}.{what} expects a torch.Tensor, got {type(x).__name__}")
        if x.dim() != len(shape) + 2 or tuple(x.shape[2:]) != shape:
            raise ValueError(
                f"{name}.{what} expects shape (B, C, {', '.join(map(str, shape))}), "
                f"got {tuple(x.shape)}"
            )
        if not (x.is_floating_point() or x.is_complex()):
            raise TypeError(
                f"{name}.{what} expects a floating-point or complex tensor, got {x.dtype}"
            )
        if x.is_complex() and not self.supports_complex:
            raise TypeError(f"{name}.{what} does not support complex input ({x.dtype})")
        if not x.is_complex() and self.requires_complex:
            raise TypeError(f"{name}.{what} expects complex input (complex64 or complex128), got "
                            f"{x.dtype}; convert real images with torch.complex(x, "
                            f"torch.zeros_like(x))")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the operator to ``x`` of shape ``(B, C, *domain_shape)``."""
        self._check(x, self.domain_shape, "forward")
        return self._forward(x)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def extra_repr(self) -> str:
        return f"domain_shape={self.domain_shape}, range_shape={self.range_shape}"


class _Apply(torch.autograd.Function):
    """``y = A x`` (or ``A^H x``) whose backward is the other direction."""

    @staticmethod
    def forward(ctx, x, op, adjoint):
        ctx.op = op
        ctx.adjoint = adjoint
        if x.numel() == 0:  # an empty batch maps to an empty batch (kernels need not see it)
            return x.new_zeros(tuple(x.shape[:2]) + (op.domain_shape if adjoint else op.range_shape))
        with torch.autocast(x.device.type, enabled=False):  # operators run in the input's precision
            return op._adjoint(x) if adjoint else op._forward(x)

    @staticmethod
    def backward(ctx, grad):
        # For y = A x, the vector-Jacobian product is A^H grad (torch's
        # convention for complex tensors as well).  Going through _Apply again
        # keeps the backward differentiable, so double backward works.
        return _Apply.apply(grad.contiguous(), ctx.op, not ctx.adjoint), None, None


def _full_precision(x: torch.Tensor) -> torch.Tensor:
    """Half-precision input (mixed-precision training) is applied in float32.

    Line integrals accumulate hundreds of terms, too many for float16/bfloat16,
    and sparse kernels do not support them; the result is float32, which
    autocast regions accept.
    """
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


class LinearOperator(Operator):
    """A linear operator with an exact adjoint.

    Subclasses implement ``_forward(x)`` and ``_adjoint(y)`` on validated,
    batched tensors; ``_adjoint`` must be the exact (conjugate) transpose of
    ``_forward`` to floating-point precision.
    """

    def __init__(self, domain_shape, range_shape):
        super().__init__(domain_shape, range_shape)
        self._norm_cache: Dict[Tuple, float] = {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``A x`` for ``x`` of shape ``(B, C, *domain_shape)``; differentiable."""
        self._check(x, self.domain_shape, "forward")
        return _Apply.apply(_full_precision(x), self, False)

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        """``A^H y`` for ``y`` of shape ``(B, C, *range_shape)``; differentiable."""
        self._check(y, self.range_shape, "adjoint")
        return _Apply.apply(_full_precision(y), self, True)

    def _adjoint(self, y: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    # -- algebra ----------------------------------------------------------
    @property
    def T(self) -> "LinearOperator":
        """The adjoint as an operator (``A.T(y) == A.adjoint(y)``)."""
        return _AdjointOperator(self)

    def __matmul__(self, other):
        if not isinstance(other, LinearOperator):
            return NotImplemented
        return _Composition(self, other)

    def __mul__(self, scalar):
        if isinstance(scalar, torch.Tensor):
            if scalar.numel() != 1:
                raise TypeError("an operator can only be scaled by a scalar")
            scalar = scalar.item()
        if not isinstance(scalar, (int, float, complex)):
            return NotImplemented
        return _Scaled(self, scalar)

    __rmul__ = __mul__

    def __truediv__(self, scalar):
        if not isinstance(scalar, (int, float)) or scalar == 0:
            return NotImplemented
        return _Scaled(self, 1.0 / scalar)

    def __neg__(self):
        return _Scaled(self, -1.0)

    def __add__(self, other):
        if not isinstance(other, LinearOperator):
            return NotImplemented
        return _Sum(self, other)

    def __sub__(self, other):
        if not isinstance(other, LinearOperator):
            return NotImplemented
        return _Sum(self, _Scaled(other, -1.0))

    # -- norm ---------------------------------------------------------------
    def background_of(self, y: torch.Tensor) -> torch.Tensor:
        """The additive term of the measurement model ``y ~ A x + b`` for data ``y`` (same
        shape, dtype and device): zero here; emission projectors return their randoms +
        scatter estimate.  Methods fit ``A x`` to ``y - background_of(y)`` (least squares)
        or use it as the Poisson model's background."""
        return torch.zeros_like(y)

    def initial_reconstruction(self, y: torch.Tensor) -> torch.Tensor:
        """A first guess ``(B, C, *domain_shape)`` from data ``y``: here ``A^H y / ||A||^2``
        (one gradient step from zero with step ``1 / ||A||^2``).  Modalities override it
        with their classical reconstruction (FBP for the ray transform); learned methods
        and tasks start from it."""
        return self.adjoint(y) / self.norm() ** 2

    def norm(self, n_iter: int = 200, rtol: float = 1e-7, seed: int = 0,
             dtype: torch.dtype = torch.float64, device=None, recompute: bool = False) -> float:
        """Operator 2-norm (largest singular value) by power iteration on ``A^H A``.

        Deterministic: the start vector is drawn from a CPU generator seeded
        with ``seed``.  The result is cached per ``(n_iter, rtol, seed, dtype,
        device)``.

        Returns
        -------
        float
            Estimate of ``||A||_2``, accurate to about ``rtol`` relative for
            operators whose top singular value is separated from the second.
        """
        if n_iter < 1:
            raise ValueError(f"n_iter must be >= 1, got {n_iter}")
        device = torch.device(device) if device is not None else self._default_device()
        key = (n_iter, rtol, seed, dtype, str(device))
        if key in self._norm_cache and not recompute:
            return self._norm_cache[key]
        gen = torch.Generator().manual_seed(seed)
        x = torch.randn((1, 1) + self.domain_shape, generator=gen, dtype=dtype).to(device)
        x = x / torch.linalg.vector_norm(x)
        estimate = 0.0
        with torch.no_grad():
            for _ in range(n_iter):
                z = self._adjoint(self._forward(x))
                s = torch.linalg.vector_norm(z).item()
                if s == 0.0:
                    estimate = 0.0
                    break
                x = z / s
                converged = abs(s - estimate) <= rtol * s
                estimate = s
                if converged:
                    break
        value = math.sqrt(estimate)
        self._norm_cache[key] = value
        return value

    def _default_device(self) -> torch.device:
        for t in list(self.parameters()) + list(self.buffers()):
            return t.device
        return torch.device("cpu")

    def to_dense(self, dtype: torch.dtype = torch.float64, device=None) -> torch.Tensor:
        """Explicit matrix of shape ``(prod(range_shape), prod(domain_shape))``.

        Applies the operator to every basis vector: only for tiny operators.
        """
        n = math.prod(self.domain_shape)
        if n > 65536:
            raise ValueError(f"to_dense is meant for tiny operators; domain size {n} > 65536")
        eye = torch.eye(n, dtype=dtype, device=device).reshape((n, 1) + self.domain_shape)
        with torch.no_grad():
            cols = self._forward(eye).reshape(n, -1)
        return cols.T.contiguous()


class _AdjointOperator(LinearOperator):
    def __init__(self, op: LinearOperator):
        super().__init__(op.range_shape, op.domain_shape)
        self.op = op
        self.supports_complex, self.requires_complex = op.supports_complex, op.requires_complex

    def _forward(self, x):
        return self.op._adjoint(x)

    def _adjoint(self, y):
        return self.op._forward(y)

    @property
    def T(self):
        return self.op

    def norm(self, *args, **kwargs):
        return self.op.norm(*args, **kwargs)


class _Composition(LinearOperator):
    def __init__(self, left: LinearOperator, right: LinearOperator):
        if right.range_shape != left.domain_shape:
            raise ValueError(
                f"cannot compose: right operator's range_shape {right.range_shape} "
                f"!= left operator's domain_shape {left.domain_shape}"
            )
        super().__init__(right.domain_shape, left.range_shape)
        self.left, self.right = left, right
        self.supports_complex = left.supports_complex and right.supports_complex
        self.requires_complex = left.requires_complex or right.requires_complex

    def _forward(self, x):
        return self.left._forward(self.right._forward(x))

    def _adjoint(self, y):
        return self.right._adjoint(self.left._adjoint(y))


class _Scaled(LinearOperator):
    def __init__(self, op: LinearOperator, scalar):
        super().__init__(op.domain_shape, op.range_shape)
        self.op, self.scalar = op, scalar
        self.supports_complex, self.requires_complex = op.supports_complex, op.requires_complex

    def _forward(self, x):
        return self.scalar * self.op._forward(x)

    def _adjoint(self, y):
        s = self.scalar.conjugate() if isinstance(self.scalar, complex) else self.scalar
        return s * self.op._adjoint(y)

    def norm(self, *args, **kwargs):
        return abs(self.scalar) * self.op.norm(*args, **kwargs)

    def extra_repr(self):
        return f"scalar={self.scalar}"


class _Sum(LinearOperator):
    def __init__(self, a: LinearOperator, b: LinearOperator):
        if (a.domain_shape, a.range_shape) != (b.domain_shape, b.range_shape):
            raise ValueError(
                f"cannot add operators {a.domain_shape}->{a.range_shape} and "
                f"{b.domain_shape}->{b.range_shape}"
            )
        super().__init__(a.domain_shape, a.range_shape)
        self.a, self.b = a, b
        self.supports_complex = a.supports_complex and b.supports_complex
        self.requires_complex = a.requires_complex or b.requires_complex

    def _forward(self, x):
        return self.a._forward(x) + self.b._forward(x)

    def _adjoint(self, y):
        return self.a._adjoint(y) + self.b._adjoint(y)
