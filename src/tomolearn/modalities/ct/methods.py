"""CT's own reconstruction methods, registered with the method registry: FBP."""

from __future__ import annotations

from ...registry import register_method
from .fbp import FBP_DEFAULTS, fbp

__all__ = []


def _build_fbp(task, op, device, filter="ramp", frequency_scaling=1.0):
    """``recon(y) = fbp(op, y, filter, frequency_scaling)`` (y on any device)."""
    def recon(y):
        return fbp(op, y, filter=filter, frequency_scaling=frequency_scaling)
    return recon


register_method("fbp", _build_fbp, tasks=("ct",), defaults=dict(FBP_DEFAULTS),
                description="filtered back-projection (Hamming window, frequency scaling 0.7)")
