"""PET reconstruction methods for the ``"pet"`` task: MLEM, OSEM, post-filtered OSEM.

Each is the EM scheme :func:`tomolearn.solvers.algebraic.em` with the Poisson log-likelihood
fidelity :class:`~tomolearn.solvers.fidelities.PoissonLikelihood` whose background is the
operator's additive term (``op.background_of(y)``: flat randoms plus the scatter estimate of
:mod:`tomolearn.modalities.pet.task`), so ``y ~ Poisson(n . a . A PSF x + r + s)``.  Ordered
subsets are interleaved views (``op.subset``: the projector restricted to those views).

``recon.solve(y)`` (MLEM) returns the :class:`~tomolearn.solvers.Result` whose ``objective`` is
the Poisson deviance ``sum ybar - y + y log(y / ybar)`` (non-negative; MLEM makes it
non-increasing), i.e. the negative log-likelihood plus a constant of the data.

References
----------
.. [1] L. A. Shepp and Y. Vardi, "Maximum likelihood reconstruction for emission tomography",
       IEEE Trans. Med. Imaging 1(2), 113-122, 1982.
.. [2] H. M. Hudson and R. S. Larkin, "Accelerated image reconstruction using ordered subsets
       of projection data", IEEE Trans. Med. Imaging 13(4), 601-609, 1994.
"""

from __future__ import annotations

import dataclasses

import torch

from ..modalities.pet import GaussianPSF, scanner
from ..registry import register_method
from .algebraic import em
from .fidelities import PoissonLikelihood

__all__ = ["poisson_deviance"]


def poisson_deviance(ybar: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``sum ybar - y + y log(y / ybar)`` per problem ``(B, C)`` (terms with ``y = 0`` are
    ``ybar``); zero iff ``ybar == y``."""
    ybar = ybar.clamp_min(1e-30)
    terms = ybar - y + torch.where(y > 0, y * torch.log(y.clamp_min(1e-30) / ybar), 0.0)
    return terms.reshape(terms.shape[0], terms.shape[1], -1).sum(-1)


def _data_constant(y: torch.Tensor) -> torch.Tensor:
    t = torch.where(y > 0, y * torch.log(y.clamp_min(1e-30)) - y, 0.0)
    return t.reshape(t.shape[0], t.shape[1], -1).sum(-1)


def _background(op, y):
    if hasattr(op, "background_of"):
        return op.background_of(y)
    return torch.zeros_like(y)


def _em(op, y, n_iter, subsets):
    op._check(y, op.range_shape, "reconstruction data y")
    y = y.clamp_min(0)
    return em(op, y, PoissonLikelihood(_background(op, y)), subsets=subsets, n_iter=n_iter)


def _n_subsets(op, n_subsets):
    return max(1, min(int(n_subsets), op.range_shape[0]))


def _build_mlem(task, op, device, n_iter=50):
    """``recon(y)``: ``n_iter`` MLEM iterations from a uniform image; ``recon.solve(y)`` the
    :class:`Result` with the Poisson deviance per iteration."""
    def solve(y):
        res = _em(op, y, n_iter, None)
        deviance = _data_constant(y.clamp_min(0))[None] - res.objective
        return dataclasses.replace(res, objective=deviance)

    def recon(y):
        return _em(op, y, n_iter, None).x

    recon.solve = solve
    return recon


def _build_osem(task, op, device, n_iter=None, n_subsets=None):
    """``recon(y)``: OSEM, by default the scanner's clinical protocol (mCT: 3 x 21)."""
    s = scanner(task.scanner)
    n_iter = s.osem_iterations if n_iter is None else n_iter
    n_subsets = s.osem_subsets if n_subsets is None else n_subsets

    def recon(y):
        return _em(op, y, n_iter, _n_subsets(op, n_subsets)).x

    return recon


def _build_osem_filtered(task, op, device, n_iter=None, n_subsets=None, filter_fwhm_mm=5.0):
    """``recon(y)``: clinical OSEM followed by a Gaussian post-filter of ``filter_fwhm_mm``."""
    osem = _build_osem(task, op, device, n_iter, n_subsets)
    blur = GaussianPSF(tuple(op.domain_shape), filter_fwhm_mm, task.voxel_mm)

    def recon(y):
        return blur(osem(y))

    return recon


register_method("mlem", _build_mlem, tasks=("pet",), slow=True, defaults={"n_iter": 50},
                description="MLEM (Shepp-Vardi), Poisson likelihood with randoms + scatter")
register_method("osem", _build_osem, tasks=("pet",),
                defaults={"n_iter": None, "n_subsets": None},
                description="OSEM, the scanner's clinical iterations x subsets (mCT: 3 x 21)")
register_method("osem-filtered", _build_osem_filtered, tasks=("pet",),
                defaults={"n_iter": None, "n_subsets": None, "filter_fwhm_mm": 5.0},
                description="clinical OSEM + Gaussian post-filter (5 mm FWHM)")
