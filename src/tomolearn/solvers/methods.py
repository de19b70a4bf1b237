"""The classical solvers registered as reconstruction methods (one registration each)."""

from __future__ import annotations

from ..registry import register_method
from .classic import tv_fista

__all__ = []


def _build_tv(task, op, device, lam=1.0, n_iter=150, inner_iter=10):
    """``recon(y)``: TV-regularised least squares by FISTA (:func:`tv_fista`); ``recon.solve(y)``
    gives the whole :class:`~tomolearn.solvers.Result` (objective per iteration)."""
    def solve(y):
        return tv_fista(op, y, lam, n_iter=n_iter, inner_iter=inner_iter)

    def recon(y):
        return solve(y).x

    recon.solve = solve
    return recon


register_method("tv", _build_tv, requires=("linear", "real", "2d"), slow=True,
                defaults={"lam": 1.0, "n_iter": 150, "inner_iter": 10},
                # chosen on the ellipses validation split by ``tune_ellipses`` (docs/solvers.md)
                tuned={"ct": {"lam": 2.0, "n_iter": 150, "inner_iter": 10}},
                description="total variation, least squares, FISTA")
