"""MRI's own reconstruction methods, registered with the method registry: zero-filled, GRAPPA.

The iterative MRI baselines (``sense``, ``cs-tv``, ``cs-wavelet``) need the solvers and are
registered in :mod:`tomolearn.solvers.mri_methods`.
"""

from __future__ import annotations

import torch

from ...registry import register_method
from .combine import coil_combine
from .grappa import grappa, grappa_plan

__all__ = []


def _check_data(op, y, method):
    expected = tuple(op.range_shape)
    if not isinstance(y, torch.Tensor) or y.dim() != len(expected) + 2 or \
            tuple(y.shape[2:]) != expected:
        got = tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__
        raise ValueError(f"{method} expects k-space of shape (B, C, "
                         f"{', '.join(map(str, expected))}), got {got}")
    if not y.is_complex():
        raise TypeError(f"{method} expects complex k-space (complex64 or complex128), got "
                        f"{y.dtype}")


def _build_zero_filled(task, op, device):
    """``recon(y)``: the task's initial reconstruction, for MRI the adjoint ``A^H y`` (the
    zero-filled k-space, inverse-Fourier transformed per coil and combined with the
    conjugate sensitivities)."""
    def recon(y):
        _check_data(op, y, "zero-filled")
        return task.initial_reconstruction(y, op)
    return recon


def _build_grappa(task, op, device, kernel_lines=2, kernel_readout=3, reg=0.3):
    """``recon(y)``: GRAPPA-filled k-space (:func:`~tomolearn.modalities.mri.grappa.grappa`,
    calibrated on each scan's ACS), combined with the operator's coil maps
    (:func:`~tomolearn.modalities.mri.combine.coil_combine`, ``sum_c conj(S_c) ifft2c(k_c)``):
    a complex image with the object's phase, the least-squares combination for the known
    maps (root-sum-of-squares would drop the phase).  ``recon.plan`` is the
    :class:`~tomolearn.modalities.mri.grappa.GrappaPlan` (kernels, unfilled columns)."""
    mask, maps = getattr(op, "mask", None), getattr(op, "maps", None)
    if mask is None or maps is None:
        raise ValueError(f"grappa needs a multi-coil Cartesian operator with a sampling mask "
                         f"and coil maps (MultiCoilSENSE), got {type(op).__name__}")
    plan = grappa_plan(mask, kernel_lines)

    def recon(y):
        _check_data(op, y, "grappa")
        k = grappa(y, plan, kernel_readout=kernel_readout, reg=reg)
        return coil_combine(k, maps.to(y.device))

    recon.plan = plan
    return recon


register_method("zero-filled", _build_zero_filled, tasks=("mri",),
                description="zero-filled inverse FFT, coil-combined with the maps (the adjoint)")
register_method("grappa", _build_grappa, tasks=("mri",),
                defaults={"kernel_lines": 2, "kernel_readout": 3, "reg": 0.3},
                # chosen on the validation split by scripts/tune_mri.py (reg in 0.01..1, readout
                # 3 or 5): 25.44 dB against 24.88 zero-filled; noiseless data want reg ~ 1e-6
                tuned={"mri": {"kernel_lines": 2, "kernel_readout": 3, "reg": 0.3}},
                description="GRAPPA (Griswold 2002), 2 x 3 kernels calibrated on the ACS, "
                            "coil-combined with the maps")
