"""TIFF images and stacks (``.tif``, ``.tiff``) as ``(D, H, W)`` float32 volumes, values as stored.

tifffile reads every sample format (float32 and float64 included), multi-page
stacks and ImageJ hyperstacks; the compressions it needs the optional
``imagecodecs`` package for (LZW, PackBits, JPEG, ...) are read with Pillow
instead, which decodes the common ones itself.  Both are imported on first use.
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from .paths import PathLike, as_path

__all__ = ["read_tiff"]

_LUMINANCE = np.array([0.299, 0.587, 0.114])
#: TIFF PhotometricInterpretation values whose samples are colours (RGB, palette, CMYK, YCbCr,
#: CIELab).
_COLOUR = (2, 3, 5, 6, 8)


def _tifffile(path):
    try:
        import tifffile
    except ImportError as e:
        raise ImportError(f"{path}: reading TIFF files needs tifffile: pip install tifffile") \
            from e
    return tifffile


def _grey(arr: np.ndarray, axes: str, colour: bool) -> np.ndarray:
    """Samples (axis ``S``) of a colour image to grey (luminance, alpha ignored); of a grey
    one, slices."""
    if "S" in axes:
        arr = np.moveaxis(arr, axes.index("S"), -1 if colour else 0)
        if colour:
            arr = arr[..., :3] @ _LUMINANCE if arr.shape[-1] >= 3 else arr[..., 0]
    return arr


def _with_tifffile(path, tifffile):
    """The first series of the file (None if it holds none), tifffile's log kept quiet (it
    would print damaged tags on stderr; the caller reports the error)."""
    log = logging.getLogger("tifffile")
    disabled, log.disabled = log.disabled, True
    try:
        with tifffile.TiffFile(path) as tif:
            if not tif.series:
                return None
            series = tif.series[0]
            colour = int(getattr(series.keyframe, "photometric", 1)) in _COLOUR
            return _grey(np.asarray(series.asarray()), series.axes, colour)
    finally:
        log.disabled = disabled


def _with_pillow(path) -> np.ndarray:
    from PIL import Image, ImageSequence  # matplotlib's own image dependency

    with Image.open(path) as im:
        pages = []
        for page in ImageSequence.Iterator(im):
            if page.mode in ("RGB", "RGBA", "CMYK", "P", "LA", "YCbCr"):
                page = page.convert("RGB") if page.mode != "LA" else page.convert("L")
            arr = np.asarray(page)
            pages.append(arr @ _LUMINANCE if arr.ndim == 3 else arr)
    shapes = {p.shape for p in pages}
    if len(shapes) != 1:
        raise ValueError(f"{path}: TIFF pages have different sizes {sorted(shapes)}; expected "
                         "one image or a stack of equal slices")
    return np.stack(pages)


def read_tiff(path: PathLike) -> torch.Tensor:
    """Read a TIFF image or stack.

    Parameters
    ----------
    path : str or os.PathLike
        ``.tif`` / ``.tiff``: one image, a multi-page stack or an ImageJ
        hyperstack (its first series); any integer or float sample format.

    Returns
    -------
    torch.Tensor, float32, shape (D, H, W)
        ``D = 1`` for one image; further leading axes (channels, time) are
        flattened into ``D``.  Values as stored (no scaling; a float TIFF keeps
        its physical values); colour images are converted to luminance
        ``0.299 R + 0.587 G + 0.114 B``, alpha ignored.

    Raises
    ------
    FileNotFoundError
        If `path` is missing.
    ValueError
        If the file is not a readable TIFF, or its samples are not real numbers.
    ImportError
        If tifffile is not installed.
    """
    path = as_path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    tifffile = _tifffile(path)
    try:
        arr = _with_tifffile(path, tifffile)
    except (ValueError, KeyError, NotImplementedError) as e:
        if "imagecodecs" not in str(e):
            raise ValueError(f"{path}: not a readable TIFF file ({type(e).__name__}: "
                             f"{e})") from None
        try:  # a compression tifffile decodes only with imagecodecs: Pillow has its own decoders
            arr = _with_pillow(path)
        except Exception as e2:
            raise ValueError(f"{path}: cannot decode this TIFF file's compression ({e}; Pillow: "
                             f"{e2}); pip install imagecodecs") from None
    except (tifffile.TiffFileError, OSError, EOFError, MemoryError, IndexError) as e:
        raise ValueError(f"{path}: not a readable TIFF file ({type(e).__name__}: {e})") from None
    if arr is None:
        raise ValueError(f"{path}: not a readable TIFF file (it holds no image)")
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{path}: TIFF samples of type {arr.dtype} are not real numbers")
    if arr.ndim < 2 or 0 in arr.shape:
        raise ValueError(f"{path}: TIFF image has shape {arr.shape}; expected (H, W) or (D, H, W)")
    arr = arr.reshape((-1,) + arr.shape[-2:])
    return torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))
