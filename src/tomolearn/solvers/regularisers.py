"""Regularisers ``R(x) = r(x) + indicator of [lower, upper]``: what good images look like.

Every regulariser carries an optional box ``lower <= x <= upper`` (``None``
= unbounded) beside its penalty ``r``.  The protocol a scheme uses
(``x``: ``(B, C, *domain_shape)``; every ``(b, c)`` its own problem):

``value(x) -> (B, C)``
    ``r(x)`` per problem, ``+inf`` where ``x`` leaves the box.
``smooth`` and ``gradient(x)``
    ``r`` is differentiable; ``gradient`` is ``grad r`` (the box excluded);
    ``lipschitz`` is its Lipschitz constant or ``None`` (gradient descent).
``proximable`` and ``prox(v, gamma)``
    ``argmin_x gamma R(x) + 1/2 ||x - v||^2``, box included; ``gamma`` a float
    or a tensor broadcasting to (B, C, 1, ...) (FISTA, ADMM, HQS, PDHG).
    ``prox_warm(v, gamma, state) -> (x, state)`` lets an inexact prox warm-start
    (TV's dual); the default ignores ``state``.
``project(x)``
    The projection onto the box (gradient descent, PDHG with a linear map).
``linear`` (optional, PDHG)
    ``R(x) = h(D x) + box``: ``linear(x) = D x``, ``linear_adjoint(p) = D^H p``,
    ``linear_norm2 >= ||D||^2`` and ``dual_update(w, dx, sigma) =
    prox_{sigma h*}(w + sigma dx)``.  :class:`TotalVariation` has one.

A learned regulariser implements ``value`` and ``gradient`` (``smooth = True``);
a plug-and-play denoiser implements ``prox`` (``proximable = True``, the
denoiser's strength tied to ``gamma``) — the default ``prox`` of a subclass
is ``project(_prox(v, gamma))``, exact for separable penalties.  ``a + b``
sums regularisers (:class:`RegulariserSum`): a smooth one plus a :class:`Box`
is the usual constrained smooth regulariser.

References
----------
.. [1] A. Beck and M. Teboulle, "Fast gradient-based algorithms for
       constrained total variation image denoising and deblurring problems",
       IEEE Trans. Image Process. 18(11), 2419-2434, 2009 (FGP, the TV prox).
.. [2] L. I. Rudin, S. Osher and E. Fatemi, "Nonlinear total variation based
       noise removal algorithms", Physica D 60, 259-268, 1992.
.. [3] A. N. Tikhonov, "Solution of incorrectly formulated problems and the
       regularization method", Soviet Math. Dokl. 4, 1035-1038, 1963.
"""

from __future__ import annotations

import copy
import math

import torch

from ._loop import _abs2, _project, _real_dot, _squeeze, _sum

__all__ = ["Regulariser", "Box", "Positivity", "Tikhonov", "TotalVariation", "RegulariserSum",
           "gradient", "divergence", "total_variation", "tv_prox"]


# -- finite differences and TV ----------------------------------------------------------------------
def gradient(x: torch.Tensor) -> torch.Tensor:
    """Forward differences with Neumann boundary: ``(..., H, W) -> (..., 2, H, W)`` (rows, cols)."""
    g = x.new_zeros(x.shape[:-2] + (2,) + x.shape[-2:])
    g[..., 0, :-1, :] = x[..., 1:, :] - x[..., :-1, :]
    g[..., 1, :, :-1] = x[..., :, 1:] - x[..., :, :-1]
    return g


def divergence(p: torch.Tensor) -> torch.Tensor:
    """Negative adjoint of :func:`gradient`: ``<gradient(x), p> = -<x, divergence(p)>``.

    ``(..., 2, H, W) -> (..., H, W)``.
    """
    d = torch.zeros_like(p[..., 0, :, :])
    d[..., :-1, :] += p[..., 0, :-1, :]
    d[..., 1:, :] -= p[..., 0, :-1, :]
    d[..., :, :-1] += p[..., 1, :, :-1]
    d[..., :, 1:] -= p[..., 1, :, :-1]
    return d


def total_variation(x: torch.Tensor) -> torch.Tensor:
    """Isotropic TV per problem [2]_, ``sum sqrt(dx^2 + dy^2)``: (B, C, H, W) -> (B, C, 1, 1)."""
    g = gradient(x)
    return _sum(torch.sqrt(_abs2(g).sum(dim=-3)))


def _project_ball(p: torch.Tensor, radius) -> torch.Tensor:
    """Project every pixel's gradient vector (dim -3) onto the ball of ``radius``."""
    norm = torch.sqrt(_abs2(p).sum(dim=-3, keepdim=True))
    return p / torch.clamp(norm / radius, min=1.0)


def tv_prox(v: torch.Tensor, gamma, *, n_iter: int = 50, lower=None, upper=None, p0=None,
            return_dual: bool = False):
    """``argmin_x 1/2 ||x - v||^2 + gamma TV(x)`` subject to ``lower <= x <= upper``.

    The fast gradient projection (FGP) of Beck and Teboulle [1]_ on the dual
    problem, ``n_iter`` iterations from the dual start ``p0`` (shape
    ``(B, C, 2, H, W)``; warm starts make the inexact prox inside FISTA
    cheap).  ``v``: (B, C, H, W); ``gamma`` > 0 may be a tensor broadcasting
    against (B, C, 1, 1).  Returns ``x`` (and the dual ``p`` with ``return_dual``).
    """
    p = torch.zeros(v.shape[:-2] + (2,) + v.shape[-2:], dtype=v.dtype, device=v.device) \
        if p0 is None else p0
    gamma_p = gamma.unsqueeze(-3) if isinstance(gamma, torch.Tensor) else gamma
    r, p_prev, t = p, p, 1.0
    for _ in range(n_iter):
        x = _project(v + gamma * divergence(r), lower, upper)
        p = _project_ball(r + gradient(x) / (8.0 * gamma_p), 1.0)
        t_new = (1 + math.sqrt(1 + 4 * t * t)) / 2
        r = p + ((t - 1) / t_new) * (p - p_prev)
        p_prev, t = p, t_new
    x = _project(v + gamma * divergence(p), lower, upper)
    return (x, p) if return_dual else x


# -- checks ------------------------------------------------------------------------------------------
def _weight(value, owner):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or value < 0:
        raise ValueError(f"{owner}: the regularisation weight must be a non-negative finite number, "
                         f"got {value!r}")
    return value


def _bounds(lower, upper, owner):
    """Box bounds: numbers, tensors broadcasting to the images, or None."""
    for name, b in (("lower", lower), ("upper", upper)):
        if b is None or isinstance(b, torch.Tensor):
            continue
        if isinstance(b, bool) or not isinstance(b, (int, float)) or math.isnan(b):
            raise ValueError(f"{owner}: {name} must be a number, a tensor or None, got {b!r}")
    if isinstance(lower, (int, float)) and isinstance(upper, (int, float)) and lower > upper:
        raise ValueError(f"{owner}: lower must be <= upper, got lower={lower}, upper={upper}")
    return lower, upper


# -- the protocol ------------------------------------------------------------------------------------
class Regulariser:
    """Base class: ``R(x) = r(x) + indicator of [lower, upper]`` (see the module docstring).

    Subclasses set ``smooth`` / ``proximable`` and implement ``_value`` (``r``
    per problem, keepdim shape (B, C, 1, ...)), ``gradient`` and/or
    ``_prox`` (prox of ``gamma r``, no box) or ``prox`` (box included).
    """

    smooth: bool = False
    proximable: bool = False
    #: Lipschitz constant of ``gradient`` (``None``: unknown / not smooth).
    lipschitz = None
    #: ``D`` for PDHG (``None``: the scheme uses ``prox``).
    linear = None

    def __init__(self, lower=None, upper=None):
        self.lower, self.upper = _bounds(lower, upper, type(self).__name__)

    @property
    def bounded(self) -> bool:
        """Whether a box bound is set."""
        return self.lower is not None or self.upper is not None

    def check(self, x: torch.Tensor) -> None:
        """Raise if images ``x`` (B, C, *domain_shape) do not suit this regulariser."""
        if self.bounded and x.is_complex():
            raise TypeError(f"{type(self).__name__}: box bounds need real images, got {x.dtype}")

    def _value(self, x):
        return x.new_zeros(x.shape[:2] + (1,) * (x.dim() - 2)).real

    def value(self, x) -> torch.Tensor:
        """``r(x)`` per problem, shape (B, C); ``+inf`` where ``x`` leaves the box."""
        v = _squeeze(self._value(x))
        if not self.bounded:
            return v
        inside = torch.ones_like(x, dtype=torch.bool)
        if self.lower is not None:
            inside = inside & (x >= self.lower)
        if self.upper is not None:
            inside = inside & (x <= self.upper)
        ok = inside.reshape(x.shape[0], x.shape[1], -1).all(dim=-1)
        return torch.where(ok, v, torch.full_like(v, math.inf))

    def gradient(self, x) -> torch.Tensor:
        """``grad r(x)`` (box excluded), shape of ``x``; only when ``smooth``."""
        raise NotImplementedError(f"{type(self).__name__} is not smooth (no gradient)")

    def project(self, x) -> torch.Tensor:
        """Projection onto ``[lower, upper]``."""
        return _project(x, self.lower, self.upper)

    def _prox(self, v, gamma):
        raise NotImplementedError(f"{type(self).__name__} has no prox")

    def prox(self, v, gamma) -> torch.Tensor:
        """``argmin_x gamma R(x) + 1/2 ||x - v||^2``, default ``project(_prox(v, gamma))``."""
        return self.project(self._prox(v, gamma))

    def prox_warm(self, v, gamma, state=None):
        """``(prox(v, gamma), state)``: an inexact prox may warm-start from ``state``."""
        return self.prox(v, gamma), None

    def with_bounds(self, lower, upper) -> "Regulariser":
        """A copy whose box is ``[lower, upper]``."""
        out = copy.copy(self)
        out.lower, out.upper = _bounds(lower, upper, type(self).__name__)
        return out

    def rescaled(self, scale: float) -> "Regulariser":
        """``scale^2 R`` (the box unchanged): PDHG / ADMM work on ``A`` scaled by ``scale``."""
        return _ScaledRegulariser(self, scale * scale)

    def __add__(self, other):
        if not isinstance(other, Regulariser):
            return NotImplemented
        return RegulariserSum(self, other)

    def _box_repr(self):
        return "".join(f", {n}={b}" for n, b in (("lower", self.lower), ("upper", self.upper))
                       if b is not None)


class Box(Regulariser):
    """The indicator of ``lower <= x <= upper`` alone (``r = 0``); prox = projection (clamp).

    Smooth with zero gradient and proximable, so every scheme accepts it.
    """

    smooth = True
    proximable = True
    lipschitz = 0.0

    def gradient(self, x):
        return torch.zeros_like(x)

    def _prox(self, v, gamma):
        return v

    def rescaled(self, scale):
        return self

    def __repr__(self):
        return f"Box(lower={self.lower}, upper={self.upper})"


class Positivity(Box):
    """``x >= 0``: ``Box(lower=0.0)``."""

    def __init__(self):
        super().__init__(0.0, None)


class Tikhonov(Regulariser):
    """``r(x) = weight/2 ||x||^2`` [3]_ (optionally with a box).

    Gradient ``weight x`` (Lipschitz ``weight``); prox ``v / (1 + gamma weight)``,
    then the projection (exact: the penalty is separable).
    """

    smooth = True
    proximable = True

    def __init__(self, weight: float, lower=None, upper=None):
        super().__init__(lower, upper)
        self.weight = _weight(weight, "Tikhonov")

    @property
    def lipschitz(self):
        return float(self.weight)

    def _value(self, x):
        return 0.5 * self.weight * _real_dot(x, x)

    def gradient(self, x):
        return self.weight * x

    def _prox(self, v, gamma):
        return v / (1 + gamma * self.weight)

    def rescaled(self, scale):
        out = copy.copy(self)
        out.weight = self.weight * scale * scale
        return out

    def __repr__(self):
        return f"Tikhonov(weight={self.weight}{self._box_repr()})"


class TotalVariation(Regulariser):
    """Isotropic total variation ``r(x) = weight sum sqrt(dx^2 + dy^2)`` over the last two dims.

    Not smooth.  ``prox`` is :func:`tv_prox` (FGP [1]_, ``inner_iter`` dual
    iterations, the box inside; warm-started through ``prox_warm``).  For PDHG
    it exposes ``D = gradient`` (``||D||^2 <= 8``), ``h = weight ||.||_{2,1}``
    whose conjugate prox projects onto the ball of radius ``weight``.

    Parameters
    ----------
    weight : float >= 0
    lower, upper : float, optional
        Box constraint (e.g. ``lower=0``).
    inner_iter : int
        FGP iterations per prox.
    """

    proximable = True
    linear_norm2 = 8.0

    def __init__(self, weight: float, lower=None, upper=None, *, inner_iter: int = 10):
        super().__init__(lower, upper)
        self.weight = _weight(weight, "TotalVariation")
        if isinstance(inner_iter, bool) or not isinstance(inner_iter, int) or inner_iter < 1:
            raise ValueError(f"TotalVariation: inner_iter must be a positive int, got {inner_iter!r}")
        self.inner_iter = inner_iter

    def check(self, x):
        super().check(x)
        if x.dim() < 4:
            raise ValueError("TotalVariation needs images of shape (B, C, ..., H, W) with at least "
                             f"two image dims, got shape {tuple(x.shape)}")

    def _value(self, x):
        return self.weight * total_variation(x)

    def prox_warm(self, v, gamma, state=None):
        if self.weight == 0:
            return self.project(v), state
        return tv_prox(v, self.weight * gamma, n_iter=self.inner_iter, lower=self.lower,
                       upper=self.upper, p0=state, return_dual=True)

    def prox(self, v, gamma):
        return self.prox_warm(v, gamma)[0]

    def linear(self, x):
        """``D x = gradient(x)``: (B, C, H, W) -> (B, C, 2, H, W)."""
        return gradient(x)

    def linear_adjoint(self, p):
        """``D^H p = -divergence(p)``."""
        return -divergence(p)

    def dual_update(self, w, dx, sigma):
        """``prox_{sigma h*}(w + sigma D x)``: projection onto the ball of radius ``weight``."""
        if self.weight == 0:
            return w
        return _project_ball(w + sigma * dx, self.weight)

    def rescaled(self, scale):
        out = copy.copy(self)
        out.weight = self.weight * scale * scale
        return out

    def __repr__(self):
        return f"TotalVariation(weight={self.weight}{self._box_repr()}, inner_iter={self.inner_iter})"


def _tightest(bounds, pick, pick_tensor):
    """Combine box bounds (numbers or tensors; ``None`` = unbounded) with ``max`` / ``min``."""
    out = None
    for b in bounds:
        if b is None:
            continue
        if out is None:
            out = b
        elif isinstance(out, torch.Tensor) or isinstance(b, torch.Tensor):
            out = pick_tensor(torch.as_tensor(out), torch.as_tensor(b))
        else:
            out = pick(out, b)
    return out


class RegulariserSum(Regulariser):
    """``R = R_1 + R_2 + ...`` (also ``R_1 + R_2``); the box is the intersection of the boxes.

    Smooth when every term is (gradients add).  Proximable when at most one
    term is not a :class:`Box` and that term is proximable: its prox is then
    taken with the intersected box (exact for TV and Tikhonov).  A smooth
    learned regulariser plus a :class:`Box` is smooth: gradient descent
    takes a gradient step and projects.
    """

    def __init__(self, *terms: Regulariser):
        flat = []
        for t in terms:
            if not isinstance(t, Regulariser):
                raise TypeError(f"RegulariserSum: terms must be Regularisers, got {type(t).__name__}")
            flat.extend(t.terms if isinstance(t, RegulariserSum) else [t])
        super().__init__(_tightest([t.lower for t in flat], max, torch.maximum),
                         _tightest([t.upper for t in flat], min, torch.minimum))
        self.terms = flat
        self._penalties = [t for t in flat if not isinstance(t, Box)]
        self.smooth = all(t.smooth for t in flat)
        self.proximable = len(self._penalties) == 0 or (
            len(self._penalties) == 1 and self._penalties[0].proximable)
        if self.smooth:
            ls = [t.lipschitz for t in flat]
            self.lipschitz = None if any(v is None for v in ls) else float(sum(ls))

    def check(self, x):
        super().check(x)
        for t in self.terms:
            t.check(x)

    def _value(self, x):
        out = self._penalties[0]._value(x) if self._penalties else super()._value(x)
        for t in self._penalties[1:]:
            out = out + t._value(x)
        return out

    def gradient(self, x):
        if not self.smooth:
            return super().gradient(x)
        out = torch.zeros_like(x)
        for t in self._penalties:
            out = out + t.gradient(x)
        return out

    def _single(self):
        if not self.proximable:
            names = ", ".join(type(t).__name__ for t in self._penalties)
            raise NotImplementedError(f"RegulariserSum({names}) has no prox: a prox needs at most "
                                      "one proximable term besides Box constraints")
        if not self._penalties:
            return Box(self.lower, self.upper)
        return self._penalties[0].with_bounds(self.lower, self.upper)

    def prox(self, v, gamma):
        return self._single().prox(v, gamma)

    def prox_warm(self, v, gamma, state=None):
        return self._single().prox_warm(v, gamma, state)

    def rescaled(self, scale):
        return RegulariserSum(*[t.rescaled(scale) for t in self.terms])

    def __repr__(self):
        return " + ".join(repr(t) for t in self.terms)


class _ScaledRegulariser(Regulariser):
    """``factor * R`` for a regulariser without its own ``rescaled``."""

    def __init__(self, base: Regulariser, factor: float):
        super().__init__(base.lower, base.upper)
        self.base, self.factor = base, factor
        self.smooth, self.proximable = base.smooth, base.proximable
        self.lipschitz = None if base.lipschitz is None else base.lipschitz * factor

    def check(self, x):
        self.base.check(x)

    def _value(self, x):
        return self.factor * self.base._value(x)

    def gradient(self, x):
        return self.factor * self.base.gradient(x)

    def prox(self, v, gamma):
        return self.base.prox(v, gamma * self.factor)

    def prox_warm(self, v, gamma, state=None):
        return self.base.prox_warm(v, gamma * self.factor, state)
