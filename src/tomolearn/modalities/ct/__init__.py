"""2-D computed tomography: geometries, the ray transform, FBP and the CT tasks.

Conventions (those of ASTRA's 2-D ``parallel`` and ``fanflat`` geometries):

* The image is an array ``(H, W)``; row 0 is the top.  The centre of pixel
  ``(i, j)`` lies at ``x = (j - (W-1)/2) * pixel_size``,
  ``y = ((H-1)/2 - i) * pixel_size``, so the image is centred on the rotation
  axis.
* At angle ``theta`` (radians) the detector axis is ``u = (cos theta, sin theta)``.
  Detector bin ``k`` has centre ``(k - (n_detectors-1)/2) * detector_spacing +
  detector_offset`` along ``u``.
* Parallel beam: rays travel along ``(sin theta, -cos theta)``; a point ``p``
  projects onto detector coordinate ``p . u``.
* Fan beam (flat detector): the source sits at ``source_radius *
  (sin theta, -cos theta)`` and the detector centre at ``detector_radius *
  (-sin theta, cos theta)``.
* Line integrals are in physical units (pixel_size and detector_spacing are in
  the same length unit; 1 by default).

The discretisation is Joseph's method [1]_: each ray is sampled once per
image column (or row, whichever axis it is closer to parallel with) and the
image is linearly interpolated between the two neighbouring pixels of that
column (row); the sample is weighted with the ray length per column (row).
This is the model of ASTRA's ``linear`` projector [2]_.

References
----------
.. [1] P. M. Joseph, "An improved algorithm for reprojecting rays through
       pixel images", IEEE Trans. Med. Imaging 1(3), 192-196, 1982.
.. [2] W. van Aarle et al., "Fast and flexible X-ray tomography using the
       ASTRA toolbox", Optics Express 24(22), 25129-25147, 2016.
.. [3] A. C. Kak and M. Slaney, "Principles of Computerized Tomographic
       Imaging", IEEE Press, 1988, chapter 3.
"""

# importing registers the battery's operators, the "ct" task, its shifts and CT's methods
from . import examples, methods, shifts, speed  # noqa: F401
from .fbp import FBP_DEFAULTS, FILTERS, fbp, ramp_filter  # noqa: F401
from .geometry import FanBeam2D, ParallelBeam2D  # noqa: F401
from .lodopab import (LoDoPaBDataset, LoDoPaBFileError, lodopab_geometry,  # noqa: F401
                      lodopab_operator)
from .measurements import real_measurement_pair  # noqa: F401
from .ray_transform import SPARSE_MAX_NNZ, RayTransform  # noqa: F401
from .shifts import SHIFTS, shifted_spec  # noqa: F401
from .task import NoiseSpec, SimulationSpec, simulate  # noqa: F401

__all__ = ["ParallelBeam2D", "FanBeam2D", "RayTransform", "fbp", "ramp_filter", "FILTERS",
           "FBP_DEFAULTS", "SimulationSpec", "NoiseSpec", "simulate", "SHIFTS", "shifted_spec",
           "LoDoPaBDataset", "LoDoPaBFileError", "lodopab_geometry", "lodopab_operator",
           "real_measurement_pair"]
