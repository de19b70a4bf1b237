"""Classical reconstruction: operator-generic, batched, converging.

Every solver takes a :class:`~tomolearn.operators.LinearOperator` ``op`` and
data ``y`` of shape ``(B, C, *op.range_shape)`` and treats each ``(b, c)``
as an independent problem (step sizes and inner products are per problem),
so a batch gives the same result per image as when each is run alone.  All
work on CPU and CUDA, float32 and float64, and return a :class:`Result`.

Stopping: after ``n_iter`` iterations, or earlier when the relative change
``||x_k - x_{k-1}|| / ||x_k||`` of every problem in the batch falls below
``tol``.  A ``callback(k, x, objective)`` is called after every iteration.
An iteration whose objective is not finite stops the solver with a warning;
the last finite iterate is returned.

References
----------
.. [1] L. Landweber, "An iteration formula for Fredholm integral equations
       of the first kind", Amer. J. Math. 73, 615-624, 1951.
.. [2] A. Bjorck, "Numerical Methods for Least Squares Problems", SIAM 1996
       (CGLS, section 7.4).
.. [3] A. Beck and M. Teboulle, "Fast gradient-based algorithms for
       constrained total variation image denoising and deblurring problems",
       IEEE Trans. Image Process. 18(11), 2419-2434, 2009 (FISTA with the
       FGP proximal step).
.. [4] A. Chambolle and T. Pock, "A first-order primal-dual algorithm for
       convex problems with applications to imaging", J. Math. Imaging Vis.
       40, 120-145, 2011.
.. [5] P. Gilbert, "Iterative methods for the three-dimensional
       reconstruction of an object from projections", J. Theor. Biol. 36,
       105-117, 1972 (SIRT).
.. [6] L. A. Shepp and Y. Vardi, "Maximum likelihood reconstruction for
       emission tomography", IEEE Trans. Med. Imaging 1(2), 113-122, 1982;
       H. M. Hudson and R. S. Larkin, "Accelerated image reconstruction using
       ordered subsets of projection data", IEEE Trans. Med. Imaging 13(4),
       601-609, 1994.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Callable, List, Optional

import torch

from .operators import LinearOperator

__all__ = ["Result", "landweber", "cgls", "tv_fista", "tv_pdhg", "sirt", "mlem", "osem",
           "gradient", "divergence", "total_variation", "tv_prox", "least_squares_tv_objective",
           "poisson_log_likelihood"]


@dataclass
class Result:
    """What a solver returns.

    Attributes
    ----------
    x : torch.Tensor, shape (B, C, *domain_shape)
        The reconstruction.
    objective : torch.Tensor, shape (n_iterations, B, C)
        The objective after every iteration, per problem.
    psnr : torch.Tensor or None, shape (n_iterations, B)
        PSNR (dB) after every iteration when a ground truth was given.
    iterations : int
    converged : bool
        Whether the relative-change tolerance was met.
    message : str
    """

    x: torch.Tensor
    objective: torch.Tensor
    psnr: Optional[torch.Tensor]
    iterations: int
    converged: bool
    message: str


# -- helpers -----------------------------------------------------------------------------
def _sum(t: torch.Tensor) -> torch.Tensor:
    """Per-problem sum over all but the first two dims, keeping dims for broadcasting."""
    return t.sum(dim=tuple(range(2, t.dim())), keepdim=True)


def _real_dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return _sum((a.conj() * b).real if a.is_complex() else a * b)


def _norm(t: torch.Tensor) -> torch.Tensor:
    return _real_dot(t, t).sqrt()


def _squeeze(v: torch.Tensor) -> torch.Tensor:
    return v.reshape(v.shape[0], v.shape[1])


def _positive(value, name):
    if value is None:
        return None
    value = float(value)
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be positive and finite, got {value}")
    return value


def _validate(op, y, x0, n_iter, tol):
    if not isinstance(op, LinearOperator):
        raise TypeError(f"op must be a LinearOperator, got {type(op).__name__}")
    op._check(y, op.range_shape, "solver data y")
    if not torch.isfinite(y).all():
        raise ValueError("the data y contain non-finite values (nan or inf)")
    if isinstance(n_iter, bool) or not isinstance(n_iter, int) or n_iter < 1:
        raise ValueError(f"n_iter must be a positive int, got {n_iter!r}")
    if not (isinstance(tol, (int, float)) and tol >= 0 and math.isfinite(tol)):
        raise ValueError(f"tol must be a non-negative number, got {tol!r}")
    if x0 is not None:
        expected = (y.shape[0], y.shape[1]) + op.domain_shape
        if not isinstance(x0, torch.Tensor) or tuple(x0.shape) != expected:
            got = tuple(x0.shape) if isinstance(x0, torch.Tensor) else type(x0).__name__
            raise ValueError(f"x0 must have shape {expected}, got {got}")
        if not torch.isfinite(x0).all():
            raise ValueError("x0 contains non-finite values")
        return x0.to(dtype=y.dtype, device=y.device).clone()
    return y.new_zeros((y.shape[0], y.shape[1]) + op.domain_shape)


def _project(x, lower, upper):
    if lower is None and upper is None:
        return x
    return x.clamp(min=lower, max=upper)


class _Loop:
    """Iteration bookkeeping shared by all solvers: history, stopping, divergence, callback."""

    def __init__(self, name, n_iter, tol, callback, gt, progress):
        self.name, self.n_iter, self.tol, self.callback, self.gt = name, n_iter, tol, callback, gt
        self.objectives: List[torch.Tensor] = []
        self.psnrs: List[torch.Tensor] = []
        self.converged = False
        self.message = f"reached n_iter={n_iter}"
        self.bar = None
        if progress:
            from tqdm import tqdm
            self.bar = tqdm(total=n_iter, desc=name, unit="it", leave=False)
        self.last_good = None

    def step(self, k, x, x_prev, objective) -> bool:
        """Record iteration ``k``; return True when the solver should stop."""
        if not torch.isfinite(objective).all() or not torch.isfinite(x).all():
            self.message = (f"{self.name} diverged at iteration {k + 1} (non-finite objective); "
                            "returning the last finite iterate")
            warnings.warn(self.message, RuntimeWarning, stacklevel=3)
            return True
        self.last_good = x
        self.objectives.append(_squeeze(objective).detach())
        if self.gt is not None:
            from .metrics import psnr
            self.psnrs.append(psnr(x.detach(), self.gt).reshape(-1).to(torch.float64))
        if self.callback is not None:
            self.callback(k, x, objective)
        if self.bar is not None:
            self.bar.update(1)
        if self.tol > 0 and x_prev is not None:
            change = _norm(x - x_prev) / _norm(x).clamp_min(torch.finfo(x.dtype).tiny)
            if bool((change <= self.tol).all()):
                self.converged = True
                self.message = f"relative change below tol={self.tol} after {k + 1} iterations"
                return True
        return False

    def result(self, x_fallback) -> Result:
        if self.bar is not None:
            self.bar.close()
        x = self.last_good if self.last_good is not None else x_fallback
        objective = torch.stack(self.objectives) if self.objectives else x.new_zeros((0,) + x.shape[:2])
        psnr = torch.stack(self.psnrs) if self.psnrs else None
        return Result(x=x, objective=objective, psnr=psnr, iterations=len(self.objectives),
                      converged=self.converged, message=self.message)


def _least_squares(op, x, y):
    r = op._forward(x) - y
    return r, 0.5 * _real_dot(r, r)


# -- Landweber / gradient descent ------------------------------------------------------------
def landweber(op: LinearOperator, y: torch.Tensor, *, n_iter: int = 100, step: Optional[float] = None,
              nesterov: bool = False, x0=None, lower=None, upper=None, tol: float = 0.0,
              callback: Optional[Callable] = None, gt=None, progress: bool = False) -> Result:
    """Gradient descent on ``1/2 ||A x - y||^2`` (Landweber), optionally Nesterov-accelerated.

    Parameters
    ----------
    step : float, optional
        Step size; default ``1 / ||A||^2`` (converges for ``0 < step < 2/||A||^2``).
    nesterov : bool
        Use Nesterov's / FISTA's momentum (O(1/k^2) in the objective).
    lower, upper : float, optional
        Project onto ``[lower, upper]`` after every step (e.g. ``lower=0``).
    gt : torch.Tensor, optional
        Ground truth ``(B, C, *domain_shape)`` for a PSNR history.
    """
    x = _validate(op, y, x0, n_iter, tol)
    step = _positive(step, "step") or 1.0 / op.norm() ** 2
    loop = _Loop("landweber", n_iter, tol, callback, gt, progress)
    z, t = x, 1.0
    with torch.no_grad():
        for k in range(n_iter):
            r = op._forward(z) - y
            x_new = _project(z - step * op._adjoint(r), lower, upper)
            if nesterov:
                t_new = (1 + math.sqrt(1 + 4 * t * t)) / 2
                z = x_new + ((t - 1) / t_new) * (x_new - x)
                t = t_new
            else:
                z = x_new
            _, objective = _least_squares(op, x_new, y)
            x_prev, x = x, x_new
            if loop.step(k, x, x_prev, objective):
                break
    return loop.result(x)


# -- CGLS ---------------------------------------------------------------------------------------
def cgls(op: LinearOperator, y: torch.Tensor, *, n_iter: int = 50, damping: float = 0.0, x0=None,
         tol: float = 0.0, callback: Optional[Callable] = None, gt=None, progress: bool = False) -> Result:
    """Conjugate gradients on the normal equations, ``min ||A x - y||^2 + damping ||x||^2``.

    The objective history is ``1/2 ||A x - y||^2 + damping/2 ||x||^2``.
    ``damping`` > 0 is Tikhonov regularisation (CGLS on ``[A; sqrt(damping) I]``).
    """
    x = _validate(op, y, x0, n_iter, tol)
    if not (isinstance(damping, (int, float)) and damping >= 0 and math.isfinite(damping)):
        raise ValueError(f"damping must be a non-negative number, got {damping!r}")
    loop = _Loop("cgls", n_iter, tol, callback, gt, progress)
    tiny = torch.finfo(y.real.dtype if y.is_complex() else y.dtype).tiny
    with torch.no_grad():
        r = y - op._forward(x)
        s = op._adjoint(r) - damping * x
        p = s
        gamma = _real_dot(s, s)
        for k in range(n_iter):
            q = op._forward(p)
            alpha = gamma / (_real_dot(q, q) + damping * _real_dot(p, p)).clamp_min(tiny)
            x_prev = x
            x = x + alpha * p
            r = r - alpha * q
            s = op._adjoint(r) - damping * x
            gamma_new = _real_dot(s, s)
            p = s + (gamma_new / gamma.clamp_min(tiny)) * p
            gamma = gamma_new
            objective = 0.5 * _real_dot(r, r) + 0.5 * damping * _real_dot(x, x)
            if loop.step(k, x, x_prev, objective):
                break
    return loop.result(x)


# -- total variation --------------------------------------------------------------------------
def gradient(x: torch.Tensor) -> torch.Tensor:
    """Forward differences with Neumann boundary: ``(..., H, W) -> (..., 2, H, W)`` (rows, cols)."""
    g = x.new_zeros(x.shape[:-2] + (2,) + x.shape[-2:])
    g[..., 0, :-1, :] = x[..., 1:, :] - x[..., :-1, :]
    g[..., 1, :, :-1] = x[..., :, 1:] - x[..., :, :-1]
    return g


def divergence(p: torch.Tensor) -> torch.Tensor:
    """Negative adjoint of :func:`gradient`: ``<gradient(x), p> = -<x, divergence(p)>``."""
    d = torch.zeros_like(p[..., 0, :, :])
    d[..., :-1, :] += p[..., 0, :-1, :]
    d[..., 1:, :] -= p[..., 0, :-1, :]
    d[..., :, :-1] += p[..., 1, :, :-1]
    d[..., :, 1:] -= p[..., 1, :, :-1]
    return d


def total_variation(x: torch.Tensor) -> torch.Tensor:
    """Isotropic TV per problem, ``sum sqrt(dx^2 + dy^2)``: (B, C, H, W) -> (B, C, 1, 1)."""
    g = gradient(x)
    return _sum(torch.sqrt((g * g).sum(dim=-3)))


def least_squares_tv_objective(op, x, y, lam) -> torch.Tensor:
    """``1/2 ||A x - y||^2 + lam TV(x)`` per problem, shape (B, C)."""
    _, ls = _least_squares(op, x, y)
    return _squeeze(ls + lam * total_variation(x))


def _project_ball(p: torch.Tensor, radius) -> torch.Tensor:
    norm = torch.sqrt((p * p).sum(dim=-3, keepdim=True))
    return p / torch.clamp(norm / radius, min=1.0)


def tv_prox(v: torch.Tensor, gamma, *, n_iter: int = 50, lower=None, upper=None, p0=None,
            return_dual: bool = False):
    """``argmin_x 1/2 ||x - v||^2 + gamma TV(x)`` subject to ``lower <= x <= upper``.

    The fast gradient projection (FGP) of Beck and Teboulle [3]_ on the dual
    problem, ``n_iter`` iterations from the dual start ``p0`` (warm starts
    make the inexact prox inside FISTA cheap).  ``gamma`` may be a tensor
    broadcasting against (B, C, 1, 1).
    """
    p = torch.zeros(v.shape[:-2] + (2,) + v.shape[-2:], dtype=v.dtype, device=v.device) \
        if p0 is None else p0
    if isinstance(gamma, torch.Tensor):
        gamma_p = gamma.unsqueeze(-3)
    else:
        gamma_p = gamma
    r, p_prev, t = p, p, 1.0
    for _ in range(n_iter):
        x = _project(v + gamma * divergence(r), lower, upper)
        p = _project_ball(r + gradient(x) / (8.0 * gamma_p), 1.0)
        t_new = (1 + math.sqrt(1 + 4 * t * t)) / 2
        r = p + ((t - 1) / t_new) * (p - p_prev)
        p_prev, t = p, t_new
    x = _project(v + gamma * divergence(p), lower, upper)
    return (x, p) if return_dual else x


def _check_lam(lam):
    if not (isinstance(lam, (int, float)) and lam >= 0 and math.isfinite(lam)):
        raise ValueError(f"the regularisation weight lam must be a non-negative number, got {lam!r}")


def tv_fista(op: LinearOperator, y: torch.Tensor, lam: float, *, n_iter: int = 200,
             inner_iter: int = 10, x0=None, lower=0.0, upper=None, tol: float = 0.0,
             callback: Optional[Callable] = None, gt=None, progress: bool = False) -> Result:
    """``min 1/2 ||A x - y||^2 + lam TV(x)`` s.t. ``lower <= x <= upper``, by FISTA [3]_.

    Step ``1/||A||^2``; the proximal step is :func:`tv_prox` with
    ``inner_iter`` FGP iterations, warm-started from the previous dual.
    """
    x = _validate(op, y, x0, n_iter, tol)
    _check_lam(lam)
    step = 1.0 / op.norm() ** 2
    loop = _Loop("tv_fista", n_iter, tol, callback, gt, progress)
    z, t, dual = x, 1.0, None
    with torch.no_grad():
        for k in range(n_iter):
            v = z - step * op._adjoint(op._forward(z) - y)
            x_new, dual = tv_prox(v, lam * step, n_iter=inner_iter, lower=lower, upper=upper,
                                  p0=dual, return_dual=True)
            t_new = (1 + math.sqrt(1 + 4 * t * t)) / 2
            z = x_new + ((t - 1) / t_new) * (x_new - x)
            x_prev, x, t = x, x_new, t_new
            objective = least_squares_tv_objective(op, x, y, lam)
            if loop.step(k, x, x_prev, objective):
                break
    return loop.result(x)


def tv_pdhg(op: LinearOperator, y: torch.Tensor, lam: float, *, n_iter: int = 300, x0=None,
            lower=0.0, upper=None, ratio: float = 10.0, tol: float = 0.0,
            callback: Optional[Callable] = None, gt=None, progress: bool = False) -> Result:
    """``min 1/2 ||A x - y||^2 + lam TV(x)`` s.t. ``lower <= x <= upper``, by PDHG [4]_.

    Chambolle-Pock on the equivalent problem scaled by ``1/||A||^2``:
    ``K = [A/||A||; grad]``, ``F(u, w) = 1/2 ||u - y/||A|| ||^2 +
    lam/||A||^2 ||w||_{2,1}``, ``G`` the box indicator, so both blocks of
    ``K`` have comparable norms (1 and at most sqrt 8).  Steps
    ``tau = ratio / L``, ``sigma = 1 / (ratio L)`` with ``L = 1.01 sqrt(1 + 8)
    >= ||K||``.  The objective history is in the original scaling.
    """
    x = _validate(op, y, x0, n_iter, tol)
    _check_lam(lam)
    ratio = _positive(ratio, "ratio")
    scale = 1.0 / op.norm()
    lam_scaled = lam * scale * scale
    y_scaled = y * scale
    big_l = 3.0 * 1.01
    tau, sigma = ratio / big_l, 1.0 / (ratio * big_l)
    loop = _Loop("tv_pdhg", n_iter, tol, callback, gt, progress)
    with torch.no_grad():
        u = torch.zeros_like(y)
        w = torch.zeros(x.shape[:-2] + (2,) + x.shape[-2:], dtype=x.dtype, device=x.device)
        x_bar = x
        for k in range(n_iter):
            u = (u + sigma * (scale * op._forward(x_bar) - y_scaled)) / (1 + sigma)
            w = _project_ball(w + sigma * gradient(x_bar), lam_scaled) if lam > 0 else w
            x_new = _project(x - tau * (scale * op._adjoint(u) - divergence(w)), lower, upper)
            x_bar = 2 * x_new - x
            x_prev, x = x, x_new
            objective = least_squares_tv_objective(op, x, y, lam)
            if loop.step(k, x, x_prev, objective):
                break
    return loop.result(x)


# -- SIRT -------------------------------------------------------------------------------------------
def sirt(op: LinearOperator, y: torch.Tensor, *, n_iter: int = 100, relaxation: float = 1.0, x0=None,
         lower=None, upper=None, tol: float = 0.0, callback: Optional[Callable] = None, gt=None,
         progress: bool = False) -> Result:
    """SIRT [5]_: ``x <- x + relaxation C A^T R (y - A x)``, ``R = 1/(A 1)``, ``C = 1/(A^T 1)``.

    Minimises the ``R``-weighted least squares ``1/2 ||A x - y||_R^2`` (the
    objective history); rows and columns with zero sums are left untouched.
    Needs an operator with non-negative entries (ray transforms).
    """
    x = _validate(op, y, x0, n_iter, tol)
    relaxation = _positive(relaxation, "relaxation")
    if relaxation >= 2:
        raise ValueError(f"relaxation must be in (0, 2), got {relaxation}")
    loop = _Loop("sirt", n_iter, tol, callback, gt, progress)
    with torch.no_grad():
        ones_x = torch.ones((1, 1) + op.domain_shape, dtype=y.dtype, device=y.device)
        ones_y = torch.ones((1, 1) + op.range_shape, dtype=y.dtype, device=y.device)
        row, col = op._forward(ones_x), op._adjoint(ones_y)
        if (row < 0).any() or (col < 0).any():
            raise ValueError("SIRT needs an operator with non-negative entries")
        r_inv = torch.where(row > 0, 1.0 / row.clamp_min(1e-30), torch.zeros_like(row))
        c_inv = torch.where(col > 0, 1.0 / col.clamp_min(1e-30), torch.zeros_like(col))
        for k in range(n_iter):
            residual = y - op._forward(x)
            x_new = _project(x + relaxation * c_inv * op._adjoint(r_inv * residual), lower, upper)
            r = op._forward(x_new) - y
            objective = 0.5 * _sum(r_inv * r * r)
            x_prev, x = x, x_new
            if loop.step(k, x, x_prev, objective):
                break
    return loop.result(x)


# -- MLEM / OSEM ---------------------------------------------------------------------------------
def poisson_log_likelihood(op, x, y, background=0.0) -> torch.Tensor:
    """``sum y log(A x + b) - (A x + b)`` per problem (constant terms dropped), shape (B, C)."""
    mean = op._forward(x) + background
    return _squeeze(_sum(torch.where(y > 0, y * torch.log(mean.clamp_min(1e-30)), 0.0) - mean))


def _check_poisson(y, background):
    if (y < 0).any():
        raise ValueError("MLEM/OSEM need non-negative data (counts); y has negative values")
    if isinstance(background, torch.Tensor):
        if (background < 0).any() or not torch.isfinite(background).all():
            raise ValueError("the background must be finite and non-negative")
    elif not (isinstance(background, (int, float)) and background >= 0 and math.isfinite(background)):
        raise ValueError(f"the background must be a non-negative number, got {background!r}")


def mlem(op: LinearOperator, y: torch.Tensor, *, background=0.0, n_iter: int = 50, x0=None,
         tol: float = 0.0, callback: Optional[Callable] = None, gt=None, progress: bool = False) -> Result:
    """MLEM [6]_ for ``y ~ Poisson(A x + background)``: ``x <- x / A^T 1 * A^T (y / (A x + b))``.

    Keeps ``x >= 0`` and increases the Poisson log-likelihood (the objective
    history) monotonically.  Default start: ones.
    """
    return osem(op, y, subsets=None, background=background, n_iter=n_iter, x0=x0, tol=tol,
                callback=callback, gt=gt, progress=progress)


def osem(op: LinearOperator, y: torch.Tensor, *, n_subsets: int = 1, subsets=None, background=0.0,
         n_iter: int = 10, x0=None, tol: float = 0.0, callback: Optional[Callable] = None, gt=None,
         progress: bool = False) -> Result:
    """OSEM [6]_: MLEM updates over ordered subsets of the projection angles.

    Parameters
    ----------
    n_subsets : int
        Number of subsets, angles interleaved (``i::n_subsets``); needs an
        operator with ``angle_subset`` (e.g. :class:`tomolearn.ct.RayTransform`).
    subsets : list of index tensors, optional
        Explicit angle index subsets instead.
    background : float or tensor broadcasting to ``y``
        Known additive mean (scatter, randoms, dark counts).

    One iteration visits every subset once; with one subset this is MLEM.
    """
    x = _validate(op, y, x0, n_iter, tol)
    _check_poisson(y, background)
    if x0 is None:
        x = torch.ones_like(x)
    elif (x < 0).any():
        raise ValueError("MLEM/OSEM need a non-negative start x0")
    n_angles = op.range_shape[0]
    if subsets is None:
        if isinstance(n_subsets, bool) or not isinstance(n_subsets, int) or not 1 <= n_subsets <= n_angles:
            raise ValueError(f"n_subsets must be an int in [1, {n_angles}], got {n_subsets!r}")
        subsets = [torch.arange(s, n_angles, n_subsets) for s in range(n_subsets)]
    subsets = [torch.as_tensor(s, dtype=torch.long) for s in subsets]
    if len(subsets) == 1 and len(subsets[0]) == n_angles:
        parts = [(op, slice(None))]
    else:
        if not hasattr(op, "angle_subset"):
            raise TypeError(f"OSEM needs an operator with angle_subset(); {type(op).__name__} has none")
        parts = [(op.angle_subset(s), s) for s in subsets]
    name = "mlem" if len(parts) == 1 else "osem"
    loop = _Loop(name, n_iter, tol, callback, gt, progress)
    with torch.no_grad():
        b = background if isinstance(background, torch.Tensor) else torch.full_like(y, float(background))
        b = b.expand_as(y)
        ones = [sub._adjoint(torch.ones_like(y[:, :, idx])) for sub, idx in parts]
        sens = [torch.where(s > 0, s, torch.ones_like(s)) for s in ones]
        for k in range(n_iter):
            x_prev = x
            for (sub, idx), s, s_raw in zip(parts, sens, ones):
                ratio = y[:, :, idx] / (sub._forward(x) + b[:, :, idx]).clamp_min(1e-30)
                x = torch.where(s_raw > 0, x / s * sub._adjoint(ratio), x)
            objective = poisson_log_likelihood(op, x, y, b)
            if loop.step(k, x, x_prev, objective.reshape(objective.shape + (1, 1))):
                break
    return loop.result(x)
