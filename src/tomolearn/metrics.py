"""
metrics.py - Image quality measures (DIVal convention).

PSNR and SSIM for batches of images, with the data range taken per image
from the ground truth as ``max(gt) - min(gt)`` unless given, as in DIVal's
``dival.measure.PSNR`` and ``dival.measure.SSIM``. SSIM equals
``skimage.metrics.structural_similarity`` with its default settings (7 x 7
uniform window, ``K1 = 0.01``, ``K2 = 0.03``, sample covariance), which is
what DIVal calls.

Accepted shapes
---------------
``(H, W)`` (one image), ``(C, H, W)`` (one image with C channels) or
``(B, C, H, W)`` (a batch). The result is a 0-dim tensor for 2-D and 3-D
input and a ``(B,)`` tensor for 4-D input. Metric values are computed and
returned in float64 (float32 on devices without float64, such as MPS).

Complex images (MRI)
--------------------
When ``x`` or ``gt`` is complex, both are scored on their magnitudes, as fastMRI
does [4]_: ``|x|`` is compared with ``|gt|`` (a real image on either side is
taken by its absolute value), and the default data range is the maximum of the
target magnitude per image, ``max |gt|`` (fastMRI's ``maxval = gt.max()``, per
image here rather than per volume).  DIVal's real-image rule ``max - min``
applied to magnitudes gives the same value whenever the target magnitude
reaches 0 somewhere (a background, as in every image family of
:mod:`tomolearn.data`), and a smaller range, hence a lower PSNR, for
magnitudes that never vanish; the fastMRI rule is used so that numbers compare
with published MRI results.  The phase is not scored.  Real images are scored
exactly as before (DIVal's convention).

References
----------
.. [1] Z. Wang, A. C. Bovik, H. R. Sheikh and E. P. Simoncelli, "Image
       quality assessment: From error visibility to structural similarity",
       IEEE Trans. Image Process. 13(4), 600-612, 2004.
       :DOI:`10.1109/TIP.2003.819861`
.. [2] DIVal, ``dival/measure.py``, https://github.com/jleuschn/dival
.. [3] scikit-image, ``skimage/metrics/_structural_similarity.py``.
.. [4] J. Zbontar et al., "fastMRI: An open dataset and benchmarks for
       accelerated MRI", arXiv:1811.08839, 2018; ``fastmri/evaluate.py``
       (``psnr``, ``ssim`` on magnitude images with ``maxval = gt.max()``).
"""

from __future__ import annotations

import math
import numbers

import torch
import torch.nn.functional as F

__all__ = ["psnr", "ssim"]

_WIN_SIZE = 7
_K1 = 0.01
_K2 = 0.03


def _work_dtype(device):
    return torch.float32 if device.type == "mps" else torch.float64


def _prepare(x, gt):
    """Validate a pair of images; return 4-D working copies, the batch flag and whether they
    were complex (then the copies are the magnitudes)."""
    for name, t in (("x", x), ("gt", gt)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"`{name}` must be a torch.Tensor, got {type(t).__name__}")
        if not (t.dtype.is_floating_point or t.dtype.is_complex):
            raise TypeError(f"`{name}` must have a floating or complex dtype, got {t.dtype}")
    if x.shape != gt.shape:
        raise ValueError(
            f"`x` and `gt` must have the same shape, got {tuple(x.shape)} and {tuple(gt.shape)}"
        )
    if x.ndim not in (2, 3, 4):
        raise ValueError(
            "images must have shape (H, W), (C, H, W) or (B, C, H, W), "
            f"got {x.ndim}-D shape {tuple(x.shape)}"
        )
    if x.device != gt.device:
        raise ValueError(f"`x` is on {x.device} but `gt` is on {gt.device}")
    batched = x.ndim == 4
    shape4 = (1,) * (4 - x.ndim) + tuple(x.shape)
    dt = _work_dtype(x.device)
    magnitude = x.dtype.is_complex or gt.dtype.is_complex
    if magnitude:  # fastMRI: score |x| against |gt| (module docstring)
        x, gt = x.abs(), gt.abs()
    return x.reshape(shape4).to(dt), gt.reshape(shape4).to(dt), batched, magnitude


def _data_range(data_range, gt4, magnitude=False):
    """Per-image data range, shape (B,): ``max - min`` (DIVal) or, for magnitudes of complex
    images, ``max`` (fastMRI)."""
    b = gt4.shape[0]
    if data_range is None:
        flat = gt4.reshape(b, -1)
        if magnitude:
            return flat.amax(dim=1)
        return flat.amax(dim=1) - flat.amin(dim=1)
    if isinstance(data_range, torch.Tensor):
        dr = data_range.to(device=gt4.device, dtype=gt4.dtype)
        if dr.ndim == 0:
            dr = dr.expand(b)
        elif dr.shape != (b,):
            raise ValueError(
                f"`data_range` must be a scalar or have shape (B,) = ({b},), "
                f"got shape {tuple(dr.shape)}"
            )
    elif isinstance(data_range, numbers.Real) and not isinstance(data_range, bool):
        dr = torch.full((b,), float(data_range), dtype=gt4.dtype, device=gt4.device)
    else:
        raise TypeError(
            "`data_range` must be None, a real number or a tensor of shape (B,), "
            f"got {type(data_range).__name__}"
        )
    if not bool(torch.isfinite(dr).all()) or bool((dr <= 0).any()):
        raise ValueError(f"`data_range` must be finite and > 0, got {data_range}")
    return dr


def _finish(values, batched):
    return values if batched else values[0]


def psnr(x, gt, data_range=None):
    """Peak signal-to-noise ratio per image, in dB.

    ``PSNR = 20 log10(data_range) - 10 log10(MSE)``, with
    ``MSE = mean((x - gt)**2)`` over each image (all channels and pixels)
    and ``data_range = max(gt) - min(gt)`` per image unless given. Equals
    ``dival.measure.PSNR(x, gt)`` for each image.  Complex images are scored on
    their magnitudes with ``data_range = max |gt|`` (fastMRI's ``psnr``; module
    docstring).

    Parameters
    ----------
    x : torch.Tensor, shape (H, W), (C, H, W) or (B, C, H, W)
        Reconstruction(s), real floating or complex dtype.
    gt : torch.Tensor, same shape as `x`
        Ground truth image(s).
    data_range : float or torch.Tensor of shape (B,), optional
        Peak-to-peak range of the signal (> 0). Default: per image
        ``max(gt) - min(gt)`` (``max |gt|`` for complex images).

    Returns
    -------
    psnr : torch.Tensor
        Shape ``(B,)`` for 4-D input, 0-dim otherwise; float64 (float32 on
        MPS). ``+inf`` where ``x == gt`` exactly (DIVal convention); ``-inf``
        where the automatic data range is 0 but the MSE is not.

    Raises
    ------
    TypeError
        If the inputs are not floating or complex torch tensors.
    ValueError
        If the shapes differ or are not 2-, 3- or 4-D, the devices differ,
        or a given `data_range` is not positive and finite.
    """
    x4, gt4, batched, magnitude = _prepare(x, gt)
    dr = _data_range(data_range, gt4, magnitude)
    mse = (x4 - gt4).square().reshape(x4.shape[0], -1).mean(dim=1)
    value = 20.0 * torch.log10(dr) - 10.0 * torch.log10(mse)
    value = torch.where(mse == 0, torch.full_like(value, math.inf), value)
    return _finish(value, batched)


def ssim(x, gt, data_range=None):
    """Structural similarity index (mean SSIM) per image.

    Equal to ``skimage.metrics.structural_similarity(x, gt,
    data_range=max(gt) - min(gt))`` with scikit-image's defaults, i.e.
    DIVal's ``dival.measure.SSIM``: local statistics over a 7 x 7 uniform
    window, ``C1 = (0.01 L)**2``, ``C2 = (0.03 L)**2`` with ``L`` the data
    range, sample (co)variances (factor 49/48), and the SSIM map averaged
    over the pixels at least 3 pixels away from the border (scikit-image
    crops ``(win_size - 1) // 2`` pixels, where its reflect-padded filter
    equals the "valid" window average used here). For multi-channel images
    the per-channel SSIMs are averaged, as scikit-image does with
    ``channel_axis``.  Complex images are scored on their magnitudes with
    ``L = max |gt|`` (fastMRI's ``ssim``; module docstring).

    Parameters
    ----------
    x : torch.Tensor, shape (H, W), (C, H, W) or (B, C, H, W)
        Reconstruction(s), real floating or complex dtype; ``H, W >= 7``.
    gt : torch.Tensor, same shape as `x`
        Ground truth image(s).
    data_range : float or torch.Tensor of shape (B,), optional
        Data range ``L`` (> 0). Default: per image ``max(gt) - min(gt)``
        over all channels (``max |gt|`` for complex images).

    Returns
    -------
    ssim : torch.Tensor
        Shape ``(B,)`` for 4-D input, 0-dim otherwise; float64 (float32 on
        MPS). Differentiable with respect to `x`.

    Raises
    ------
    TypeError
        If the inputs are not floating or complex torch tensors.
    ValueError
        If the shapes differ, are not 2-, 3- or 4-D, or smaller than 7 x 7,
        the devices differ, or a given `data_range` is not positive.

    Notes
    -----
    With the automatic data range, a constant ground truth gives ``L = 0``
    and hence ``C1 = C2 = 0``; the result is then nan wherever the local
    statistics vanish (scikit-image behaves the same).
    """
    x4, gt4, batched, magnitude = _prepare(x, gt)
    b, c, h, w = x4.shape
    if h < _WIN_SIZE or w < _WIN_SIZE:
        raise ValueError(
            f"images must be at least {_WIN_SIZE} x {_WIN_SIZE} pixels for SSIM, got {h} x {w}"
        )
    dr = _data_range(data_range, gt4, magnitude).reshape(b, 1, 1, 1)
    c1 = (_K1 * dr) ** 2
    c2 = (_K2 * dr) ** 2
    stacked = torch.cat((x4, gt4, x4 * x4, gt4 * gt4, x4 * gt4), dim=1)
    means = F.avg_pool2d(stacked, kernel_size=_WIN_SIZE, stride=1)
    ux, uy, uxx, uyy, uxy = means.split(c, dim=1)
    n_p = _WIN_SIZE * _WIN_SIZE
    cov_norm = n_p / (n_p - 1.0)
    vx = cov_norm * (uxx - ux * ux)
    vy = cov_norm * (uyy - uy * uy)
    vxy = cov_norm * (uxy - ux * uy)
    s_map = ((2.0 * ux * uy + c1) * (2.0 * vxy + c2)) / (
        (ux * ux + uy * uy + c1) * (vx + vy + c2)
    )
    return _finish(s_map.mean(dim=(1, 2, 3)), batched)
