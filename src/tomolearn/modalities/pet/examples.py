"""Small PET operators for the shared operator battery (``tests/test_operator_battery.py``)."""

from __future__ import annotations

import torch

from ...operators import register_example
from ..ct.ray_transform import RayTransform
from .operators import GaussianPSF, PETProjector
from .scanner import SCANNERS
from .tof import TOFProjector


@register_example("pet.psf")
def _psf():
    return GaussianPSF((7, 6), fwhm_mm=5.0, voxel_mm=2.0)


def _small_mct(seed: int):
    """The mCT's sinogram mashed to 6 views x 10 bins of 80 mm on a non-square 7 x 6 image of
    60 mm voxels: its ray transform, random factors in [0.2, 1.2) and a 90 mm PSF."""
    g = SCANNERS["mct"].geometry(view_mash=28, bin_mash=40)
    ray = RayTransform(g, (7, 6), pixel_size=60.0, backend="sparse")
    factors = 0.2 + torch.rand(g.n_angles, g.n_detectors, dtype=torch.float64,
                               generator=torch.Generator().manual_seed(seed))
    return ray, factors, GaussianPSF((7, 6), fwhm_mm=90.0, voxel_mm=60.0)


@register_example("pet.projector")
def _projector():
    ray, factors, psf = _small_mct(4)
    return PETProjector(ray, factors, psf)


@register_example("pet.projector.subset")
def _projector_subset():
    return _projector().subset([0, 2, 5])


@register_example("pet.tof-projector")
def _tof_projector():
    # 6 views x 4 TOF bins x 10 bins; a TOF kernel of 150 mm FWHM and bins of 100 mm on a
    # 7 x 6 image of 60 mm voxels, so the weights vary across the image
    ray, factors, psf = _small_mct(5)
    return TOFProjector(ray, 4, 100.0, 150.0, factors, psf)


@register_example("pet.tof-projector.subset")
def _tof_projector_subset():
    return _tof_projector().subset([1, 4])
