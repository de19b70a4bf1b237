"""Data fidelities ``F(A x; y)``: how far the forward projection ``A x`` is from the data ``y``.

A :class:`DataFidelity` is a small object that an iteration scheme asks for
what it needs; each method says which schemes call it.  Shapes: ``x`` is
``(B, C, *op.domain_shape)``, ``y`` and ``ax = A x`` are
``(B, C, *op.range_shape)``; every ``(b, c)`` is its own problem.  Real and
complex data work: inner products are ``Re <a, b>``, so gradients are the
real-inner-product (Wirtinger) gradients ``A^H (...)``.

Protocol (override what exists for your fidelity):

``value(op, x, y) -> (B, C)``
    ``F(A x; y)`` per problem (all schemes, for the objective history).
``data_gradient(ax, y)``
    ``grad F`` with respect to ``A x``; ``gradient(op, x, y) = A^H data_gradient(A x, y)``
    (gradient descent, FISTA).
``lipschitz(op)``
    Lipschitz constant of ``gradient`` or ``None`` (default step sizes).
``prox(v, y, gamma)``
    ``argmin_u gamma F(u; y) + 1/2 ||u - v||^2`` in the data space (ADMM).
``prox_conjugate(v, y, sigma)``
    The same for the convex conjugate ``F*`` (PDHG); ``dual_update(u, ax, y, sigma)
    = prox_conjugate(u + sigma ax, y, sigma)`` is the PDHG dual step.
``rescaled(scale, y) -> (fidelity, y')``
    A fidelity ``F'`` and data ``y'`` with ``F'(scale A x; y') = scale^2 F(A x; y)``
    (PDHG / ADMM work on ``A`` scaled to norm 1).
``quadratic``, ``weights``
    Least-squares fidelities: ``F = 1/2 ||A x - y||_W^2`` (CGLS, HQS solve normal equations).

References
----------
.. [1] A. Chambolle and T. Pock, "A first-order primal-dual algorithm for
       convex problems with applications to imaging", J. Math. Imaging Vis.
       40, 120-145, 2011 (the conjugate proximal maps, section 6).
.. [2] L. A. Shepp and Y. Vardi, "Maximum likelihood reconstruction for
       emission tomography", IEEE Trans. Med. Imaging 1(2), 113-122, 1982.
"""

from __future__ import annotations

import math

import torch

from ._loop import _abs2, _real_dot, _squeeze, _sum

__all__ = ["DataFidelity", "LeastSquares", "WeightedLeastSquares", "PoissonLikelihood"]


def _log_likelihood(mean: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``sum y log(mean) - mean`` per problem (terms with ``y = 0`` contribute ``-mean``), (B, C)."""
    return _squeeze(_sum(torch.where(y > 0, y * torch.log(mean.clamp_min(1e-30)), 0.0) - mean))


def _check_tensor_or_number(value, name, owner, non_negative=True):
    """A finite (non-negative) number or tensor; a ValueError naming ``owner`` otherwise."""
    if isinstance(value, torch.Tensor):
        if not torch.isfinite(value).all() or (non_negative and (value < 0).any()):
            raise ValueError(f"{owner}: {name} must be finite and non-negative")
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or (non_negative and value < 0):
        raise ValueError(f"{owner}: {name} must be a non-negative number or tensor, got {value!r}")
    return float(value)


def _check_broadcast(t, y, name, owner):
    if isinstance(t, torch.Tensor):
        try:
            shape = torch.broadcast_shapes(t.shape, y.shape)
        except RuntimeError:
            shape = None
        if shape != tuple(y.shape):
            raise ValueError(f"{owner}: {name} of shape {tuple(t.shape)} must broadcast to the "
                             f"data shape {tuple(y.shape)}")


class DataFidelity:
    """Base class of data fidelities ``F(A x; y)`` (see the module docstring for the protocol).

    Methods a fidelity lacks raise ``NotImplementedError`` naming the fidelity;
    a scheme checks the flags ``quadratic`` (and the methods it calls) first.
    """

    #: ``F = 1/2 ||A x - y||_W^2`` with ``W = weights`` (``None``: identity).
    quadratic: bool = False
    weights = None

    def check(self, y: torch.Tensor) -> None:
        """Raise a ValueError if ``y`` (B, C, *range_shape) is not valid data for this fidelity."""

    def value(self, op, x, y) -> torch.Tensor:
        """``F(A x; y)`` per problem, shape (B, C)."""
        return self.value_at(op._forward(x), y)

    def value_at(self, ax, y) -> torch.Tensor:
        """``F(ax; y)`` per problem from the projection ``ax = A x`` already computed (schemes
        that keep ``A x`` save a projection), shape (B, C)."""
        raise NotImplementedError(f"{type(self).__name__} has no value()")

    def data_gradient(self, ax, y) -> torch.Tensor:
        """Gradient of ``F`` with respect to ``ax = A x``, shape of ``y``."""
        raise NotImplementedError(f"{type(self).__name__} has no gradient")

    def gradient(self, op, x, y) -> torch.Tensor:
        """``A^H data_gradient(A x, y)``, shape of ``x``."""
        return op._adjoint(self.data_gradient(op._forward(x), y))

    def lipschitz(self, op):
        """Lipschitz constant of :meth:`gradient` (float) or ``None`` when it has none."""
        return None

    def prox(self, v, y, gamma) -> torch.Tensor:
        """``argmin_u gamma F(u; y) + 1/2 ||u - v||^2`` (data space), shape of ``y``."""
        raise NotImplementedError(f"{type(self).__name__} has no prox")

    def prox_conjugate(self, v, y, sigma) -> torch.Tensor:
        """``argmin_p sigma F*(p; y) + 1/2 ||p - v||^2`` for the convex conjugate ``F*``."""
        raise NotImplementedError(f"{type(self).__name__} has no conjugate prox")

    def dual_update(self, u, ax, y, sigma) -> torch.Tensor:
        """PDHG dual step ``prox_conjugate(u + sigma ax, y, sigma)``."""
        return self.prox_conjugate(u + sigma * ax, y, sigma)

    def rescaled(self, scale: float, y):
        """``(F', y')`` with ``F'(scale A x; y') = scale^2 F(A x; y)`` (generic wrapper)."""
        return _Rescaled(self, scale), y


class LeastSquares(DataFidelity):
    """``F(A x; y) = 1/2 ||A x - y||^2`` (Gaussian noise); real or complex data.

    Gradient ``A^H (A x - y)`` with Lipschitz constant ``||A||^2``; data-space
    prox ``(v + gamma y) / (1 + gamma)``; conjugate prox ``(v - sigma y) / (1 + sigma)``.
    """

    quadratic = True

    def _w(self, t):
        return t if self.weights is None else self.weights * t

    def value_at(self, ax, y):
        r = ax - y
        if self.weights is None:
            return _squeeze(0.5 * _real_dot(r, r))
        return _squeeze(0.5 * _sum(self.weights * r * r if not r.is_complex()
                                   else self.weights * _abs2(r)))

    def data_gradient(self, ax, y):
        return self._w(ax - y)

    def lipschitz(self, op):
        scale = 1.0 if self.weights is None else float(torch.as_tensor(self.weights).max())
        return scale * op.norm() ** 2

    def prox(self, v, y, gamma):
        if self.weights is None:
            return (v + gamma * y) / (1 + gamma)
        gw = gamma * self.weights
        return (v + gw * y) / (1 + gw)

    def prox_conjugate(self, v, y, sigma):
        if self.weights is None:
            return (v - sigma * y) / (1 + sigma)
        return (v - sigma * y) * (self.weights / (self.weights + sigma))

    def dual_update(self, u, ax, y, sigma):
        if self.weights is None:  # the form of Chambolle and Pock, without cancellation
            return (u + sigma * (ax - y)) / (1 + sigma)
        return self.prox_conjugate(u + sigma * ax, y, sigma)

    def rescaled(self, scale, y):
        return self, y * scale

    def __repr__(self):
        return f"{type(self).__name__}()"


class WeightedLeastSquares(LeastSquares):
    """``F(A x; y) = 1/2 sum w |A x - y|^2`` with non-negative ``weights`` broadcasting to ``y``.

    E.g. inverse noise variances, or SIRT's row weights ``1 / (A 1)``.
    Lipschitz constant ``max(w) ||A||^2``.
    """

    def __init__(self, weights):
        self.weights = _check_tensor_or_number(weights, "weights", "WeightedLeastSquares")

    def check(self, y):
        _check_broadcast(self.weights, y, "weights", "WeightedLeastSquares")

    def __repr__(self):
        shape = tuple(self.weights.shape) if isinstance(self.weights, torch.Tensor) else ()
        return f"WeightedLeastSquares(weights of shape {shape})"


class PoissonLikelihood(DataFidelity):
    """Negative Poisson log-likelihood (Kullback-Leibler) for ``y ~ Poisson(A x + r)``.

    ``F(A x; y) = sum (A x + r) - y log(A x + r)`` up to constants, i.e.
    ``-log_likelihood``; ``r = background`` (scatter, randoms, dark counts)
    is a non-negative number or a tensor broadcasting to ``y``.  Not
    Lipschitz-smooth: gradient schemes need an explicit step; EM (MLEM/OSEM)
    is its natural scheme.  Real data only.

    Data-space prox (ADMM): with ``t = u + r``, ``t = (v + r - gamma + sqrt((v + r - gamma)^2
    + 4 gamma y)) / 2``.  Conjugate prox (PDHG, [1]_): ``p = (q + 1 - sqrt((q - 1)^2 + 4 sigma y)) / 2``
    with ``q = v + sigma r``.
    """

    def __init__(self, background=0.0):
        self.background = _check_tensor_or_number(background, "the background", "PoissonLikelihood")

    def check(self, y):
        if y.is_complex():
            raise TypeError("PoissonLikelihood needs real data (counts), got a complex tensor")
        if (y < 0).any():
            raise ValueError("PoissonLikelihood needs non-negative data (counts); y has negative values")
        _check_broadcast(self.background, y, "the background", "PoissonLikelihood")

    def mean(self, ax):
        """The Poisson mean ``A x + background``."""
        return ax + self.background

    def log_likelihood(self, op, x, y) -> torch.Tensor:
        """``sum y log(A x + r) - (A x + r)`` per problem (constants dropped), shape (B, C)."""
        return _log_likelihood(self.mean(op._forward(x)), y)

    def value_at(self, ax, y):
        return -_log_likelihood(self.mean(ax), y)

    def data_gradient(self, ax, y):
        return 1 - y / self.mean(ax).clamp_min(1e-30)

    def prox(self, v, y, gamma):
        b = v + self.background - gamma
        return 0.5 * (b + torch.sqrt(b * b + 4 * gamma * y)) - self.background

    def prox_conjugate(self, v, y, sigma):
        q = v + sigma * self.background
        return 0.5 * (q + 1 - torch.sqrt((q - 1) ** 2 + 4 * sigma * y))

    def __repr__(self):
        b = self.background
        return f"PoissonLikelihood(background={'tensor' if isinstance(b, torch.Tensor) else b})"


class _Rescaled(DataFidelity):
    """``F'(u) = F(u / scale) * scale^2`` (so ``F'(scale A x) = scale^2 F(A x)``)."""

    def __init__(self, base: DataFidelity, scale: float):
        self.base, self.scale = base, scale

    def check(self, y):
        self.base.check(y)

    def value_at(self, ax, y):
        raise NotImplementedError("the rescaled fidelity is internal to the schemes")

    def prox(self, v, y, gamma):
        # gamma F'(u) + 1/2 ||u - v||^2 with s = u / scale: prox_{gamma F}(v / scale) * scale
        return self.base.prox(v / self.scale, y, gamma) * self.scale

    def prox_conjugate(self, v, y, sigma):
        # F'*(p) = scale^2 F*(p / scale): prox_{sigma F'*}(v) = scale prox_{sigma F*}(v / scale)
        return self.base.prox_conjugate(v / self.scale, y, sigma) * self.scale
