"""``tomolearn.ct``: the public name of :mod:`tomolearn.modalities.ct` (``tl.ct.RayTransform``,
``tl.ct.fbp``, ``tl.ct.SimulationSpec``, ...), kept for users and for the documented API."""

from .modalities.ct import *  # noqa: F401,F403
from .modalities.ct import __all__  # noqa: F401
