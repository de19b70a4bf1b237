"""Cartesian MRI forward operators: single-coil Fourier sampling and multi-coil SENSE.

Images are complex ``(B, C, H, W)``; k-space follows fastMRI: the centred orthonormal DFT
(:func:`~tomolearn.operators.fourier.fft2c`) with zeros where the mask does not sample
(zero-filled k-space of the full size, not a list of samples), coils in the dimension after
the channel: ``(B, C, n_coils, H, W)``.  Both operators are exact: the adjoint is the
conjugate transpose to floating-point precision, and with maps normalised to
``sum_c |S_c|^2 = 1`` the SENSE operator satisfies ``A^H A = S^H F^H M F S`` with norm at
most 1 (1 when fully sampled).  They require complex input (real images are refused, since a
forgotten imaginary part is almost always a bug) and keep its precision: complex64 in,
complex64 out; complex128 in, complex128 out.  The mask and maps are buffers, so
``op.to(device)`` moves them.

References
----------
.. [1] K. P. Pruessmann, M. Weiger, M. B. Scheidegger and P. Boesiger, "SENSE: Sensitivity
       encoding for fast MRI", Magn. Reson. Med. 42(5), 952-962, 1999.
.. [2] J. Zbontar et al., "fastMRI: An open dataset and benchmarks for accelerated MRI",
       arXiv:1811.08839, 2018.
"""

from __future__ import annotations

import math
from typing import Optional, Tuple

import numpy as np
import torch

from ...operators import LinearOperator
from .coils import validate_maps

__all__ = ["SingleCoilCartesian", "MultiCoilSENSE"]

#: CPU batches are applied in steps of about this many bytes of coil images (cache-sized:
#: 1.3 to 1.7 times faster per image than one pass over 8 images of 320 x 320 x 16 coils)
_CHUNK_BYTES = 1 << 23


def _mask(mask, image_shape=None) -> torch.Tensor:
    """A (H, W) bool mask from a (H, W) or (W,) boolean / 0-1 mask (a (W,) column mask is
    repeated over the rows)."""
    if isinstance(mask, np.ndarray):
        mask = torch.from_numpy(np.ascontiguousarray(mask))
    if not isinstance(mask, torch.Tensor):
        raise TypeError(f"mask must be a torch.Tensor or numpy array (H, W) or (W,), got "
                        f"{type(mask).__name__}")
    if mask.is_complex():
        raise TypeError(f"mask must be boolean or real 0/1, got {mask.dtype}")
    if mask.dim() not in (1, 2) or mask.numel() == 0:
        raise ValueError(f"mask must have shape (H, W) or (W,) (a column mask), got "
                         f"{tuple(mask.shape)}")
    if mask.dtype != torch.bool:
        if not bool(((mask == 0) | (mask == 1)).all()):
            raise ValueError("mask must contain only 0 and 1 (or be boolean)")
        mask = mask != 0
    if image_shape is not None:
        h, w = image_shape
        if mask.shape[-1] != w or (mask.dim() == 2 and mask.shape[0] != h):
            raise ValueError(f"mask of shape {tuple(mask.shape)} does not match the image shape "
                             f"{tuple(image_shape)}: expected ({h}, {w}) or ({w},)")
    if mask.dim() == 1:
        if image_shape is None:
            raise ValueError("a 1-D column mask needs the image shape")
        mask = mask.expand(image_shape[0], -1)
    if not bool(mask.any()):
        raise ValueError("the mask samples nothing")
    return mask.contiguous()


def _image_shape(shape) -> tuple:
    try:
        out = tuple(int(s) for s in shape)
        ok = len(out) == 2 and all(s > 0 for s in out)
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"image_shape must be two positive ints (H, W), got {shape!r}")
    return out


def _lanczos_norm(op: LinearOperator, n_iter: int, rtol: float, seed: int, dtype, device) -> float:
    """``||A||_2`` as the square root of the largest Ritz value of ``A^H A`` after Lanczos
    steps from a seeded complex start vector.

    Power iteration converges slowly when the top singular values cluster, as SENSE's do
    (many close to 1 at mild acceleration); Lanczos' largest Ritz value is a lower bound of
    the top eigenvalue that rises monotonically and converges much faster.  No
    reorthogonalisation (memory stays three vectors): lost orthogonality only duplicates
    converged Ritz values.  The estimate can plateau for a while before it rises again, so it
    stops when it has risen by at most ``rtol`` relative over the last 20 steps (or when the
    Krylov space is exhausted).
    """
    dtype = {torch.float32: torch.complex64, torch.float64: torch.complex128}.get(dtype, dtype)
    gen = torch.Generator().manual_seed(seed)
    q = torch.randn((1, 1) + op.domain_shape, generator=gen, dtype=dtype).to(device)
    q = q / torch.linalg.vector_norm(q)
    q_prev = torch.zeros_like(q)
    alphas, betas = [], []
    beta, history = 0.0, [0.0]
    with torch.no_grad():
        for _ in range(min(n_iter, 2 * q.numel())):
            w = op._adjoint(op._forward(q))
            alpha = float(torch.vdot(q.reshape(-1), w.reshape(-1)).real)
            w = w - alpha * q - beta * q_prev
            alphas.append(alpha)
            t = torch.diag(torch.tensor(alphas, dtype=torch.float64))
            if betas:
                off = torch.tensor(betas, dtype=torch.float64)
                t = t + torch.diag(off, 1) + torch.diag(off, -1)
            history.append(max(history[-1], float(torch.linalg.eigvalsh(t)[-1])))
            estimate = history[-1]
            converged = len(history) > 20 and estimate - history[-21] <= rtol * estimate
            beta = float(torch.linalg.vector_norm(w))
            if converged or beta <= 1e-12 * max(estimate, 1e-300):
                break
            betas.append(beta)
            q_prev, q = q, w / beta
    return float(history[-1]) ** 0.5


def _centring_phases(n: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Diagonals ``(d_in, d_out)`` of one axis of length ``n`` with
    ``fftshift(fft(ifftshift(x), norm="ortho")) = d_out * fft(d_in * x, norm="ortho")``.

    With ``a = n // 2``, ``ifftshift`` rolls by ``-a`` (a phase ramp ``e^{2 pi i a k / n}`` on
    the output of the DFT) and ``fftshift`` by ``a`` (a ramp ``e^{2 pi i a m / n}`` on its
    input): ``d_in[m] = e^{2 pi i a m / n}``, ``d_out[k] = e^{2 pi i a (k - a) / n}``; for even
    ``n`` these are exactly ``(-1)^m`` and ``(-1)^(k - a)`` (real).  Folding them into the maps
    and the mask spares the four copies of the shifts in every transform.
    """
    a = n // 2
    idx = torch.arange(n, dtype=torch.float64)
    if n % 2 == 0:
        return ((1 - 2 * (idx % 2)).to(torch.complex128),
                (1 - 2 * ((idx - a) % 2)).to(torch.complex128))
    one = torch.ones(n, dtype=torch.float64)
    return (torch.polar(one, 2 * math.pi * (a * idx % n) / n),
            torch.polar(one, 2 * math.pi * (a * (idx - a) % n) / n))


def _folded(maps: Optional[torch.Tensor], mask: torch.Tensor, like: torch.Tensor):
    """``(maps * D_in, conj(maps * D_in), mask * D_out)`` in ``like``'s precision and on its
    device (maps ``None`` for a single coil: then ``D_in`` and ``conj(D_in)`` are returned);
    the mask factor is real when both sides are even."""
    (h, w), dev = mask.shape, like.device
    (hin, hout), (win, wout) = _centring_phases(h), _centring_phases(w)
    d_in = hin[:, None] * win[None, :]
    m_out = mask.cpu().to(torch.complex128) * (hout[:, None] * wout[None, :])
    if h % 2 == 0 and w % 2 == 0:
        m_out = m_out.real
    m_out = m_out.to(device=dev, dtype=like.dtype if m_out.is_complex() else like.real.dtype)
    m_in = d_in.to(dev) if maps is None else maps.to(dev, torch.complex128) * d_in.to(dev)
    m_in = m_in.to(like.dtype)
    return m_in, m_in.conj().resolve_conj(), m_out


class _LanczosNorm:
    """The operator 2-norm by Lanczos iteration on ``A^H A``, for the MRI operators.

    SENSE's top singular values cluster near 1 at mild acceleration, where the protocol's
    power iteration stalls about 1e-4 short of the norm after 200 steps; the Lanczos estimate
    rises monotonically to it much faster.
    """

    def norm(self, n_iter: int = 200, rtol: float = 1e-7, seed: int = 0,
             dtype: torch.dtype = torch.complex128, device=None, recompute: bool = False) -> float:
        """Operator 2-norm by Lanczos iteration on ``A^H A`` (deterministic, cached per
        arguments like :meth:`LinearOperator.norm`); at most 1 for normalised maps."""
        if n_iter < 1:
            raise ValueError(f"n_iter must be >= 1, got {n_iter}")
        device = torch.device(device) if device is not None else self._default_device()
        key = ("lanczos", n_iter, rtol, seed, dtype, str(device))
        if key not in self._norm_cache or recompute:
            self._norm_cache[key] = _lanczos_norm(self, n_iter, rtol, seed, dtype, device)
        return self._norm_cache[key]


class _FoldedCache:
    """The folded factors per (dtype, device), rebuilt when the buffers are replaced or
    changed in place (``module.to``, ``load_state_dict``)."""

    def __init__(self):
        self.sources, self.entries = None, {}

    def get(self, buffers, maps, mask, like):
        sources = tuple((b, b._version) for b in buffers)
        if self.sources is None or len(sources) != len(self.sources) or any(
                b is not s or v != sv for (b, v), (s, sv) in zip(sources, self.sources)):
            self.sources, self.entries = sources, {}
        key = (like.dtype, like.device)
        if key not in self.entries:
            self.entries[key] = _folded(maps, mask, like)
        return self.entries[key]


def _complex(x: torch.Tensor) -> torch.Tensor:
    """Real input (only from the protocol's internal calls, e.g. ``norm``'s real start vector
    or ``to_dense``'s basis) becomes complex of the same precision."""
    return x if x.is_complex() else torch.complex(x, torch.zeros_like(x))


class SingleCoilCartesian(LinearOperator):
    """Single-coil Cartesian sampling ``y = M F x``.

    Parameters
    ----------
    mask : torch.Tensor or numpy.ndarray, (H, W) or (W,)
        Sampled k-space points (boolean or 0/1), centred layout; a ``(W,)`` column mask
        (fastMRI's phase-encoding lines) needs ``image_shape``.
    image_shape : (int, int), optional
        Default: the mask's shape.

    Notes
    -----
    Maps ``(B, C, H, W)`` complex images to ``(B, C, H, W)`` k-space, zero where not
    sampled; the adjoint ``F^H M y`` is the zero-filled reconstruction.
    """

    requires_complex = True

    def __init__(self, mask, image_shape=None):
        if image_shape is None:
            if isinstance(mask, (torch.Tensor, np.ndarray)) and mask.ndim == 2:
                image_shape = tuple(mask.shape)
            else:
                raise ValueError("SingleCoilCartesian needs image_shape for a 1-D column mask")
        image_shape = _image_shape(image_shape)
        mask = _mask(mask, image_shape)
        super().__init__(image_shape, image_shape)
        self.register_buffer("mask", mask)
        self._folded_cache = _FoldedCache()

    def _factors(self, like):
        return self._folded_cache.get((self.mask,), None, self.mask, like)

    # fft2c(x) * mask == m_out * fft2(d_in * x) (see _centring_phases)
    def _forward(self, x):
        x = _complex(x)
        d_in, _, m_out = self._factors(x)
        return torch.fft.fft2(x * d_in, norm="ortho").mul_(m_out)

    def _adjoint(self, y):
        y = _complex(y)
        _, d_in_conj, m_out = self._factors(y)
        return torch.fft.ifft2(y * m_out.conj(), norm="ortho").mul_(d_in_conj)

    def initial_reconstruction(self, y: torch.Tensor) -> torch.Tensor:
        """The zero-filled reconstruction ``F^H M y`` (the adjoint), ``(B, C, H, W)``."""
        return self.adjoint(y)

    def norm(self, *args, **kwargs) -> float:
        """1: ``F`` is unitary and ``M`` a non-zero projection (arguments are accepted and
        ignored, for the protocol's signature)."""
        return 1.0

    def extra_repr(self):
        return (f"image_shape={self.domain_shape}, sampled={int(self.mask.sum())}"
                f"/{self.mask.numel()}")


class MultiCoilSENSE(_LanczosNorm, LinearOperator):
    """Multi-coil Cartesian SENSE ``y_c = M F (S_c x)`` for every coil ``c``.

    Parameters
    ----------
    maps : torch.Tensor or numpy.ndarray, complex, (n_coils, H, W)
        Coil sensitivities (see :func:`~tomolearn.modalities.mri.coils.birdcage_maps`).
    mask : torch.Tensor or numpy.ndarray, (H, W) or (W,)
        Sampled k-space points (boolean or 0/1), centred layout, shared by all coils.
    normalized : bool
        Require ``sum_c |S_c|^2 = 1`` at every pixel (to ``atol``; see
        :func:`~tomolearn.modalities.mri.coils.validate_maps`).
    atol : float

    Notes
    -----
    Maps ``(B, C, H, W)`` complex images to ``(B, C, n_coils, H, W)`` k-space, zero where not
    sampled.  The adjoint is ``A^H y = sum_c conj(S_c) F^H M y_c``: the zero-filled,
    coil-combined reconstruction (:meth:`initial_reconstruction`).
    """

    requires_complex = True

    def __init__(self, maps, mask, normalized: bool = True, atol: float = 1e-5):
        maps = validate_maps(maps, normalized=normalized, atol=atol)
        image_shape = tuple(maps.shape[1:])
        mask = _mask(mask, image_shape)
        super().__init__(image_shape, (maps.shape[0],) + image_shape)
        # stored as a real (..., 2) view so that module.to(dtype) cannot drop the imaginary part
        self.register_buffer("maps_real", torch.view_as_real(maps.to(torch.complex128)).clone())
        self.register_buffer("mask", mask)
        self._folded_cache = _FoldedCache()

    @property
    def n_coils(self) -> int:
        return self.range_shape[0]

    @property
    def maps(self) -> torch.Tensor:
        """The coil maps ``(n_coils, H, W)``, complex128 (or complex64 after ``.float()``)."""
        return torch.view_as_complex(self.maps_real.contiguous())

    def _maps_like(self, x: torch.Tensor) -> torch.Tensor:
        real = self.maps_real.to(device=x.device, dtype=x.real.dtype).contiguous()
        return torch.view_as_complex(real)

    def _factors(self, like):
        """``(S D_in, conj(S D_in), M D_out)`` for ``like``'s dtype and device, cached."""
        return self._folded_cache.get((self.maps_real, self.mask), self.maps, self.mask, like)

    def _step(self, x: torch.Tensor) -> int:
        """Images per step: on the CPU, batches whose coil images exceed about
        ``_CHUNK_BYTES`` go in steps that stay in cache (the whole batch on GPUs, and when
        autograd records, since ``out=`` does not differentiate)."""
        if x.device.type != "cpu" or (torch.is_grad_enabled() and x.requires_grad):
            return x.shape[0]
        per_image = x.element_size() * x[0].numel() * self.n_coils
        return max(1, _CHUNK_BYTES // per_image)

    # fft2c(S_c x) * M == (M D_out) * fft2((S_c D_in) x): the centring shifts are folded into
    # the cached maps and mask (see _centring_phases), one batched FFT over all coils, the
    # products done in place on the FFT's fresh output.
    def _forward(self, x):
        x = _complex(x)
        maps_in, _, m_out = self._factors(x)
        step = self._step(x)
        if step >= x.shape[0]:
            return torch.fft.fft2(x.unsqueeze(2) * maps_in, norm="ortho").mul_(m_out)
        out = x.new_empty(tuple(x.shape[:2]) + self.range_shape)
        for b in range(0, x.shape[0], step):
            torch.fft.fft2(x[b:b + step].unsqueeze(2) * maps_in, norm="ortho",
                           out=out[b:b + step]).mul_(m_out)
        return out

    def _adjoint(self, y):
        y = _complex(y)
        _, maps_in_conj, m_out = self._factors(y)
        step = self._step(y[:, :, 0])
        if step >= y.shape[0]:
            coil_images = torch.fft.ifft2(y * m_out.conj(), norm="ortho")
            return coil_images.mul_(maps_in_conj).sum(dim=2)
        out = y.new_empty(tuple(y.shape[:2]) + self.domain_shape)
        for b in range(0, y.shape[0], step):
            coil_images = torch.fft.ifft2(y[b:b + step] * m_out.conj(), norm="ortho")
            torch.sum(coil_images.mul_(maps_in_conj), dim=2, out=out[b:b + step])
        return out

    def initial_reconstruction(self, y: torch.Tensor) -> torch.Tensor:
        """The zero-filled, coil-combined reconstruction ``sum_c conj(S_c) F^H M y_c`` (the
        adjoint), ``(B, C, H, W)``."""
        return self.adjoint(y)

    def extra_repr(self):
        return (f"n_coils={self.n_coils}, image_shape={self.domain_shape}, "
                f"sampled={int(self.mask.sum())}/{self.mask.numel()}")
