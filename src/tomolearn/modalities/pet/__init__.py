"""Positron emission tomography: 2-D direct-plane sinograms of a clinical ring, the ``"pet"`` task.

Conventions (``docs/pet.md``):

* Images ``(B, C, N, N)``: activity in counts-calibrated units (expected trues per mm of line
  of response), voxels ``fov_mm / N`` mm, centred on the scanner axis, ``x`` right, ``y`` up.
* Sinograms ``(B, C, n_views, n_bins)`` in counts; view ``v`` at angle ``v pi / n_views``,
  arc-corrected radial bins (:mod:`.scanner`, the CT geometry conventions).
* mu-maps in 1/mm; attenuation factors ``exp(-A mu)``.
* Forward model ``ybar = n . a . A (PSF x) + r + s`` (:mod:`.task`); the linear part is
  :class:`PETProjector` (exact adjoint), whose ``background_of(y)`` gives ``r + s_hat``.

Modules: ``scanner`` (the Siemens Biograph mCT), ``operators`` (Gaussian PSF, projector),
``background`` (randoms, scatter model and estimate), ``phantoms`` (mu-map bodies, the NEMA NU 2
image-quality and torso families), ``brain_pet`` (the FDG-like brain family), ``figures``
(NEMA contrast recovery and background variability), ``interfile`` (STIR Interfile images and
sinograms, PET DICOM), ``task`` (the ``"pet"`` task and its shifts), ``examples`` (the operator
battery's instances).  The methods ``mlem``, ``osem``, ``osem-filtered`` and ``bsrem`` are
registered by :mod:`tomolearn.solvers.pet_methods`.  ``tof`` is the time-of-flight projector
(task field ``tof_bins``); ``speed`` the operator speed case (``benchmark operators --task pet``).
"""

# importing registers the battery's operators, the image families, the "pet" task and its shifts
from . import brain_pet, examples, speed  # noqa: F401
from .figures import nema_figures, roi_mean  # noqa: F401
from .interfile import (InterfileError, read_interfile, read_pet_dicom,  # noqa: F401
                        write_interfile_image, write_interfile_sinogram)
from .background import SCATTER_FWHM_MM, radial_blur, scatter_estimate, scatter_model  # noqa: F401
from .operators import (FWHM_TO_SIGMA, GaussianPSF, PETProjector, em_iterations,  # noqa: F401
                        gaussian_kernel, n_subsets_for)
from .phantoms import (BODIES, FOV_MM, MU_BONE, MU_LUNG, MU_MAX, MU_WATER,  # noqa: F401
                       NEMA_RATIO, NEMA_SPHERES_MM, body_mu, check_mu_map, nema_geometry,
                       nema_iq, pet_torso)
from .scanner import SCANNERS, Scanner, scanner  # noqa: F401
from .task import PETTask  # noqa: F401
from .tof import TOFProjector, tof_fwhm_mm, tof_kernels  # noqa: F401

__all__ = ["Scanner", "SCANNERS", "scanner", "GaussianPSF", "PETProjector", "gaussian_kernel",
           "FWHM_TO_SIGMA", "SCATTER_FWHM_MM", "radial_blur", "scatter_model",
           "scatter_estimate", "BODIES", "FOV_MM", "MU_WATER", "MU_LUNG", "MU_BONE",
           "NEMA_RATIO", "NEMA_SPHERES_MM", "body_mu", "MU_MAX", "check_mu_map",
           "nema_geometry", "nema_iq", "pet_torso",
           "PETTask", "em_iterations", "n_subsets_for",
           "TOFProjector", "tof_fwhm_mm", "tof_kernels",
           "nema_figures", "roi_mean",
           "InterfileError", "read_interfile", "write_interfile_image",
           "write_interfile_sinogram", "read_pet_dicom"]
