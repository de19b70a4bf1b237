"""Small MRI operators for the shared operator battery (``tests/test_operator_battery.py``)."""

from __future__ import annotations

from ...operators import register_example
from .coils import birdcage_maps
from .masks import equispaced_mask, poisson_disc_mask, random_mask
from .nufft import NonCartesianSENSE
from .operators import MultiCoilSENSE, SingleCoilCartesian
from .trajectories import radial_trajectory, spiral_trajectory


@register_example("mri.single-coil")
def _single_coil():
    return SingleCoilCartesian(random_mask((12, 10), 3.0, 0.2, seed=1))


@register_example("mri.sense")
def _sense():
    return MultiCoilSENSE(birdcage_maps(4, (12, 10)), equispaced_mask((12, 10), 2.0, 0.2, seed=2))


@register_example("mri.sense-poisson")
def _sense_poisson():
    return MultiCoilSENSE(birdcage_maps(3, (10, 12)), poisson_disc_mask((10, 12), 2.0, 2, seed=3))


@register_example("mri.nufft-sense")
def _nufft_sense():
    return NonCartesianSENSE(birdcage_maps(3, (12, 12)), radial_trajectory(8, 16))


@register_example("mri.nufft-single-coil")
def _nufft_single_coil():  # non-square, a spiral (no density weights): rows and columns apart
    return NonCartesianSENSE(None, spiral_trajectory(3, 20, 2.5), image_shape=(10, 12))
