"""Resampling slices to another pixel grid (area average when shrinking) and LoDoPaB's value range."""

from __future__ import annotations

import math
import numbers
from typing import Tuple

import numpy as np
import torch

from ...noise import MU_MAX

__all__ = ["resample", "slice_to_unit_range"]


def _pair(value, name) -> Tuple[float, float]:
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        value = (value, value)
    try:
        out = tuple(float(v) for v in value)
    except TypeError:
        raise TypeError(f"{name} must be a number or a (row, column) pair, got {value!r}") \
            from None
    if len(out) != 2:
        raise ValueError(f"{name} must be a number or a (row, column) pair, got {value!r} "
                         "(resampling is in-plane only: pass the in-plane part of a 3-D "
                         "spacing)")
    if not all(math.isfinite(v) and v > 0 for v in out):
        raise ValueError(f"{name} must be finite and positive, got {value!r}")
    return out


def _shape_pair(shape) -> Tuple[int, int]:
    if isinstance(shape, (int, np.integer)) and not isinstance(shape, bool):
        shape = (shape, shape)
    if not isinstance(shape, (tuple, list, torch.Size)) or len(shape) != 2 or not all(
            isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s > 0
            for s in shape):
        raise ValueError(f"shape must be a positive int or (H, W) of positive ints, got {shape!r}")
    return int(shape[0]), int(shape[1])


def _axis_weights(n_in: int, s_in: float, n_out: int, s_out: float):
    """Resampling matrix ``(n_out, n_in)`` along one axis and the covered fraction ``(n_out,)``.

    Both grids are centred on 0.  Output cell ``o`` covers
    ``[(o - n_out/2) s_out, (o + 1 - n_out/2) s_out]``.  For ``s_out >=
    s_in`` (down-sampling or same size) the weight of input cell ``i`` is
    its overlap with that interval divided by ``s_out`` (box / area
    average); for ``s_out < s_in`` it is linear interpolation at the output
    pixel centre (edge values held within half an input pixel).  The covered
    fraction is the part of the output cell inside the input field of view.
    """
    w = np.zeros((n_out, n_in))
    o = np.arange(n_out)
    if s_out >= s_in:
        lo_out = (o - n_out / 2.0) * s_out
        hi_out = (o + 1 - n_out / 2.0) * s_out
        i = np.arange(n_in)
        lo_in = (i - n_in / 2.0) * s_in
        hi_in = (i + 1 - n_in / 2.0) * s_in
        overlap = np.minimum(hi_out[:, None], hi_in[None, :]) - \
            np.maximum(lo_out[:, None], lo_in[None, :])
        w = np.clip(overlap, 0.0, None) / s_out
        cover = w.sum(axis=1)
        # Round-off: a fully covered cell has weight sum 1.
        cover = np.where(np.abs(cover - 1.0) < 1e-9, 1.0, cover)
        return w, cover
    centre = (o + 0.5 - n_out / 2.0) * s_out
    p = centre / s_in + n_in / 2.0 - 0.5          # continuous input index
    inside = (p >= -0.5 - 1e-9) & (p <= n_in - 0.5 + 1e-9)
    q = np.clip(p, 0.0, n_in - 1.0)
    i0 = np.clip(np.floor(q).astype(np.int64), 0, max(n_in - 2, 0))
    frac = q - i0
    rows = np.flatnonzero(inside)
    if n_in == 1:
        w[rows, 0] = 1.0
    else:
        w[rows, i0[rows]] += 1.0 - frac[rows]
        w[rows, i0[rows] + 1] += frac[rows]
    return w, inside.astype(np.float64)


def resample(image, shape=None, spacing=None, target_spacing=None, *, fill: float = 0.0):
    """Resample 2-D slices to another pixel grid, antialiased when down-sampling.

    Each slice is resampled in-plane (the slice axis of a volume is left
    alone) with a separable linear map, per axis:

    * down-sampling (output pixel at least as large as the input pixel):
      each output pixel is the average of the input over its footprint,
      partial input pixels weighted by their overlap (exact box / "area"
      filter for any, also non-integer, factor; the integral of the image
      over a region is preserved);
    * up-sampling: linear interpolation at the output pixel centres (as
      ``torch.nn.functional.interpolate(mode="bilinear",
      align_corners=False)``).

    Parameters
    ----------
    image : torch.Tensor or numpy.ndarray, shape (H, W) or (D, H, W)
        Real, finite values.
    shape : int or (int, int), optional
        Output ``(H', W')``.  May be left out when both spacings are given:
        then ``round(H * spacing / target_spacing)`` per axis.
    spacing : float or (float, float), optional
        Input pixel size ``(row, column)``, e.g. DICOM PixelSpacing in mm.
    target_spacing : float or (float, float), optional
        Output pixel size in the unit of `spacing`.  With both spacings, the
        output grid covers ``shape * target_spacing`` centred on the input's
        centre: larger fields of view are cropped, smaller ones padded with
        `fill`.  Without `target_spacing`, the output covers exactly the
        input's field of view (pixel size ``spacing * H / H'`` per axis;
        `spacing` itself then does not matter).
    fill : float
        Value outside the input field of view (0 = air in attenuation units).

    Returns
    -------
    torch.Tensor, shape (H', W') or (D, H', W')
        Same dtype as a floating `image` (float32 otherwise), on its device;
        computed in float64.

    Examples
    --------
    A 512 x 512 CT slice with 0.7 mm pixels, to a 128 x 128 grid over the
    LoDoPaB field of view of 260 mm:

    >>> x = resample(ct, (128, 128), spacing=0.7, target_spacing=260 / 128)  # doctest: +SKIP
    """
    if isinstance(image, np.ndarray):
        image = torch.from_numpy(np.ascontiguousarray(image))
    if not isinstance(image, torch.Tensor):
        raise TypeError(f"image must be a torch.Tensor or numpy array, got {type(image).__name__}")
    if image.dim() not in (2, 3):
        raise ValueError(f"image must have shape (H, W) or (D, H, W), got {tuple(image.shape)}")
    if image.is_complex() or image.dtype == torch.bool:
        raise ValueError(f"image must be real numeric, got dtype {image.dtype}")
    if image.numel() == 0:
        raise ValueError(f"image is empty, shape {tuple(image.shape)}")
    out_dtype = image.dtype if image.dtype.is_floating_point else torch.float32
    x = image.to(torch.float64)
    if not bool(torch.isfinite(x).all()):
        raise ValueError("image contains non-finite values (nan or inf)")
    H, W = image.shape[-2:]
    if target_spacing is not None and spacing is None:
        raise ValueError("target_spacing needs spacing (the input pixel size) too")
    if spacing is not None:
        s_in = _pair(spacing, "spacing")
    else:
        s_in = (1.0, 1.0)
    if target_spacing is not None:
        s_out = _pair(target_spacing, "target_spacing")
        if shape is None:
            shape = tuple(max(1, int(round(n * a / b))) for n, a, b in zip((H, W), s_in, s_out))
        shape = _shape_pair(shape)
    else:
        if shape is None:
            raise ValueError("give shape, or both spacing and target_spacing")
        shape = _shape_pair(shape)
        s_out = (s_in[0] * H / shape[0], s_in[1] * W / shape[1])
    if not math.isfinite(fill):
        raise ValueError(f"fill must be finite, got {fill}")
    wr, cr = _axis_weights(H, s_in[0], shape[0], s_out[0])
    wc, cc = _axis_weights(W, s_in[1], shape[1], s_out[1])
    wr = torch.from_numpy(wr).to(x.device)
    wc = torch.from_numpy(wc).to(x.device)
    out = torch.einsum("oh,...hw,pw->...op", wr, x, wc)
    if fill != 0.0:
        uncovered = 1.0 - np.outer(cr, cc)       # fraction of each output pixel outside
        out = out + fill * torch.from_numpy(uncovered).to(x.device)
    return out.to(out_dtype)


def slice_to_unit_range(mu, mu_max: float = MU_MAX):
    """Map linear attenuation to ``[0, 1]`` as LoDoPaB-CT does: ``clip(mu / mu_max, 0, 1)``.

    Parameters
    ----------
    mu : torch.Tensor or numpy.ndarray
        Linear attenuation in 1/m (e.g. from :func:`read_dicom`).
    mu_max : float
        Attenuation mapped to 1, in 1/m; default :data:`tomolearn.noise.MU_MAX`
        = 81.35858 (3071 HU), LoDoPaB-CT's.

    Returns
    -------
    torch.Tensor
        Same shape; float dtype of `mu` (float32 for other dtypes).
    """
    if isinstance(mu, np.ndarray):
        mu = torch.from_numpy(np.ascontiguousarray(mu))
    if not isinstance(mu, torch.Tensor):
        raise TypeError(f"mu must be a torch.Tensor or numpy array, got {type(mu).__name__}")
    if isinstance(mu_max, bool) or not isinstance(mu_max, numbers.Real) or \
            not math.isfinite(mu_max) or mu_max <= 0:
        raise ValueError(f"mu_max must be a finite positive number, got {mu_max!r}")
    if not mu.dtype.is_floating_point:
        mu = mu.to(torch.float32)
    return (mu / float(mu_max)).clamp(0.0, 1.0)
