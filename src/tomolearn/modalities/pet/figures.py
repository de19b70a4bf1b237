"""NEMA NU 2 image-quality figures of merit on the ``"nema-iq"`` phantom's sphere plane.

For every sphere ``j`` (diameter ``d_j``): a circular hot ROI of diameter ``d_j`` on the sphere,
twelve background ROIs of the same diameter (at :func:`nema_geometry`'s background centres),

* contrast recovery coefficient ``CRC_j = (C_H,j / C_B,j - 1) / (a_H / a_B - 1)``
  (``a_H / a_B = 4``; 1 for a perfect image),
* background variability ``N_j = SD_j / C_B,j`` with ``SD_j`` the sample standard deviation
  (``K - 1``) of the twelve background ROI means and ``C_B,j`` their mean,

and the lung residual ``C_lung / C_B,37`` in a 30 mm ROI on the lung insert (0 ideally).  NEMA
NU 2-2007 section 7 averages sixty background ROIs over five slices; one plane has twelve.
ROI masks are partial-volume weights (4 x 4 sub-samples), means are weighted means.
"""

from __future__ import annotations

from typing import Dict

import numpy as np
import torch

from .phantoms import FOV_MM, NEMA_RATIO, draw, nema_geometry

__all__ = ["nema_figures", "roi_mean"]


def _disc(size: int, fov_mm: float, cx: float, cy: float, d: float) -> np.ndarray:
    return draw(lambda x, y: ((x - cx) ** 2 + (y - cy) ** 2 <= (d / 2) ** 2).astype(float),
                size, fov_mm)


def roi_mean(image: np.ndarray, weights: np.ndarray) -> float:
    """Weighted mean of ``image`` over an ROI given as pixel weights (same shape)."""
    return float((image * weights).sum() / weights.sum())


def nema_figures(image, fov_mm: float = FOV_MM) -> Dict[str, object]:
    """NEMA figures of one reconstructed sphere plane ``image`` ``(N, N)`` (tensor or array,
    any scale) drawn on ``fov_mm``.

    Returns
    -------
    dict
        ``crc`` and ``variability``: ``{diameter_mm: float}`` (fractions, not percent),
        ``lung_residual`` (float), ``background`` (``C_B`` of the 37 mm ROIs).
    """
    img = image.detach().cpu().double().numpy() if isinstance(image, torch.Tensor) else \
        np.asarray(image, dtype=np.float64)
    if img.ndim != 2 or img.shape[0] != img.shape[1]:
        raise ValueError(f"image must be a square (N, N) plane, got shape {img.shape}")
    n = img.shape[0]
    g = nema_geometry()
    crc, variability, background = {}, {}, {}
    for d, (cx, cy) in g["spheres"]:
        hot = roi_mean(img, _disc(n, fov_mm, cx, cy, d))
        means = np.array([roi_mean(img, _disc(n, fov_mm, bx, by, d)) for bx, by in g["background"]])
        cb = float(means.mean())
        background[d] = cb
        crc[d] = (hot / cb - 1.0) / (NEMA_RATIO - 1.0) if cb != 0 else float("nan")
        variability[d] = float(means.std(ddof=1) / cb) if cb != 0 else float("nan")
    (lx, ly), _ = g["lung"]
    lung = roi_mean(img, _disc(n, fov_mm, lx, ly, 30.0))
    return {"crc": crc, "variability": variability, "background": background[37.0],
            "lung_residual": lung / background[37.0] if background[37.0] != 0 else float("nan")}
