"""Krylov and algebraic / expectation-maximisation schemes: CGLS, SIRT, EM (MLEM/OSEM).

Same conventions as :mod:`tomolearn.solvers.schemes` (batched ``(B, C, ...)``,
per-problem step lengths, ``n_iter`` / ``tol`` / ``callback`` / ``gt`` /
``progress``, a :class:`~tomolearn.solvers.Result`).

Ordered subsets come from the operator: an operator that can restrict
itself to the entries ``indices`` of the first range axis (CT: a subset of
the projection angles) implements ``subset(indices) -> LinearOperator``
(:class:`tomolearn.ct.RayTransform` calls it ``angle_subset``, also
accepted).  Any other operator gets a generic row restriction that applies
the full operator (correct, but without the speed-up).

References
----------
.. [1] A. Bjorck, "Numerical Methods for Least Squares Problems", SIAM 1996
       (CGLS, section 7.4).
.. [2] P. Gilbert, "Iterative methods for the three-dimensional
       reconstruction of an object from projections", J. Theor. Biol. 36,
       105-117, 1972 (SIRT).
.. [3] L. A. Shepp and Y. Vardi, "Maximum likelihood reconstruction for
       emission tomography", IEEE Trans. Med. Imaging 1(2), 113-122, 1982;
       H. M. Hudson and R. S. Larkin, "Accelerated image reconstruction using
       ordered subsets of projection data", IEEE Trans. Med. Imaging 13(4),
       601-609, 1994.
"""

from __future__ import annotations

from typing import Callable, Optional

import torch

from ..operators import LinearOperator
from ._loop import Result, _like, _Loop, _positive, _real_dot, _tiny
from .fidelities import DataFidelity, PoissonLikelihood, WeightedLeastSquares, _log_likelihood
from .regularisers import Box, Tikhonov
from .schemes import _setup

__all__ = ["cgls", "sirt", "em", "subset_operator"]


# -- CGLS ------------------------------------------------------------------------------------------------
def cgls(op: LinearOperator, y: torch.Tensor, fidelity: Optional[DataFidelity] = None,
         regulariser: Optional[Tikhonov] = None, *, n_iter: int = 50, x0=None, tol: float = 0.0,
         callback: Optional[Callable] = None, gt=None, progress: bool = False) -> Result:
    """Conjugate gradients on the normal equations [1]_: ``(A^H W A + d I) x = A^H W y``.

    Minimises ``1/2 ||A x - y||_W^2 + d/2 ||x||^2`` with a quadratic fidelity
    (:class:`LeastSquares`, ``W = I``, or :class:`WeightedLeastSquares`) and an
    optional unbounded ``Tikhonov(d)``; that objective is the history
    (from the recurred residual).  Non-increasing.
    """
    x, fidelity, reg = _setup("cgls", op, y, fidelity, regulariser, x0, n_iter, tol)
    if not fidelity.quadratic:
        raise TypeError(f"cgls needs a quadratic fidelity (LeastSquares or WeightedLeastSquares); "
                        f"got {type(fidelity).__name__}")
    if reg is not None and (type(reg) is not Tikhonov or reg.bounded):
        raise TypeError(f"cgls takes no regulariser or an unbounded Tikhonov; got {reg!r}")
    damping = 0.0 if reg is None else reg.weight
    w = fidelity.weights

    def weigh(t):
        return t if w is None else w * t

    loop = _Loop("cgls", n_iter, tol, callback, gt, progress)
    tiny = _tiny(y)
    with torch.no_grad():
        r = y - op._forward(x)
        s = op._adjoint(weigh(r)) - damping * x
        p = s
        gamma = _real_dot(s, s)
        for k in range(n_iter):
            q = op._forward(p)
            # per-problem scalars live in the image space's rank (_like: data may have more dims)
            alpha = gamma / (_like(_real_dot(q, weigh(q)), p)
                             + damping * _real_dot(p, p)).clamp_min(tiny)
            x_prev = x
            x = x + alpha * p
            r = r - _like(alpha, r) * q
            s = op._adjoint(weigh(r)) - damping * x
            gamma_new = _real_dot(s, s)
            p = s + (gamma_new / gamma.clamp_min(tiny)) * p
            gamma = gamma_new
            objective = _like(0.5 * _real_dot(r, weigh(r)), x) + 0.5 * damping * _real_dot(x, x)
            if loop.step(k, x, x_prev, objective):
                break
    return loop.result(x)


# -- SIRT --------------------------------------------------------------------------------------------------
def sirt(op: LinearOperator, y: torch.Tensor, regulariser: Optional[Box] = None, *, n_iter: int = 100,
         relaxation: float = 1.0, x0=None, tol: float = 0.0, callback: Optional[Callable] = None,
         gt=None, progress: bool = False) -> Result:
    """SIRT [2]_: ``x <- project(x + relaxation C A^T R (y - A x))``, ``R = 1/(A 1)``, ``C = 1/(A^T 1)``.

    Gradient descent on ``WeightedLeastSquares(R)`` preconditioned by ``C``;
    that objective is the history (non-increasing for ``relaxation`` in
    (0, 2)).  Rows and columns with zero sums are left untouched.  Needs an
    operator with non-negative entries (ray transforms); the regulariser may
    only be a :class:`Box`.
    """
    x, _, reg = _setup("sirt", op, y, None, regulariser, x0, n_iter, tol)
    if reg is not None and not isinstance(reg, Box):
        raise TypeError(f"sirt takes no regulariser or a Box constraint; got {reg!r}")
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
        fidelity = WeightedLeastSquares(r_inv)
        for k in range(n_iter):
            residual = y - op._forward(x)
            x_new = x + relaxation * c_inv * op._adjoint(r_inv * residual)
            x_new = x_new if reg is None else reg.project(x_new)
            objective = fidelity.value(op, x_new, y)
            x_prev, x = x, x_new
            if loop.step(k, x, x_prev, objective):
                break
    return loop.result(x)


# -- EM (MLEM / OSEM) ------------------------------------------------------------------------------------
class _RowSubset(LinearOperator):
    """``A`` restricted to the entries ``indices`` of its first range axis (applies the full ``A``)."""

    def __init__(self, op: LinearOperator, indices: torch.Tensor):
        super().__init__(op.domain_shape, (len(indices),) + tuple(op.range_shape[1:]))
        self.op, self.indices = op, indices

    def _forward(self, x):
        return self.op._forward(x)[:, :, self.indices.to(x.device)]

    def _adjoint(self, y):
        full = y.new_zeros(y.shape[:2] + tuple(self.op.range_shape))
        full[:, :, self.indices.to(y.device)] = y
        return self.op._adjoint(full)


def subset_operator(op: LinearOperator, indices) -> LinearOperator:
    """``op`` restricted to the entries ``indices`` of its first range axis.

    Uses the operator's own ``subset(indices)`` (or ``angle_subset``) when it
    has one, else a generic restriction.  ``(B, C, *domain) -> (B, C,
    len(indices), *range_shape[1:])``.
    """
    indices = torch.as_tensor(indices, dtype=torch.long).reshape(-1)
    n = op.range_shape[0]
    if len(indices) == 0 or int(indices.min()) < 0 or int(indices.max()) >= n:
        raise ValueError(f"subset indices must be non-empty and lie in [0, {n}), got {indices.tolist()}")
    for name in ("subset", "angle_subset"):
        method = getattr(op, name, None)
        if callable(method):
            return method(indices)
    return _RowSubset(op, indices)


def _subsets(op, subsets):
    n = op.range_shape[0]
    if subsets is None:
        subsets = 1
    if isinstance(subsets, int) and not isinstance(subsets, bool):
        if not 1 <= subsets <= n:
            raise ValueError(f"n_subsets must be an int in [1, {n}], got {subsets!r}")
        subsets = [torch.arange(s, n, subsets) for s in range(subsets)]
    elif isinstance(subsets, (list, tuple)):
        subsets = [torch.as_tensor(s, dtype=torch.long) for s in subsets]
    else:
        raise ValueError(f"n_subsets must be an int in [1, {n}] (or subsets a list of index "
                         f"sequences), got {subsets!r}")
    if len(subsets) == 1 and len(subsets[0]) == n:
        return [(op, slice(None))]
    return [(subset_operator(op, s), s) for s in subsets]


def em(op: LinearOperator, y: torch.Tensor, fidelity: Optional[PoissonLikelihood] = None, *,
       subsets=None, n_iter: int = 10, x0=None, tol: float = 0.0, callback: Optional[Callable] = None,
       gt=None, progress: bool = False) -> Result:
    """Expectation maximisation for ``y ~ Poisson(A x + r)`` [3]_: MLEM, or OSEM over subsets.

    ``x <- x / A_s^T 1 * A_s^T (y_s / (A_s x + r_s))`` for every subset ``s``
    of the first range axis in turn (one iteration visits all).  Keeps
    ``x >= 0``; with one subset (MLEM) the log-likelihood increases
    monotonically.  The objective history is the log-likelihood
    ``-PoissonLikelihood.value`` (larger is better).  Default start: ones.

    Parameters
    ----------
    fidelity : PoissonLikelihood, optional
        Carries the background ``r`` (default 0).
    subsets : int or list of index sequences, optional
        ``None`` / 1: MLEM; ``n``: interleaved subsets ``i::n``; or explicit
        index subsets.  Subset operators come from :func:`subset_operator`.
    """
    fidelity = PoissonLikelihood() if fidelity is None else fidelity
    x, fidelity, _ = _setup("em", op, y, fidelity, None, x0, n_iter, tol)
    if not isinstance(fidelity, PoissonLikelihood):
        raise TypeError(f"em needs a PoissonLikelihood fidelity, got {type(fidelity).__name__}")
    if x0 is None:
        x = torch.ones_like(x)
    elif (x < 0).any():
        raise ValueError("MLEM/OSEM need a non-negative start x0")
    parts = _subsets(op, subsets)
    loop = _Loop("mlem" if len(parts) == 1 else "osem", n_iter, tol, callback, gt, progress)
    background = fidelity.background
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
            objective = _log_likelihood(op._forward(x) + b, y)
            if loop.step(k, x, x_prev, objective):
                break
    return loop.result(x)

