"""BSREM: relaxed ordered-subsets MAP for ``y ~ Poisson(A x + r)`` with a smooth penalty.

Maximises ``Phi(x) = L(x) - R(x)`` over ``x >= 0`` (``L`` the Poisson log-likelihood of
:class:`~tomolearn.solvers.fidelities.PoissonLikelihood`, ``R`` a smooth regulariser, e.g.
``RelativeDifferencePrior(beta)``), the block sequential regularised EM algorithm of De Pierro
and Yamagishi in the relaxed form of Ahn and Fessler [1]_ (BSREM-II), which Q.Clear uses with
the RDP [2]_.  With ``M`` subsets ``S_m`` of the first range axis, ``Phi = sum_m Phi_m``,
``Phi_m(x) = L_m(x) - R(x) / M``, one iteration ``n`` visits every subset::

    x <- P( x + alpha_n D(x) grad Phi_m(x) ),   D(x) = (x + delta) / (p / M),   p = A^T 1

``P`` the projection onto ``[0, upper]``, ``delta >= 0`` a small shift of the EM-like
preconditioner (as in the PETRIC BSREM reference [3]_; it removes the spurious fixed points of
``x / p`` at zero voxels), and relaxed steps ``alpha_n = alpha_0 / (1 + eta n)``: ``sum
alpha_n = inf`` and ``sum alpha_n^2 < inf`` for ``eta > 0``, the conditions under which [1]_
proves convergence to the maximiser (``eta = 0``: plain ordered subsets, a limit cycle).
With ``M = 1``, ``alpha = 1``, ``delta = 0`` and ``R = 0`` the step is exactly MLEM's
``x / p A^T (y / (A x + r))``.

Fixed points satisfy the KKT conditions of ``max Phi s.t. x >= 0``: ``grad Phi_j = 0`` where
``x_j > 0`` and ``grad Phi_j <= 0`` where ``x_j = 0`` (:func:`kkt_residual`).  Voxels no line
of response sees (``p_j = 0``) are left as they are.

References
----------
.. [1] S. Ahn and J. A. Fessler, "Globally convergent image reconstruction for emission
       tomography using relaxed ordered subsets algorithms", IEEE Trans. Med. Imaging 22(5),
       613-626, 2003.
.. [2] S. Ahn et al., "Quantitative comparison of OSEM and penalized likelihood image
       reconstruction using relative difference penalties for clinical PET", Phys. Med. Biol.
       60(15), 5733-5751, 2015.
.. [3] The PET Rapid Image reconstruction Challenge (PETRIC, SyneRBI, 2024), its ``BSREM``
       reference algorithm (step ``alpha_0 / (1 + eta * epoch)``, preconditioner
       ``(x + eps) / average subset sensitivity``).
"""

from __future__ import annotations

from typing import Callable, Optional

import torch

from ..operators import LinearOperator
from ._loop import _Loop, _non_negative, _positive
from .algebraic import _subsets
from .fidelities import PoissonLikelihood
from .regularisers import Regulariser
from .schemes import _setup

__all__ = ["bsrem", "penalised_log_likelihood", "kkt_residual"]


def _expand_background(fidelity, y):
    b = fidelity.background
    b = b if isinstance(b, torch.Tensor) else torch.full_like(y, float(b))
    return b.to(dtype=y.dtype, device=y.device).expand_as(y)


def penalised_log_likelihood(op, x, y, fidelity: PoissonLikelihood,
                             regulariser: Optional[Regulariser]) -> torch.Tensor:
    """``Phi(x) = L(x) - R(x)`` per problem (B, C), constants of the data dropped."""
    out = fidelity.log_likelihood(op, x, y)
    return out if regulariser is None else out - regulariser.value(x)


def gradient_of_objective(op, x, y, fidelity, regulariser) -> torch.Tensor:
    """``grad Phi(x) = A^T (y / (A x + r) - 1) - grad R(x)`` (shape of ``x``)."""
    g = -fidelity.gradient(op, x, y)
    return g if regulariser is None else g - regulariser.gradient(x)


def kkt_residual(op, x, y, fidelity, regulariser) -> torch.Tensor:
    """How far ``x >= 0`` is from a KKT point of ``max Phi s.t. x >= 0``, per problem (B, C):
    ``max_j |x_j - max(0, x_j + g_j / s)| / max_j x_j`` with ``g = grad Phi(x)`` and ``s =
    max_j (A^T 1)_j`` (the projected-gradient residual in units of the image).  It is zero
    exactly where ``g_j = 0`` for ``x_j > 0`` and ``g_j <= 0`` for ``x_j = 0``."""
    g = gradient_of_objective(op, x, y, fidelity, regulariser)
    p = op._adjoint(torch.ones_like(y))
    scale = p.reshape(p.shape[0], p.shape[1], -1).amax(-1)[..., None, None].clamp_min(1e-30)
    # x - P(x + g / s) is zero exactly at KKT points (x > 0 and g = 0, or x = 0 and g <= 0)
    r = x - (x + g / scale).clamp_min(0)
    xmax = x.reshape(x.shape[0], x.shape[1], -1).amax(-1).clamp_min(1e-30)
    return r.abs().reshape(r.shape[0], r.shape[1], -1).amax(-1) / xmax


def bsrem(op: LinearOperator, y: torch.Tensor, fidelity: Optional[PoissonLikelihood] = None,
          regulariser: Optional[Regulariser] = None, *, subsets=None, n_iter: int = 20,
          x0=None, step: float = 1.0, relaxation: float = 0.1, delta=None, upper=None,
          tol: float = 0.0, callback: Optional[Callable] = None, gt=None,
          progress: bool = False):
    """BSREM (see the module docstring): ``n_iter`` passes over the ``subsets``.

    Parameters
    ----------
    fidelity : PoissonLikelihood
        Carries the background ``r``.
    regulariser : Regulariser, optional
        Smooth (``gradient``); ``None`` gives relaxed OSEM towards the ML estimate.
    subsets : int or list of index sequences, optional
        As :func:`~tomolearn.solvers.em` (``None``: one subset).
    x0 : tensor, optional
        Non-negative start (default ones; Q.Clear starts from an OSEM image).
    step, relaxation : float
        ``alpha_n = step / (1 + relaxation n)`` for iteration ``n = 0, 1, ...``.
    delta : float or tensor, optional
        Preconditioner shift; default ``1e-3`` of each start image's maximum.
    upper : float, optional
        Upper bound of the box (Ahn and Fessler's ``U``); ``None``: none.

    Returns
    -------
    Result
        ``objective`` is ``-Phi`` per iteration (the negative penalised log-likelihood,
        decreasing towards its minimum).
    """
    fidelity = PoissonLikelihood() if fidelity is None else fidelity
    x, fidelity, reg = _setup("bsrem", op, y, fidelity, regulariser, x0, n_iter, tol)
    if not isinstance(fidelity, PoissonLikelihood):
        raise TypeError(f"bsrem needs a PoissonLikelihood fidelity, got {type(fidelity).__name__}")
    if reg is not None and not reg.smooth:
        raise TypeError(f"bsrem needs a smooth regulariser (with a gradient), got {reg!r}")
    step = _positive(step, "step")
    relaxation = _non_negative(relaxation, "relaxation")
    if x0 is None:
        x = torch.ones_like(x)
    elif (x < 0).any():
        raise ValueError("bsrem needs a non-negative start x0")
    if delta is None:
        delta = 1e-3 * x.reshape(x.shape[0], x.shape[1], -1).amax(-1)[..., None, None]
    parts = _subsets(op, subsets)
    n_sub = len(parts)
    loop = _Loop("bsrem", n_iter, tol, callback, gt, progress)
    with torch.no_grad():
        b = _expand_background(fidelity, y)
        p = op._adjoint(torch.ones_like(y))
        seen = p > 0
        precond = torch.where(seen, n_sub / torch.where(seen, p, torch.ones_like(p)),
                              torch.zeros_like(p))
        for n in range(n_iter):
            alpha = step / (1.0 + relaxation * n)
            x_prev = x
            for sub, idx in parts:
                ys, bs = y[:, :, idx], b[:, :, idx]
                g = sub._adjoint(ys / (sub._forward(x) + bs).clamp_min(1e-30) - 1.0)
                if reg is not None:
                    g = g - reg.gradient(x) / n_sub
                x = (x + alpha * (x + delta) * precond * g).clamp(min=0.0, max=upper)
            objective = -penalised_log_likelihood(op, x, y, fidelity, reg)
            if loop.step(n, x, x_prev, objective):
                break
    return loop.result(x)

