"""The 2-D PET task (``"pet"``): a clinical ring's direct-plane sinogram, Poisson counts.

Model (per sample, all in float64)::

    y ~ Poisson(ybar),   ybar = n . a . A (PSF x) + r + s

* ``A``: the exact Joseph ray transform of the scanner's direct-plane sinogram
  (:mod:`tomolearn.modalities.pet.scanner`, default the Siemens Biograph mCT, 168 views x 400
  bins of 2.005 mm), the image ``image_size`` x ``image_size`` voxels over ``fov_mm``
  (default 128 over 400 mm: 3.125 mm voxels), line integrals in mm.
* ``PSF``: an image-space Gaussian of ``psf_fwhm_mm`` FWHM (default 4.5 mm, of the order of
  clinical scanners' transverse resolution).
* ``a = exp(-A mu)``: attenuation factors of the task's body (a registered analytic mu-map in
  1/mm, :data:`~tomolearn.modalities.pet.phantoms.BODIES`; see there why the mu-map belongs to
  the task), ``n``: per-bin normalisation, the product of the efficiencies of the two crystals
  at the ends of the bin's LOR, drawn once per task from ``seed`` (``1 + norm_spread N(0, 1)``
  clipped to [0.5, 1.5]).
* Counts: the ground truth is the family image cut to the body's support and scaled so that
  its expected **trues** per slice ``sum n . a . A PSF x`` equal ``counts``: ``x`` is thus in
  counts-calibrated units (expected detected trues per mm of LOR per unit of ``x``), not Bq/ml.
  Scatter ``s`` (:mod:`~tomolearn.modalities.pet.background`) makes the scatter fraction
  ``S / (S + T) = scatter_fraction`` (NEMA's definition), randoms ``r`` are flat with
  ``R / (T + S + R) = randoms_fraction`` of the prompts.
* No inverse crime: data are simulated from the image upsampled bilinearly by ``fine_factor``,
  with the ray transform, PSF and mu-map of that finer grid.

The reconstruction operator (:meth:`PETTask.operator`) is the linear part ``n . a . A . PSF``
on the ``image_size`` grid, with the mu-map moved ``mu_shift_mm`` (a misregistered mu-map:
the ``mismatched-attenuation`` shift), and carries the additive term a reconstruction uses,
``operator().background_of(y)``: the known flat randoms plus, when ``scatter_correction``, the
scatter estimated from the prompts.  :meth:`PETTask.acquire` returns what a scanner gives,
kept apart: prompts, randoms and scatter estimates, normalisation and attenuation factors.
Sample ``i`` of a dataset is a pure function of its index (its generator draws the Poisson
counts; the ground truth is deterministic).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Dict, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from ...registry import Task, register_shift, register_task
from ..ct.ray_transform import RayTransform
from .background import scatter_estimate, scatter_model
from .figures import nema_figures
from .operators import GaussianPSF, PETProjector, n_subsets_for
from .phantoms import BODIES, body_mu, body_support, check_mu_map
from .scanner import SCANNERS, scanner
from .tof import MCT_TIMING_RESOLUTION_PS, MCT_TOF_BIN_PS, TOFProjector, tof_fwhm_mm

__all__ = ["PETTask", "FAMILY_BODIES"]

#: The body each PET image family is drawn in (:meth:`PETTask.for_family`).
FAMILY_BODIES = {"nema-iq": "nema", "pet-torso": "torso", "pet-brain": "head"}


def _generators(generator, n: int):
    if isinstance(generator, (list, tuple)):
        if len(generator) != n:
            raise ValueError(f"got {len(generator)} generators for {n} images")
        return list(generator)
    return [generator] * n


@dataclass(frozen=True)
class PETTask(Task):
    """2-D PET on a clinical scanner's direct-plane sinogram (registered as ``"pet"``).

    Parameters
    ----------
    image_size : int
        Side of the reconstruction grid (voxels).
    fov_mm : float
        Side of the image (mm); voxels are ``fov_mm / image_size``.
    scanner : str
        A key of :data:`~tomolearn.modalities.pet.scanner.SCANNERS` (``"mct"``).
    view_mash, bin_mash : int
        Mash factors of views and radial bins (1: the scanner's sinogram).
    counts : float
        Expected true coincidences per slice.
    randoms_fraction : float
        Randoms as a fraction of the prompts, in [0, 1).
    scatter_fraction : float
        ``S / (S + T)``, in [0, 1).
    psf_fwhm_mm : float
        FWHM of the image-space resolution model (0: none).
    body : str
        The attenuating body (a key of ``BODIES``).
    mu_shift_mm : float
        Shift (mm, to the right) of the mu-map the reconstruction uses against the true one.
    scatter_correction : bool
        Whether the reconstruction's additive term includes the scatter estimate.
    norm_spread : float
        Standard deviation of the crystal efficiencies (normalisation).
    fine_factor : int
        Simulation grid refinement (1 commits the inverse crime).
    seed : int
        Seed of the normalisation and base seed of datasets.
    tof_bins : int
        Time-of-flight bins per LOR (0: no TOF; the mCT's sinograms have 13).  With TOF,
        sinograms are ``(n_views, tof_bins, n_bins)`` and the operator is a
        :class:`~tomolearn.modalities.pet.tof.TOFProjector`; randoms and scatter are spread
        evenly over the TOF bins of a LOR (a simplification: real scatter is concentrated
        where the body is).
    tof_bin_ps : float
        TOF bin width (ps); ``c / 2`` of it in mm along the LOR (312.5 ps: 46.8 mm).
    timing_resolution_ps : float
        Coincidence timing resolution (ps FWHM; the mCT's 540 ps: an 81 mm kernel).
    """

    image_size: int = 128
    fov_mm: float = 400.0
    scanner: str = "mct"
    view_mash: int = 1
    bin_mash: int = 1
    counts: float = 1e6
    randoms_fraction: float = 0.2
    scatter_fraction: float = 0.3
    psf_fwhm_mm: float = 4.5
    body: str = "torso"
    mu_shift_mm: float = 0.0
    scatter_correction: bool = True
    norm_spread: float = 0.1
    fine_factor: int = 2
    seed: int = 0
    tof_bins: int = 0
    tof_bin_ps: float = MCT_TOF_BIN_PS
    timing_resolution_ps: float = MCT_TIMING_RESOLUTION_PS

    likelihood = "poisson"
    headline = ("counts", "scanner", "body")
    benchmark_shifts = ("counts-low",)
    benchmark_families = ("nema-iq",)
    figure_sweeps = (("nema-iq", "OSEM 21 subsets, iterations", "osem", "n_iter",
                      (1, 2, 3, 4, 6, 8, 10), {"n_subsets": 21}),
                     ("nema-iq", "MAP (RDP), beta", "rdp-map", "beta",
                      (0.3, 1.0, 2.0, 5.0, 20.0), {}))
    families = ("pet-torso", "nema-iq", "pet-brain", "ellipses", "shepp-logan")
    # the clinical reconstructions and the learned ones; MLEM (50 iterations) and the generic
    # least-squares TV are in ``benchmark pet``, not the three-minute demo
    demo_methods = ("osem", "osem-filtered", "rdp-map", "fbsem", "osem-unet")
    data_name = "sinogram (prompts)"
    image_dtype = torch.float32
    value_range = (0.0, math.inf)
    units = ("activity in counts-calibrated units (expected trues per mm of LOR), voxels "
             "fov_mm / image_size mm; sinograms in counts (prompts); mu in 1/mm")

    def __post_init__(self):
        for name in ("image_size", "view_mash", "bin_mash", "fine_factor"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if isinstance(self.tof_bins, bool) or not isinstance(self.tof_bins, int) or \
                self.tof_bins < 0:
            raise ValueError(f"tof_bins must be a non-negative int (0: no TOF), got "
                             f"{self.tof_bins!r}")
        for name in ("tof_bin_ps", "timing_resolution_ps"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or \
                    not math.isfinite(value) or value <= 0:
                raise ValueError(f"{name} must be a positive number, got {value!r}")
            object.__setattr__(self, name, float(value))
        for name, low, high in (("fov_mm", 0.0, math.inf), ("counts", 0.0, math.inf),
                                ("randoms_fraction", 0.0, 1.0), ("scatter_fraction", 0.0, 1.0),
                                ("psf_fwhm_mm", 0.0, math.inf), ("norm_spread", 0.0, 0.5)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or \
                    not math.isfinite(value) or not low <= value < high or \
                    (name in ("fov_mm", "counts") and value <= 0):
                raise ValueError(f"{name} must be a number in [{low}, {high}) (positive for "
                                 f"fov_mm and counts), got {value!r}")
            object.__setattr__(self, name, float(value))
        if not isinstance(self.mu_shift_mm, (int, float)) or isinstance(self.mu_shift_mm, bool) \
                or not math.isfinite(self.mu_shift_mm):
            raise ValueError(f"mu_shift_mm must be a finite number, got {self.mu_shift_mm!r}")
        object.__setattr__(self, "mu_shift_mm", float(self.mu_shift_mm))
        if self.scanner not in SCANNERS:
            raise ValueError(f"scanner must be one of {', '.join(SCANNERS)}, got {self.scanner!r}")
        if self.body not in BODIES:
            raise ValueError(f"body must be one of {', '.join(BODIES)}, got {self.body!r}")
        if not isinstance(self.scatter_correction, bool):
            raise ValueError(f"scatter_correction must be a bool, got {self.scatter_correction!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or \
                not 0 <= self.seed < 2 ** 32:
            raise ValueError(f"seed must be an int in [0, 2**32), got {self.seed!r}")
        scanner(self.scanner).geometry(self.view_mash, self.bin_mash)  # mash factors divide
        half = self.fov_mm / math.sqrt(2)
        if half >= scanner(self.scanner).ring_radius_mm:
            raise ValueError(f"the image (fov_mm={self.fov_mm}) must lie inside the ring")

    @classmethod
    def tiny(cls) -> "PETTask":
        """32 x 32 voxels of 12.5 mm, 21 views x 50 bins (the mCT's sinogram mashed 8 x 8)."""
        return cls(image_size=32, view_mash=8, bin_mash=8)

    def for_family(self, family: str) -> "PETTask":
        """The PET families in the body they are drawn in (``nema-iq``: ``nema``,
        ``pet-torso``: ``torso``, ``pet-brain``: ``head``); other families: ``self``."""
        body = FAMILY_BODIES.get(family)
        return self if body is None or body == self.body else self.replace(body=body)

    def figures_of_merit(self, family, x_hat, x):
        """NEMA NU 2 figures of each image of ``nema-iq`` (:func:`~.figures.nema_figures`):
        ``crc`` and ``background_variability`` ``{diameter_mm: fraction}`` (keys "10" to
        "37") and ``lung_residual``; None for other families."""
        if family != "nema-iq":
            return None
        out = []
        for image in x_hat.detach().real.reshape(-1, *x_hat.shape[-2:]):
            f = nema_figures(image, self.fov_mm)
            out.append({"crc": {f"{d:g}": v for d, v in f["crc"].items()},
                        "background_variability": {f"{d:g}": v
                                                   for d, v in f["variability"].items()},
                        "lung_residual": f["lung_residual"]})
        return out

    # -- shapes and geometry ------------------------------------------------------------------
    @property
    def image_shape(self) -> Tuple[int, int]:
        """``(image_size, image_size)``."""
        return (self.image_size, self.image_size)

    @property
    def data_shape(self) -> Tuple[int, ...]:
        """``(n_views, n_bins)`` after mashing; ``(n_views, tof_bins, n_bins)`` with TOF."""
        s = scanner(self.scanner)
        views, bins = s.n_views // self.view_mash, s.n_bins // self.bin_mash
        return (views, self.tof_bins, bins) if self.tof_bins else (views, bins)

    @property
    def data_axes(self) -> Tuple[str, ...]:
        return ("view", "TOF bin", "radial bin") if self.tof_bins else ("view", "radial bin")

    def _sum_tof(self, t: torch.Tensor) -> torch.Tensor:
        """TOF sinograms ``(..., views, tof, bins)`` summed over TOF; others unchanged."""
        return t.sum(dim=-2) if self.tof_bins else t

    def _spread_tof(self, t: torch.Tensor) -> torch.Tensor:
        """A non-TOF sinogram spread evenly over the TOF bins (unchanged without TOF)."""
        if not self.tof_bins:
            return t
        return (t / self.tof_bins).unsqueeze(-2).expand(
            t.shape[:-1] + (self.tof_bins, t.shape[-1])).contiguous()

    @property
    def voxel_mm(self) -> float:
        """Voxel side (mm)."""
        return self.fov_mm / self.image_size

    @property
    def bin_mm(self) -> float:
        """Radial bin width (mm) after mashing."""
        return scanner(self.scanner).bin_size_mm * self.bin_mash

    def to_dict(self) -> dict:
        """The fields; the TOF fields only when ``tof_bins > 0``, so that non-TOF specs (and
        their content hashes) are those of the task before TOF existed."""
        d = super().to_dict()
        if not self.tof_bins:
            for name in ("tof_bins", "tof_bin_ps", "timing_resolution_ps"):
                d.pop(name)
        return d

    def _json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    def normalisation(self) -> torch.Tensor:
        """Per-bin normalisation factors ``n`` ``(n_views, n_bins)`` float64 (see the module)."""
        return _normalisation(self._json()).clone()

    def mu_map(self, fine: bool = False, shifted: bool = False) -> torch.Tensor:
        """The body's mu-map ``(N, N)`` float64 in 1/mm (``fine``: the simulation grid;
        ``shifted``: moved ``mu_shift_mm``, the map the reconstruction uses)."""
        n = self.image_size * (self.fine_factor if fine else 1)
        return torch.from_numpy(body_mu(self.body, n, self.fov_mm,
                                        self.mu_shift_mm if shifted else 0.0))

    def attenuation(self, fine: bool = False, shifted: bool = False) -> torch.Tensor:
        """Attenuation factors ``a = exp(-A mu)`` ``(n_views, n_bins)`` float64."""
        ray = _ray(self._json(), fine)
        return torch.exp(-ray(self.mu_map(fine, shifted)[None, None]))[0, 0]

    def operator(self):
        """``n . a . A . PSF`` on the reconstruction grid with its background model (cached)."""
        return _operator(self._json())

    def operator_with_mu(self, mu) -> PETProjector:
        """The reconstruction operator with the attenuation of a given mu-map (e.g. CT-derived)
        ``(image_size, image_size)`` in 1/mm at 511 keV, checked by :func:`check_mu_map`."""
        ray = _ray(self._json(), False)
        a = torch.exp(-ray(check_mu_map(mu, self.image_shape)[None, None]))[0, 0]
        psf = GaussianPSF(self.image_shape, self.psf_fwhm_mm, self.voxel_mm) \
            if self.psf_fwhm_mm > 0 else None
        return _projector(self, ray, self.normalisation() * a, psf, self.background)

    def simulation_operator(self):
        """``n . a . A . PSF`` on the ``fine_factor`` grid with the true mu-map (cached)."""
        return _simulation_operator(self._json())

    # -- counts -----------------------------------------------------------------------------
    def totals(self) -> Dict[str, float]:
        """Expected ``trues``, ``scatter``, ``randoms`` and ``prompts`` per slice."""
        t = self.counts
        s = self.scatter_fraction / (1 - self.scatter_fraction) * t
        r = self.randoms_fraction / (1 - self.randoms_fraction) * (t + s)
        return {"trues": t, "scatter": s, "randoms": r, "prompts": t + s + r}

    @property
    def randoms_per_bin(self) -> float:
        """Expected randoms per bin (flat)."""
        return self.totals()["randoms"] / math.prod(self.data_shape)

    def _fine(self, x: torch.Tensor) -> torch.Tensor:
        if self.fine_factor == 1:
            return x
        n = self.image_size * self.fine_factor
        # bilinear upsampling keeps the mean, so line integrals keep their scale
        return F.interpolate(x, size=(n, n), mode="bilinear", align_corners=False)

    def _check_images(self, images) -> torch.Tensor:
        n = self.image_size
        if not isinstance(images, torch.Tensor) or images.dim() != 4 or \
                tuple(images.shape[1:]) != (1, n, n):
            shape = tuple(images.shape) if isinstance(images, torch.Tensor) else \
                type(images).__name__
            raise ValueError(f"images must have shape (B, 1, {n}, {n}), got {shape}")
        return images.detach().to(device="cpu", dtype=torch.float64)

    def ground_truth(self, images: torch.Tensor, generator=None) -> torch.Tensor:
        """Family images ``(B, 1, N, N)`` cut to the body and scaled to ``counts`` expected
        trues per slice (an all-zero image stays zero); ``images``' dtype."""
        x = self._check_images(images) * torch.from_numpy(
            body_support(self.body, self.image_size, self.fov_mm))
        with torch.no_grad():
            trues = self.simulation_operator()(self._fine(x)).flatten(1).sum(1)
        scale = torch.where(trues > 0, self.counts / trues.clamp_min(1e-300),
                            torch.ones_like(trues))
        return (x * scale[:, None, None, None]).to(images.dtype)

    def acquire(self, images: torch.Tensor, generator=None) -> Dict[str, torch.Tensor]:
        """What the scanner gives for activity ``images`` ``(B, 1, N, N)`` (ground truths),
        each ``(B, 1, n_views, n_bins)`` float64 unless said: ``prompts`` (Poisson counts),
        ``trues``, ``scatter`` and ``randoms`` (expected values), ``expected`` (their sum),
        ``randoms_estimate`` (flat), ``scatter_estimate`` (from the prompts),
        ``normalisation`` and ``attenuation`` ``(n_views, n_bins)`` (the reconstruction's,
        i.e. with ``mu_shift_mm``)."""
        x = self._check_images(images)
        op = self.simulation_operator()
        norm = op.factors / self.attenuation(fine=True).clamp_min(1e-300)
        with torch.no_grad():
            trues = op(self._fine(x))
            flat = self._sum_tof(trues)
            sf = self.scatter_fraction
            s_total = flat.sum(dim=(1, 2, 3)) * (sf / (1 - sf))
            scatter = self._spread_tof(scatter_model(flat / norm, norm, s_total, self.bin_mm))
            randoms = torch.full_like(trues, self.randoms_per_bin)
        expected = trues + scatter + randoms
        gens = _generators(generator, x.shape[0])
        prompts = torch.stack([torch.poisson(expected[b], generator=g)
                               for b, g in enumerate(gens)]) if gens else expected.clone()
        rec = self.operator()
        return {"prompts": prompts, "trues": trues, "scatter": scatter, "randoms": randoms,
                "expected": expected,
                "randoms_estimate": torch.full_like(prompts, self.randoms_per_bin),
                "scatter_estimate": self._scatter_estimate(prompts),
                "normalisation": self.normalisation(),
                "attenuation": rec.factors / self.normalisation().clamp_min(1e-300)}

    def simulate(self, images: torch.Tensor, generator=None) -> torch.Tensor:
        """Prompts ``(B, 1, n_views, n_bins)`` float64 of ground truths ``images``
        ``(B, 1, N, N)`` (:meth:`acquire`'s ``"prompts"``)."""
        return self.acquire(images, generator)["prompts"]

    def _scatter_estimate(self, y: torch.Tensor) -> torch.Tensor:
        k = max(1, self.tof_bins)
        return self._spread_tof(scatter_estimate(self._sum_tof(y), self.randoms_per_bin * k,
                                                 self.normalisation(), self.scatter_fraction,
                                                 self.bin_mm))

    def background(self, y: torch.Tensor) -> torch.Tensor:
        """The reconstruction's additive term for prompts ``y`` ``(B, C, n_views, n_bins)``:
        flat randoms plus (with ``scatter_correction``) the scatter estimate; ``y``'s dtype."""
        out = torch.full_like(y, self.randoms_per_bin)
        if self.scatter_correction:
            out = out + self._scatter_estimate(y.double()).to(y.dtype)
        return out

    def noise_std(self, y: torch.Tensor) -> torch.Tensor:
        """Root-mean-square Poisson standard deviation per bin, ``sqrt(mean(y_+))`` ``(B,)``
        float64 (the variance of a Poisson count is its mean)."""
        flat = y.detach().double().reshape(y.shape[0], -1).clamp_min(0)
        return flat.mean(1).sqrt()

    def estimated_bytes(self, batch: int = 1) -> int:
        """The batch's arrays plus the stored system matrices (two entries per in-image Joseph
        sample, the transpose too, 16 bytes an entry) of the reconstruction grid, its view
        subsets (as many again) and the simulation grid."""
        views, bins = self.data_shape[0], self.data_shape[-1]
        total = super().estimated_bytes(batch)
        extra = 2 if self.tof_bins else 0  # TOF keeps per-view matrices for views and subsets
        for n, copies in ((self.image_size, 2 + extra), (self.image_size * self.fine_factor,
                                                         1 + extra // 2)):
            pixel = self.fov_mm / n
            per_view = min(0.9 * n * n * pixel / self.bin_mm, bins * n)
            total += copies * 2 * 16 * 2 * views * per_view
        return int(total + 64 * batch * (self.image_size * self.fine_factor) ** 2)


@lru_cache(maxsize=16)
def _ray(spec_json: str, fine: bool) -> RayTransform:
    t = PETTask.from_dict(json.loads(spec_json))
    n = t.image_size * (t.fine_factor if fine else 1)
    return RayTransform(scanner(t.scanner).geometry(t.view_mash, t.bin_mash), (n, n),
                        pixel_size=t.fov_mm / n)


@lru_cache(maxsize=16)
def _normalisation(spec_json: str) -> torch.Tensor:
    t = PETTask.from_dict(json.loads(spec_json))
    s = scanner(t.scanner)
    rng = np.random.default_rng(np.random.SeedSequence((t.seed, 14)))
    eff = np.clip(1.0 + t.norm_spread * rng.standard_normal(s.crystals_per_ring), 0.5, 1.5)
    pairs = s.crystal_pairs(s.geometry(t.view_mash, t.bin_mash))
    return torch.from_numpy(eff[pairs[..., 0]] * eff[pairs[..., 1]])


@lru_cache(maxsize=16)
def _operator(spec_json: str) -> PETProjector:
    t = PETTask.from_dict(json.loads(spec_json))
    psf = GaussianPSF(t.image_shape, t.psf_fwhm_mm, t.voxel_mm) if t.psf_fwhm_mm > 0 else None
    factors = t.normalisation() * t.attenuation(fine=False, shifted=True)
    return _projector(t, _ray(spec_json, False), factors, psf, t.background)


def _projector(t, ray, factors, psf, background=None):
    if not t.tof_bins:
        op = PETProjector(ray, factors, psf, background=background)
    else:
        op = TOFProjector(ray, t.tof_bins, tof_fwhm_mm(t.tof_bin_ps),
                          tof_fwhm_mm(t.timing_resolution_ps), factors, psf, background)
    s = scanner(t.scanner)  # learned methods start from the scanner's clinical OSEM
    op.initial_osem = (s.osem_iterations, n_subsets_for(op, None, s.osem_subsets))
    return op


@lru_cache(maxsize=16)
def _simulation_operator(spec_json: str) -> PETProjector:
    t = PETTask.from_dict(json.loads(spec_json))
    n = t.image_size * t.fine_factor
    psf = GaussianPSF((n, n), t.psf_fwhm_mm, t.fov_mm / n) if t.psf_fwhm_mm > 0 else None
    factors = t.normalisation() * t.attenuation(fine=True)
    return _projector(t, _ray(spec_json, True), factors, psf)


register_task("pet", PETTask)
register_shift("pet", "counts-low", lambda t: t.replace(counts=t.counts / 10))
register_shift("pet", "mismatched-attenuation",
               lambda t: t.replace(mu_shift_mm=t.mu_shift_mm + 10.0))
register_shift("pet", "no-scatter-correction", lambda t: t.replace(scatter_correction=False))
