"""First-order and splitting schemes for ``min_x F(A x; y) + R(x)``.

Each scheme takes a :class:`~tomolearn.operators.LinearOperator` ``op``, data
``y`` of shape ``(B, C, *op.range_shape)``, a
:class:`~tomolearn.solvers.fidelities.DataFidelity` ``fidelity`` (default
:class:`~tomolearn.solvers.fidelities.LeastSquares`) and a
:class:`~tomolearn.solvers.regularisers.Regulariser` ``regulariser``
(default none), and returns a :class:`~tomolearn.solvers.Result` whose ``x``
has shape ``(B, C, *op.domain_shape)``.  Every ``(b, c)`` is its own problem.
Common keywords: ``n_iter``, ``x0`` (default zeros), ``tol`` (stop when the
relative change of every problem is at most ``tol``), ``callback(k, x,
objective)`` with ``objective`` of shape (B, C), ``gt`` (PSNR history),
``progress`` (a progress bar).  The objective history is ``F(A x; y) + R(x)``
in the original scaling.

=================  ====================  ==============================================
scheme             fidelity needs        regulariser needs
=================  ====================  ==============================================
gradient_descent   gradient (+ step)     ``smooth`` (gradient, then the box projection)
fista              gradient (+ step)     ``proximable``
pdhg               conjugate prox        a linear map (TV) or ``proximable``
admm               data-space prox       ``proximable``
hqs                ``quadratic``         ``proximable``
=================  ====================  ==============================================

References
----------
.. [1] L. Landweber, "An iteration formula for Fredholm integral equations
       of the first kind", Amer. J. Math. 73, 615-624, 1951.
.. [2] Y. Nesterov, "A method for solving the convex programming problem
       with convergence rate O(1/k^2)", Dokl. Akad. Nauk SSSR 269, 543-547, 1983.
.. [3] A. Beck and M. Teboulle, "A fast iterative shrinkage-thresholding
       algorithm for linear inverse problems", SIAM J. Imaging Sci. 2(1),
       183-202, 2009; and "Fast gradient-based algorithms for constrained
       total variation image denoising and deblurring problems", IEEE Trans.
       Image Process. 18(11), 2419-2434, 2009.
.. [4] A. Chambolle and T. Pock, "A first-order primal-dual algorithm for
       convex problems with applications to imaging", J. Math. Imaging Vis.
       40, 120-145, 2011.
.. [5] S. Boyd, N. Parikh, E. Chu, B. Peleato and J. Eckstein, "Distributed
       optimization and statistical learning via the alternating direction
       method of multipliers", Found. Trends Mach. Learn. 3(1), 1-122, 2011.
.. [6] D. Geman and C. Yang, "Nonlinear image recovery with half-quadratic
       regularization", IEEE Trans. Image Process. 4(7), 932-946, 1995;
       K. Zhang, Y. Li, W. Zuo, L. Zhang, L. Van Gool and R. Timofte,
       "Plug-and-play image restoration with deep denoiser prior" (DPIR),
       IEEE Trans. Pattern Anal. Mach. Intell. 44(10), 6360-6376, 2022.
"""

from __future__ import annotations

import math
from typing import Callable, Optional

import torch

from ..operators import LinearOperator
from ._loop import Result, _cg, _check_type, _Loop, _momentum, _positive, _validate
from .fidelities import DataFidelity, LeastSquares
from .regularisers import Box, Regulariser, RegulariserSum

__all__ = ["gradient_descent", "fista", "pdhg", "admm", "hqs"]


# -- shared setup ----------------------------------------------------------------------------------
def _setup(name, op, y, fidelity, regulariser, x0, n_iter, tol):
    """Validate; return ``(x, fidelity, regulariser)`` with the default fidelity filled in."""
    x = _validate(op, y, x0, n_iter, tol)
    fidelity = LeastSquares() if fidelity is None else fidelity
    _check_type(fidelity, DataFidelity, "fidelity", name)
    fidelity.check(y)
    if regulariser is not None:
        _check_type(regulariser, Regulariser, "regulariser", name)
        regulariser.check(x)
        if isinstance(regulariser, RegulariserSum) and regulariser.proximable:
            regulariser = regulariser._single()
    return x, fidelity, regulariser


def _require(name, regulariser, what):
    if regulariser is not None and not getattr(regulariser, what):
        need = {"smooth": "a smooth regulariser (smooth=True, with gradient)",
                "proximable": "a regulariser with a prox (proximable=True)"}[what]
        raise TypeError(f"{name} needs {need}; got {type(regulariser).__name__} "
                        f"(smooth={regulariser.smooth}, proximable={regulariser.proximable})")


def _objective(op, x, y, fidelity, regulariser):
    value = fidelity.value(op, x, y)
    return value if regulariser is None else value + regulariser.value(x)


def _default_step(name, op, fidelity, regulariser):
    lip = fidelity.lipschitz(op)
    if regulariser is not None and lip is not None:
        lip = None if regulariser.lipschitz is None else lip + regulariser.lipschitz
    if lip is None or lip <= 0:
        raise ValueError(f"{name}: no Lipschitz constant known for {type(fidelity).__name__}"
                         + ("" if regulariser is None else f" + {type(regulariser).__name__}")
                         + "; pass step=")
    return 1.0 / lip


def _rescale(op, y, fidelity, regulariser, rescale):
    """The problem scaled by ``1 / ||A||^2`` (``A`` to norm 1) when ``rescale``."""
    if not rescale:
        return op, y, fidelity, regulariser, op.norm() ** 2
    scale = 1.0 / op.norm()
    fid_s, y_s = fidelity.rescaled(scale, y)
    reg_s = None if regulariser is None else regulariser.rescaled(scale)
    return op * scale, y_s, fid_s, reg_s, 1.0


# -- gradient descent and FISTA -----------------------------------------------------------------------
def _forward_backward(name, op, y, fidelity, regulariser, *, use_prox, n_iter, step, nesterov, x0,
                      tol, callback, gt, progress) -> Result:
    x, fidelity, reg = _setup(name, op, y, fidelity, regulariser, x0, n_iter, tol)
    _require(name, reg, "proximable" if use_prox else "smooth")
    smooth_reg = reg is not None and not use_prox and not isinstance(reg, Box)
    step = _positive(step, "step") or _default_step(name, op, fidelity, reg if smooth_reg else None)
    loop = _Loop(name, n_iter, tol, callback, gt, progress)
    z, t, state = x, 1.0, None
    with torch.no_grad():
        # A z is kept, not recomputed: A x_new is needed for the objective anyway, and
        # A z = A x_new + beta (A x_new - A x) by linearity (one projection per iteration less)
        ax = az = op._forward(x)
        for k in range(n_iter):
            g = op._adjoint(fidelity.data_gradient(az, y))
            if smooth_reg:
                g = g + reg.gradient(z)
            x_new = z - step * g
            if use_prox and reg is not None:
                x_new, state = reg.prox_warm(x_new, step, state)
            elif reg is not None:
                x_new = reg.project(x_new)
            ax_new = op._forward(x_new)
            if nesterov:
                t_new = _momentum(t)
                beta = (t - 1) / t_new
                z = x_new + beta * (x_new - x)
                az = ax_new + beta * (ax_new - ax)
                t = t_new
            else:
                z, az = x_new, ax_new
            x_prev, x, ax = x, x_new, ax_new
            value = fidelity.value_at(ax, y)
            if loop.step(k, x, x_prev, value if reg is None else value + reg.value(x)):
                break
    return loop.result(x)


def gradient_descent(op: LinearOperator, y: torch.Tensor, fidelity: Optional[DataFidelity] = None,
                     regulariser: Optional[Regulariser] = None, *, n_iter: int = 100,
                     step: Optional[float] = None, nesterov: bool = False, x0=None, tol: float = 0.0,
                     callback: Optional[Callable] = None, gt=None, progress: bool = False) -> Result:
    """Projected gradient descent on ``F(A x; y) + r(x)``, then the regulariser's box.

    ``x <- project(z - step (A^H grad F(A z) + grad r(z)))`` with ``z = x``,
    or Nesterov's extrapolation [2]_ (``nesterov=True``, O(1/k^2)).  On
    :class:`LeastSquares` without a regulariser this is Landweber's
    iteration [1]_.  The regulariser must be ``smooth`` (e.g. ``Tikhonov``,
    ``Box``, a learned one, or one of these plus a ``Box``).

    Parameters
    ----------
    step : float, optional
        Default ``1 / L`` with ``L`` the fidelity's plus the regulariser's
        Lipschitz constant (``||A||^2`` for least squares; converges for
        ``0 < step < 2 / L``); required for :class:`PoissonLikelihood`.
    """
    return _forward_backward("gradient_descent", op, y, fidelity, regulariser, use_prox=False,
                             n_iter=n_iter, step=step, nesterov=nesterov, x0=x0, tol=tol,
                             callback=callback, gt=gt, progress=progress)


def fista(op: LinearOperator, y: torch.Tensor, fidelity: Optional[DataFidelity] = None,
          regulariser: Optional[Regulariser] = None, *, n_iter: int = 200,
          step: Optional[float] = None, momentum: bool = True, x0=None, tol: float = 0.0,
          callback: Optional[Callable] = None, gt=None, progress: bool = False) -> Result:
    """Proximal gradient with FISTA momentum [3]_ on ``F(A x; y) + R(x)``.

    ``x_k = prox_{step R}(z - step A^H grad F(A z))``, ``z = x_k + (t_{k-1} - 1)/t_k
    (x_k - x_{k-1})``.  The regulariser must be ``proximable`` (an inexact
    prox is warm-started through ``prox_warm``, as TV's FGP dual);
    ``momentum=False`` is ISTA.  ``step`` defaults to ``1 / L_F``.
    """
    return _forward_backward("fista", op, y, fidelity, regulariser, use_prox=True, n_iter=n_iter,
                             step=step, nesterov=momentum, x0=x0, tol=tol, callback=callback, gt=gt,
                             progress=progress)


# -- PDHG ------------------------------------------------------------------------------------------------
def pdhg(op: LinearOperator, y: torch.Tensor, fidelity: Optional[DataFidelity] = None,
         regulariser: Optional[Regulariser] = None, *, n_iter: int = 300, ratio: float = 10.0,
         rescale: bool = True, x0=None, tol: float = 0.0, callback: Optional[Callable] = None,
         gt=None, progress: bool = False) -> Result:
    """Chambolle-Pock primal-dual hybrid gradient [4]_ on ``F(A x; y) + h(D x) + g(x)``.

    With a regulariser that has a linear map (:class:`TotalVariation`:
    ``D = grad``, ``h = weight ||.||_{2,1}``, ``g`` its box) the scheme runs on
    ``K = [A; D]`` with dual variables ``u`` (data space, fidelity's conjugate
    prox) and ``w`` (``h``'s conjugate prox); otherwise ``K = A`` and ``g = R``
    (its prox).  With ``rescale`` the problem is first divided by ``||A||^2``
    and ``A`` scaled to norm 1, so both blocks of ``K`` have comparable norms.
    Steps ``tau = ratio / L``, ``sigma = 1 / (ratio L)`` with ``L = 1.01
    sqrt(||A||^2 + ||D||^2) >= ||K||`` (``tau sigma ||K||^2 < 1``).
    """
    x, fidelity, reg = _setup("pdhg", op, y, fidelity, regulariser, x0, n_iter, tol)
    has_map = reg is not None and reg.linear is not None
    if not has_map:
        _require("pdhg", reg, "proximable")
    ratio = _positive(ratio, "ratio")
    op_s, y_s, fid_s, reg_s, a2 = _rescale(op, y, fidelity, reg, rescale)
    big_l = 1.01 * math.sqrt(a2 + (reg.linear_norm2 if has_map else 0.0))
    tau, sigma = ratio / big_l, 1.0 / (ratio * big_l)
    loop = _Loop("pdhg", n_iter, tol, callback, gt, progress)
    with torch.no_grad():
        u = torch.zeros_like(y)
        w = torch.zeros_like(reg_s.linear(x)) if has_map else None
        x_bar = x
        for k in range(n_iter):
            u = fid_s.dual_update(u, op_s._forward(x_bar), y_s, sigma)
            g = op_s._adjoint(u)
            if has_map:
                w = reg_s.dual_update(w, reg_s.linear(x_bar), sigma)
                g = g + reg_s.linear_adjoint(w)
            v = x - tau * g
            x_new = reg_s.project(v) if has_map else (v if reg is None else reg_s.prox(v, tau))
            x_bar = 2 * x_new - x
            x_prev, x = x, x_new
            if loop.step(k, x, x_prev, _objective(op, x, y, fidelity, reg)):
                break
    return loop.result(x)


# -- ADMM --------------------------------------------------------------------------------------------------
def admm(op: LinearOperator, y: torch.Tensor, fidelity: Optional[DataFidelity] = None,
         regulariser: Optional[Regulariser] = None, *, n_iter: int = 100, rho: float = 0.1,
         cg_iter: int = 10, rescale: bool = True, x0=None, tol: float = 0.0,
         callback: Optional[Callable] = None, gt=None, progress: bool = False) -> Result:
    """ADMM [5]_ (scaled form) on ``F(v; y) + R(z)`` subject to ``v = A x``, ``z = x``.

    Per iteration: ``x`` solves ``(A^H A + I) x = A^H (v - u_1) + z - u_2`` by
    ``cg_iter`` conjugate-gradient steps (warm-started); ``v = prox_{F/rho}(A x
    + u_1)`` (the fidelity's data-space prox); ``z = prox_{R/rho}(x + u_2)``;
    ``u_1 += A x - v``, ``u_2 += x - z``.  Works for any fidelity with a prox
    (least squares, Poisson) and any proximable regulariser; with
    ``rescale`` (default) on the problem divided by ``||A||^2``.  Returns and
    scores ``z`` (inside the regulariser's box).
    """
    x, fidelity, reg = _setup("admm", op, y, fidelity, regulariser, x0, n_iter, tol)
    _require("admm", reg, "proximable")
    rho = _positive(rho, "rho")
    _check_inner(cg_iter, "cg_iter", "admm")
    op_s, y_s, fid_s, reg_s, _ = _rescale(op, y, fidelity, reg, rescale)
    loop = _Loop("admm", n_iter, tol, callback, gt, progress)

    def normal(t):
        return op_s._adjoint(op_s._forward(t)) + t

    with torch.no_grad():
        z = x if reg is None else reg.project(x)
        v = op_s._forward(x)
        u1, u2, state = torch.zeros_like(v), torch.zeros_like(x), None
        for k in range(n_iter):
            x = _cg(normal, op_s._adjoint(v - u1) + (z - u2), x, cg_iter)
            ax = op_s._forward(x)
            v = fid_s.prox(ax + u1, y_s, 1.0 / rho)
            z_prev = z
            z, state = (x + u2, None) if reg is None else reg_s.prox_warm(x + u2, 1.0 / rho, state)
            u1 = u1 + ax - v
            u2 = u2 + x - z
            if loop.step(k, z, z_prev, _objective(op, z, y, fidelity, reg)):
                break
    return loop.result(z)


# -- HQS -----------------------------------------------------------------------------------------------------
def hqs(op: LinearOperator, y: torch.Tensor, fidelity: Optional[DataFidelity] = None,
        regulariser: Optional[Regulariser] = None, *, n_iter: int = 100, mu=(0.01, 100.0),
        cg_iter: int = 10, rescale: bool = True, x0=None, tol: float = 0.0,
        callback: Optional[Callable] = None, gt=None, progress: bool = False) -> Result:
    """Half-quadratic splitting [6]_: ``min F(A x; y) + R(z) + mu/2 ||x - z||^2``, ``mu`` growing.

    Alternates ``x``: ``(A^H W A + mu I) x = A^H W y + mu z`` by ``cg_iter``
    conjugate-gradient steps (warm-started; needs a ``quadratic`` fidelity,
    :class:`LeastSquares` or :class:`WeightedLeastSquares`) and ``z =
    prox_{R/mu}(x)`` (a plug-and-play denoiser fits here, as in DPIR).

    ``mu``: a float (fixed: the scheme solves the penalised problem above)
    or ``(mu_first, mu_last)``, spaced geometrically over the ``n_iter``
    iterations (DPIR's schedule): as ``mu`` grows ``x - z -> 0`` and ``z``
    approaches a minimiser of ``F + R``, to an error of order ``1/mu_last``
    (HQS is a penalty method, not an exact solver).  ``mu`` is relative to
    ``||A||^2`` when ``rescale``.  Returns and scores ``z``.
    """
    x, fidelity, reg = _setup("hqs", op, y, fidelity, regulariser, x0, n_iter, tol)
    if not fidelity.quadratic:
        raise TypeError("hqs needs a quadratic fidelity (LeastSquares or WeightedLeastSquares) for its "
                        f"conjugate-gradient x-step; got {type(fidelity).__name__}")
    _require("hqs", reg, "proximable")
    mus = _mu_schedule(mu, n_iter)
    _check_inner(cg_iter, "cg_iter", "hqs")
    op_s, y_s, fid_s, reg_s, _ = _rescale(op, y, fidelity, reg, rescale)
    weights = fid_s.weights

    def weigh(t):
        return t if weights is None else weights * t

    loop = _Loop("hqs", n_iter, tol, callback, gt, progress)
    with torch.no_grad():
        rhs = op_s._adjoint(weigh(y_s))
        z, state = (x if reg is None else reg.project(x)), None
        for k, m in enumerate(mus):

            def normal(t):
                return op_s._adjoint(weigh(op_s._forward(t))) + m * t

            x = _cg(normal, rhs + m * z, x, cg_iter)
            z_prev = z
            z, state = (x, None) if reg is None else reg_s.prox_warm(x, 1.0 / m, state)
            if loop.step(k, z, z_prev, _objective(op, z, y, fidelity, reg)):
                break
    return loop.result(z)


def _check_inner(value, name, scheme):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{scheme}: {name} must be a positive int, got {value!r}")


def _mu_schedule(mu, n_iter):
    """HQS penalties: a float (fixed) or ``(first, last)`` spaced geometrically over ``n_iter``."""
    if isinstance(mu, (tuple, list)):
        if len(mu) != 2:
            raise ValueError(f"hqs: mu must be a positive float or a pair (first, last), got {mu!r}")
        first, last = _positive(mu[0], "mu[0]"), _positive(mu[1], "mu[1]")
        if n_iter == 1:
            return [last]
        return [first * (last / first) ** (k / (n_iter - 1)) for k in range(n_iter)]
    return [_positive(mu, "mu")] * n_iter
