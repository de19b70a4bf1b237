"""Greyscale PNG images: reading one as a grey array, writing an 8-bit grey PNG.

matplotlib (reading) and Pillow (writing, matplotlib's own image dependency) are
imported on first use, to keep ``import tomolearn`` light.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

__all__ = ["png_bytes", "read_grey_png"]


def read_grey_png(path: Path) -> np.ndarray:
    """A PNG image as grey values.

    Parameters
    ----------
    path : pathlib.Path
        A PNG file: grey, grey + alpha, RGB or RGBA.

    Returns
    -------
    numpy.ndarray, shape (H, W), float64
        Values in ``[0, 1]``: the grey channel, or the luminance
        ``0.299 R + 0.587 G + 0.114 B`` of colour images; alpha is ignored.

    Raises
    ------
    ValueError
        If the file cannot be read as an image, or is not 2-D; the message
        names the file.
    """
    from matplotlib.image import imread  # heavy: imported on first use

    try:
        img = np.asarray(imread(path), dtype=np.float64)
    except Exception as e:
        raise ValueError(f"{path}: unreadable PNG file ({type(e).__name__}: {e})") from None
    if img.ndim == 3:
        if img.shape[2] < 3:
            img = img[..., 0]
        else:
            img = img[..., :3] @ np.array([0.299, 0.587, 0.114])
    if img.ndim != 2:
        raise ValueError(f"{path}: expected a 2-D image, got shape {img.shape}")
    return img


def png_bytes(image, lo: float, hi: float) -> bytes:
    """An 8-bit greyscale PNG of an image, as the bytes of the file.

    Parameters
    ----------
    image : array-like, shape (H, W)
        Real values, any unit.
    lo, hi : float
        Values mapped to 0 and 255 (linearly, clipped outside; rounded to the
        nearest grey level).  If ``hi <= lo``, ``hi = lo + 1`` is used.

    Returns
    -------
    bytes
        The PNG file (mode "L", W x H pixels).
    """
    from PIL import Image  # matplotlib's own image dependency; imported on first use

    if not hi > lo:
        hi = lo + 1.0
    grey = np.clip((np.asarray(image, dtype=np.float64) - lo) / (hi - lo), 0.0, 1.0)
    buf = io.BytesIO()
    Image.fromarray(np.round(grey * 255).astype(np.uint8), mode="L").save(buf, format="PNG")
    return buf.getvalue()
