"""Smooth objectives and a quasi-Newton scheme for them: smoothed TV and L-BFGS.

:class:`SmoothTotalVariation` is the Charbonnier / Huber-like smoothing of isotropic total
variation, ``r(x) = weight sum sqrt(|grad x|^2 + eps^2)``: differentiable, with a Lipschitz
gradient, so gradient schemes (:func:`~tomolearn.solvers.gradient_descent`, Nesterov's
acceleration) and quasi-Newton schemes (:func:`lbfgs`) apply where plain TV needs a prox
(FISTA [3]_) or a primal-dual scheme (PDHG [4]_).

:func:`lbfgs` is limited-memory BFGS [1]_ (Nocedal and Wright, Algorithms 7.4 and 7.5): the
two-loop recursion applies the inverse-Hessian approximation built from the last ``history``
pairs ``s = x_{k+1} - x_k``, ``y = g_{k+1} - g_k`` to the gradient, scaled by ``gamma_k =
<s, y> / <y, y>`` [1]_ (eq. 7.20); the step length comes from a backtracking line search on the
Armijo (sufficient decrease) condition [1]_ (Algorithm 3.1), from the unit step down by halves.
Every ``(b, c)`` of a batch is its own problem: inner products, scalings, step lengths and the
curvature test ``<s, y> > 1e-12 ||s|| ||y||`` (a pair that fails it is skipped, for that
problem alone) are per problem, so a batch gives the same iterates as its images one at a
time (except that a pair skipped by some problems only still holds one of their ``history``
slots; convex problems skip none in practice).  By linearity ``A (x + t d) = A x + t A d``:
one forward projection and one adjoint per iteration, however many trial steps the line
search takes.

References
----------
.. [1] J. Nocedal and S. J. Wright, "Numerical Optimization", 2nd ed., Springer, 2006
       (L-BFGS: section 7.2, Algorithms 7.4 and 7.5; backtracking: Algorithm 3.1).
.. [2] D. C. Liu and J. Nocedal, "On the limited memory BFGS method for large scale
       optimization", Math. Program. 45, 503-528, 1989.
.. [3] A. Beck and M. Teboulle, "A fast iterative shrinkage-thresholding algorithm for linear
       inverse problems", SIAM J. Imaging Sci. 2(1), 183-202, 2009.
.. [4] A. Chambolle and T. Pock, "A first-order primal-dual algorithm for convex problems
       with applications to imaging", J. Math. Imaging Vis. 40, 120-145, 2011.
"""

from __future__ import annotations

import copy
import math
from typing import Callable, Optional

import torch

from ..operators import LinearOperator
from ._loop import Result, _abs2, _like, _Loop, _real_dot, _sum, _tiny
from .fidelities import DataFidelity
from .regularisers import Regulariser, _weight, divergence, gradient
from .schemes import _setup

__all__ = ["SmoothTotalVariation", "lbfgs"]

#: Armijo's sufficient-decrease constant ``c_1`` [1]_ (section 3.1) and the most halvings.
ARMIJO_C1 = 1e-4
MAX_BACKTRACKS = 40


class SmoothTotalVariation(Regulariser):
    """Smoothed isotropic TV ``r(x) = weight sum sqrt(|grad x|^2 + eps^2)`` over the last two dims.

    ``grad`` is the forward-difference :func:`~tomolearn.solvers.gradient` (Neumann
    boundary), ``|.|`` the modulus of the 2-vector per pixel (complex images: ``|dx|^2 +
    |dy|^2`` of the complex differences, as :class:`TotalVariation`).  Note that ``r`` includes
    the constant ``weight eps`` per pixel where ``grad x = 0``; ``r -> weight TV`` as ``eps ->
    0``.  ``smooth``: ``gradient(x) = -weight div(grad x / sqrt(|grad x|^2 + eps^2))``, whose
    Lipschitz constant is at most ``||grad||^2 weight / eps <= 8 weight / eps``.

    Parameters
    ----------
    weight : float >= 0
    eps : float > 0
        The smoothing: ``r`` is quadratic where ``|grad x| << eps`` and TV-like above.
    lower, upper : float, optional
        A box (gradient descent projects onto it; :func:`lbfgs` refuses a box).
    """

    smooth = True

    def __init__(self, weight: float, eps: float, lower=None, upper=None):
        super().__init__(lower, upper)
        self.weight = _weight(weight, "SmoothTotalVariation")
        if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not math.isfinite(eps) \
                or eps <= 0:
            raise ValueError(f"SmoothTotalVariation: eps must be a positive finite number, "
                             f"got {eps!r}")
        self.eps = float(eps)

    @property
    def lipschitz(self) -> float:
        """``8 weight / eps`` (``||grad||^2 <= 8``, the Hessian of ``sqrt(|p|^2 + eps^2)``
        at most ``1 / eps``)."""
        return 8.0 * self.weight / self.eps

    def check(self, x):
        super().check(x)
        if x.dim() < 4:
            raise ValueError("SmoothTotalVariation needs images of shape (B, C, ..., H, W) with "
                             f"at least two image dims, got shape {tuple(x.shape)}")

    def _magnitude(self, g):
        """``sqrt(|g|^2 + eps^2)`` per pixel: (..., 2, H, W) -> (..., H, W), real."""
        return torch.sqrt(_abs2(g).sum(dim=-3) + self.eps * self.eps)

    def _value(self, x):
        return self.weight * _sum(self._magnitude(gradient(x)))

    def gradient(self, x):
        """``-weight div(grad x / sqrt(|grad x|^2 + eps^2))``, shape of ``x``."""
        g = gradient(x)
        return -self.weight * divergence(g / self._magnitude(g).unsqueeze(-3))

    def rescaled(self, scale):
        out = copy.copy(self)
        out.weight = self.weight * scale * scale
        return out

    def __repr__(self):
        return f"SmoothTotalVariation(weight={self.weight}, eps={self.eps}{self._box_repr()})"


def _two_loop(g, pairs, gamma):
    """``H_k g`` by the two-loop recursion [1]_ (Algorithm 7.4), per problem.

    ``pairs``: ``(s, y, rho)`` oldest first, ``rho = 1 / <s, y>`` of shape (B, C, 1, ...) and
    0 for the problems whose pair was skipped (their terms then vanish); ``gamma``: the
    initial scaling ``H_0 = gamma I`` per problem.
    """
    q, alphas = g, []
    for s, y, rho in reversed(pairs):
        alpha = rho * _real_dot(s, q)
        q = q - alpha * y
        alphas.append(alpha)
    r = gamma * q
    for (s, y, rho), alpha in zip(pairs, reversed(alphas)):
        beta = rho * _real_dot(y, r)
        r = r + (alpha - beta) * s
    return r


def lbfgs(op: LinearOperator, y: torch.Tensor, fidelity: Optional[DataFidelity] = None,
          regulariser: Optional[Regulariser] = None, *, n_iter: int = 100, history: int = 10,
          x0=None, tol: float = 0.0, callback: Optional[Callable] = None, gt=None,
          progress: bool = False) -> Result:
    """L-BFGS [1]_ [2]_ with a backtracking Armijo line search on ``F(A x; y) + r(x)``.

    ``x_{k+1} = x_k + t_k d_k`` with ``d_k = -H_k g_k`` (two-loop recursion over the last
    ``history`` curvature pairs, ``H_0 = gamma_k I``, ``gamma_k = <s, y> / <y, y>`` of the
    newest accepted pair; before any pair, ``1 / L`` with ``L`` the fidelity's plus the
    regulariser's Lipschitz constant, or ``1 / ||g||`` where none is known) and ``t_k`` the
    first of ``1, 1/2, 1/4, ...`` that satisfies ``F(x + t d) <= F(x) + 1e-4 t <g, d>`` and
    ``F(x + t d) < F(x)`` (at most 40 halvings; the search fails early once the decrease it
    asks for is below the resolution of ``F(x)``).  A problem whose search fails keeps its
    iterate and restarts from the steepest-descent direction, scaled as at the start; a
    direction that is not a descent direction (rounding) is replaced the same way.  A problem
    whose restart fails too has reached the floating-point floor (no decrease is
    representable) and stays put; when every problem of the batch has (or has a zero
    gradient) the scheme stops with that message.

    Parameters
    ----------
    op : LinearOperator
    y : torch.Tensor, shape (B, C, *op.range_shape)
    fidelity : DataFidelity, optional
        Needs ``value_at`` and ``data_gradient`` (default :class:`LeastSquares`).
    regulariser : Regulariser, optional
        Must be ``smooth`` (e.g. :class:`SmoothTotalVariation`, ``Tikhonov``) and without a
        box: L-BFGS-B is not implemented.
    n_iter, history : int
        Iterations and the number of curvature pairs kept (``m`` in [1]_).
    x0, tol, callback, gt, progress
        As the other schemes (:mod:`~tomolearn.solvers.schemes`).

    Returns
    -------
    Result
        ``x`` of shape (B, C, *op.domain_shape); ``objective`` (n_iterations, B, C).

    Raises
    ------
    TypeError
        For a regulariser that is not smooth or has a box.
    """
    x, fidelity, reg = _setup("lbfgs", op, y, fidelity, regulariser, x0, n_iter, tol)
    if reg is not None and (not reg.smooth or reg.bounded):
        raise TypeError("lbfgs needs a smooth regulariser without a box (smooth=True, no lower/"
                        f"upper); got {reg!r} (smooth={reg.smooth}, bounded={reg.bounded})")
    if isinstance(history, bool) or not isinstance(history, int) or history < 1:
        raise ValueError(f"lbfgs: history must be a positive int, got {history!r}")
    lip = fidelity.lipschitz(op)
    if lip is not None and reg is not None:
        lip = None if reg.lipschitz is None else lip + reg.lipschitz
    loop = _Loop("lbfgs", n_iter, tol, callback, gt, progress)
    tiny = _tiny(x)

    def value(ax, z):
        v = fidelity.value_at(ax, y)
        return v if reg is None else v + reg.value(z)

    def grad(ax, z):
        g = op._adjoint(fidelity.data_gradient(ax, y))
        return g if reg is None else g + reg.gradient(z)

    def first_scale(g):
        """``H_0 = gamma I`` before any pair and on a restart: ``1 / L``, or ``1 / ||g||``."""
        if lip:
            return torch.full_like(f, 1.0 / lip)
        return 1.0 / _real_dot(g, g).sqrt().clamp_min(tiny)

    with torch.no_grad():
        ax = op._forward(x)
        f, g = _like(value(ax, x), x), grad(ax, x)
        gamma = first_scale(g)
        fails = torch.zeros_like(f, dtype=torch.int64)  # consecutive failed searches per problem
        pairs = []
        for k in range(n_iter):
            d = -_two_loop(g, pairs, gamma)
            # not a descent direction (rounding) or the last search failed: steepest descent
            restart = (_real_dot(g, d) >= 0) | (fails == 1)
            if bool(restart.any()):
                d = torch.where(restart, -first_scale(g) * g, d)
            d = torch.where(fails >= 2, torch.zeros_like(d), d)  # failed twice: stays put
            slope = _real_dot(g, d)
            done = slope >= 0  # nothing to do: zero gradient, or given up
            if k > 0 and bool(done.all()):
                loop.message = (f"stopped after {k} iterations: no problem can decrease "
                                "further (zero gradient or the floating-point floor)")
                break
            ad = op._forward(d)
            t, f_new = torch.ones_like(f), f
            failed = torch.zeros_like(done)
            for _ in range(MAX_BACKTRACKS + 1):
                f_t = _like(value(ax + _like(t, ax) * ad, x + t * d), x)
                demand = f + ARMIJO_C1 * t * slope
                accept = ~done & (f_t <= demand) & (f_t < f)
                # the decrease asked for is below f's resolution and none came: the floor
                failed = failed | (~done & ~accept & (demand >= f))
                f_new, done = torch.where(accept, f_t, f_new), done | accept | failed
                if bool(done.all()):
                    break
                t = torch.where(done, t, 0.5 * t)
            failed = failed | ~done  # out of halvings
            t = torch.where(failed, torch.zeros_like(t), t)  # failed: stays for this iteration
            fails = torch.where(failed, fails + 1, torch.where(slope < 0, 0, fails))
            x_prev, x, ax = x, x + t * d, ax + _like(t, ax) * ad
            f, g_prev = f_new, g
            g = grad(ax, x)
            s, yk = x - x_prev, g - g_prev
            sy, yy = _real_dot(s, yk), _real_dot(yk, yk)
            ok = sy > 1e-12 * (_real_dot(s, s) * yy).sqrt()
            if bool(ok.any()):
                rho = torch.where(ok, 1.0 / sy.clamp_min(tiny), torch.zeros_like(sy))
                gamma = torch.where(ok, sy / yy.clamp_min(tiny), gamma)
                pairs = (pairs + [(s, yk, rho)])[-history:]
            if loop.step(k, x, x_prev, f.reshape(f.shape[:2])):
                break
    return loop.result(x)
