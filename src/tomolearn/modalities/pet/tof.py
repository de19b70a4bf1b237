"""Time-of-flight (TOF) PET projector: every line of response split into TOF bins.

With TOF the scanner measures the arrival-time difference ``dt`` of the two photons, which
places the annihilation at ``s = c dt / 2`` along the LOR from its centre, blurred by the
timing resolution: a Gaussian of FWHM ``c * timing_resolution / 2`` in mm (``c = 299.792458
mm/ns``).  TOF bin ``k`` of ``K`` (width ``w`` mm, centred at ``s_k = (k - (K - 1)/2) w``)
measures the line integral weighted by the Gaussian integrated over the bin::

    h_k(s) = Phi((s - s_k + w/2) / sigma) - Phi((s - s_k - w/2) / sigma)

so ``sum_k h_k(s) ~ 1`` inside the field of view and the TOF bins add up to the non-TOF
sinogram.  For a parallel-beam view ``theta`` the along-LOR coordinate of a point is ``s = -x
sin theta + y cos theta`` (the LOR direction ``(-sin theta, cos theta)``, perpendicular to
the radial axis ``(cos theta, sin theta)``), the same for every radial bin of the view.  The
TOF projection of view ``theta`` is therefore the ordinary ray transform of that view applied
to the image weighted by ``h_k(s(x, y))`` ([1]_; the "TOF as image-space weights
per view" formulation): ``y[v, k] = A_v (h_{v,k} . x)``, computed view by view (``K`` images a
view), with the exact adjoint ``A^T`` of the ray transform: ``x = sum_{v,k} h_{v,k} .
A_v^T y[v, k]``.  The weights are sampled at voxel centres (the Joseph interpolation applies
to the weighted image).

The Siemens Biograph mCT: timing resolution about 540 ps FWHM (measured 527-555 ps [2]_),
i.e. an 81 mm FWHM kernel; STIR's scanner entry lists 13 TOF bins [3]_; here 13 bins of
312.5 ps (46.8 mm), which cover a 609 mm long LOR (more than the 566 mm diagonal of the
400 mm field of view).

References
----------
.. [1] S. Vandenberghe, E. Mikhaylova, E. D'Hoe, P. Mollet and J. S. Karp, "Recent developments
       in time-of-flight PET", EJNMMI Physics 3:3, 2016; and M. Conti, "State of the art and
       challenges of time-of-flight PET", Phys. Med. 25(1), 1-11, 2009.
.. [2] B. W. Jakoby, Y. Bercier, M. Conti, M. E. Casey, B. Bendriem and D. W. Townsend,
       "Physical and clinical performance of the mCT time-of-flight PET/CT scanner", Phys. Med.
       Biol. 56(8), 2375-2389, 2011.
.. [3] STIR ``src/buildblock/Scanner.cxx``, case ``Siemens_mCT`` ("13 TOF bins").
"""

from __future__ import annotations

import math
from typing import Callable, Optional

import numpy as np
import torch

from ...operators import LinearOperator
from ..ct.ray_transform import RayTransform
from .operators import FWHM_TO_SIGMA, GaussianPSF, _ViewSubsets, checked_factors

__all__ = ["TOFProjector", "tof_fwhm_mm", "tof_kernels", "SPEED_OF_LIGHT_MM_PER_PS",
           "MCT_TIMING_RESOLUTION_PS", "MCT_TOF_BINS", "MCT_TOF_BIN_PS"]

#: ``c`` in mm per picosecond
SPEED_OF_LIGHT_MM_PER_PS = 0.299792458
#: the mCT's coincidence timing resolution (ps FWHM), [2]_
MCT_TIMING_RESOLUTION_PS = 540.0
#: TOF bins of the mCT's sinograms ([3]_) and their width (ps) used here
MCT_TOF_BINS = 13
MCT_TOF_BIN_PS = 312.5


def tof_fwhm_mm(timing_resolution_ps: float) -> float:
    """FWHM along the LOR (mm) of a coincidence timing resolution: ``c dt / 2``."""
    return SPEED_OF_LIGHT_MM_PER_PS * float(timing_resolution_ps) / 2.0


def tof_kernels(s: torch.Tensor, n_bins: int, bin_mm: float, fwhm_mm: float) -> torch.Tensor:
    """``h_k(s)`` for positions ``s`` (mm along the LOR, any shape): ``(n_bins, *s.shape)``,
    the Gaussian of ``fwhm_mm`` integrated over each bin ``bin_mm`` wide (module docstring)."""
    sigma = fwhm_mm * FWHM_TO_SIGMA
    centres = (torch.arange(n_bins, dtype=s.dtype, device=s.device) - (n_bins - 1) / 2) * bin_mm
    d = s[None] - centres.reshape((-1,) + (1,) * s.dim())
    scale = 1.0 / (sigma * math.sqrt(2.0))
    return 0.5 * (torch.erf((d + bin_mm / 2) * scale) - torch.erf((d - bin_mm / 2) * scale))


class TOFProjector(_ViewSubsets, LinearOperator):
    """``x -> factors . A_TOF (PSF x)``: ``(B, C, H, W) -> (B, C, n_views, n_tof, n_bins)``.

    Parameters
    ----------
    ray : RayTransform
        The non-TOF ray transform of a parallel-beam geometry (angles in radians, lengths and
        ``pixel_size`` in mm).
    n_tof : int
        TOF bins per LOR.
    tof_bin_mm, fwhm_mm : float
        TOF bin width and kernel FWHM along the LOR (mm).
    factors : tensor (n_views, n_bins), optional
        Normalisation times attenuation per LOR (the same for all its TOF bins).
    psf : GaussianPSF, optional
    background : callable, optional
        ``background(y) -> y.shape``: the additive term for prompts ``y`` (:meth:`background_of`).
    """

    def __init__(self, ray: RayTransform, n_tof: int, tof_bin_mm: float, fwhm_mm: float,
                 factors: Optional[torch.Tensor] = None, psf: Optional[GaussianPSF] = None,
                 background: Optional[Callable[[torch.Tensor], torch.Tensor]] = None):
        if not isinstance(ray, RayTransform) or not hasattr(ray.geometry, "with_angles") or \
                hasattr(ray.geometry, "source_radius"):
            raise TypeError("TOFProjector needs a parallel-beam RayTransform")
        if isinstance(n_tof, bool) or not isinstance(n_tof, int) or n_tof < 1:
            raise ValueError(f"n_tof must be a positive int, got {n_tof!r}")
        for name, v in (("tof_bin_mm", tof_bin_mm), ("fwhm_mm", fwhm_mm)):
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise ValueError(f"{name} must be positive, got {v!r}")
        views, bins = ray.range_shape
        super().__init__(ray.domain_shape, (views, n_tof, bins))
        factors = checked_factors(factors, ray.range_shape)
        self.ray, self.psf, self._background = ray, psf, background
        self.n_tof, self.tof_bin_mm, self.fwhm_mm = n_tof, float(tof_bin_mm), float(fwhm_mm)
        self.register_buffer("factors", factors, persistent=False)
        angles = np.asarray(ray.geometry.angles, dtype=np.float64)
        self._angles = angles
        self._views = [ray.angle_subset([v]) for v in range(views)]
        self._subsets = {}

    def _default_device(self):
        return torch.device("cpu")

    def _weights(self, v: int, dtype, device) -> torch.Tensor:
        """``h_k`` at the voxel centres for view ``v``: ``(n_tof, H, W)``."""
        h, w = self.domain_shape
        px = self.ray.pixel_size
        xs = (torch.arange(w, dtype=torch.float64) - (w - 1) / 2) * px
        ys = ((h - 1) / 2 - torch.arange(h, dtype=torch.float64)) * px
        theta = float(self._angles[v])
        s = -math.sin(theta) * xs[None, :] + math.cos(theta) * ys[:, None]
        return tof_kernels(s, self.n_tof, self.tof_bin_mm, self.fwhm_mm).to(dtype=dtype,
                                                                             device=device)

    def _factors(self, t):
        return self.factors.to(dtype=t.dtype, device=t.device)[:, None, :]

    def _forward(self, x):
        if x.is_complex():
            return torch.complex(self._forward(x.real.contiguous()),
                                 self._forward(x.imag.contiguous()))
        if self.psf is not None:
            x = self.psf._forward(x)
        b, c, h, w = x.shape
        out = []
        for v, ray_v in enumerate(self._views):
            xw = (x[:, :, None] * self._weights(v, x.dtype, x.device)).reshape(b, c * self.n_tof,
                                                                                h, w)
            out.append(ray_v._forward(xw).reshape(b, c, self.n_tof, -1))
        return torch.stack(out, dim=2) * self._factors(x)

    def _adjoint(self, y):
        if y.is_complex():
            return torch.complex(self._adjoint(y.real.contiguous()),
                                 self._adjoint(y.imag.contiguous()))
        y = y * self._factors(y)
        b, c = y.shape[:2]
        h, w = self.domain_shape
        x = y.new_zeros((b, c, h, w))
        for v, ray_v in enumerate(self._views):
            back = ray_v._adjoint(y[:, :, v].reshape(b, c * self.n_tof, 1, -1))
            x = x + (back.reshape(b, c, self.n_tof, h, w) *
                     self._weights(v, y.dtype, y.device)).sum(2)
        return self.psf._adjoint(x) if self.psf is not None else x

    def _restricted(self, ray: RayTransform, factors: torch.Tensor) -> "TOFProjector":
        return TOFProjector(ray, self.n_tof, self.tof_bin_mm, self.fwhm_mm, factors, self.psf)

    def extra_repr(self):
        return (f"image_shape={self.domain_shape}, sinogram={self.range_shape}, "
                f"tof_bin_mm={self.tof_bin_mm:.2f}, fwhm_mm={self.fwhm_mm:.1f}, "
                f"psf={'none' if self.psf is None else self.psf.fwhm_mm}")
