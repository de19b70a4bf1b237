"""The sparse-view CT task (``"ct"``): spec, noise model, no-inverse-crime simulation.

A :class:`SimulationSpec` is everything that determines a simulated dataset:
the image grid, the CT geometry, the oversampled grid used to simulate the
data, the noise model and the seed.  It is plain data (``to_dict`` /
``from_dict``), stored with HDF5 files and model cards, and compared field by
field (:func:`tomolearn.data.datasets.spec_differences`) so that a model trained on one spec
can check that it is evaluated on the same one.

Sample ``i`` of a split is a pure function of ``(spec, split, i)``: its
random generators are seeded from ``numpy.random.SeedSequence((spec.seed,
split id, i))``, so any sample is reproducible on its own, in any worker or
rank, without generating the ones before it.

To avoid the inverse crime, data are simulated from the image upsampled
bilinearly to ``fine_size`` x ``fine_size`` and projected with the ray
transform of that finer grid (same field of view, line integrals in the same
physical units), while reconstruction uses the ``image_size`` grid.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from ... import noise as noise_models
from ...registry import Task, register_task
from .geometry import ParallelBeam2D
from .ray_transform import _CHUNK_BYTES as CHUNK_BYTES
from .ray_transform import SPARSE_MAX_NNZ, RayTransform

__all__ = ["NoiseSpec", "SimulationSpec", "simulate"]

_NOISE_KINDS = ("none", "gaussian", "poisson")


@dataclass(frozen=True)
class NoiseSpec:
    """Measurement noise.

    Parameters
    ----------
    kind : {"none", "gaussian", "poisson"}
        ``"gaussian"``: additive white noise with standard deviation
        ``level * mean(|y|)`` per sample (DIVal's relative white noise).
        ``"poisson"``: Beer-Lambert counts with ``photons`` incident photons
        per detector pixel on data scaled by ``mu_max`` (LoDoPaB-CT's
        convention, zero counts replaced by 0.1), returned post-log.
    level : float
        Relative standard deviation for ``"gaussian"``.
    photons : float
        Incident photons per detector pixel for ``"poisson"``.
    mu_max : float
        Attenuation (per length unit of the line integrals) of image value 1
        for ``"poisson"``.
    """

    kind: str = "gaussian"
    level: float = 0.025
    photons: float = 4096.0
    mu_max: float = noise_models.MU_MAX

    def __post_init__(self):
        if self.kind not in _NOISE_KINDS:
            raise ValueError(f"noise kind must be one of {_NOISE_KINDS}, got {self.kind!r}")
        for name in ("level", "photons", "mu_max"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ValueError(f"noise {name} must be a finite non-negative number, got {value!r}")
        if self.kind == "poisson" and (self.photons <= 0 or self.mu_max <= 0):
            raise ValueError("poisson noise needs photons > 0 and mu_max > 0")

    def apply(self, y: torch.Tensor, generator: Optional[torch.Generator]) -> torch.Tensor:
        """Noisy copy of clean data ``y`` of shape ``(B, C, n_angles, n_detectors)``."""
        if self.kind == "none" or (self.kind == "gaussian" and self.level == 0):
            return y.clone()
        if self.kind == "gaussian":
            return noise_models.gaussian(y, relative=self.level, generator=generator)
        return noise_models.poisson_log(y, photons_per_pixel=self.photons, mu_max=self.mu_max,
                                        generator=generator)


@dataclass(frozen=True)
class SimulationSpec(Task):
    """The sparse-view parallel-beam CT task (registered as ``"ct"``): everything that
    determines a simulated 2-D parallel-beam dataset.

    The defaults are DIVal's "ellipses" benchmark: 128 x 128 images on
    [-64, 64]^2 (pixel size 1), 30 angles at the midpoints of [0, pi), 183
    detector bins spanning [-64 sqrt 2, 64 sqrt 2], data simulated on a
    400 x 400 grid, 2.5 % relative Gaussian noise.

    Parameters
    ----------
    image_size : int
        Side of the (square) reconstruction grid, pixels of size 1.
    n_angles : int
        Number of angles, midpoints of a uniform partition of
        ``[angle_start, angle_stop)``.
    angle_start, angle_stop : float
        Angular range in radians (default [0, pi); a shorter range is a
        limited-angle problem).
    n_detectors : int
    detector_spacing : float, optional
        Default: the detector spans the image diagonal, as ODL's
        ``parallel_beam_geometry``.
    fine_size : int
        Side of the grid the data are simulated on (no inverse crime); equal
        to ``image_size`` to commit the crime deliberately.
    noise : NoiseSpec
    seed : int
        Base seed of the dataset.
    """

    image_size: int = 128
    n_angles: int = 30
    angle_start: float = 0.0
    angle_stop: float = math.pi
    n_detectors: int = 183
    detector_spacing: Optional[float] = None
    fine_size: int = 400
    noise: NoiseSpec = field(default_factory=NoiseSpec)
    seed: int = 1

    def __post_init__(self):
        for name in ("image_size", "n_angles", "n_detectors", "fine_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if not (math.isfinite(self.angle_start) and math.isfinite(self.angle_stop)
                and self.angle_stop > self.angle_start):
            raise ValueError(f"need finite angle_start < angle_stop, got "
                             f"[{self.angle_start}, {self.angle_stop})")
        if self.detector_spacing is not None and not self.detector_spacing > 0:
            raise ValueError(f"detector_spacing must be positive, got {self.detector_spacing}")
        if isinstance(self.noise, dict):
            object.__setattr__(self, "noise", NoiseSpec(**self.noise))
        if not isinstance(self.noise, NoiseSpec):
            raise TypeError(f"noise must be a NoiseSpec, got {type(self.noise).__name__}")
        if not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be a non-negative int, got {self.seed!r}")

    # -- the task protocol ------------------------------------------------------------
    units = "line integrals in pixel units; images in [0, 1]"
    headline = ("n_angles", "noise.level")
    data_name, data_axes = "sinogram", ("angle", "detector")
    families = ("ellipses", "shepp-logan", "ct-slice", "rectangles", "lesions")

    @property
    def likelihood(self) -> str:
        """``"gaussian"``; post-log Poisson data are treated as Gaussian too (weighted least
        squares is the usual data term for them)."""
        return "gaussian"

    def simulate(self, images: torch.Tensor, generator=None) -> torch.Tensor:
        """Noisy data of ``images`` (B, 1, N, N) without the inverse crime (:func:`simulate`)."""
        return simulate(images, self, generator)

    @classmethod
    def tiny(cls) -> "SimulationSpec":
        """24 x 24 images, 6 angles, 35 detectors, data simulated on 48 x 48 (for tests)."""
        return cls(image_size=24, n_angles=6, n_detectors=35, fine_size=48)

    def noise_std(self, y: torch.Tensor) -> torch.Tensor:
        """Noise std per sample (B,) from the data alone: ``level * mean(|y|)`` for Gaussian
        noise; for post-log Poisson data the root mean square over bins of the delta-method
        std ``1 / (mu_max sqrt(photons exp(-mu_max y)))``; 0 without noise."""
        flat = y.detach().double().reshape(y.shape[0], -1)
        noise = self.noise
        if noise.kind == "gaussian":
            return noise.level * flat.abs().mean(1)
        if noise.kind == "poisson":
            counts = noise.photons * torch.exp(-noise.mu_max * flat)
            return (1.0 / (noise.mu_max ** 2 * counts.clamp_min(0.1))).mean(1).sqrt()
        return torch.zeros(y.shape[0], dtype=torch.float64, device=y.device)

    @property
    def image_shape(self) -> Tuple[int, int]:
        """``(image_size, image_size)``, without building the operator."""
        return (self.image_size, self.image_size)

    @property
    def data_shape(self) -> Tuple[int, int]:
        """``(n_angles, n_detectors)``, without building the operator."""
        return (self.n_angles, self.n_detectors)

    def estimated_bytes(self, batch: int = 1) -> int:
        """The batch's arrays (:meth:`Task.estimated_bytes`) plus the system matrices of the
        reconstruction and the simulation grids, estimated as
        :meth:`RayTransform.estimated_nnz` does (two entries per in-image sample, half the
        angles stored by the quarter-turn symmetry) with the transpose, 16 bytes an entry; or
        the matrix-free backend's working chunk where ``backend="auto"`` would choose it."""
        arrays = super().estimated_bytes(batch) + 64 * batch * self.fine_size ** 2
        matrices = 0
        for size in (self.image_size, self.fine_size):
            pixel = self.image_size / size
            per_angle = min(0.9 * size * size * pixel / self.spacing, self.n_detectors * size)
            nnz = self.n_angles * per_angle
            matrices += 2 * 16 * nnz if nnz <= SPARSE_MAX_NNZ else CHUNK_BYTES
        return int(arrays + matrices)

    def to_json(self) -> str:
        """The fields as canonical JSON (the cache key of the operators)."""
        return json.dumps(self.to_dict(), sort_keys=True)

    # -- physics --------------------------------------------------------------------
    @property
    def spacing(self) -> float:
        if self.detector_spacing is not None:
            return float(self.detector_spacing)
        return self.image_size * math.sqrt(2) / self.n_detectors

    def geometry(self) -> ParallelBeam2D:
        """The parallel-beam geometry (angles at midpoints of the angular range)."""
        step = (self.angle_stop - self.angle_start) / self.n_angles
        angles = self.angle_start + (np.arange(self.n_angles) + 0.5) * step
        return ParallelBeam2D(angles=angles, n_detectors=self.n_detectors,
                              detector_spacing=self.spacing)

    def operator(self) -> RayTransform:
        """The reconstruction operator on the ``image_size`` grid (cached per process)."""
        return _operator(self.to_json(), self.image_size)

    def fine_operator(self) -> RayTransform:
        """The simulation operator on the ``fine_size`` grid, same field of view."""
        return _operator(self.to_json(), self.fine_size)


@lru_cache(maxsize=16)
def _operator(spec_json: str, size: int) -> RayTransform:
    spec = SimulationSpec.from_dict(json.loads(spec_json))
    return RayTransform(spec.geometry(), (size, size), pixel_size=spec.image_size / size)


def simulate(images: torch.Tensor, spec: SimulationSpec, generator=None) -> torch.Tensor:
    """Noisy measurements of ``images`` without the inverse crime.

    Parameters
    ----------
    images : torch.Tensor, shape (B, 1, image_size, image_size)
        Ground truth on the reconstruction grid (any real dtype).
    spec : SimulationSpec
    generator : torch.Generator or list of torch.Generator, optional
        Noise generator (CPU); a list gives one generator per image, so
        that a batch equals the images simulated one at a time.

    Returns
    -------
    torch.Tensor, shape (B, 1, n_angles, n_detectors), float64
        Line integrals of the bilinearly upsampled images on the
        ``fine_size`` grid, plus noise.  Computed in float64 so the data do
        not depend on the caller's dtype.
    """
    n = spec.image_size
    if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.shape[1:] != (1, n, n):
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"images must have shape (B, 1, {n}, {n}), got {shape}")
    x = images.detach().to(device="cpu", dtype=torch.float64)
    if spec.fine_size != n:
        x = F.interpolate(x, size=(spec.fine_size, spec.fine_size), mode="bilinear",
                          align_corners=False)
    with torch.no_grad():
        y = spec.fine_operator()(x)
    if isinstance(generator, (list, tuple)):
        if len(generator) != y.shape[0]:
            raise ValueError(f"got {len(generator)} generators for {y.shape[0]} images")
        return torch.cat([spec.noise.apply(y[b:b + 1], g) for b, g in enumerate(generator)])
    return spec.noise.apply(y, generator)


register_task("ct", SimulationSpec)
