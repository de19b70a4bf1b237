"""The accelerated multi-coil Cartesian MRI task (``"mri"``) and its measurement shifts.

Ground truths are complex images: an image family's real image (the magnitude) times a smooth
random phase (:meth:`MRITask.ground_truth`, deterministic from the sample's generator), as
real MR images carry a slowly varying phase from field inhomogeneity and coil/receiver
phases.  Data are multi-coil k-space ``(B, 1, n_coils, N, N)``: the SENSE operator
(:class:`~tomolearn.modalities.mri.operators.MultiCoilSENSE`) with synthetic birdcage maps
(:func:`~tomolearn.modalities.mri.coils.birdcage_maps`) and a fastMRI-style mask (or a
Poisson-disc one), plus white complex Gaussian noise at ``snr`` dB over the sampled k-space
(:mod:`tomolearn.modalities.mri.noise`).  The mask is drawn from the task's ``seed``, so the
task is deterministic.  By default (``fine_factor = 1``) the ground truth is the image whose
k-space the data sample, fastMRI's convention (its targets are reconstructions of the fully
sampled k-space), so data are ``A x`` plus noise.  ``fine_factor > 1`` simulates a finer
object instead, as the CT task projects from a finer phantom (Guerquin-Kern et al. 2012 on
the inverse crime): the image upsampled bilinearly, the coil maps evaluated on the fine grid,
the fine grid's centred DFT cropped to the central ``N x N`` frequencies (scaled by
``1 / fine_factor`` so the orthonormal transforms agree).  Bilinear upsampling attenuates the
high frequencies (to zero at Nyquist), so the data then describe a smoother object than the
truth they are scored against: a model-mismatch study (SENSE on brains, 160 x 160, 4x: 23.9
dB with ``fine_factor`` 1, 23.6 with 2; CS-TV 32.4 and 29.5), not the default.

References
----------
.. [1] M. Guerquin-Kern, L. Lejeune, K. P. Pruessmann and M. Unser, "Realistic analytical
       phantoms for parallel magnetic resonance imaging", IEEE TMI 31(3), 626-636, 2012.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Tuple

import torch
import torch.nn.functional as F

from ...registry import Task, register_shift, register_task
from .coils import birdcage_maps
from ...operators.fourier import fft2c
from .masks import (MASKS, _acceleration, _center_fraction, _low_frequencies, equispaced_mask,
                    poisson_disc_mask, random_mask)
from .noise import complex_gaussian_noise
from .operators import MultiCoilSENSE

__all__ = ["MRITask", "smooth_phase"]


def _generators(generator, n: int):
    if isinstance(generator, (list, tuple)):
        if len(generator) != n:
            raise ValueError(f"got {len(generator)} generators for {n} images")
        return list(generator)
    return [generator] * n


def smooth_phase(size: int, generator=None) -> torch.Tensor:
    """A smooth random phase map ``(size, size)`` float64, radians.

    ``phi = pi a0 + a1 u + a2 v + (a3 u^2 + a4 u v + a5 v^2) / 2`` on ``u, v in [-1, 1]`` with
    ``a ~ N(0, 1)`` drawn from ``generator`` (a constant phase, linear ramps and a gentle
    curvature: a few radians across the field of view).
    """
    a = torch.randn(6, generator=generator, dtype=torch.float64)
    t = torch.linspace(-1.0, 1.0, size, dtype=torch.float64)
    v, u = torch.meshgrid(t, t, indexing="ij")
    return (math.pi * a[0] + a[1] * u + a[2] * v
            + 0.5 * (a[3] * u ** 2 + a[4] * u * v + a[5] * v ** 2))


@dataclass(frozen=True)
class MRITask(Task):
    """Accelerated multi-coil Cartesian MRI (registered as ``"mri"``).

    Parameters
    ----------
    image_size : int
        Side of the square complex image (pixels); k-space has the same size per coil.
    n_coils : int
        Receive coils (synthetic birdcage maps normalised to ``sum_c |S_c|^2 = 1``).
    mask : {"equispaced", "random", "poisson"}
        fastMRI's equispaced or random phase-encoding lines
        (:func:`~tomolearn.modalities.mri.masks.equispaced_mask`, ``random_mask``), or a 2-D
        variable-density Poisson-disc mask with a ``round(center_fraction * image_size)``
        square calibration region (``poisson_disc_mask``).
    acceleration : float
        Nominal acceleration (>= 1).
    center_fraction : float
        Fraction of fully sampled central lines, in (0, 1) (fastMRI pairs 0.08 with 4x and
        0.04 with 8x).
    snr : float
        Signal-to-noise ratio in dB over the sampled k-space of each sample:
        ``20 log10(||A x|| / E||n||)`` (:mod:`tomolearn.modalities.mri.noise`).
    seed : int
        Base seed of the mask and of datasets made from the task.
    fine_factor : int
        1 (default): data are ``A x`` plus noise, the truth being the image the data sample;
        > 1: data of a ``fine_factor`` times finer bilinear object (model-mismatch studies).
    """

    image_size: int = 160
    n_coils: int = 8
    mask: str = "equispaced"
    acceleration: float = 4.0
    center_fraction: float = 0.08
    snr: float = 30.0
    seed: int = 0
    fine_factor: int = 1

    likelihood = "complex-gaussian"
    headline = ("acceleration", "center_fraction", "mask", "n_coils")
    data_name = "k-space (log magnitude, coils combined)"
    data_axes = ("readout line", "phase-encoding line")
    families = ("brain", "mr-slice", "ellipses", "shepp-logan")
    # LGD and LPD (the generic unrolled modules) are in ``benchmark mri``, not the demo
    demo_methods = ("zero-filled", "grappa", "sense", "cs-tv", "cs-wavelet", "varnet", "modl")
    benchmark_shifts = ("acceleration-8",)
    image_dtype = torch.complex64
    value_range = (0.0, 1.0)
    units = ("complex images, magnitude in [0, 1] (arbitrary units); k-space: centred "
             "orthonormal DFT of the coil images (fastMRI's fft2c), zero where not sampled")

    def __post_init__(self):
        for name in ("image_size", "n_coils", "fine_factor"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if self.mask not in MASKS:
            raise ValueError(f"mask must be one of {', '.join(MASKS)}, got {self.mask!r}")
        object.__setattr__(self, "acceleration", _acceleration(self.acceleration))
        object.__setattr__(self, "center_fraction", _center_fraction(self.center_fraction))
        _low_frequencies(self.image_size, self.acceleration, self.center_fraction)
        if isinstance(self.snr, bool) or not isinstance(self.snr, (int, float)) or not \
                math.isfinite(self.snr):
            raise ValueError(f"snr must be a finite number (dB), got {self.snr!r}")
        object.__setattr__(self, "snr", float(self.snr))
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not \
                0 <= self.seed < 2 ** 32:
            raise ValueError(f"seed must be an int in [0, 2**32), got {self.seed!r}")

    @classmethod
    def tiny(cls) -> "MRITask":
        """24 x 24 images, 4 coils (for tests)."""
        return cls(image_size=24, n_coils=4)

    # -- physics ------------------------------------------------------------------------------
    @property
    def image_shape(self) -> Tuple[int, int]:
        """``(image_size, image_size)``, without building the operator."""
        return (self.image_size, self.image_size)

    @property
    def data_shape(self) -> Tuple[int, int, int]:
        """``(n_coils, image_size, image_size)``, without building the operator."""
        return (self.n_coils, self.image_size, self.image_size)

    def sampling_mask(self) -> torch.Tensor:
        """The k-space mask ``(image_size, image_size)`` bool, drawn with the task's seed."""
        shape = self.image_shape
        if self.mask == "equispaced":
            return equispaced_mask(shape, self.acceleration, self.center_fraction, self.seed)
        if self.mask == "random":
            return random_mask(shape, self.acceleration, self.center_fraction, self.seed)
        calib = round(self.center_fraction * self.image_size)
        return poisson_disc_mask(shape, self.acceleration, calib, self.seed)

    def coil_maps(self) -> torch.Tensor:
        """The synthetic birdcage sensitivities ``(n_coils, N, N)`` complex128."""
        return birdcage_maps(self.n_coils, self.image_size)

    def operator(self) -> MultiCoilSENSE:
        """The SENSE operator ``(B, C, N, N) -> (B, C, n_coils, N, N)`` (cached per process)."""
        return _operator(json.dumps(self.to_dict(), sort_keys=True))

    def ground_truth(self, images: torch.Tensor, generator=None) -> torch.Tensor:
        """Complex ground truths: ``images * exp(i phi)`` with a :func:`smooth_phase` ``phi``
        per image drawn from its generator; complex128 for float64 images, complex64 for
        float32 ones (complex images get the phase too)."""
        if not isinstance(images, torch.Tensor) or images.dim() != 4:
            raise ValueError(f"images must have shape (B, C, {self.image_size}, "
                             f"{self.image_size}), got {getattr(images, 'shape', images)}")
        gens = _generators(generator, images.shape[0])
        n = images.shape[-1]
        phase = torch.stack([smooth_phase(n, g) for g in gens]) if gens else \
            torch.zeros((0, n, n), dtype=torch.float64)
        rotation = torch.polar(torch.ones_like(phase), phase)[:, None]
        out_dtype = images.dtype if images.is_complex() else (
            torch.complex128 if images.dtype == torch.float64 else torch.complex64)
        return (images.to(torch.complex128) * rotation.to(images.device)).to(out_dtype)

    def simulate(self, images: torch.Tensor, generator=None) -> torch.Tensor:
        """Noisy multi-coil k-space ``(B, 1, n_coils, N, N)`` complex128 of ``images``
        ``(B, 1, N, N)`` (complex, or real taken as complex with zero phase), computed in
        complex128 on the CPU so the data do not depend on the caller's dtype."""
        n = self.image_size
        if not isinstance(images, torch.Tensor) or images.dim() != 4 or \
                tuple(images.shape[1:]) != (1, n, n):
            shape = tuple(images.shape) if isinstance(images, torch.Tensor) else \
                type(images).__name__
            raise ValueError(f"images must have shape (B, 1, {n}, {n}), got {shape}")
        x = images.detach().to(device="cpu", dtype=torch.complex128)
        op = self.operator()
        with torch.no_grad():
            y = op(x) if self.fine_factor == 1 else self._fine_kspace(x) * op.mask
        return complex_gaussian_noise(y, snr_db=self.snr, mask=op.mask,
                                      generator=_generators(generator, y.shape[0]))

    def _fine_kspace(self, x: torch.Tensor) -> torch.Tensor:
        """Fully sampled k-space ``(B, 1, n_coils, N, N)`` of ``x`` ``(B, 1, N, N)`` computed on
        the ``fine_factor`` times finer grid and cropped to the central frequencies."""
        n, f = self.image_size, self.fine_factor
        fine = F.interpolate(torch.view_as_real(x[:, 0]).permute(0, 3, 1, 2), scale_factor=f,
                             mode="bilinear", align_corners=False)
        fine = torch.complex(fine[:, 0], fine[:, 1])[:, None, None]  # (B, 1, 1, fN, fN)
        k = fft2c(birdcage_maps(self.n_coils, f * n) * fine)
        start = (f * n) // 2 - n // 2  # the centred DFT's zero frequency sits at index size // 2
        return k[..., start:start + n, start:start + n] / f

    def initial_reconstruction(self, y: torch.Tensor, op=None) -> torch.Tensor:
        """The zero-filled, coil-combined reconstruction (the adjoint), ``(B, C, N, N)``."""
        return (self.operator() if op is None else op).initial_reconstruction(y)

    def noise_std(self, y: torch.Tensor) -> torch.Tensor:
        """Root-mean-square noise amplitude per entry of the data array (unsampled entries
        counted, with noise 0), ``(B,)`` float64, from the data alone: with ``m`` entries and
        the linear SNR ``s = 10^(snr/20)``, ``E||y||^2 = E||n||^2 (s^2 + 1)``, so
        ``||y|| / sqrt(m (s^2 + 1))`` (what ``||A x - y|| / sqrt(m)`` is at the truth)."""
        flat = y.detach().reshape(y.shape[0], -1)
        s = 10 ** (self.snr / 20)
        energy = (flat.abs().double() ** 2).sum(1)
        return torch.sqrt(energy / (flat.shape[1] * (s ** 2 + 1)))

    def estimated_bytes(self, batch: int = 1) -> int:
        """The batch's arrays (:meth:`Task.estimated_bytes`) plus the maps (complex128) and
        three complex128 coil-image temporaries of the batch in the operator."""
        pixels = self.image_size ** 2
        return int(super().estimated_bytes(batch) + 16 * self.n_coils * pixels
                   + 3 * 16 * batch * self.n_coils * pixels)


@lru_cache(maxsize=16)
def _operator(spec_json: str) -> MultiCoilSENSE:
    t = MRITask.from_dict(json.loads(spec_json))
    return MultiCoilSENSE(t.coil_maps(), t.sampling_mask())


register_task("mri", MRITask)
register_shift("mri", "acceleration-8", lambda t: t.replace(acceleration=8.0, center_fraction=0.04))
register_shift("mri", "random-mask", lambda t: t.replace(mask="random"))
register_shift("mri", "poisson-mask", lambda t: t.replace(mask="poisson"))
register_shift("mri", "fewer-coils", lambda t: t.replace(n_coils=max(1, t.n_coils // 2)))
register_shift("mri", "low-snr", lambda t: t.replace(snr=t.snr - 10.0))
