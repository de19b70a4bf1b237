"""Non-Cartesian MRI: NUFFT sampling (single-coil and SENSE), radial density compensation,
gridding reconstruction.

The forward model samples the image's Fourier transform at arbitrary k-space points
``k_j`` (radians per pixel, ``[-pi, pi)``, last axis ``(k_row, k_col)``: the convention of
:mod:`~tomolearn.modalities.mri.trajectories`):

    ``y_{c,j} = (H W)^{-1/2} sum_n S_c[n] x[n] exp(-i k_j . (n - (H // 2, W // 2)))``

with the unitary scale of :func:`~tomolearn.operators.fourier.fft2c`, so that on the
Cartesian grid points ``k = 2 pi (m - N // 2) / N`` the operator agrees with ``fft2c`` (to
the NUFFT's accuracy).  The sums are computed by FINUFFT [1]_ (type 2 forward; the adjoint
is the same plan run backwards, ``Plan.execute_adjoint``, a type-1 transform with the very
same kernel, grid and deconvolution), to a requested relative accuracy ``eps`` (default
``1e-6``; complex64 data are computed in single precision, where ``eps`` is raised to at
least ``1e-6``).  Because both directions share one kernel, the adjoint is the conjugate
transpose of the *computed* forward to floating-point rounding (dot-product errors of order
``1e-15`` in complex128 and ``1e-8`` in complex64, measured by ``scripts/nufft_choice.py``),
not merely to ``eps``: the operator battery's default tolerances apply unchanged.  CUDA
tensors use cufinufft [2]_ when it is installed (``pip install cufinufft``; type-2 forward,
type-1 adjoint with the same ``eps`` and ``upsampfac``), and otherwise run on the CPU and
come back to their device.

Density compensation (:func:`density_compensation`) is the exact polar-Voronoi area of every
sample of a radial trajectory: the ramp ``|k|`` of Ram-Lak filtering, with the k-space centre
given the area of its own disc (``pi dk^2 / 4`` shared by the spokes through it) instead of
zero, and each spoke's share of a ring in proportion to its angular gap (golden-angle gaps are
uneven).  Weights are scaled so that ``A^H diag(w) A`` approximates the identity (``w = 1`` on
a full Cartesian grid): :meth:`NonCartesianSENSE.initial_reconstruction`, the gridding
reconstruction ``A^H (w y)``, reproduces a constant image approximately.

References
----------
.. [1] A. H. Barnett, J. F. Magland and L. af Klinteberg, "A parallel non-uniform fast
       Fourier transform library based on an 'exponential of semicircle' kernel", SIAM J.
       Sci. Comput. 41(5), C479-C504, 2019.
.. [2] Y. Shih et al., "cuFINUFFT: a load-balanced GPU library for general-purpose nonuniform
       FFTs", IPDPSW 2021.
.. [3] J. G. Pipe and P. Menon, "Sampling density compensation in MRI: rationale and an
       iterative numerical solution", Magn. Reson. Med. 41(1), 179-186, 1999 (the rationale:
       weights are the area each sample represents).
"""

from __future__ import annotations

import math
import warnings

import finufft
import numpy as np
import torch

from ...operators import LinearOperator
from .coils import validate_maps
from .operators import _complex, _image_shape, _LanczosNorm

__all__ = ["NonCartesianSENSE", "density_compensation"]

#: Best relative accuracy asked of single-precision (complex64) transforms.
SINGLE_PRECISION_EPS = 1e-6


def _trajectory(trajectory) -> torch.Tensor:
    """Validate ``(..., 2)`` k-space coordinates in radians per pixel; float64 tensor."""
    if isinstance(trajectory, np.ndarray):
        trajectory = torch.from_numpy(np.ascontiguousarray(trajectory))
    if not isinstance(trajectory, torch.Tensor):
        raise TypeError(f"trajectory must be a torch.Tensor or numpy array (..., 2), got "
                        f"{type(trajectory).__name__}")
    if not trajectory.is_floating_point():
        raise TypeError(f"trajectory must be real floating point (radians per pixel), got "
                        f"{trajectory.dtype}")
    if trajectory.dim() < 2 or trajectory.shape[-1] != 2 or trajectory.numel() == 0:
        raise ValueError(f"trajectory must have shape (..., 2) (last axis (k_row, k_col)) with "
                         f"at least one sample, got {tuple(trajectory.shape)}")
    trajectory = trajectory.detach().to(device="cpu", dtype=torch.float64)
    if not bool(torch.isfinite(trajectory).all()):
        raise ValueError("trajectory contains NaN or infinite values")
    worst = float(trajectory.abs().max())
    if worst > math.pi * (1 + 1e-6):  # float32 rounding of pi allowed
        raise ValueError(f"trajectory must be in radians per pixel, in [-pi, pi); got |k| up to "
                         f"{worst:.6g}. Convert cycles per pixel ([-1/2, 1/2)) by multiplying "
                         f"by 2 pi, sigpy-style coordinates ([-N/2, N/2)) by 2 pi / N")
    return trajectory.contiguous()


def _eps(eps) -> float:
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not 0 < eps < 1:
        raise ValueError(f"eps (the NUFFT's relative accuracy) must be in (0, 1), got {eps!r}")
    return float(eps)


def _ring_weights(trajectory: torch.Tensor, shape):
    """Polar-Voronoi areas of a radial trajectory, or ``None`` (with the reason) if its
    samples do not lie on rings ``|k| = (m + delta) dk`` along readouts of step ``dk``."""
    k = trajectory.reshape(-1, trajectory.shape[-2], 2).numpy()
    if k.shape[1] < 2:
        return None, "it needs at least 2 samples per readout (shape (..., n_readout, 2))"
    steps = np.linalg.norm(np.diff(k, axis=1), axis=-1)
    dk = float(np.median(steps))
    if not dk > 0:
        return None, "its readouts do not move through k-space"
    k = k.reshape(-1, 2)
    r = np.hypot(k[:, 0], k[:, 1])
    half = r / (dk / 2)  # radii are on whole (delta = 0) or half (delta = 1/2) readout steps
    index = np.rint(half).astype(np.int64)
    if np.abs(half - index).max() > 1e-3 or len(np.unique(index[index > 0] % 2)) > 1:
        return None, ("its samples are not on concentric rings of one readout step "
                      f"({dk:.4g} rad/pixel): it is not radial")
    inner = np.maximum(r - dk / 2, 0.0)
    ring_area = math.pi * ((r + dk / 2) ** 2 - inner ** 2)
    phi = np.arctan2(k[:, 0], k[:, 1])
    share = np.empty_like(r)
    for ring in np.unique(index):
        members = np.flatnonzero(index == ring)
        if ring == 0 or len(members) == 1:  # the centre has no angle: equal shares
            share[members] = 1.0 / len(members)
            continue
        order = members[np.argsort(phi[members], kind="stable")]
        p = phi[order]
        gap_next = np.diff(p, append=p[0] + 2 * math.pi)
        gap_prev = np.diff(p, prepend=p[-1] - 2 * math.pi)
        share[order] = (gap_next + gap_prev) / (4 * math.pi)
    h, w = shape
    weights = ring_area * share * (h * w) / (2 * math.pi) ** 2
    return torch.from_numpy(weights).reshape(trajectory.shape[:-1]), ""


def density_compensation(trajectory, shape) -> torch.Tensor:
    """Density-compensation weights of a radial trajectory (exact polar-Voronoi areas).

    Sample ``j`` at radius ``r_j = |k_j|`` on a ring of readout step ``dk`` gets the area of
    its annulus ``pi ((r + dk/2)^2 - max(r - dk/2, 0)^2)`` (``2 pi r dk``: the Ram-Lak ramp;
    ``pi dk^2 / 4`` for the centre) times its share of the ring: half the angular gaps to its
    neighbours on the ring over ``2 pi`` (equal shares at the centre).  Full diameters and
    half spokes, any angles (golden-angle gaps are uneven) and odd readouts (rings at half
    steps, no sample at the centre) are handled.  The weights are multiplied by
    ``H W / (2 pi)^2``, so that with :class:`NonCartesianSENSE`'s unitary scaling
    ``A^H diag(w) A ~ I`` (``w = 1`` for a full Cartesian grid).

    Parameters
    ----------
    trajectory : torch.Tensor or numpy.ndarray, (..., n_readout, 2)
        Radians per pixel in ``[-pi, pi)``, e.g. from
        :func:`~tomolearn.modalities.mri.trajectories.radial_trajectory`; consecutive samples
        along the second-to-last axis are one readout.
    shape : (int, int)
        Image shape ``(H, W)``.

    Returns
    -------
    torch.Tensor, float64, ``trajectory.shape[:-1]``

    Raises
    ------
    ValueError
        For a trajectory that is not radial (e.g. a spiral: compute its weights elsewhere and
        pass them to :class:`NonCartesianSENSE` as ``density``), out of range or misshapen.
    """
    weights, reason = _ring_weights(_trajectory(trajectory), _image_shape(shape))
    if weights is None:
        raise ValueError(f"density_compensation computes radial weights; this trajectory "
                         f"cannot use them: {reason}")
    return weights


_CUFINUFFT = []  # [module or None], filled on first CUDA use


def _cufinufft():
    if not _CUFINUFFT:
        try:
            import cufinufft
        except ImportError:  # optional: CUDA data then run on the CPU
            cufinufft = None
            warnings.warn("cufinufft is not installed: NonCartesianSENSE runs CUDA tensors "
                          "through finufft on the CPU (pip install cufinufft for the GPU)",
                          RuntimeWarning, stacklevel=4)
        _CUFINUFFT.append(cufinufft)
    return _CUFINUFFT[0]


class NonCartesianSENSE(_LanczosNorm, LinearOperator):
    """Non-Cartesian (multi-coil SENSE or single-coil) Fourier sampling through a NUFFT.

    ``y_c = F_k (S_c x)`` for every coil ``c``, where ``F_k`` samples the (unitarily scaled)
    Fourier transform at the trajectory's points; see the module docstring for the formula,
    the library (FINUFFT) and the accuracy.

    Parameters
    ----------
    maps : torch.Tensor or numpy.ndarray, complex, (n_coils, H, W), or None
        Coil sensitivities; ``None`` for single-coil sampling of the image itself (then
        ``image_shape`` is required).
    trajectory : torch.Tensor or numpy.ndarray, (..., 2)
        k-space points in radians per pixel, ``[-pi, pi)``, last axis ``(k_row, k_col)``
        (e.g. ``radial_trajectory(n_spokes, n_readout)``, shape ``(n_spokes, n_readout, 2)``).
    image_shape : (int, int), optional
        ``(H, W)``; default: the maps' shape.
    eps : float
        Requested relative accuracy of the NUFFT (at least ``1e-6`` in complex64).
    density : torch.Tensor, optional, or False
        Density-compensation weights of shape ``trajectory.shape[:-1]`` for
        :meth:`initial_reconstruction`; default: :func:`density_compensation` for a radial
        trajectory, none otherwise; ``False`` for none.
    normalized, atol :
        As in :class:`~tomolearn.modalities.mri.operators.MultiCoilSENSE` (maps with
        ``sum_c |S_c|^2 = 1``).

    Notes
    -----
    Maps complex ``(B, C, H, W)`` images to ``(B, C, n_coils, *trajectory.shape[:-1])``
    samples (``(B, C, *trajectory.shape[:-1])`` when ``maps`` is None); for a radial
    trajectory the last two axes are ``(n_spokes, n_readout)``, a sinogram-like layout.  The
    adjoint is ``sum_c conj(S_c) F_k^H y_c``.  Real input is refused; complex64 and
    complex128 keep their precision; the maps, trajectory and weights are buffers, so
    ``op.to(device)`` moves them.
    """

    requires_complex = True

    def __init__(self, maps, trajectory, image_shape=None, eps: float = 1e-6, density=None,
                 normalized: bool = True, atol: float = 1e-5):
        if maps is None and image_shape is None:
            raise ValueError("NonCartesianSENSE needs image_shape when maps is None "
                             "(single-coil)")
        if maps is not None:
            maps = validate_maps(maps, image_shape=image_shape, normalized=normalized,
                                 atol=atol)
            image_shape = tuple(maps.shape[1:])
        image_shape = _image_shape(image_shape)
        trajectory = _trajectory(trajectory)
        samples = tuple(trajectory.shape[:-1])
        coils = () if maps is None else (maps.shape[0],)
        super().__init__(image_shape, coils + samples)
        self.eps = _eps(eps)
        self.register_buffer("trajectory", trajectory)
        # a real (..., 2) view, so that module.to(dtype) cannot drop the imaginary part
        self.register_buffer("maps_real", None if maps is None else
                             torch.view_as_real(maps.to(torch.complex128)).clone())
        if density is None:
            density, _ = _ring_weights(trajectory, image_shape)
        elif density is False:
            density = None
        else:
            density = self._density(density, samples)
        self.register_buffer("density", density)

    @staticmethod
    def _density(density, samples) -> torch.Tensor:
        if isinstance(density, np.ndarray):
            density = torch.from_numpy(np.ascontiguousarray(density))
        if not isinstance(density, torch.Tensor) or not density.is_floating_point():
            raise TypeError(f"density must be a real floating tensor or array of shape "
                            f"{samples}, or None / False, got {type(density).__name__}")
        if tuple(density.shape) != samples:
            raise ValueError(f"density must have the trajectory's sample shape {samples}, got "
                             f"{tuple(density.shape)}")
        if not bool(torch.isfinite(density).all()) or bool((density < 0).any()):
            raise ValueError("density weights must be finite and non-negative")
        return density.detach().to(device="cpu", dtype=torch.float64).contiguous()

    # -- shapes and buffers -------------------------------------------------
    @property
    def n_coils(self) -> int:
        return 1 if self.maps_real is None else self.maps_real.shape[0]

    @property
    def n_samples(self) -> int:
        return math.prod(self.trajectory.shape[:-1])

    @property
    def maps(self):
        """The coil maps ``(n_coils, H, W)`` complex128, or None for single-coil sampling."""
        return None if self.maps_real is None else torch.view_as_complex(
            self.maps_real.contiguous())

    def _maps_like(self, x: torch.Tensor) -> torch.Tensor:
        real = self.maps_real.to(device=x.device, dtype=x.real.dtype).contiguous()
        return torch.view_as_complex(real)

    # -- the transforms -----------------------------------------------------
    def _nufft(self, data: torch.Tensor, adjoint: bool) -> torch.Tensor:
        """Type 2 of ``(n, H, W)`` -> ``(n, M)``, or its adjoint ``(n, M)`` -> ``(n, H, W)``,
        unitarily scaled, on the data's device and in its precision."""
        eps = self.eps
        if data.dtype == torch.complex64:
            eps = max(eps, SINGLE_PRECISION_EPS)
        scale = 1.0 / math.sqrt(math.prod(self.domain_shape))
        if data.device.type == "cuda" and _cufinufft() is not None:
            out = self._cuda_nufft(data, adjoint, eps)
        else:
            out = torch.from_numpy(self._cpu_nufft(data.detach().cpu(), adjoint, eps))
        return out.to(data.device).mul_(scale)

    def _points(self, dtype: torch.dtype, device=None):
        k = self.trajectory.reshape(-1, 2).to(device=device, dtype=dtype.to_real())
        return [k[:, i].contiguous() for i in range(2)]

    def _cpu_nufft(self, data: torch.Tensor, adjoint: bool, eps: float) -> np.ndarray:
        n = data.shape[0]
        plan = finufft.Plan(2, self.domain_shape, n_trans=n, eps=eps, isign=-1,
                            dtype=str(data.dtype).replace("torch.", ""),
                            nthreads=torch.get_num_threads())
        plan.setpts(*(p.numpy() for p in self._points(data.dtype)))
        array = data.resolve_conj().contiguous().numpy()
        return plan.execute_adjoint(array) if adjoint else plan.execute(array)

    def _cuda_nufft(self, data: torch.Tensor, adjoint: bool, eps: float) -> torch.Tensor:
        # cufinufft has no execute_adjoint: the type-1 plan with the same eps and upsampfac
        # (hence the same kernel and grid) is the adjoint of the type-2 plan.
        cufinufft = _cufinufft()
        n = data.shape[0]
        with torch.cuda.device(data.device):
            plan = cufinufft.Plan(1 if adjoint else 2, self.domain_shape, n_trans=n, eps=eps,
                                  isign=1 if adjoint else -1, upsampfac=2.0,
                                  dtype=str(data.dtype).replace("torch.", ""))
            plan.setpts(*self._points(data.dtype, data.device))
            out = plan.execute(data.resolve_conj().contiguous())
        return torch.as_tensor(out, device=data.device)

    def _forward(self, x):
        x = _complex(x)
        lead = tuple(x.shape[:2])
        if self.maps_real is not None:
            x = x.unsqueeze(2) * self._maps_like(x)
        y = self._nufft(x.reshape((-1,) + self.domain_shape), adjoint=False)
        return y.reshape(lead + self.range_shape)

    def _adjoint(self, y):
        y = _complex(y)
        lead = tuple(y.shape[:2])
        coils = () if self.maps_real is None else (self.n_coils,)
        images = self._nufft(y.reshape(-1, self.n_samples), adjoint=True)
        images = images.reshape(lead + coils + self.domain_shape)
        if self.maps_real is not None:
            images = (images * self._maps_like(images).conj()).sum(dim=2)
        return images

    def initial_reconstruction(self, y: torch.Tensor) -> torch.Tensor:
        """The gridding reconstruction ``A^H (w y)`` with the density-compensation weights
        ``w`` (see :func:`density_compensation`): a constant image comes back approximately
        constant with its value.  Without weights (a non-radial trajectory and no
        ``density``), the protocol's ``A^H y / ||A||^2``."""
        if self.density is None:
            return super().initial_reconstruction(y)
        self._check(y, self.range_shape, "initial_reconstruction")
        return self.adjoint(y * self.density.to(device=y.device, dtype=y.real.dtype))

    def extra_repr(self):
        return (f"n_coils={self.n_coils if self.maps_real is not None else 'single'}, "
                f"image_shape={self.domain_shape}, "
                f"trajectory={tuple(self.trajectory.shape[:-1])}, eps={self.eps:g}")
