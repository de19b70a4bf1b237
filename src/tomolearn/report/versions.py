"""The software versions a report records (tomolearn, Python, torch, NumPy, Matplotlib, OS)."""

from __future__ import annotations

import platform

import numpy as np
import torch

from .. import __version__

__all__ = ["software_versions"]


def software_versions() -> dict:
    """Versions of tomolearn, Python, torch, NumPy, Matplotlib and the platform, for reports."""
    import matplotlib  # heavy; the report imports it lazily too

    return {"tomolearn": __version__, "python": platform.python_version(), "torch": torch.__version__,
            "numpy": np.__version__, "matplotlib": matplotlib.__version__,
            "platform": platform.platform()}
