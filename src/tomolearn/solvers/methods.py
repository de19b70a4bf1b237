"""The classical solvers registered as reconstruction methods (one registration each)."""

from __future__ import annotations

from ..registry import register_method
from .classic import tv_fista

__all__ = []


def _build_tv(task, op, device, lam=1.0, n_iter=150, inner_iter=10):
    """``recon(y)``: TV-regularised least squares by FISTA (:func:`tv_fista`); ``recon.solve(y)``
    gives the whole :class:`~tomolearn.solvers.Result` (objective per iteration).

    An operator with an additive term (PET's ``background_of(y)``: randoms + scatter) has it
    subtracted from the data first, ``min 1/2 ||A x - (y - b)||^2 + lam TV(x)``; the data term
    stays least squares (unweighted), so on Poisson tasks this is a plain baseline, not a
    likelihood method (``tuned["pet"]`` is lam chosen on pet validation images,
    ``scripts/tune_pet.py``)."""
    def solve(y):
        return tv_fista(op, y - op.background_of(y), lam, n_iter=n_iter, inner_iter=inner_iter)

    def recon(y):
        return solve(y).x

    recon.solve = solve
    return recon


register_method("tv", _build_tv, requires=("linear", "real", "2d"), slow=True,
                defaults={"lam": 1.0, "n_iter": 150, "inner_iter": 10},
                # chosen on the ellipses validation split by ``tune_ellipses`` (docs/solvers.md)
                tuned={"ct": {"lam": 2.0, "n_iter": 150, "inner_iter": 10},
                       # pet-torso validation, 2 images, by ``scripts/tune_pet.py`` (docs/pet.md)
                       "pet": {"lam": 100.0, "n_iter": 150, "inner_iter": 10}},
                description="total variation, least squares, FISTA")
