"""Magnetic resonance imaging: Cartesian k-space physics and the ``"mri"`` task.

Conventions (fastMRI's):

* Images are complex ``(B, C, H, W)``; k-space is their centred orthonormal 2-D DFT
  (:func:`fft2c`: ``fftshift o fft2(norm="ortho") o ifftshift`` over the last two axes, zero
  frequency at ``(H // 2, W // 2)``), multi-coil k-space ``(B, C, n_coils, H, W)``.
* Sampling masks are boolean ``(H, W)`` in that centred layout; 1-D masks choose
  phase-encoding columns (the last axis) with fastMRI's acceleration and centre-fraction
  semantics; unsampled k-space is zero (zero-filled data).
* Coil maps ``(n_coils, H, W)`` are normalised to ``sum_c |S_c|^2 = 1``.
* Non-Cartesian trajectories are in radians per pixel, ``[-pi, pi)``, last axis
  ``(k_row, k_col)``.

Modules (fft2c and ifft2c come from :mod:`tomolearn.operators.fourier`): ``masks`` (fastMRI random / equispaced, Poisson disc),
``trajectories`` (golden-angle radial, spiral), ``coils`` (birdcage maps, validation),
``operators`` (SingleCoilCartesian, MultiCoilSENSE), ``noise`` (complex Gaussian at an SNR,
coil-correlated), ``task`` (the ``"mri"`` task and its shifts), ``examples`` (the operator
battery's instances), ``combine`` (root-sum-of-squares, sensitivity-weighted coil
combination), ``grappa`` (GRAPPA k-space interpolation), ``methods`` (the registered
``zero-filled`` and ``grappa`` methods; ``sense``, ``cs-tv`` and ``cs-wavelet`` are registered
by :mod:`tomolearn.solvers.mri_methods`).
"""

# importing registers the battery's operators, the "mri" task and its shifts, and its methods
from . import examples, methods, speed  # noqa: F401
from .coils import birdcage_maps, normalize_maps, validate_maps  # noqa: F401
from .combine import coil_combine, rss  # noqa: F401
from .espirit import espirit_kernels, espirit_maps  # noqa: F401
from ...operators.fourier import fft2c, ifft2c  # noqa: F401
from .files import (ismrmrd_header, read_fastmri, read_ismrmrd_header,  # noqa: F401
                    read_mr_dicom, write_fastmri, write_fastmri_sample)
from .grappa import GrappaPlan, acs_columns, grappa, grappa_plan  # noqa: F401
from .masks import (MASKS, achieved_acceleration, center_lines, equispaced_mask,  # noqa: F401
                    poisson_disc_mask, random_mask)
from .noise import complex_gaussian_noise, noise_sigma  # noqa: F401
from .nufft import NonCartesianSENSE, density_compensation  # noqa: F401
from .operators import MultiCoilSENSE, SingleCoilCartesian  # noqa: F401
from .task import MRITask, smooth_phase  # noqa: F401
from .trajectories import GOLDEN_ANGLE, radial_trajectory, spiral_trajectory  # noqa: F401

__all__ = ["fft2c", "ifft2c", "random_mask", "equispaced_mask", "poisson_disc_mask",
           "center_lines", "achieved_acceleration", "MASKS", "radial_trajectory",
           "spiral_trajectory", "GOLDEN_ANGLE", "birdcage_maps", "normalize_maps",
           "validate_maps", "SingleCoilCartesian", "MultiCoilSENSE", "complex_gaussian_noise",
           "noise_sigma", "MRITask", "smooth_phase", "rss", "coil_combine", "grappa",
           "grappa_plan", "GrappaPlan", "acs_columns"]
__all__ += ["write_fastmri", "read_fastmri", "write_fastmri_sample", "ismrmrd_header",
            "read_ismrmrd_header", "read_mr_dicom"]
__all__ += ["NonCartesianSENSE", "density_compensation"]
__all__ += ["espirit_maps", "espirit_kernels"]
