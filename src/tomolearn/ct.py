"""``tomolearn.ct``: the public name of :mod:`tomolearn.modalities.ct` (``tl.ct.RayTransform``,
``tl.ct.fbp``, ...), kept for users and for the documented API."""

from .modalities.ct import FILTERS, FanBeam2D, ParallelBeam2D, RayTransform, fbp, ramp_filter  # noqa: F401
