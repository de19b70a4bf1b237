"""PET linear operators: an image-space Gaussian PSF and the projector ``n . a . A . PSF``.

Shapes: images ``(B, C, H, W)`` (activity per voxel), sinograms ``(B, C, n_views, n_bins)``
(counts).  Both operators accept float32/float64 and complex input (complex input is
projected part by part, as the ray transform does), on CPU or CUDA.
"""

from __future__ import annotations

import math
from typing import Callable, Optional

import numpy as np
import torch
import torch.nn.functional as F

from ...operators import LinearOperator
from ..ct.ray_transform import RayTransform

__all__ = ["GaussianPSF", "PETProjector", "gaussian_kernel", "FWHM_TO_SIGMA", "em_iterations",
           "n_subsets_for"]

#: ``sigma = FWHM * FWHM_TO_SIGMA`` for a Gaussian (1 / (2 sqrt(2 ln 2))).
FWHM_TO_SIGMA = 1.0 / (2.0 * math.sqrt(2.0 * math.log(2.0)))


def gaussian_kernel(fwhm: float, spacing: float, truncate: float = 3.0) -> torch.Tensor:
    """Normalised 1-D Gaussian kernel (float64, odd length, sum 1) sampled at the centres of
    bins ``spacing`` apart; ``fwhm`` and ``spacing`` in the same unit; radius ``ceil(truncate
    sigma / spacing)`` bins.  ``fwhm = 0`` gives the identity kernel ``[1]``."""
    if not (math.isfinite(fwhm) and fwhm >= 0 and math.isfinite(spacing) and spacing > 0):
        raise ValueError(f"need fwhm >= 0 and spacing > 0, got fwhm={fwhm!r}, spacing={spacing!r}")
    sigma = fwhm * FWHM_TO_SIGMA / spacing
    if sigma == 0:
        return torch.ones(1, dtype=torch.float64)
    radius = max(1, int(math.ceil(truncate * sigma)))
    k = torch.arange(-radius, radius + 1, dtype=torch.float64)
    g = torch.exp(-0.5 * (k / sigma) ** 2)
    return g / g.sum()


def _separable(x: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Zero-padded 'same' convolution of ``x`` (B, C, H, W) with ``kernel`` along both axes."""
    if x.is_complex():
        return torch.complex(_separable(x.real.contiguous(), kernel),
                             _separable(x.imag.contiguous(), kernel))
    b, c, h, w = x.shape
    r = kernel.numel() // 2
    k = kernel.to(dtype=x.dtype, device=x.device)
    flat = x.reshape(b * c, 1, h, w)
    flat = F.conv2d(flat, k.reshape(1, 1, -1, 1), padding=(r, 0))
    flat = F.conv2d(flat, k.reshape(1, 1, 1, -1), padding=(0, r))
    return flat.reshape(b, c, h, w)


class GaussianPSF(LinearOperator):
    """Image-space resolution model: separable Gaussian blur of ``fwhm_mm`` FWHM.

    ``(B, C, H, W) -> (B, C, H, W)``; zero padding at the borders, a symmetric kernel, so the
    matrix is symmetric and the operator is its own exact adjoint.

    Parameters
    ----------
    image_shape : (int, int)
    fwhm_mm : float
        Full width at half maximum of the point-spread function (mm, >= 0).
    voxel_mm : float
        Voxel side (mm).
    """

    def __init__(self, image_shape, fwhm_mm: float, voxel_mm: float):
        super().__init__(tuple(image_shape), tuple(image_shape))
        self.fwhm_mm, self.voxel_mm = float(fwhm_mm), float(voxel_mm)
        self.register_buffer("kernel", gaussian_kernel(self.fwhm_mm, self.voxel_mm),
                             persistent=False)

    def _forward(self, x):
        if self.kernel.numel() == 1:
            return x.clone()
        return _separable(x, self.kernel)

    _adjoint = _forward

    def _default_device(self):
        return torch.device("cpu")

    def extra_repr(self):
        return f"image_shape={self.domain_shape}, fwhm_mm={self.fwhm_mm}, voxel_mm={self.voxel_mm}"


def checked_factors(factors: Optional[torch.Tensor], shape) -> torch.Tensor:
    """Per-LOR factors ``n . a`` as float64 of ``shape`` (default ones); ``ValueError`` unless
    finite and non-negative."""
    if factors is None:
        return torch.ones(tuple(shape), dtype=torch.float64)
    factors = torch.as_tensor(factors, dtype=torch.float64)
    if tuple(factors.shape) != tuple(shape):
        raise ValueError(f"factors must have shape {tuple(shape)}, got {tuple(factors.shape)}")
    if not torch.isfinite(factors).all() or (factors < 0).any():
        raise ValueError("factors must be finite and non-negative")
    return factors


def n_subsets_for(op, n_subsets=None, default: int = 1) -> int:
    """The number of interleaved view subsets for ``op``: ``n_subsets`` if it divides the views
    (else ``ValueError`` listing the divisors), or with ``None`` the largest divisor of the views
    not above ``default`` (the scanner's clinical subsets; mashed sinograms have fewer views)."""
    views = int(op.range_shape[0])
    divisors = [d for d in range(1, views + 1) if views % d == 0]
    if n_subsets is None:
        return max(d for d in divisors if d <= max(1, int(default)))
    if isinstance(n_subsets, bool) or not isinstance(n_subsets, int) or n_subsets not in divisors:
        raise ValueError(f"n_subsets={n_subsets!r} does not divide the {views} views of the "
                         f"sinogram into equal subsets; use one of {', '.join(map(str, divisors))}")
    return n_subsets


def em_iterations(op, y: torch.Tensor, background: torch.Tensor, n_iter: int,
                  n_subsets: int = 1) -> torch.Tensor:
    """``n_iter`` OSEM iterations over ``n_subsets`` interleaved view subsets (1: MLEM) from a
    uniform image, without autograd: ``x <- x / A_s^T 1 * A_s^T (y_s / (A_s x + b_s))`` for
    each subset ``s`` in turn.  ``op`` a PET projector (views on the first data axis, and
    :meth:`~_ViewSubsets.subset`), ``y`` prompts and ``background`` its additive term
    ``(B, C, *op.range_shape)``; returns ``(B, C, H, W)`` in ``y``'s dtype."""
    views = int(op.range_shape[0])
    if n_subsets < 1 or views % n_subsets:
        raise ValueError(f"n_subsets={n_subsets} does not divide the {views} views")
    parts = [torch.arange(s, views, n_subsets) for s in range(n_subsets)]
    with torch.no_grad():
        x = torch.ones((y.shape[0], y.shape[1]) + tuple(op.domain_shape), dtype=y.dtype,
                       device=y.device)
        subs = [op if n_subsets == 1 else op.subset(idx) for idx in parts]
        sens = [sub.adjoint(torch.ones_like(y[:, :, idx])) for sub, idx in zip(subs, parts)]
        for _ in range(n_iter):
            for sub, idx, s in zip(subs, parts, sens):
                ratio = y[:, :, idx] / (sub(x) + background[:, :, idx]).clamp_min(1e-12)
                x = torch.where(s > 0, x / torch.where(s > 0, s, 1.0) * sub.adjoint(ratio),
                                torch.zeros_like(x))
    return x


class _ViewSubsets:
    """What the PET projectors share: ordered subsets of views (cached) and the additive
    background.  A projector sets ``ray``, ``factors``, ``_background``, ``_subsets`` and
    implements ``_restricted(ray, factors)``, itself on fewer views."""

    #: ``(iterations, subsets)`` of the OSEM :meth:`initial_reconstruction` runs; the task sets
    #: its scanner's clinical protocol (mCT: 3 x 21).
    initial_osem = (3, 1)

    def initial_reconstruction(self, y: torch.Tensor) -> torch.Tensor:
        """OSEM of :attr:`initial_osem` from a uniform image with the projector's background
        (:func:`em_iterations`; negative values of ``y`` count as 0): the classical
        reconstruction learned methods start from; ``(B, C, *data)`` -> ``(B, C, H, W)``."""
        self._check(y, self.range_shape, "initial_reconstruction")
        n_iter, n_subsets = self.initial_osem
        return em_iterations(self, y.clamp_min(0), self.background_of(y), n_iter, n_subsets)

    def subset(self, indices):
        """The projector restricted to the views ``indices`` (ordered subsets), cached."""
        idx = np.asarray(torch.as_tensor(indices).cpu(), dtype=np.int64).reshape(-1)
        key = tuple(idx.tolist())
        if key not in self._subsets:
            self._subsets[key] = self._restricted(self.ray.angle_subset(idx),
                                                  self.factors[torch.from_numpy(idx)])
        return self._subsets[key]

    def background_of(self, y: torch.Tensor) -> torch.Tensor:
        """The additive term (randoms + scatter estimate) for prompts ``y`` (the projector's
        data shape), same dtype and device; zeros when the projector was built without a
        background model."""
        self._check(y, self.range_shape, "background_of")
        if self._background is None:
            return torch.zeros_like(y)
        return self._background(y).to(dtype=y.dtype, device=y.device)


class PETProjector(_ViewSubsets, LinearOperator):
    """The linear part of the PET model, ``x -> n . a . A (PSF x)`` (expected trues).

    ``(B, C, H, W) -> (B, C, n_views, n_bins)``: ``A`` the exact ray transform (line
    integrals in mm of an image whose voxels are ``pixel_size`` mm), ``PSF`` an optional
    :class:`GaussianPSF`, and ``factors = n . a`` per bin (normalisation times attenuation
    factors, ``(n_views, n_bins)``, non-negative).  The adjoint ``PSF^T A^T (factors . y)`` is
    its exact transpose.

    Parameters
    ----------
    ray : RayTransform
    factors : torch.Tensor, shape (n_views, n_bins), optional
        Multiplicative factors per bin; default ones.
    psf : GaussianPSF, optional
    background : callable, optional
        ``background(y) -> (B, C, n_views, n_bins)``: the additive randoms + scatter estimate
        a reconstruction should use with prompts ``y`` (the task sets it; methods ask for it
        with :meth:`background_of`).
    """

    def __init__(self, ray: RayTransform, factors: Optional[torch.Tensor] = None,
                 psf: Optional[GaussianPSF] = None,
                 background: Optional[Callable[[torch.Tensor], torch.Tensor]] = None):
        if not isinstance(ray, RayTransform):
            raise TypeError(f"ray must be a RayTransform, got {type(ray).__name__}")
        super().__init__(ray.domain_shape, ray.range_shape)
        if psf is not None and tuple(psf.domain_shape) != tuple(ray.domain_shape):
            raise ValueError(f"the PSF acts on {psf.domain_shape}, the ray transform on "
                             f"{ray.domain_shape}")
        factors = checked_factors(factors, ray.range_shape)
        self.ray, self.psf, self._background = ray, psf, background
        self.register_buffer("factors", factors, persistent=False)
        self._subsets = {}

    def _weights(self, t: torch.Tensor) -> torch.Tensor:
        real = t.real.dtype if t.is_complex() else t.dtype
        return self.factors.to(dtype=real, device=t.device)

    def _forward(self, x):
        if self.psf is not None:
            x = self.psf._forward(x)
        return self.ray._forward(x) * self._weights(x)

    def _adjoint(self, y):
        x = self.ray._adjoint(y * self._weights(y))
        return self.psf._adjoint(x) if self.psf is not None else x

    def _default_device(self):
        return torch.device("cpu")

    def _restricted(self, ray: RayTransform, factors: torch.Tensor) -> "PETProjector":
        return PETProjector(ray, factors, self.psf)

    def extra_repr(self):
        return (f"image_shape={self.domain_shape}, sinogram={self.range_shape}, "
                f"psf={'none' if self.psf is None else self.psf.fwhm_mm}")
