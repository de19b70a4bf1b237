"""Centred orthonormal 2-D discrete Fourier transforms, the fastMRI convention.

k-space is the DFT of the image with the zero frequency at the centre of the array (index
``N // 2`` along each axis, the DC line of fastMRI's data) and the image origin at the centre
pixel too: ``fft2c = fftshift o fft2(norm="ortho") o ifftshift`` over the last two
dimensions, exactly as ``fastmri.fft2c`` [1]_ (and ``sigpy.fft(..., center=True)`` [2]_)
computes it.  Both transforms are unitary: ``ifft2c`` is the exact inverse and the exact
adjoint of ``fft2c``, and ``||fft2c(x)|| == ||x||`` (Parseval).

References
----------
.. [1] J. Zbontar et al., "fastMRI: An open dataset and benchmarks for accelerated MRI",
       arXiv:1811.08839, 2018; ``fastmri/fftc.py``.
.. [2] F. Ong and M. Lustig, "SigPy: a python package for high performance iterative
       reconstruction", ISMRM 2019; ``sigpy/fourier.py``.
"""

from __future__ import annotations

import torch

__all__ = ["fft2c", "ifft2c"]

_DIMS = (-2, -1)


def _check(x, name: str) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} expects a torch.Tensor, got {type(x).__name__}")
    if x.dim() < 2:
        raise ValueError(f"{name} expects at least 2 dimensions (..., H, W), got shape "
                         f"{tuple(x.shape)}")
    if not x.is_complex():
        raise TypeError(f"{name} expects a complex tensor (complex64 or complex128), got "
                        f"{x.dtype}; convert real images with "
                        f"torch.complex(x, torch.zeros_like(x))")


def fft2c(x: torch.Tensor) -> torch.Tensor:
    """Centred orthonormal 2-D DFT over the last two dimensions.

    Parameters
    ----------
    x : torch.Tensor, complex, shape (..., H, W)
        Images (any leading dimensions), origin at pixel ``(H // 2, W // 2)``.

    Returns
    -------
    torch.Tensor, same shape, dtype and device
        k-space with the zero frequency at ``(H // 2, W // 2)``:
        ``fftshift(fftn(ifftshift(x), norm="ortho"))``.
    """
    _check(x, "fft2c")
    x = torch.fft.ifftshift(x, dim=_DIMS)
    return torch.fft.fftshift(torch.fft.fftn(x, dim=_DIMS, norm="ortho"), dim=_DIMS)


def ifft2c(k: torch.Tensor) -> torch.Tensor:
    """Centred orthonormal inverse 2-D DFT over the last two dimensions: the inverse and the
    adjoint of :func:`fft2c`, ``fftshift(ifftn(ifftshift(k), norm="ortho"))``.

    Parameters
    ----------
    k : torch.Tensor, complex, shape (..., H, W)
        k-space, zero frequency at ``(H // 2, W // 2)``.

    Returns
    -------
    torch.Tensor, same shape, dtype and device
    """
    _check(k, "ifft2c")
    k = torch.fft.ifftshift(k, dim=_DIMS)
    return torch.fft.fftshift(torch.fft.ifftn(k, dim=_DIMS, norm="ortho"), dim=_DIMS)
