"""Small PET operators for the shared operator battery (``tests/test_operator_battery.py``)."""

from __future__ import annotations

import torch

from ...operators import register_example
from ..ct.ray_transform import RayTransform
from .operators import GaussianPSF, PETProjector
from .scanner import SCANNERS


@register_example("pet.psf")
def _psf():
    return GaussianPSF((7, 6), fwhm_mm=5.0, voxel_mm=2.0)


@register_example("pet.projector")
def _projector():
    # the mCT's sinogram mashed to 6 views x 10 bins of 80 mm, a non-square 7 x 6 image
    g = SCANNERS["mct"].geometry(view_mash=28, bin_mash=40)
    ray = RayTransform(g, (7, 6), pixel_size=60.0, backend="sparse")
    factors = 0.2 + torch.rand(g.n_angles, g.n_detectors, generator=torch.Generator().manual_seed(4),
                               dtype=torch.float64)
    return PETProjector(ray, factors, GaussianPSF((7, 6), fwhm_mm=90.0, voxel_mm=60.0))


@register_example("pet.projector.subset")
def _projector_subset():
    return _projector().subset([0, 2, 5])
