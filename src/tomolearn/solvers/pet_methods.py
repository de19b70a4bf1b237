"""PET reconstruction methods for the ``"pet"`` task: MLEM, OSEM, post-filtered OSEM, BSREM.

Each is the EM scheme :func:`tomolearn.solvers.algebraic.em` with the Poisson log-likelihood
fidelity :class:`~tomolearn.solvers.fidelities.PoissonLikelihood` whose background is the
operator's additive term (``op.background_of(y)``: flat randoms plus the scatter estimate of
:mod:`tomolearn.modalities.pet.task`), so ``y ~ Poisson(n . a . A PSF x + r + s)``.  Ordered
subsets are interleaved views (``op.subset``: the projector restricted to those views).

``recon.solve(y)`` (MLEM) returns the :class:`~tomolearn.solvers.Result` whose ``objective`` is
the Poisson deviance ``sum ybar - y + y log(y / ybar)`` (non-negative; MLEM makes it
non-increasing), i.e. the negative log-likelihood plus a constant of the data.

``bsrem`` is MAP reconstruction with the relative difference prior (Q.Clear's penalised
likelihood [3]_ [4]_): :func:`tomolearn.solvers.bsrem.bsrem` with
:class:`~tomolearn.solvers.rdp.RelativeDifferencePrior` ``(beta, gamma)``, started from
``init_iter`` OSEM iterations; ``recon.solve(y)`` reports the Poisson deviance plus ``beta R``.

References
----------
.. [1] L. A. Shepp and Y. Vardi, "Maximum likelihood reconstruction for emission tomography",
       IEEE Trans. Med. Imaging 1(2), 113-122, 1982.
.. [2] H. M. Hudson and R. S. Larkin, "Accelerated image reconstruction using ordered subsets
       of projection data", IEEE Trans. Med. Imaging 13(4), 601-609, 1994.
.. [3] S. Ahn and J. A. Fessler, "Globally convergent image reconstruction for emission
       tomography using relaxed ordered subsets algorithms", IEEE Trans. Med. Imaging 22(5),
       613-626, 2003.
.. [4] S. Ahn et al., "Quantitative comparison of OSEM and penalized likelihood image
       reconstruction using relative difference penalties for clinical PET", Phys. Med. Biol.
       60(15), 5733-5751, 2015 (Q.Clear: BSREM with the RDP, gamma = 2).
"""

from __future__ import annotations

import dataclasses

import torch

from ..modalities.pet import GaussianPSF, n_subsets_for, scanner
from ..registry import register_method
from .algebraic import em
from .bsrem import bsrem
from .fidelities import PoissonLikelihood
from .rdp import RelativeDifferencePrior

__all__ = ["poisson_deviance", "BSREM_BETA", "check_counts", "n_subsets_for"]

#: the RDP strength of ``bsrem`` on the "pet" task, chosen on validation images of its training
#: family by ``scripts/tune_pet.py`` (docs/pet.md)
BSREM_BETA = 2.0


def poisson_deviance(ybar: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``sum ybar - y + y log(y / ybar)`` per problem ``(B, C)`` (terms with ``y = 0`` are
    ``ybar``); zero iff ``ybar == y``."""
    ybar = ybar.clamp_min(1e-30)
    terms = ybar - y + torch.where(y > 0, y * torch.log(y.clamp_min(1e-30) / ybar), 0.0)
    return terms.reshape(terms.shape[0], terms.shape[1], -1).sum(-1)


def _data_constant(y: torch.Tensor) -> torch.Tensor:
    t = torch.where(y > 0, y * torch.log(y.clamp_min(1e-30)) - y, 0.0)
    return t.reshape(t.shape[0], t.shape[1], -1).sum(-1)


def check_counts(y: torch.Tensor) -> torch.Tensor:
    """``y`` if it is prompt counts: finite and non-negative; else ``ValueError`` saying how many
    values are bad, the worst one and where (no reconstruction is started)."""
    bad = ~torch.isfinite(y)
    if bool(bad.any()):
        where = tuple(int(i) for i in bad.nonzero()[0])
        raise ValueError(f"PET data must be prompt counts (finite, >= 0); got {int(bad.sum())} "
                         f"non-finite value(s), the first {float(y[where])} at index {where}")
    if bool((y < 0).any()):
        where = tuple(int(i) for i in (y == y.min()).nonzero()[0])
        raise ValueError(f"PET data must be prompt counts (finite, >= 0); got "
                         f"{int((y < 0).sum())} negative value(s), the lowest {float(y[where]):.6g}"
                         f" at index {where} (randoms-subtracted data are not counts: give the "
                         f"prompts, the background goes in the model)")
    return y


def _em(op, y, n_iter, subsets):
    op._check(y, op.range_shape, "reconstruction data y")
    y = check_counts(y)
    return em(op, y, PoissonLikelihood(op.background_of(y)), subsets=subsets, n_iter=n_iter)


def _build_mlem(task, op, device, n_iter=50):
    """``recon(y)``: ``n_iter`` MLEM iterations from a uniform image; ``recon.solve(y)`` the
    :class:`Result` with the Poisson deviance per iteration."""
    def solve(y):
        res = _em(op, y, n_iter, None)
        deviance = _data_constant(y)[None] - res.objective
        return dataclasses.replace(res, objective=deviance)

    def recon(y):
        return _em(op, y, n_iter, None).x

    recon.solve = solve
    return recon


def _build_osem(task, op, device, n_iter=None, n_subsets=None):
    """``recon(y)``: OSEM, by default the scanner's clinical protocol (mCT: 3 x 21)."""
    s = scanner(task.scanner)
    n_iter = s.osem_iterations if n_iter is None else n_iter
    m = n_subsets_for(op, n_subsets, s.osem_subsets)

    def recon(y):
        return _em(op, y, n_iter, m).x

    return recon


def _build_osem_filtered(task, op, device, n_iter=None, n_subsets=None, filter_fwhm_mm=5.0):
    """``recon(y)``: clinical OSEM followed by a Gaussian post-filter of ``filter_fwhm_mm``."""
    osem = _build_osem(task, op, device, n_iter, n_subsets)
    blur = GaussianPSF(tuple(op.domain_shape), filter_fwhm_mm, task.voxel_mm)

    def recon(y):
        return blur(osem(y))

    return recon


def _build_bsrem(task, op, device, beta=BSREM_BETA, gamma=2.0, n_iter=20, n_subsets=None,
                 init_iter=1, relaxation=0.1, epsilon=1e-3):
    """``recon(y)``: MAP with the RDP by BSREM, ``n_subsets`` (default the scanner's OSEM
    subsets) interleaved view subsets, steps ``1 / (1 + relaxation n)``, from ``init_iter``
    OSEM iterations; the RDP's ``epsilon`` is that fraction of each start image's maximum.
    ``recon.solve(y)``: the :class:`Result`, objective the Poisson deviance plus ``beta R``."""
    m = n_subsets_for(op, n_subsets, scanner(task.scanner).osem_subsets)

    def solve(y):
        op._check(y, op.range_shape, "reconstruction data y")
        y = check_counts(y)
        fidelity = PoissonLikelihood(op.background_of(y))
        x0 = em(op, y, fidelity, subsets=m, n_iter=init_iter).x if init_iter > 0 else None
        start = x0 if x0 is not None else torch.ones((1, 1) + tuple(op.domain_shape),
                                                     dtype=y.dtype, device=y.device)
        scale = start.reshape(start.shape[0], start.shape[1], -1).amax(-1)[..., None, None]
        prior = RelativeDifferencePrior(beta, gamma, epsilon * scale.clamp_min(1e-12))
        res = bsrem(op, y, fidelity, prior, subsets=m, n_iter=n_iter, x0=x0,
                    relaxation=relaxation)
        return dataclasses.replace(res, objective=res.objective + _data_constant(y)[None])

    def recon(y):
        return solve(y).x

    recon.solve = solve
    return recon


register_method("mlem", _build_mlem, tasks=("pet",), slow=True, defaults={"n_iter": 50},
                description="MLEM (Shepp-Vardi), Poisson likelihood with randoms + scatter")
register_method("osem", _build_osem, tasks=("pet",),
                defaults={"n_iter": None, "n_subsets": None},
                description="OSEM, the scanner's clinical iterations x subsets (mCT: 3 x 21)")
register_method("osem-filtered", _build_osem_filtered, tasks=("pet",),
                defaults={"n_iter": None, "n_subsets": None, "filter_fwhm_mm": 5.0},
                description="clinical OSEM + Gaussian post-filter (5 mm FWHM)")
register_method("rdp-map", _build_bsrem, tasks=("pet",), slow=True,
                defaults={"beta": BSREM_BETA, "gamma": 2.0, "n_iter": 20, "n_subsets": None,
                          "init_iter": 1, "relaxation": 0.1, "epsilon": 1e-3},
                description="MAP with the relative difference prior (Q.Clear-like), BSREM")
