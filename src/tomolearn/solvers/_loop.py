"""Shared machinery of every iteration scheme: validation, per-problem algebra, the loop.

Every scheme treats each ``(b, c)`` of a batch ``(B, C, ...)`` as its own
problem: inner products, norms and step lengths are per problem (shape
``(B, C, 1, ...)``), so a batch gives the same result per image as a loop.
:class:`_Loop` keeps the iteration history, the ``tol`` stopping rule, the
callback, the progress bar and the divergence rule (a non-finite objective or
iterate stops the scheme with a ``RuntimeWarning`` and the last finite
iterate is returned).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import List, Optional

import torch
from tqdm import tqdm

from ..metrics import psnr as _psnr
from ..operators import LinearOperator

__all__ = ["Result"]


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


# -- per-problem algebra ---------------------------------------------------------------------
def _sum(t: torch.Tensor) -> torch.Tensor:
    """Per-problem sum over all but the first two dims, keeping dims for broadcasting."""
    return t.sum(dim=tuple(range(2, t.dim())), keepdim=True)


def _real_dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-problem ``Re <a, b>``, shape (B, C, 1, ...)."""
    return _sum((a.conj() * b).real if a.is_complex() else a * b)


def _like(v: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """A per-problem value ``v`` (B, C, 1, ...) reshaped to broadcast against ``t``.

    Image and data tensors may differ in rank (MRI: images ``(B, C, H, W)``, k-space
    ``(B, C, n_coils, H, W)``), so a per-problem scalar computed in one space is reshaped
    before it meets the other; a no-op (the same values) when the ranks agree.
    """
    return v.reshape(v.shape[:2] + (1,) * (t.dim() - 2))


def _norm(t: torch.Tensor) -> torch.Tensor:
    return _real_dot(t, t).sqrt()


def _abs2(t: torch.Tensor) -> torch.Tensor:
    """Elementwise ``|t|^2`` (``t * t`` for real tensors, bit for bit)."""
    return (t.conj() * t).real if t.is_complex() else t * t


def _squeeze(v: torch.Tensor) -> torch.Tensor:
    return v.reshape(v.shape[0], v.shape[1])


def _tiny(t: torch.Tensor) -> float:
    return torch.finfo(t.real.dtype if t.is_complex() else t.dtype).tiny


# -- argument checks ---------------------------------------------------------------------------
def _positive(value, name):
    """``None`` or a positive finite float; otherwise a ValueError naming ``name``."""
    if value is None:
        return None
    value = float(value)
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be positive and finite, got {value}")
    return value


def _non_negative(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or value < 0:
        raise ValueError(f"{name} must be a non-negative number, got {value!r}")
    return float(value)


def _check_type(value, cls, name, scheme):
    if not isinstance(value, cls):
        raise TypeError(f"{scheme}: {name} must be a {cls.__name__}, got {type(value).__name__}")


def _validate(op, y, x0, n_iter, tol):
    """Check the common arguments; return the start ``x`` of shape ``(B, C, *domain_shape)``."""
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
    """Clamp to ``[lower, upper]`` (``None`` = unbounded); ``x`` itself when unbounded."""
    if lower is None and upper is None:
        return x
    return x.clamp(min=lower, max=upper)


def _momentum(t: float) -> float:
    """Next FISTA / Nesterov parameter ``(1 + sqrt(1 + 4 t^2)) / 2``."""
    return (1 + math.sqrt(1 + 4 * t * t)) / 2


def _cg(apply, rhs, x, n_iter):
    """``n_iter`` conjugate-gradient steps on ``apply(x) = rhs``, per problem, from ``x``.

    ``apply`` must be self-adjoint positive definite in the real inner product
    ``Re <a, b>`` (normal equations ``A^H W A + mu I``).
    """
    tiny = _tiny(rhs)
    r = rhs - apply(x)
    p = r
    gamma = _real_dot(r, r)
    for _ in range(n_iter):
        q = apply(p)
        alpha = gamma / _real_dot(p, q).clamp_min(tiny)
        x = x + alpha * p
        r = r - alpha * q
        gamma_new = _real_dot(r, r)
        p = r + (gamma_new / gamma.clamp_min(tiny)) * p
        gamma = gamma_new
    return x


# -- the loop ------------------------------------------------------------------------------------
class _Loop:
    """Iteration bookkeeping shared by all schemes: history, stopping, divergence, callback."""

    def __init__(self, name, n_iter, tol, callback, gt, progress):
        self.name, self.n_iter, self.tol, self.callback, self.gt = name, n_iter, tol, callback, gt
        self.objectives: List[torch.Tensor] = []
        self.psnrs: List[torch.Tensor] = []
        self.converged = False
        self.message = f"reached n_iter={n_iter}"
        self.bar = tqdm(total=n_iter, desc=name, unit="it", leave=False) if progress else None
        self.last_good = None

    def step(self, k, x, x_prev, objective) -> bool:
        """Record iteration ``k``; return True when the scheme should stop."""
        if not torch.isfinite(objective).all() or not torch.isfinite(x).all():
            self.message = (f"{self.name} diverged at iteration {k + 1} (non-finite objective); "
                            "returning the last finite iterate")
            warnings.warn(self.message, RuntimeWarning, stacklevel=3)
            return True
        self.last_good = x
        self.objectives.append(_squeeze(objective).detach())
        if self.gt is not None:
            self.psnrs.append(_psnr(x.detach(), self.gt).reshape(-1).to(torch.float64))
        if self.callback is not None:
            self.callback(k, x, objective)
        if self.bar is not None:
            self.bar.update(1)
        if self.tol > 0 and x_prev is not None:
            change = _norm(x - x_prev) / _norm(x).clamp_min(torch.finfo(x.real.dtype).tiny)
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
