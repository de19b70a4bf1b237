"""The CT task's measurement shifts: fewer or more angles, a limited angular range, other
noise levels and low-dose Poisson data, registered with :func:`tomolearn.registry.register_shift`."""

from __future__ import annotations

import math

from ... import noise as noise_models
from ...registry import register_shift
from .task import NoiseSpec, SimulationSpec

__all__ = ["SHIFTS", "shifted_spec"]


def _limited_angle(spec: SimulationSpec) -> SimulationSpec:
    return spec.replace(angle_start=0.0, angle_stop=2 * math.pi / 3)


def _low_dose(spec: SimulationSpec) -> SimulationSpec:
    # LoDoPaB-CT's dose (4096 photons per detector pixel, mu_max of 3071 HU) on LoDoPaB's
    # field of view (0.26 m) mapped onto this image grid, line integrals in pixel units.
    mu_max_per_pixel = noise_models.MU_MAX * 0.26 / spec.image_size
    return spec.replace(noise=NoiseSpec(kind="poisson", photons=4096.0, mu_max=mu_max_per_pixel))


#: Measurement shifts: name -> function of a spec returning the shifted spec.
SHIFTS = {
    "angles-20": lambda s: s.replace(n_angles=20),
    "angles-60": lambda s: s.replace(n_angles=60),
    "limited-angle": _limited_angle,  # 120 degrees instead of 180, same number of angles
    "noise-1%": lambda s: s.replace(noise=NoiseSpec(kind="gaussian", level=0.01)),
    "noise-5%": lambda s: s.replace(noise=NoiseSpec(kind="gaussian", level=0.05)),
    "noise-10%": lambda s: s.replace(noise=NoiseSpec(kind="gaussian", level=0.10)),
    "low-dose": _low_dose,
}


def shifted_spec(spec: SimulationSpec, shift: str) -> SimulationSpec:
    """The spec under measurement shift ``shift`` (a key of :data:`SHIFTS`)."""
    if shift not in SHIFTS:
        raise ValueError(f"unknown measurement shift {shift!r}; expected one of {sorted(SHIFTS)}")
    return SHIFTS[shift](spec)


for _name, _shift in SHIFTS.items():
    register_shift("ct", _name, _shift)
