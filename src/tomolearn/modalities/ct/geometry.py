"""2-D CT acquisition geometries: parallel beam and flat-detector fan beam.

Conventions are those of ASTRA's 2-D ``parallel`` and ``fanflat`` geometries
(see :mod:`tomolearn.modalities.ct`): angles in radians, the detector axis at
angle ``theta`` is ``(cos theta, sin theta)``, detector bin ``k`` is centred at
``(k - (n_detectors - 1) / 2) * detector_spacing + detector_offset``, and fan-beam
radii are measured from the rotation centre.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Tuple

import numpy as np

__all__ = ["ParallelBeam2D", "FanBeam2D"]


def _positive_int(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {value!r}")
    if value <= 0:
        raise ValueError(f"{name} must be positive, got {value}")
    return int(value)


def _positive_float(value, name):
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be positive and finite, got {value}")
    return value


def _finite_float(value, name):
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    return value


def _angles(n_angles, angles, arc) -> Tuple[float, ...]:
    """Explicit angles, or ``n_angles`` midpoints of a uniform partition of [0, arc)."""
    if angles is None:
        if n_angles is None:
            raise ValueError("give n_angles or an explicit angles array")
        n = _positive_int(n_angles, "n_angles")
        return tuple(float(a) for a in (np.arange(n) + 0.5) * (arc / n))
    arr = np.asarray(angles, dtype=np.float64)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"angles must be a non-empty 1-D array, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError("angles must all be finite (radians)")
    if n_angles is not None and _positive_int(n_angles, "n_angles") != arr.size:
        raise ValueError(f"n_angles={n_angles} but {arr.size} angles were given")
    return tuple(float(a) for a in arr)


@dataclass(frozen=True)
class _Geometry2D:
    angles: Tuple[float, ...]
    n_detectors: int
    detector_spacing: float = 1.0
    detector_offset: float = 0.0

    @property
    def n_angles(self) -> int:
        return len(self.angles)

    def detector_positions(self) -> np.ndarray:
        """Centres of the detector bins along ``u``, shape (n_detectors,)."""
        k = np.arange(self.n_detectors) - (self.n_detectors - 1) / 2
        return k * self.detector_spacing + self.detector_offset

    def with_angles(self, angles) -> "_Geometry2D":
        """The same geometry with other angles (radians)."""
        d = self.spec()
        del d["type"]
        d["angles"] = np.asarray(angles, dtype=np.float64)
        return type(self)(**d)

    def spec(self) -> dict:
        """JSON-serialisable description (stored with caches, datasets and models)."""
        d = {"type": type(self).__name__}
        for f in self.__dataclass_fields__:
            v = getattr(self, f)
            d[f] = list(v) if isinstance(v, tuple) else v
        return d


@dataclass(frozen=True, init=False)
class ParallelBeam2D(_Geometry2D):
    """2-D parallel-beam geometry (ASTRA ``parallel``).

    Parameters
    ----------
    n_angles : int, optional
        Number of projection angles; without ``angles`` they are the midpoints
        ``(i + 0.5) * pi / n_angles`` of a uniform partition of [0, pi), as in
        ODL's ``parallel_beam_geometry`` (and hence DIVal).
    n_detectors : int
        Number of detector bins.
    detector_spacing : float
        Bin width, in the image's length unit (pixel_size units).
    angles : array_like, optional
        Explicit angles in radians (sparse view, limited angle, full 2 pi, ...).
    detector_offset : float
        Shift of the detector centre along ``u``, same unit as the spacing.
    """

    def __init__(self, n_angles=None, n_detectors=None, detector_spacing=1.0, angles=None,
                 detector_offset=0.0):
        if n_detectors is None:
            raise ValueError("n_detectors is required")
        object.__setattr__(self, "angles", _angles(n_angles, angles, math.pi))
        object.__setattr__(self, "n_detectors", _positive_int(n_detectors, "n_detectors"))
        object.__setattr__(self, "detector_spacing",
                           _positive_float(detector_spacing, "detector_spacing"))
        object.__setattr__(self, "detector_offset", _finite_float(detector_offset, "detector_offset"))

    def rays(self, angle_index: np.ndarray):
        """Ray points and directions, each (len(angle_index), n_detectors, 2)."""
        th = np.asarray(self.angles)[angle_index]
        u = np.stack([np.cos(th), np.sin(th)], -1)[:, None, :]
        d = np.stack([np.sin(th), -np.cos(th)], -1)[:, None, :]
        t = self.detector_positions()[None, :, None]
        p = t * u
        return p, np.broadcast_to(d, p.shape)


@dataclass(frozen=True, init=False)
class FanBeam2D(_Geometry2D):
    """2-D fan-beam geometry with a flat detector (ASTRA ``fanflat``).

    Parameters
    ----------
    n_angles : int, optional
        Number of source positions; without ``angles`` they are the midpoints
        of a uniform partition of [0, 2 pi).
    n_detectors : int
        Number of detector bins.
    source_radius : float
        Distance from the source to the rotation centre.
    detector_radius : float
        Distance from the rotation centre to the detector (the detector is
        not scaled to the centre: its bins have width ``detector_spacing``).
    detector_spacing, angles, detector_offset
        As for :class:`ParallelBeam2D`.
    """

    source_radius: float = 1.0
    detector_radius: float = 1.0

    def __init__(self, n_angles=None, n_detectors=None, source_radius=None, detector_radius=None,
                 detector_spacing=1.0, angles=None, detector_offset=0.0):
        if n_detectors is None or source_radius is None or detector_radius is None:
            raise ValueError("n_detectors, source_radius and detector_radius are required")
        object.__setattr__(self, "angles", _angles(n_angles, angles, 2 * math.pi))
        object.__setattr__(self, "n_detectors", _positive_int(n_detectors, "n_detectors"))
        object.__setattr__(self, "detector_spacing",
                           _positive_float(detector_spacing, "detector_spacing"))
        object.__setattr__(self, "detector_offset", _finite_float(detector_offset, "detector_offset"))
        object.__setattr__(self, "source_radius", _positive_float(source_radius, "source_radius"))
        object.__setattr__(self, "detector_radius",
                           _positive_float(detector_radius, "detector_radius"))

    def rays(self, angle_index: np.ndarray):
        """Ray points (the source) and directions (source to bin), each (A, n_detectors, 2)."""
        th = np.asarray(self.angles)[angle_index]
        s, c = np.sin(th), np.cos(th)
        src = self.source_radius * np.stack([s, -c], -1)[:, None, :]
        centre = self.detector_radius * np.stack([-s, c], -1)[:, None, :]
        u = np.stack([c, s], -1)[:, None, :]
        det = centre + self.detector_positions()[None, :, None] * u
        return np.broadcast_to(src, det.shape), det - src
