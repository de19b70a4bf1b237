"""The ``"brain"`` image family: axial MR-like slices built from real tissue probability maps.

The anatomy is the MNI ICBM 2009a nonlinear symmetric template [1]_ at 1 mm, whose grey-matter
(GM), white-matter (WM) probability maps, T1 template and brain mask ship inside the nilearn
package (``nilearn/datasets/data/mni_icbm152_*_tal_nlin_sym_09a_converted.nii.gz``, read by
``nilearn.datasets.load_mni152_gm_template``, ``load_mni152_wm_template`` and
``load_mni152_brain_mask``: bundled files, nothing is downloaded).  Cerebrospinal fluid (CSF)
is ``clip(brain mask - GM - WM, 0, 1)``.  nilearn is a dependency of tomolearn, imported when the
family is first used (it is slow to import), and the maps are loaded once per
process (:func:`tissue_maps`).

Contrast
--------
A pixel's value is ``sum_t f_t I_t`` over the tissue fractions ``f_t`` (partial volume) with
the spin-echo signal ``I_t = PD (1 - exp(-TR / T1)) exp(-TE / T2)`` of BrainWeb's 1.5 T tissue
parameters [2]_ (T1 / T2 in ms, PD relative to water):

=========  ======  =====  ====
tissue     T1      T2     PD
=========  ======  =====  ====
CSF        2569    329    1.00
GM         833     83     0.86
WM         500     70     0.77
lesion     752     237    0.76  (BrainWeb's MS lesion)
=========  ======  =====  ====

and three sequences, giving these intensities relative to the brightest tissue:

=========  =================  ====  ====  ====  ======
contrast   TR / TE (ms)       CSF   GM    WM    lesion
=========  =================  ====  ====  ====  ======
``t1``     500 / 15           0.43  0.82  1.00  0.88
``t2``     4000 / 100         1.00  0.44  0.32  0.85
``pd``     4000 / 15          1.00  0.94  0.82  0.94
=========  =================  ====  ====  ====  ======

so T1-like has WM > GM > CSF, T2-like CSF > GM > WM and PD-like CSF > GM > WM with small
differences; lesions are hypo-intense to WM in T1-like images and hyper-intense in T2-like
and PD-like ones, as multiple-sclerosis plaques are.  Each draw multiplies each tissue's
intensity by ``1 + U(-0.025, 0.025)`` (this keeps the order of CSF, GM and WM: their smallest
nominal ratio is 1.06).  The image is brain-extracted (no skull, scalp or fat), background 0.

References
----------
.. [1] V. Fonov, A. C. Evans, K. Botteron, C. R. Almli, R. C. McKinstry, D. L. Collins and the
       BDCG, "Unbiased average age-appropriate atlases for pediatric studies", NeuroImage 54(1),
       313-327, 2011 (MNI ICBM 2009a nonlinear symmetric).
.. [2] R. K.-S. Kwan, A. C. Evans and G. B. Pike, "MRI simulation-based evaluation of
       image-processing and classification methods", IEEE Trans. Med. Imaging 18(11),
       1085-1097, 1999 (BrainWeb; tissue_mr_parameters.txt).
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Dict, Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from .families import register_family

__all__ = ["TISSUES", "SEQUENCES", "brain_phantom", "tissue_intensities", "tissue_maps",
           "brain"]

#: BrainWeb 1.5 T tissue parameters: (T1 ms, T2 ms, proton density relative to water).
TISSUES: Dict[str, Tuple[float, float, float]] = {
    "csf": (2569.0, 329.0, 1.00),
    "gm": (833.0, 83.0, 0.86),
    "wm": (500.0, 70.0, 0.77),
    "lesion": (752.0, 237.0, 0.76),
}
#: Spin-echo sequences of the three contrasts: (TR ms, TE ms).
SEQUENCES: Dict[str, Tuple[float, float]] = {"t1": (500.0, 15.0), "t2": (4000.0, 100.0),
                                             "pd": (4000.0, 15.0)}
_CONTRASTS = tuple(SEQUENCES)
_INTENSITY_JITTER = 0.025

#: Axial slices drawn from MNI z in this range (mm, inclusive): temporal lobes to upper brain.
_Z_RANGE_MM = (-20.0, 60.0)
#: Square field of view of the output (mm) and the working resolution (pixels across it).
_FOV_MM = 240.0
_WORK_PX = 240
#: Similarity transform: rotation U(-15, 15) degrees, scale U(0.9, 1.1), shift U(-5, 5) mm.
_ROTATION_DEG = 15.0
_SCALE = (0.9, 1.1)
_SHIFT_MM = 5.0
#: Elastic displacement: N(0, 2 mm) per component on a 5 x 5 grid over the field of view,
#: bicubically interpolated (smooth over about 60 mm).
_ELASTIC_GRID = 5
_ELASTIC_MM = 2.0
#: Lesions: present with probability 1/2, 1-4 ellipses of semi-axes U(1.5, 5) mm in WM.
_LESION_PROBABILITY = 0.5
_LESION_MAX = 4
_LESION_AXES_MM = (1.5, 5.0)
_LESION_WM_MIN = 0.9


def _nilearn_datasets():
    try:
        import nilearn.datasets as datasets  # lazy: slow to import, only "brain" needs it
    except ImportError as e:
        raise ImportError("the 'brain' image family builds on the MNI152 tissue maps that ship "
                          "with nilearn, which is not installed: pip install nilearn") from e
    return datasets


def _axial_slices(img, z_index: slice) -> np.ndarray:
    """``(D, H, W)`` float32 axial slices of a RAS 3-D image in display orientation: row 0
    anterior, column 0 the patient's right (radiological), slice 0 inferior."""
    data = np.asarray(img.dataobj, dtype=np.float32)
    return np.ascontiguousarray(np.transpose(data[::-1, ::-1, z_index], (2, 1, 0)))


@lru_cache(maxsize=1)
def tissue_maps() -> Tuple[np.ndarray, np.ndarray, Tuple[float, float]]:
    """The tissue fractions of the axial slices the family draws from (loaded once per process).

    Returns
    -------
    maps : numpy.ndarray, shape (D, 3, H, W), float32
        GM, WM and CSF fractions in [0, 1] of ``D`` axial slices 1 mm apart, cropped to the
        brain's bounding box (2 mm margin); display orientation (row 0 anterior, column 0 the
        patient's right); read-only.  GM and WM are nilearn's probability maps (scaled to a
        maximum of 1), CSF is ``clip(mask - GM - WM, 0, 1)`` with nilearn's brain mask (its T1
        template > 0.2).
    z_mm : numpy.ndarray, shape (D,), float64
        MNI z coordinate of each slice (mm), from -20 to 60.
    spacing : (float, float)
        ``(row, column)`` pixel spacing in mm.

    Raises
    ------
    ImportError
        If nilearn is not installed (the message says ``pip install nilearn``).
    RuntimeError
        If the templates are not axis-aligned RAS images (a changed nilearn).
    """
    datasets = _nilearn_datasets()
    gm_img, wm_img = datasets.load_mni152_gm_template(), datasets.load_mni152_wm_template()
    mask_img = datasets.load_mni152_brain_mask()
    affine = np.asarray(gm_img.affine, dtype=np.float64)
    zooms = np.diag(affine)[:3]
    for name, img in (("WM", wm_img), ("brain mask", mask_img)):
        if img.shape != gm_img.shape or not np.allclose(img.affine, affine):
            raise RuntimeError(f"nilearn's MNI152 {name} template is not on the GM grid")
    if not (np.allclose(affine[:3, :3], np.diag(zooms)) and np.all(zooms > 0)):
        raise RuntimeError(f"nilearn's MNI152 templates are not axis-aligned RAS images "
                           f"(affine {affine.tolist()}); cannot slice them axially")
    k = (np.asarray(_Z_RANGE_MM) - affine[2, 3]) / zooms[2]
    k0, k1 = int(math.ceil(k[0] - 1e-6)), int(math.floor(k[1] + 1e-6))
    if k0 < 0 or k1 >= gm_img.shape[2]:
        raise RuntimeError(f"nilearn's MNI152 templates do not cover z = {_Z_RANGE_MM} mm")
    z = slice(k0, k1 + 1)
    gm, wm = _axial_slices(gm_img, z), _axial_slices(wm_img, z)
    mask = _axial_slices(mask_img, z)
    csf = np.clip(mask - gm - wm, 0.0, 1.0)
    maps = np.clip(np.stack([gm, wm, csf], axis=1), 0.0, 1.0)
    inside = maps.sum(axis=(0, 1)) > 0
    rows, cols = np.flatnonzero(inside.any(1)), np.flatnonzero(inside.any(0))
    r0, r1 = max(rows[0] - 2, 0), min(rows[-1] + 3, inside.shape[0])
    c0, c1 = max(cols[0] - 2, 0), min(cols[-1] + 3, inside.shape[1])
    maps = np.ascontiguousarray(maps[:, :, r0:r1, c0:c1], dtype=np.float32)
    z_mm = affine[2, 3] + zooms[2] * np.arange(k0, k1 + 1, dtype=np.float64)
    maps.setflags(write=False)  # shared by every caller (cached)
    z_mm.setflags(write=False)
    return maps, z_mm, (float(zooms[1]), float(zooms[0]))


def _spin_echo(tissue: str, contrast: str) -> float:
    t1, t2, pd = TISSUES[tissue]
    tr, te = SEQUENCES[contrast]
    return pd * (1.0 - math.exp(-tr / t1)) * math.exp(-te / t2)


def tissue_intensities(contrast: str, jitter=None) -> Dict[str, float]:
    """Relative intensities of CSF, GM, WM and lesion under a contrast.

    Parameters
    ----------
    contrast : {"t1", "t2", "pd"}
        The spin-echo sequence (:data:`SEQUENCES`).
    jitter : array_like of 4 floats in [-1, 1], optional
        Relative perturbations, in the order csf, gm, wm, lesion: intensity ``t`` is multiplied
        by ``1 + 0.025 jitter[t]``.

    Returns
    -------
    dict
        ``{"csf", "gm", "wm", "lesion"} -> float``, the nominal spin-echo signals divided by
        the largest of CSF, GM and WM (see the module docstring for the table), perturbed.
    """
    if contrast not in SEQUENCES:
        raise ValueError(f"contrast must be one of {', '.join(SEQUENCES)}, got {contrast!r}")
    signal = {t: _spin_echo(t, contrast) for t in TISSUES}
    top = max(signal["csf"], signal["gm"], signal["wm"])
    jitter = np.zeros(4) if jitter is None else np.asarray(jitter, dtype=np.float64)
    if jitter.shape != (4,) or not np.all(np.abs(jitter) <= 1):
        raise ValueError(f"jitter must be 4 numbers in [-1, 1], got {jitter!r}")
    return {t: float(signal[t] / top * (1.0 + _INTENSITY_JITTER * j))
            for t, j in zip(TISSUES, jitter)}


def _lesion_fraction(wm: np.ndarray, spacing, present: bool, count: int,
                     params: np.ndarray) -> Tuple[np.ndarray, int]:
    """Union (max) of soft-edged ellipses centred in WM (fraction > 0.9) of one slice."""
    out = np.zeros_like(wm, dtype=np.float64)
    candidates = np.flatnonzero(wm.ravel() > _LESION_WM_MIN)
    if not present or candidates.size == 0:
        return out, 0
    dy, dx = spacing
    rows = np.arange(wm.shape[0], dtype=np.float64)[:, None] * dy
    cols = np.arange(wm.shape[1], dtype=np.float64)[None, :] * dx
    lo, hi = _LESION_AXES_MM
    for u_pos, u_dr, u_dc, u_a, u_b, u_angle in params[:count]:
        r, c = divmod(int(candidates[min(int(u_pos * candidates.size), candidates.size - 1)]),
                      wm.shape[1])
        cy, cx = (r + u_dr - 0.5) * dy, (c + u_dc - 0.5) * dx
        a, b = lo + (hi - lo) * u_a, lo + (hi - lo) * u_b
        phi = math.pi * u_angle
        p = (cols - cx) * math.cos(phi) + (rows - cy) * math.sin(phi)
        q = -(cols - cx) * math.sin(phi) + (rows - cy) * math.cos(phi)
        rho = np.sqrt((p / a) ** 2 + (q / b) ** 2)
        # distance inside the edge in mm (approximately), ramped over one pixel: partial volume
        edge = np.clip((1.0 - rho) * min(a, b) / max(dy, dx) + 0.5, 0.0, 1.0)
        out = np.maximum(out, edge)
    return out, count


def _sampling_grid(n: int, maps_shape, spacing, angle: float, scale: float, shift,
                   displacement: torch.Tensor) -> torch.Tensor:
    """grid_sample grid ``(1, n, n, 2)`` pulling the output field of view from the atlas crop."""
    dy, dx = spacing
    t = ((torch.arange(n, dtype=torch.float64) + 0.5) / n - 0.5) * _FOV_MM
    v, u = torch.meshgrid(t, t, indexing="ij")  # u: right, v: down (mm from the FOV centre)
    u, v = u - shift[0], v - shift[1]
    c, s = math.cos(angle), math.sin(angle)
    x = (c * u + s * v) / scale + displacement[0]  # inverse rotation and scaling
    y = (-s * u + c * v) / scale + displacement[1]
    h, w = maps_shape
    col = (w - 1) / 2 + x / dx
    row = (h - 1) / 2 + y / dy
    return torch.stack([(2 * col + 1) / w - 1, (2 * row + 1) / h - 1], dim=-1)[None]


def brain_phantom(rng: np.random.Generator, size: int, *, contrast: Optional[str] = None,
                  lesions: Optional[bool] = None) -> Tuple[torch.Tensor, dict]:
    """A random axial brain slice and what was drawn.

    Parameters
    ----------
    rng : numpy.random.Generator
        The only source of randomness; it is advanced by the same amount whatever
        `contrast` and `lesions` are, so forcing them changes nothing else.
    size : int
        Output side in pixels; the field of view is 240 mm (pixel ``240 / size`` mm).
    contrast : {"t1", "t2", "pd"}, optional
        Force a contrast; default uniform over the three.
    lesions : bool, optional
        Force lesions on or off; default present with probability 1/2.

    Returns
    -------
    image : torch.Tensor, shape (size, size), float64
        Values in [0, 1] (divided by the image maximum), background 0.
    info : dict
        ``z_mm`` (MNI z of the slice), ``contrast``, ``intensities`` (per tissue, before the
        normalisation), ``rotation_deg``, ``scale``, ``shift_mm`` ((right, down) mm),
        ``n_lesions``, ``max`` (the divisor) and ``maps``: ``{"gm", "wm", "csf", "lesion"}``
        fractions ``(size, size)`` float64 resampled like the image (WM excludes lesions), so
        that ``image == sum_t intensities[t] * maps[t] / max``.

    Notes
    -----
    Draws, in this order: the slice (uniform over MNI z = -20..60 mm, 1 mm apart), the
    contrast, the four intensity jitters, rotation ``U(-15, 15)`` degrees, scale
    ``U(0.9, 1.1)``, shift ``U(-5, 5)^2`` mm, the elastic displacement (``N(0, 2 mm)`` on a
    5 x 5 grid spanning the field of view, bicubic in between), the lesion flag, the lesion
    count (1-4) and six uniforms per possible lesion (centre among the slice's pixels of WM
    fraction > 0.9, sub-pixel offset, semi-axes ``U(1.5, 5)`` mm, orientation).  Lesions
    replace WM only: fraction ``L * WM`` with ``L`` a one-pixel soft-edged union of the
    ellipses.  Tissue maps are warped with bilinear interpolation on a 240 x 240 (1 mm) grid
    and area-averaged to ``size`` (``size < 240``); for ``size >= 240`` they are sampled
    bilinearly at ``size`` directly.
    """
    if isinstance(size, (bool, np.bool_)) or not isinstance(size, (int, np.integer)) or size < 1:
        raise ValueError(f"size must be a positive int, got {size!r}")
    if contrast is not None and contrast not in SEQUENCES:
        raise ValueError(f"contrast must be one of {', '.join(SEQUENCES)} or None, "
                         f"got {contrast!r}")
    size = int(size)
    maps, z_mm, spacing = tissue_maps()
    k = int(rng.integers(len(z_mm)))
    drawn_contrast = _CONTRASTS[int(rng.integers(len(_CONTRASTS)))]
    jitter = rng.uniform(-1.0, 1.0, size=4)
    angle = math.radians(rng.uniform(-_ROTATION_DEG, _ROTATION_DEG))
    scale = float(rng.uniform(*_SCALE))
    shift = rng.uniform(-_SHIFT_MM, _SHIFT_MM, size=2)
    coarse = rng.normal(0.0, _ELASTIC_MM, size=(1, 2, _ELASTIC_GRID, _ELASTIC_GRID))
    present = bool(rng.uniform() < _LESION_PROBABILITY)
    count = int(rng.integers(1, _LESION_MAX + 1))
    lesion_params = rng.uniform(size=(_LESION_MAX, 6))

    contrast = drawn_contrast if contrast is None else contrast
    present = present if lesions is None else bool(lesions)
    gm, wm, csf = (maps[k, i].astype(np.float64) for i in range(3))
    lesion, n_lesions = _lesion_fraction(wm, spacing, present, count, lesion_params)
    lesion = lesion * wm
    stack = torch.from_numpy(np.stack([gm, wm - lesion, csf, lesion]))[None]

    n = max(size, _WORK_PX)
    displacement = F.interpolate(torch.from_numpy(coarse), size=(n, n), mode="bicubic",
                                 align_corners=True)[0]
    grid = _sampling_grid(n, stack.shape[-2:], spacing, angle, scale, shift, displacement)
    warped = F.grid_sample(stack, grid, mode="bilinear", padding_mode="zeros",
                           align_corners=False)
    if n != size:
        warped = F.interpolate(warped, size=(size, size), mode="area")
    warped = warped[0].clamp(0.0, 1.0)

    intensities = tissue_intensities(contrast, jitter)
    weights = torch.tensor([intensities[t] for t in ("gm", "wm", "csf", "lesion")],
                           dtype=torch.float64)
    image = (weights[:, None, None] * warped).sum(0)
    top = float(image.max())
    image = (image / top).clamp(0.0, 1.0) if top > 0 else image
    info = {"z_mm": float(z_mm[k]), "contrast": contrast, "intensities": intensities,
            "rotation_deg": math.degrees(angle), "scale": scale,
            "shift_mm": (float(shift[0]), float(shift[1])), "n_lesions": n_lesions, "max": top,
            "maps": dict(zip(("gm", "wm", "csf", "lesion"), warped.unbind(0)))}
    return image.contiguous(), info


@register_family("brain")
def brain(rng: np.random.Generator, size: int) -> torch.Tensor:
    """An axial MR-like brain slice from the MNI152 tissue maps that ship with nilearn.

    Distribution (:func:`brain_phantom`): a uniform slice between MNI z = -20 and 60 mm, a
    T1-, T2- or PD-weighted contrast (spin-echo signal of BrainWeb's tissue parameters, each
    tissue jittered by up to 2.5 %), a random similarity transform (rotation up to 15 degrees,
    scale 0.9-1.1, shift up to 5 mm) plus a smooth elastic displacement (2 mm standard
    deviation), with probability 1/2 one to four small ellipsoidal lesions in white matter
    (MS-like: dark in T1, bright in T2 / PD); 240 mm field of view resampled to ``size`` x
    ``size`` (area average), divided by its maximum.  Needs nilearn (``pip install nilearn``).
    """
    return brain_phantom(rng, size)[0]
