"""PET phantoms in mm: attenuation bodies (mu-maps) and activity families.

How the mu-map accompanies the activity
---------------------------------------
Image families return one image, so the attenuating object is a property of the **task**, not
of the sample: the ``"pet"`` task names a registered **body** (:data:`BODIES`: ``"torso"``,
``"nema"``, ``"head"``, ``"cylinder"``, ``"none"``), an analytic mu-map drawn in mm on any
grid.  The task keeps the activity only inside the body (ground truth = family image times the
body's support) and both simulates and reconstructs with that body's attenuation, as the MRI
task keeps its coil maps per task.  The PET families below are drawn inside the body of the
same name: ``"nema-iq"`` in ``"nema"`` (an exact pair), ``"pet-torso"`` in ``"torso"`` (fixed
anatomy, random uptakes and lesions), ``"pet-brain"`` in ``"head"``; any other family (ellipses,
...) is simply cut to the body's support.

The families are drawn for a field of view of :data:`FOV_MM` (400 mm, the ``"pet"`` task's
default), with the image centred on the scanner axis, ``x`` to the right and ``y`` up (row 0 at
the top; the anterior side of a patient at the top, the patient's right on the image's left).
Edges are partial-volume (each pixel is the mean of 4 x 4 sub-samples).

Linear attenuation coefficients at 511 keV (1/mm): water and soft tissue 0.0096 (mass
attenuation 0.0960 cm^2/g of water, NIST XCOM), lung 0.0029 (density 0.3 g/ml, as NEMA's
lung insert), bone (vertebra) 0.0130.

NEMA NU 2 image-quality phantom (interior dimensions, mm)
---------------------------------------------------------
A torso cross-section: a half disc of radius 147 over a 140 x 77 rectangle flanked by two
quarter discs of radius 77 (outer 150 / 80 with 3 mm walls), 294 mm wide and 224 mm high;
a lung insert of 50 mm outer diameter (lung material inside 42 mm) on the axis; six spheres
of inner diameters 10, 13, 17, 22, 28 and 37 mm with centres on a circle of 114.4 mm diameter
about the insert's axis, 60 degrees apart (37 mm at 180 degrees, then 28, 22, 17, 13, 10
counter-clockwise in steps of 60 degrees); sphere to background activity 4 : 1; sphere walls
(1 mm) are not modelled.  Sources: NEMA NU 2-2007 section 7 (image quality) and the NEMA/IEC
body phantom model of OpenGATE (``opengate/contrib/phantoms/nemaiec.py``).
"""

from __future__ import annotations

import math
from typing import Callable, Dict, List, Tuple

import numpy as np
import torch

from ...data import register_family

__all__ = ["FOV_MM", "MU_WATER", "MU_LUNG", "MU_BONE", "MU_MAX", "BODIES", "body_mu", "draw",
           "check_mu_map",
           "nema_iq", "nema_geometry", "pet_torso", "NEMA_SPHERES_MM", "NEMA_RATIO"]

#: Field of view (mm) the PET families are drawn for (the "pet" task's default).
FOV_MM = 400.0
MU_WATER, MU_LUNG, MU_BONE = 0.0096, 0.0029, 0.0130
_OVERSAMPLE = 4

#: Inner sphere diameters (mm) of the NEMA NU 2 image-quality phantom, and their angles.
NEMA_SPHERES_MM = (10.0, 13.0, 17.0, 22.0, 28.0, 37.0)
_NEMA_ANGLES_DEG = {37.0: 180.0, 28.0: 240.0, 22.0: 300.0, 17.0: 0.0, 13.0: 60.0, 10.0: 120.0}
_NEMA_RING_MM = 114.4 / 2
_NEMA_TOP, _NEMA_CORNER, _NEMA_HALF_FLAT = 147.0, 77.0, 70.0
#: Centre of the big arc (and the top of the rectangle): the body's bounding box is centred.
_NEMA_ARC_Y = -(_NEMA_TOP - _NEMA_CORNER) / 2
_NEMA_INSERT_MM, _NEMA_LUNG_MM = 25.0, 21.0
#: Sphere-to-background activity ratio.
NEMA_RATIO = 4.0


def _coords(size: int, fov_mm: float, oversample: int = _OVERSAMPLE):
    """Sub-sample centre coordinates ``(x, y)`` in mm, each ``(size*os, size*os)`` float64."""
    n = size * oversample
    step = fov_mm / n
    t = (np.arange(n) - (n - 1) / 2) * step
    return t[None, :].repeat(n, 0), -t[:, None].repeat(n, 1)


def _pool(fine: np.ndarray, size: int) -> np.ndarray:
    os_ = fine.shape[0] // size
    return fine.reshape(size, os_, size, os_).mean(axis=(1, 3))


def _ellipse(x, y, cx, cy, a, b):
    return ((x - cx) / a) ** 2 + ((y - cy) / b) ** 2 <= 1.0


def _nema_body(x, y):
    upper = (y >= _NEMA_ARC_Y) & (x ** 2 + (y - _NEMA_ARC_Y) ** 2 <= _NEMA_TOP ** 2)
    low = (y < _NEMA_ARC_Y) & (y >= _NEMA_ARC_Y - _NEMA_CORNER)
    flat = low & (np.abs(x) <= _NEMA_HALF_FLAT)
    corners = low & ((np.abs(x) - _NEMA_HALF_FLAT) ** 2 + (y - _NEMA_ARC_Y) ** 2
                     <= _NEMA_CORNER ** 2)
    return upper | flat | corners


def nema_geometry() -> Dict[str, object]:
    """The NEMA phantom's regions in mm: ``spheres`` ``[(diameter, (x, y)), ...]`` (smallest
    first), ``lung`` ``((x, y), radius)`` of the lung material, ``insert_radius`` and the twelve
    ``background`` ROI centres ``[(x, y), ...]`` (30 degrees apart from 15 degrees on half
    ellipses about the insert, semi-axes 112 x 85 mm above and 112 x 88 mm below its centre:
    a 37 mm ROI there stays over 3 mm clear of the spheres, the insert and the walls), used
    by :func:`tomolearn.modalities.pet.figures.nema_figures`."""
    centre_y = _NEMA_ARC_Y + (_NEMA_TOP - _NEMA_CORNER) / 2  # the insert axis (0 here)
    spheres = []
    for d in NEMA_SPHERES_MM:
        a = math.radians(_NEMA_ANGLES_DEG[d])
        spheres.append((d, (_NEMA_RING_MM * math.cos(a), centre_y + _NEMA_RING_MM * math.sin(a))))
    background = []
    for k in range(12):
        a = math.radians(15 + 30 * k)
        background.append((112.0 * math.cos(a),
                           centre_y + (85.0 if math.sin(a) > 0 else 88.0) * math.sin(a)))
    return {"spheres": spheres, "lung": ((0.0, centre_y), _NEMA_LUNG_MM),
            "insert_radius": _NEMA_INSERT_MM, "background": background}


def draw(fn: Callable, size: int, fov_mm: float = FOV_MM, shift_mm: Tuple[float, float] = (0, 0)
         ) -> np.ndarray:
    """Partial-volume image ``(size, size)`` float64 of ``fn(x, y) -> values`` (x, y in mm,
    arrays), the object moved by ``shift_mm`` (right, up)."""
    x, y = _coords(size, fov_mm)
    return _pool(np.asarray(fn(x - shift_mm[0], y - shift_mm[1]), dtype=np.float64), size)


# -- attenuation bodies ------------------------------------------------------------------------
def _mu_nema(x, y):
    g = nema_geometry()
    (lx, ly), lung_r = g["lung"]
    mu = np.where(_nema_body(x, y), MU_WATER, 0.0)
    return np.where((x - lx) ** 2 + (y - ly) ** 2 <= lung_r ** 2, MU_LUNG, mu)


#: Torso anatomy (mm): body, lungs, heart, liver, vertebra (fixed; the family varies uptakes).
_TORSO = {"body": (0.0, 0.0, 175.0, 120.0), "lung_r": (-80.0, 20.0, 45.0, 55.0),
          "lung_l": (80.0, 20.0, 45.0, 55.0), "heart": (5.0, 15.0, 28.0, 32.0),
          "liver": (-75.0, -70.0, 55.0, 30.0), "spine": (0.0, -85.0, 16.0, 16.0)}


def _in(name, x, y):
    return _ellipse(x, y, *_TORSO[name])


def _mu_torso(x, y):
    mu = np.where(_in("body", x, y), MU_WATER, 0.0)
    mu = np.where(_in("lung_r", x, y) | _in("lung_l", x, y), MU_LUNG, mu)
    return np.where(_in("spine", x, y), MU_BONE, mu)


#: Head outline (mm): a water ellipse 180 x 220 mm (skull not modelled).
_HEAD = (0.0, 0.0, 90.0, 110.0)

#: Attenuation bodies ``fn(x, y) -> mu (1/mm)``, by name.
BODIES: Dict[str, Callable] = {
    "torso": _mu_torso,
    "nema": _mu_nema,
    "head": lambda x, y: np.where(_ellipse(x, y, *_HEAD), MU_WATER, 0.0),
    "cylinder": lambda x, y: np.where(x ** 2 + y ** 2 <= (0.45 * FOV_MM) ** 2, MU_WATER, 0.0),
    "none": lambda x, y: np.zeros_like(x),
}


def body_mu(body: str, size: int, fov_mm: float, shift_mm: float = 0.0) -> np.ndarray:
    """The mu-map ``(size, size)`` float64 in 1/mm of the registered body ``body`` on a grid of
    ``size`` pixels over ``fov_mm``, moved ``shift_mm`` to the right (a misregistered map)."""
    if body not in BODIES:
        raise ValueError(f"unknown body {body!r}; expected one of {', '.join(BODIES)}")
    return draw(BODIES[body], size, fov_mm, (shift_mm, 0.0))


#: Largest plausible linear attenuation coefficient (1/mm) at 511 keV of a PET mu-map: dense
#: cortical bone is about 0.017, titanium 0.04; larger values mean another unit.
MU_MAX = 0.05


def check_mu_map(mu, shape: Tuple[int, int]) -> torch.Tensor:
    """A user's mu-map as ``(N, N)`` float64 tensor, checked: shape ``shape`` (the task's image
    grid), finite, in [0, :data:`MU_MAX`] 1/mm (linear attenuation at 511 keV: water 0.0096,
    lung 0.0029, bone 0.013-0.017).  ``ValueError`` names the expected unit and range and, for
    values too large, the unit they look like (1/cm, 1/m, Hounsfield units)."""
    m = mu.detach().cpu().double() if isinstance(mu, torch.Tensor) else \
        torch.as_tensor(np.asarray(mu, dtype=np.float64))
    if tuple(m.shape) != tuple(shape):
        raise ValueError(f"the mu-map must have shape {tuple(shape)} (the task's image grid, "
                         f"image_size x image_size voxels over fov_mm), got {tuple(m.shape)}")
    if not bool(torch.isfinite(m).all()):
        raise ValueError(f"the mu-map has {int((~torch.isfinite(m)).sum())} non-finite value(s)")
    expected = (f"a mu-map is the linear attenuation coefficient at 511 keV in 1/mm, in [0, "
                f"{MU_MAX}] (air 0, lung 0.0029, water 0.0096, bone 0.013-0.017)")
    low, high = float(m.min()), float(m.max())
    if low < 0:
        hint = "; Hounsfield units? convert CT to 511 keV attenuation first" if low <= -100 else ""
        raise ValueError(f"{expected}; got a minimum of {low:.6g}{hint}")
    if high > MU_MAX:
        hint = ("1/cm (divide by 10)" if high <= 10 * MU_MAX else "1/m (divide by 1000)"
                if high <= 1000 * MU_MAX else "Hounsfield units or CT numbers (convert CT to "
                "511 keV attenuation first)")
        raise ValueError(f"{expected}; got a maximum of {high:.6g}, which looks like {hint}")
    return m


def body_support(body: str, size: int, fov_mm: float) -> np.ndarray:
    """Fraction ``(size, size)`` in [0, 1] of each pixel inside the body (ones for ``"none"``)."""
    if body == "none":
        return np.ones((size, size))
    fn = BODIES[body]
    return draw(lambda x, y: (fn(x, y) > 0).astype(np.float64), size, fov_mm)


# -- activity families -------------------------------------------------------------------------
def _nema_activity(x, y):
    g = nema_geometry()
    act = np.where(_nema_body(x, y), 1.0, 0.0)
    (lx, ly), _ = g["lung"]
    act = np.where((x - lx) ** 2 + (y - ly) ** 2 <= g["insert_radius"] ** 2, 0.0, act)
    for d, (cx, cy) in g["spheres"]:
        act = np.where((x - cx) ** 2 + (y - cy) ** 2 <= (d / 2) ** 2, NEMA_RATIO, act)
    return act


@register_family("nema-iq")
def nema_iq(rng: np.random.Generator, size: int) -> torch.Tensor:
    """The NEMA NU 2 image-quality phantom's sphere plane (deterministic; ``rng`` unused):
    ``(size, size)`` float64, background 1 / 4, spheres 1, lung insert and outside 0, drawn
    for a :data:`FOV_MM` field of view (see the module docstring for the dimensions)."""
    return torch.from_numpy(draw(_nema_activity, size) / NEMA_RATIO)


def _lesion_disc(x, y, cx, cy, r):
    return ((x - cx) ** 2 + (y - cy) ** 2 <= r ** 2).astype(np.float64)


@register_family("pet-torso")
def pet_torso(rng: np.random.Generator, size: int) -> torch.Tensor:
    """An FDG-like thoracic slice in the fixed ``"torso"`` anatomy, ``(size, size)`` float64,
    divided by its maximum.

    Draws, in this order, relative uptakes (soft tissue ``U(0.8, 1.2)``, lungs ``U(0.2, 0.4)``,
    heart ``U(1.5, 6)``, liver ``U(1.8, 2.6)``, vertebral marrow ``U(1.2, 2.2)``), then 1-4
    hot lesions (radius ``U(3, 12)`` mm, ``U(2, 6)`` times the local uptake) and 0-2 cold
    lesions (radius ``U(5, 15)`` mm, ``U(0.1, 0.5)`` times the local uptake), each centred at
    a uniform point of the body (eight candidate draws per lesion; lesions are cut to the body).
    """
    levels = {"body": rng.uniform(0.8, 1.2), "lungs": rng.uniform(0.2, 0.4),
              "heart": rng.uniform(1.5, 6.0), "liver": rng.uniform(1.8, 2.6),
              "spine": rng.uniform(1.2, 2.2)}
    n_hot, n_cold = int(rng.integers(1, 5)), int(rng.integers(0, 3))
    spots: List[Tuple[float, float, float, float]] = []
    bx, by, ba, bb = _TORSO["body"]
    for k in range(4 + 2):
        cand = rng.uniform(-1.0, 1.0, size=(8, 2))
        inside = [(bx + ba * u, by + bb * v) for u, v in cand if u * u + v * v <= 0.85]
        cx, cy = inside[0] if inside else (bx, by)
        hot = k < 4
        r = rng.uniform(3.0, 12.0) if hot else rng.uniform(5.0, 15.0)
        factor = rng.uniform(2.0, 6.0) if hot else rng.uniform(0.1, 0.5)
        if (hot and k < n_hot) or (not hot and k - 4 < n_cold):
            spots.append((cx, cy, r, factor))

    def activity(x, y):
        body = _in("body", x, y)
        act = np.where(body, levels["body"], 0.0)
        act = np.where(_in("liver", x, y) & body, levels["liver"], act)
        act = np.where(_in("lung_r", x, y) | _in("lung_l", x, y), levels["lungs"], act)
        act = np.where(_in("heart", x, y), levels["heart"], act)
        act = np.where(_in("spine", x, y), levels["spine"], act)
        for cx, cy, r, factor in spots:
            act = np.where(_lesion_disc(x, y, cx, cy, r) * body > 0, act * factor, act)
        return act

    image = draw(activity, size)
    return torch.from_numpy(image / image.max())
