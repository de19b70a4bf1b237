"""ESPIRiT coil-sensitivity estimation from the auto-calibration region of k-space.

ESPIRiT [1]_ finds the sensitivities as the eigenvectors, with eigenvalue 1, of a small
Hermitian matrix per pixel:

1. the calibration matrix ``A``: every ``kernel_width x kernel_width`` patch of the fully
   sampled centre of k-space (``calib_width x calib_width``, all coils), one row per patch
   position, columns ``(coil, ky, kx)`` (a block-Hankel matrix);
2. its SVD ``A = U S V^H``; the right singular vectors with ``s > thresh * s_max`` span the
   signal subspace (the "kernels", ``(K, n_coils, w, w)``);
3. the kernels in image space: ``G(p) = (N / w^2) sum_k g_k(p) g_k(p)^H`` with ``g_k`` the
   centred inverse DFT of kernel ``k`` zero-padded to the image size ``N = H W`` (computed
   here from the kernels' cross-correlations, ``n_coils (n_coils + 1) / 2`` image-sized FFTs
   instead of ``K n_coils``);
4. per pixel, the eigenvector of ``G(p)`` with the largest eigenvalue (``torch.linalg.eigh``,
   exact, where sigpy runs a power iteration); where that eigenvalue is ``> crop`` (close to
   1: inside the object) it is the coil-sensitivity vector, elsewhere the maps are 0.

The maps are defined up to one phase per pixel; they are returned with the phase of the first
coil removed (coil 0 real and non-negative) and with ``sum_c |S_c|^2 = 1`` inside the support
(eigenvectors have unit norm), 0 outside it.  Projections ``S S^H`` do not depend on the phase
choice.  Use them with ``MultiCoilSENSE(maps, mask, normalized=False)``.

The conventions are sigpy's ``sigpy.mri.app.EspiritCalib`` [2]_ (calibration region and kernel
placement as ``sigpy.resize``, centred orthonormal FFTs as :func:`fft2c`), which the tests
compare against.

References
----------
.. [1] M. Uecker, P. Lai, M. J. Murphy, P. Virtue, M. Elad, J. M. Pauly, S. S. Vasanawala and
       M. Lustig, "ESPIRiT - an eigenvalue approach to autocalibrating parallel MRI: where
       SENSE meets GRAPPA", Magn. Reson. Med. 71(3), 990-1001, 2014.
.. [2] F. Ong and M. Lustig, "SigPy: a python package for high performance iterative
       reconstruction", ISMRM 2019; ``sigpy/mri/app.py``.
"""

from __future__ import annotations

import math
from typing import Optional, Tuple, Union

import numpy as np
import torch

from ...operators.fourier import ifft2c

__all__ = ["espirit_maps", "espirit_kernels"]

Size = Union[int, Tuple[int, int]]


def _pair(value, name: str) -> Tuple[int, int]:
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        value = (int(value), int(value))
    try:
        out = tuple(int(v) for v in value)
        ok = len(out) == 2 and all(v > 0 and v == w for v, w in zip(out, value))
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"{name} must be a positive int or two positive ints, got {value!r}")
    return out


def _kspace(kspace) -> torch.Tensor:
    if isinstance(kspace, np.ndarray):
        kspace = torch.from_numpy(np.ascontiguousarray(kspace))
    if not isinstance(kspace, torch.Tensor):
        raise TypeError(f"kspace must be a torch.Tensor or numpy array (n_coils, H, W) or "
                        f"(B, n_coils, H, W), got {type(kspace).__name__}")
    if not kspace.is_complex():
        raise TypeError(f"kspace must be complex (complex64 or complex128), got {kspace.dtype}")
    if kspace.dim() not in (3, 4) or kspace.numel() == 0:
        raise ValueError(f"kspace must have shape (n_coils, H, W) or (B, n_coils, H, W), got "
                         f"{tuple(kspace.shape)}")
    if not bool(torch.isfinite(kspace).all()):
        raise ValueError("kspace contains NaN or infinite values")
    return kspace


def _centre_crop(x: torch.Tensor, shape: Tuple[int, int]) -> torch.Tensor:
    """The centred ``shape`` block of the last two axes, placed as ``sigpy.resize`` does."""
    (h, w), (ch, cw) = x.shape[-2:], shape
    r0, c0 = h // 2 - ch // 2, w // 2 - cw // 2
    return x[..., r0:r0 + ch, c0:c0 + cw]


def espirit_kernels(calib: torch.Tensor, kernel_width: Size = 6,
                    thresh: float = 0.02) -> torch.Tensor:
    """The signal-subspace kernels of one calibration block (steps 1-2 above).

    Parameters
    ----------
    calib : torch.Tensor, complex, (n_coils, ch, cw)
        Fully sampled centre of k-space.
    kernel_width : int or (int, int)
    thresh : float
        Keep the right singular vectors with singular value ``> thresh * max``.

    Returns
    -------
    torch.Tensor, complex128, (K, n_coils, kh, kw)
        The rows of ``V^H`` kept, reshaped (sigpy's layout), on ``calib``'s device.
    """
    kh, kw = _pair(kernel_width, "kernel_width")
    n_coils, ch, cw = calib.shape
    if kh > ch or kw > cw:
        raise ValueError(f"kernel_width {(kh, kw)} is larger than the calibration region "
                         f"{(ch, cw)}")
    calib = calib.to(torch.complex128)
    patches = calib.unfold(1, kh, 1).unfold(2, kw, 1)  # (C, nb_y, nb_x, kh, kw)
    mat = patches.reshape(n_coils, -1, kh * kw).transpose(0, 1).reshape(-1, n_coils * kh * kw)
    _, s, vh = torch.linalg.svd(mat, full_matrices=False)
    if not bool(s[0] > 0):
        raise ValueError("the calibration region is all zeros")
    vh = vh[s > thresh * s[0]]
    return vh.reshape(-1, n_coils, kh, kw)


def _image_space_gram(kernels: torch.Tensor, image_shape: Tuple[int, int],
                      dtype: torch.dtype) -> torch.Tensor:
    """``G(p)`` of step 3 for every pixel, ``(H, W, C, C)`` with only the lower triangle
    filled (what ``eigh`` reads).

    ``sum_k g_kc(p) conj(g_kd(p))`` is the centred inverse DFT of the cross-correlation
    ``R_cd(t) = sum_k sum_u V_kc(u + t) conj(V_kd(u))`` (lags ``|t| < w``) placed with lag 0 at
    ``(H // 2, W // 2)``, times ``1 / sqrt(N)``; sigpy's scale ``N / w^2`` then gives
    ``sqrt(N) / w^2``.
    """
    k, c, kh, kw = kernels.shape
    h, w = image_shape
    if h < 2 * kh - 1 or w < 2 * kw - 1:
        raise ValueError(f"the image {image_shape} must be at least 2 * kernel_width - 1 = "
                         f"{(2 * kh - 1, 2 * kw - 1)} pixels")
    rows, cols = torch.tril_indices(c, c, device=kernels.device)
    flat = kernels.reshape(k, c, kh * kw)
    # P[pair, u, v] = sum_k V_k,c(u) conj(V_k,d(v)) for the lower-triangle pairs (c >= d)
    pairs = torch.einsum("kpu,kpv->puv", flat[:, rows], flat[:, cols].conj())
    pairs = pairs.reshape(-1, kh, kw, kh, kw)
    corr = torch.zeros(len(rows), 2 * kh - 1, 2 * kw - 1, dtype=pairs.dtype,
                       device=pairs.device)
    for e in range(kh):  # lag t = u - v: u at [a, b], v at [e, f]
        for f in range(kw):
            corr[:, kh - 1 - e:2 * kh - 1 - e, kw - 1 - f:2 * kw - 1 - f] += pairs[:, :, :, e, f]
    padded = torch.zeros(len(rows), h, w, dtype=dtype, device=pairs.device)
    r0, c0 = h // 2 - (kh - 1), w // 2 - (kw - 1)
    padded[:, r0:r0 + 2 * kh - 1, c0:c0 + 2 * kw - 1] = corr.to(dtype)
    lower = ifft2c(padded) * (math.sqrt(h * w) / (kh * kw))  # (pairs, H, W)
    gram = torch.zeros(h, w, c, c, dtype=dtype, device=pairs.device)
    gram[:, :, rows, cols] = lower.permute(1, 2, 0)
    return gram


def _maps_one(kspace: torch.Tensor, calib_shape, kernel_width, thresh, crop, image_shape,
              rows_per_chunk: int):
    n_coils = kspace.shape[0]
    calib = _centre_crop(kspace, calib_shape)
    if not bool((calib != 0).any()):
        raise ValueError("the calibration region is all zeros")
    zero_cols = (calib.abs().sum(dim=(0, 1)) == 0).nonzero().flatten()
    zero_rows = (calib.abs().sum(dim=(0, 2)) == 0).nonzero().flatten()
    if len(zero_cols) or len(zero_rows):
        what = (f"column {int(zero_cols[0]) + kspace.shape[-1] // 2 - calib_shape[1] // 2}"
                if len(zero_cols) else
                f"row {int(zero_rows[0]) + kspace.shape[-2] // 2 - calib_shape[0] // 2}")
        raise ValueError(f"the calibration region {calib_shape} is not fully sampled (k-space "
                         f"{what} is zero in every coil); use a calib_width within the "
                         f"auto-calibration lines (e.g. the width of acs_columns(mask))")
    kernels = espirit_kernels(calib, kernel_width, thresh)
    gram = _image_space_gram(kernels, image_shape, kspace.dtype)
    h, w = image_shape
    maps = torch.empty(n_coils, h, w, dtype=kspace.dtype, device=kspace.device)
    eig = torch.empty(h, w, dtype=kspace.real.dtype, device=kspace.device)
    for r in range(0, h, rows_per_chunk):  # bounds the eigh workspace
        values, vectors = torch.linalg.eigh(gram[r:r + rows_per_chunk], UPLO="L")
        eig[r:r + rows_per_chunk] = values[..., -1]
        maps[:, r:r + rows_per_chunk] = vectors[..., -1].permute(2, 0, 1)
    first = maps[0]
    mag = first.abs()
    maps = maps * torch.where(mag > 0, first.conj() / torch.where(mag > 0, mag, 1), 1)
    return maps * (eig > crop), eig


def espirit_maps(kspace, calib_width: Size = 24, kernel_width: Size = 6, thresh: float = 0.02,
                 crop: float = 0.95, image_shape: Optional[Size] = None,
                 return_eigenvalues: bool = False, rows_per_chunk: int = 64):
    """ESPIRiT coil sensitivities [1]_ from the centre of multi-coil k-space.

    Parameters
    ----------
    kspace : torch.Tensor or numpy.ndarray, complex, (n_coils, H, W) or (B, n_coils, H, W)
        Multi-coil k-space in the centred layout (:func:`fft2c`, zero frequency at
        ``(H // 2, W // 2)``), zero-filled or fully sampled; or only its centre (then give
        ``image_shape``).  A ``(B, 1, n_coils, H, W)`` batch from :class:`MultiCoilSENSE`
        should be indexed ``y[:, 0]``.
    calib_width : int or (int, int)
        Size of the fully sampled centre used for calibration (sigpy's default 24); with a
        fastMRI column mask, at most the number of auto-calibration columns
        (``stop - start`` of :func:`acs_columns`).
    kernel_width : int or (int, int)
        k-space kernel size (6: the paper's and sigpy's default).
    thresh : float
        Relative singular-value threshold of the calibration matrix, in ``(0, 1)``.
    crop : float
        Maps are zero where the top eigenvalue is ``<= crop`` (0.95 as sigpy), in ``[0, 1)``.
    image_shape : int or (int, int), optional
        Shape of the maps; default ``kspace``'s ``(H, W)``.
    return_eigenvalues : bool
        Also return the top eigenvalue per pixel.
    rows_per_chunk : int
        Image rows decomposed together (memory only; the matrices themselves take
        ``n_coils^2 H W`` complex values of ``kspace``'s precision, plus half that for the
        FFTs).

    Returns
    -------
    maps : torch.Tensor, (n_coils, H, W) or (B, n_coils, H, W), ``kspace``'s complex dtype
        and device; coil 0 real non-negative, ``sum_c |S_c|^2 = 1`` where the eigenvalue is
        ``> crop``, 0 elsewhere.
    eigenvalues : torch.Tensor, real, (H, W) or (B, H, W)
        Only with ``return_eigenvalues``.

    Raises
    ------
    TypeError, ValueError
        On real or malformed k-space, a calibration region larger than k-space or not fully
        sampled, an image smaller than ``2 * kernel_width - 1``, or parameters out of range.
    """
    kspace = _kspace(kspace)
    calib_shape = _pair(calib_width, "calib_width")
    kernel_shape = _pair(kernel_width, "kernel_width")
    image_shape = tuple(kspace.shape[-2:]) if image_shape is None else _pair(image_shape,
                                                                             "image_shape")
    if any(c > s for c, s in zip(calib_shape, kspace.shape[-2:])):
        raise ValueError(f"calib_width {calib_shape} is larger than the k-space "
                         f"{tuple(kspace.shape[-2:])}")
    if any(k > c for k, c in zip(kernel_shape, calib_shape)):
        raise ValueError(f"kernel_width {kernel_shape} is larger than calib_width {calib_shape}")
    if not (isinstance(thresh, (int, float)) and 0 < thresh < 1):
        raise ValueError(f"thresh must be in (0, 1), got {thresh!r}")
    if not (isinstance(crop, (int, float)) and 0 <= crop < 1):
        raise ValueError(f"crop must be in [0, 1), got {crop!r}")
    if isinstance(rows_per_chunk, bool) or not isinstance(rows_per_chunk, int) or \
            rows_per_chunk < 1:
        raise ValueError(f"rows_per_chunk must be a positive int, got {rows_per_chunk!r}")
    batch = kspace if kspace.dim() == 4 else kspace.unsqueeze(0)
    with torch.no_grad():
        out = [_maps_one(k, calib_shape, kernel_shape, float(thresh), float(crop), image_shape,
                         rows_per_chunk) for k in batch]
    maps = torch.stack([m for m, _ in out])
    eig = torch.stack([e for _, e in out])
    if kspace.dim() == 3:
        maps, eig = maps[0], eig[0]
    return (maps, eig) if return_eigenvalues else maps
