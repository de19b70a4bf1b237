"""The classical solvers, as thin instances of the schemes (stable public API).

Same signatures and results as before the schemes existed:
``landweber = gradient_descent(LeastSquares, Box)``, ``tv_fista = fista(LeastSquares,
TotalVariation + box)``, ``tv_pdhg = pdhg(LeastSquares, TotalVariation + box)``,
``cgls = cgls(LeastSquares, Tikhonov(damping))``, ``sirt``, ``mlem`` / ``osem =
em(PoissonLikelihood(background))``.  See :mod:`tomolearn.solvers` for the
conventions (batching, stopping, divergence).

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
from typing import Callable, Optional

import torch

from ..operators import LinearOperator
from . import algebraic
from ._loop import Result, _like, _real_dot, _squeeze
from .fidelities import LeastSquares, PoissonLikelihood, _log_likelihood
from .regularisers import Box, Tikhonov, TotalVariation, total_variation
from .schemes import _forward_backward, pdhg

__all__ = ["landweber", "cgls", "tv_fista", "tv_pdhg", "sirt", "mlem", "osem",
           "least_squares_tv_objective", "poisson_log_likelihood"]


def _box(lower, upper):
    return None if lower is None and upper is None else Box(lower, upper)


def _check_lam(lam):
    if not (isinstance(lam, (int, float)) and lam >= 0 and math.isfinite(lam)):
        raise ValueError(f"the regularisation weight lam must be a non-negative number, got {lam!r}")


def least_squares_tv_objective(op, x, y, lam) -> torch.Tensor:
    """``1/2 ||A x - y||^2 + lam TV(x)`` per problem, shape (B, C)."""
    r = op._forward(x) - y
    return _squeeze(_like(0.5 * _real_dot(r, r), x) + lam * total_variation(x))


def poisson_log_likelihood(op, x, y, background=0.0) -> torch.Tensor:
    """``sum y log(A x + b) - (A x + b)`` per problem (constant terms dropped), shape (B, C)."""
    return _log_likelihood(op._forward(x) + background, y)


def landweber(op: LinearOperator, y: torch.Tensor, *, n_iter: int = 100, step: Optional[float] = None,
              nesterov: bool = False, x0=None, lower=None, upper=None, tol: float = 0.0,
              callback: Optional[Callable] = None, gt=None, progress: bool = False) -> Result:
    """Gradient descent on ``1/2 ||A x - y||^2`` (Landweber [1]_), optionally Nesterov-accelerated.

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
    return _forward_backward("landweber", op, y, LeastSquares(), _box(lower, upper), use_prox=False,
                             n_iter=n_iter, step=step, nesterov=nesterov, x0=x0, tol=tol,
                             callback=callback, gt=gt, progress=progress)


def cgls(op: LinearOperator, y: torch.Tensor, *, n_iter: int = 50, damping: float = 0.0, x0=None,
         tol: float = 0.0, callback: Optional[Callable] = None, gt=None, progress: bool = False) -> Result:
    """Conjugate gradients on the normal equations [2]_, ``min ||A x - y||^2 + damping ||x||^2``.

    The objective history is ``1/2 ||A x - y||^2 + damping/2 ||x||^2``.
    ``damping`` > 0 is Tikhonov regularisation (CGLS on ``[A; sqrt(damping) I]``).
    """
    if not (isinstance(damping, (int, float)) and damping >= 0 and math.isfinite(damping)):
        raise ValueError(f"damping must be a non-negative number, got {damping!r}")
    return algebraic.cgls(op, y, LeastSquares(), Tikhonov(damping) if damping > 0 else None,
                          n_iter=n_iter, x0=x0, tol=tol, callback=callback, gt=gt, progress=progress)


def tv_fista(op: LinearOperator, y: torch.Tensor, lam: float, *, n_iter: int = 200,
             inner_iter: int = 10, x0=None, lower=0.0, upper=None, tol: float = 0.0,
             callback: Optional[Callable] = None, gt=None, progress: bool = False) -> Result:
    """``min 1/2 ||A x - y||^2 + lam TV(x)`` s.t. ``lower <= x <= upper``, by FISTA [3]_.

    Step ``1/||A||^2``; the proximal step is :func:`tv_prox` with
    ``inner_iter`` FGP iterations, warm-started from the previous dual.
    """
    _check_lam(lam)
    tv = TotalVariation(lam, lower, upper, inner_iter=inner_iter)
    return _forward_backward("tv_fista", op, y, LeastSquares(), tv, use_prox=True, n_iter=n_iter,
                             step=None, nesterov=True, x0=x0, tol=tol, callback=callback, gt=gt,
                             progress=progress)


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
    _check_lam(lam)
    return pdhg(op, y, LeastSquares(), TotalVariation(lam, lower, upper), n_iter=n_iter, ratio=ratio,
                rescale=True, x0=x0, tol=tol, callback=callback, gt=gt, progress=progress)


def sirt(op: LinearOperator, y: torch.Tensor, *, n_iter: int = 100, relaxation: float = 1.0, x0=None,
         lower=None, upper=None, tol: float = 0.0, callback: Optional[Callable] = None, gt=None,
         progress: bool = False) -> Result:
    """SIRT [5]_: ``x <- x + relaxation C A^T R (y - A x)``, ``R = 1/(A 1)``, ``C = 1/(A^T 1)``.

    Minimises the ``R``-weighted least squares ``1/2 ||A x - y||_R^2`` (the
    objective history); rows and columns with zero sums are left untouched.
    Needs an operator with non-negative entries (ray transforms).
    """
    return algebraic.sirt(op, y, _box(lower, upper), n_iter=n_iter, relaxation=relaxation, x0=x0,
                          tol=tol, callback=callback, gt=gt, progress=progress)


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
    """OSEM [6]_: MLEM updates over ordered subsets of the first range axis (CT: the angles).

    Parameters
    ----------
    n_subsets : int
        Number of subsets, interleaved (``i::n_subsets``); the subset
        operators come from :func:`tomolearn.solvers.subset_operator`
        (``op.subset`` / ``op.angle_subset``, e.g. :class:`tomolearn.ct.RayTransform`).
    subsets : list of index tensors, optional
        Explicit index subsets instead.
    background : float or tensor broadcasting to ``y``
        Known additive mean (scatter, randoms, dark counts).

    One iteration visits every subset once; with one subset this is MLEM.
    """
    return algebraic.em(op, y, PoissonLikelihood(background),
                        subsets=n_subsets if subsets is None else list(subsets), n_iter=n_iter, x0=x0,
                        tol=tol, callback=callback, gt=gt, progress=progress)
