"""The ``"pet-brain"`` family: FDG-like brain slices from the MNI152 tissue probability maps.

Anatomy, slice choice, similarity transform and elastic warp are those of the MR ``"brain"``
family (:func:`tomolearn.data.brain.brain_phantom`, built on
:func:`tomolearn.data.brain.tissue_maps`: the MNI ICBM152 2009a GM / WM / CSF maps shipped in
nilearn), rendered at its 240 mm field of view and placed, at true size, in the centre of the
:data:`~tomolearn.modalities.pet.phantoms.FOV_MM` PET field of view (so ``size * 240 / 400``
pixels, rounded; background 0).  Activity is ``4 GM + 1 WM + 0.1 CSF`` (grey : white 4 : 1,
cerebrospinal fluid nearly cold), the MR family's MS-lesion fraction counted as WM, then
lesions: 0-3 hot ones (radius ``U(3, 10)`` mm, uptake ``U(1.5, 3)`` times grey matter's) and
0-2 cold ones (radius ``U(4, 12)`` mm, ``U(0, 0.5)`` times the local uptake), centred at
uniform brain pixels; the image is divided by its maximum.  Its attenuation body is ``"head"``.
Needs nilearn, as the ``"brain"`` family does.
"""

from __future__ import annotations

import numpy as np
import torch

from ...data import register_family
from ...data.brain import brain_phantom
from .phantoms import FOV_MM

__all__ = ["pet_brain", "GM_WM_RATIO"]

#: Grey-to-white matter activity ratio.
GM_WM_RATIO = 4.0
_CSF = 0.1
_BRAIN_FOV_MM = 240.0


@register_family("pet-brain")
def pet_brain(rng: np.random.Generator, size: int) -> torch.Tensor:
    """A random FDG-like axial brain slice ``(size, size)`` float64 in [0, 1] (see the module
    docstring); deterministic given ``rng``."""
    m = max(1, min(size, int(round(size * _BRAIN_FOV_MM / FOV_MM))))
    _, info = brain_phantom(rng, m)
    maps = {k: v.numpy() for k, v in info["maps"].items()}
    act = GM_WM_RATIO * maps["gm"] + (maps["wm"] + maps["lesion"]) + _CSF * maps["csf"]
    brain = (maps["gm"] + maps["wm"] + maps["lesion"] + maps["csf"]) > 0.5
    n_hot, n_cold = int(rng.integers(0, 4)), int(rng.integers(0, 3))
    params = rng.uniform(size=(5, 4))
    pixel = _BRAIN_FOV_MM / m
    rows, cols = np.nonzero(brain)
    yy, xx = np.mgrid[0:m, 0:m].astype(np.float64)
    for k, (u_pos, u_r, u_f, _) in enumerate(params):
        hot = k < 3
        if (hot and k >= n_hot) or (not hot and k - 3 >= n_cold) or rows.size == 0:
            continue
        i = min(int(u_pos * rows.size), rows.size - 1)
        r = (3.0 + 7.0 * u_r) if hot else (4.0 + 8.0 * u_r)
        disc = ((yy - rows[i]) ** 2 + (xx - cols[i]) ** 2) * pixel ** 2 <= r ** 2
        disc &= brain
        level = GM_WM_RATIO * (1.5 + 1.5 * u_f) if hot else None
        act = np.where(disc, level if hot else act * 0.5 * u_f, act)
    out = np.zeros((size, size))
    o = (size - m) // 2
    out[o:o + m, o:o + m] = act
    top = out.max()
    return torch.from_numpy(out / top if top > 0 else out)
