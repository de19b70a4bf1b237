"""tomolearn: learned image reconstruction for tomography."""

__version__ = "0.1.0"

from . import operators, ct  # noqa: E402,F401
