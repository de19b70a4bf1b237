"""tomolearn: learned image reconstruction for tomography.

Layers (imports point down): ``ct`` and other modalities implement the
operator protocol of ``operators``; ``phantoms``, ``noise`` and ``metrics``
make and score data.
"""

__version__ = "0.1.0"

from . import ct, data, learned, metrics, noise, operators, phantoms, solvers  # noqa: E402,F401
from .weights import load  # noqa: E402,F401
