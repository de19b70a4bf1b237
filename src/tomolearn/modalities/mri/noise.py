"""Complex Gaussian measurement noise for MRI k-space, white or correlated across coils.

Thermal noise in MRI is circularly symmetric complex Gaussian, independent between k-space
samples and, in general, correlated between receive coils with a Hermitian positive definite
covariance ``Psi`` (the noise covariance matrix of a pre-scan) [1]_.  Noise is drawn as
``n = sigma L z`` with ``z`` standard complex normal (``E|z|^2 = 1``: real and imaginary
parts of variance 1/2 each), ``L`` the Cholesky factor of ``Psi / (trace(Psi) / n_coils)``
(so the mean per-coil variance is ``sigma^2``) and ``sigma`` from the SNR below.  Noise is
only added where k-space is sampled: zero-filled entries stay exactly zero.

**SNR** (signal-to-noise ratio) is given in decibels, on amplitudes over the sampled
k-space of each sample::

    snr_db = 20 log10( ||y_clean||_2 / E||n||_2 ),   E||n||_2^2 = sigma^2 n_sampled

where ``n_sampled`` counts the sampled complex entries of one sample (all channels and
coils) and both norms run over them.  So ``sigma = ||y_clean|| / (sqrt(n_sampled) 10^(snr_db
/ 20))``: 20 dB means noise of a tenth the signal's root-mean-square amplitude.

References
----------
.. [1] P. B. Roemer, W. A. Edelstein, C. E. Hayes, S. P. Souza and O. M. Mueller, "The NMR
       phased array", Magn. Reson. Med. 16(2), 192-225, 1990.
"""

from __future__ import annotations

import math
from typing import Optional

import torch

__all__ = ["complex_gaussian_noise", "noise_sigma"]


def _sampled(y: torch.Tensor, mask: Optional[torch.Tensor]) -> torch.Tensor:
    """Boolean tensor broadcastable to ``y``: the sampled entries."""
    if mask is None:
        return torch.ones((1,) * y.dim(), dtype=torch.bool, device=y.device)
    mask = torch.as_tensor(mask, device=y.device)
    if mask.dim() > y.dim() or tuple(mask.shape) != tuple(y.shape[y.dim() - mask.dim():]):
        raise ValueError(f"mask of shape {tuple(mask.shape)} does not match the trailing "
                         f"dimensions of the data {tuple(y.shape)}")
    return (mask != 0).reshape((1,) * (y.dim() - mask.dim()) + tuple(mask.shape))


def noise_sigma(y_clean: torch.Tensor, snr_db: float, mask=None) -> torch.Tensor:
    """Per-sample ``sigma`` (``(B,)`` float64) of noise at ``snr_db`` for clean data
    ``y_clean`` of shape ``(B, ...)`` (the module docstring defines the SNR)."""
    if isinstance(snr_db, bool) or not isinstance(snr_db, (int, float)) or \
            not math.isfinite(snr_db):
        raise ValueError(f"snr_db must be a finite number (decibels), got {snr_db!r}")
    sampled = _sampled(y_clean, mask).expand(y_clean.shape)
    energy = (y_clean.detach().abs().double() ** 2 * sampled).reshape(y_clean.shape[0], -1).sum(1)
    count = sampled.reshape(y_clean.shape[0], -1).sum(1).clamp_min(1).double()
    return torch.sqrt(energy / count) / 10 ** (snr_db / 20)


def _cholesky(covariance, n_coils: int) -> torch.Tensor:
    cov = torch.as_tensor(covariance)
    if cov.dim() != 2 or tuple(cov.shape) != (n_coils, n_coils):
        raise ValueError(f"the coil covariance must be ({n_coils}, {n_coils}) for {n_coils} "
                         f"coils, got {tuple(cov.shape)}")
    cov = cov.to(torch.complex128)
    if not bool(torch.isfinite(cov).all()):
        raise ValueError("the coil covariance contains NaN or infinite values")
    if not torch.allclose(cov, cov.conj().T, rtol=1e-10, atol=1e-12 * float(cov.abs().max())):
        raise ValueError("the coil covariance must be Hermitian (cov == cov.conj().T)")
    mean_var = float(torch.diagonal(cov).real.mean())
    factor, info = torch.linalg.cholesky_ex(cov / mean_var) if mean_var > 0 else (None, 1)
    if mean_var <= 0 or int(info) != 0:
        raise ValueError("the coil covariance must be positive definite (its Cholesky "
                         "factorisation failed)")
    return factor


def complex_gaussian_noise(y_clean: torch.Tensor, snr_db: Optional[float] = None,
                           sigma=None, covariance=None, mask=None, coil_dim: int = 2,
                           generator=None) -> torch.Tensor:
    """Noisy copy of complex k-space ``y_clean`` (``(B, ...)``, e.g. ``(B, C, n_coils, H, W)``).

    Parameters
    ----------
    y_clean : torch.Tensor, complex
    snr_db : float, optional
        Per-sample SNR in dB over the sampled entries (module docstring); or give ``sigma``.
    sigma : float or torch.Tensor (B,), optional
        Absolute noise level: ``E|n|^2 = sigma^2`` per sampled entry (mean over coils).
    covariance : array-like (n_coils, n_coils), optional
        Hermitian positive definite coil noise covariance, up to scale (its mean diagonal is
        normalised to 1); default white noise.
    mask : torch.Tensor, optional
        Sampled entries, broadcastable to the trailing dimensions of ``y_clean`` (e.g.
        ``(H, W)``); noise is added only there.  Default: every entry.
    coil_dim : int
        Dimension of ``y_clean`` holding the coils (for ``covariance``).
    generator : torch.Generator or list of torch.Generator, optional
        CPU generator(s); a list gives one per sample, so that a batch equals a loop.

    Returns
    -------
    torch.Tensor, same shape, dtype and device as ``y_clean``
    """
    if not isinstance(y_clean, torch.Tensor) or not y_clean.is_complex() or y_clean.dim() < 1:
        raise TypeError(f"complex_gaussian_noise expects complex data (B, ...), got "
                        f"{getattr(y_clean, 'dtype', type(y_clean).__name__)}")
    if (snr_db is None) == (sigma is None):
        raise ValueError("give exactly one of snr_db (decibels) and sigma (absolute level)")
    b = y_clean.shape[0]
    sampled = _sampled(y_clean, mask)
    if snr_db is not None:
        sig = noise_sigma(y_clean, snr_db, mask)
    else:
        sig = torch.as_tensor(sigma, dtype=torch.float64).reshape(-1).expand(b)
        if not bool(torch.isfinite(sig).all()) or bool((sig < 0).any()):
            raise ValueError(f"sigma must be finite and non-negative, got {sigma!r}")
    sig = sig.cpu()
    gens = list(generator) if isinstance(generator, (list, tuple)) else None
    if gens is not None and len(gens) != b:
        raise ValueError(f"got {len(gens)} generators for {b} samples")
    shape = tuple(y_clean.shape[1:])
    z = torch.stack([torch.randn(shape, generator=gens[i] if gens else generator,
                                 dtype=torch.complex128) for i in range(b)]) if b else \
        torch.zeros(y_clean.shape, dtype=torch.complex128)
    if covariance is not None:
        dim = coil_dim % y_clean.dim()
        if dim == 0:
            raise ValueError("coil_dim cannot be the batch dimension")
        factor = _cholesky(covariance, y_clean.shape[dim])
        z = torch.movedim(torch.movedim(z, dim, -1) @ factor.T, -1, dim)
    noise = sig.reshape((b,) + (1,) * (y_clean.dim() - 1)) * z * sampled.cpu()
    return y_clean + noise.to(device=y_clean.device, dtype=y_clean.dtype)
