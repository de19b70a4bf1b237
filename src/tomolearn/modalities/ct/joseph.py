"""Joseph's ray-driven sampling: where each ray meets each image column (or row), and with
what weight.

P. M. Joseph, "An improved algorithm for reprojecting rays through pixel images",
IEEE Trans. Med. Imaging 1(3), 192-196, 1982.
"""

from __future__ import annotations

import torch

__all__ = []


def _joseph_samples(p: torch.Tensor, d: torch.Tensor, shape, pixel_size: float, dtype):
    """Joseph samples of the rays ``p + s d`` through an image of ``shape``.

    Each ray is sampled at every column it crosses when it is closer to
    parallel with the x axis (otherwise at every row), and the image is
    linearly interpolated between the two pixels of that column (row) that
    enclose the sample; the sample is weighted with the ray length per
    column (row).

    Indices refer to the image zero-padded to ``(H + 3, W + 3)`` (one pad
    row/column before, two after), with pixel ``(i, j)`` at flat index
    ``(i + 1) * (W + 3) + j + 1``.  Samples outside the image are clamped
    onto the pad, where they read and write zeros, so no masks are needed.

    Parameters
    ----------
    p, d : torch.Tensor, shape (R, 2), float64
        A point on each ray and its direction, physical (x, y) coordinates.
    shape : (H, W)
    pixel_size : float
    dtype : torch.dtype
        Of the returned weights (positions are computed in float64).

    Returns
    -------
    list of (rays, index0, index1, w0, w1)
        One entry per stepping axis present: ``rays`` (LongTensor (R_g,))
        are the positions of the group's rays in the input, ``index0`` and
        ``index1`` (LongTensor (R_g, S)) the padded flat indices of the two
        interpolated pixels of each of the ``S`` samples, ``w0`` and ``w1``
        (R_g, S) their weights.
    """
    H, W = shape
    Wp = W + 3
    # Continuous index coordinates: column u = x/ps + (W-1)/2, row v = (H-1)/2 - y/ps.
    pu = p[:, 0] / pixel_size + (W - 1) / 2
    pv = (H - 1) / 2 - p[:, 1] / pixel_size
    du, dv = d[:, 0], -d[:, 1]
    over_cols = du.abs() >= dv.abs()
    groups = []
    for cols in (True, False):
        rays = torch.nonzero(over_cols if cols else ~over_cols).reshape(-1)
        if rays.numel() == 0:
            continue
        # Step along axis a (columns or rows), interpolate across axis b.
        pa, pb = (pu[rays], pv[rays]) if cols else (pv[rays], pu[rays])
        da, db = (du[rays], dv[rays]) if cols else (dv[rays], du[rays])
        n_a, n_b = (W, H) if cols else (H, W)
        length = pixel_size * torch.sqrt(da * da + db * db) / da.abs()
        a = torch.arange(n_a, device=p.device, dtype=p.dtype)
        slope = db / da
        b = (pb - pa * slope)[:, None] + a[None, :] * slope[:, None]
        b.clamp_(-1, n_b)  # beyond the image: onto the pad
        b0 = torch.floor(b)
        w1 = ((b - b0) * length[:, None]).to(dtype)
        w0 = length[:, None].to(dtype) - w1
        b0 = b0.long() + 1
        a_pad = torch.arange(1, n_a + 1, device=p.device)[None, :]
        if cols:
            index0 = b0 * Wp + a_pad
            index1 = index0 + Wp
        else:
            index0 = a_pad * Wp + b0
            index1 = index0 + 1
        groups.append((rays, index0, index1, w0, w1))
    return groups


def _pad(images: torch.Tensor) -> torch.Tensor:
    """(N, H, W) -> (N, H + 3, W + 3), the zero padding of :func:`_joseph_samples`."""
    return torch.nn.functional.pad(images, (1, 2, 1, 2))
