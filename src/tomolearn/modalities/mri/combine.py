"""Coil combination: root-sum-of-squares and the sensitivity-weighted (SENSE / Roemer) sum.

References
----------
.. [1] P. B. Roemer, W. A. Edelstein, C. E. Hayes, S. P. Souza and O. M. Mueller, "The NMR
       phased array", Magn. Reson. Med. 16(2), 192-225, 1990.
.. [2] J. Zbontar et al., "fastMRI: An open dataset and benchmarks for accelerated MRI",
       arXiv:1811.08839, 2018; ``fastmri.rss`` / ``fastmri.rss_complex``.
"""

from __future__ import annotations

import torch

from .coils import validate_maps
from ...operators.fourier import ifft2c

__all__ = ["rss", "coil_combine"]


def rss(coil_images: torch.Tensor, dim: int = -3) -> torch.Tensor:
    """Root-sum-of-squares ``sqrt(sum_c |x_c|^2)`` over the coil dimension (fastMRI's ``rss``
    for real and ``rss_complex`` for complex coil images [2]_).

    Parameters
    ----------
    coil_images : torch.Tensor, real or complex
        Coil images, e.g. ``(B, C, n_coils, H, W)`` or ``(n_coils, H, W)``.
    dim : int
        The coil dimension; default ``-3`` (the ``n_coils`` of ``(..., n_coils, H, W)``, which
        is fastMRI's ``dim=0`` for an ``(n_coils, H, W)`` array).

    Returns
    -------
    torch.Tensor, real, the input's shape without ``dim``
        A magnitude image: no phase, and weighted by ``sqrt(sum_c |S_c|^2)`` (1 for maps
        normalised as :func:`~tomolearn.modalities.mri.coils.birdcage_maps` makes them).
    """
    if not isinstance(coil_images, torch.Tensor):
        raise TypeError(f"rss expects a torch.Tensor, got {type(coil_images).__name__}")
    if not (coil_images.is_complex() or coil_images.is_floating_point()):
        raise TypeError(f"rss expects real floating or complex coil images, got "
                        f"{coil_images.dtype}")
    if coil_images.dim() == 0 or not -coil_images.dim() <= dim < coil_images.dim():
        raise ValueError(f"dim={dim} is not a dimension of coil images of shape "
                         f"{tuple(coil_images.shape)}")
    return torch.sqrt((coil_images.abs() ** 2).sum(dim))


def coil_combine(kspace: torch.Tensor, maps: torch.Tensor) -> torch.Tensor:
    """The sensitivity-weighted combination ``sum_c conj(S_c) ifft2c(k_c)`` [1]_.

    For maps with ``sum_c |S_c|^2 = 1`` this is the least-squares image of fully sampled
    coil data (and ``A^H y`` of the SENSE operator when ``kspace`` is zero-filled): a complex
    image with the object's phase, comparable with a complex ground truth.

    Parameters
    ----------
    kspace : torch.Tensor, complex, (B, C, n_coils, H, W)
    maps : torch.Tensor, complex, (n_coils, H, W)

    Returns
    -------
    torch.Tensor, complex, (B, C, H, W), the dtype and device of ``kspace``
    """
    maps = validate_maps(maps, normalized=False)
    if not isinstance(kspace, torch.Tensor) or not kspace.is_complex() or kspace.dim() != 5 \
            or tuple(kspace.shape[2:]) != tuple(maps.shape):
        shape = tuple(kspace.shape) if isinstance(kspace, torch.Tensor) else type(kspace).__name__
        raise ValueError(f"coil_combine expects complex k-space of shape (B, C, "
                         f"{', '.join(map(str, maps.shape))}), got {shape}")
    maps = maps.to(device=kspace.device, dtype=kspace.dtype)
    return (ifft2c(kspace) * maps.conj()).sum(dim=2)
