"""Orthogonal 2-D wavelet transforms in torch and the wavelet-sparsity (l1) regulariser.

:class:`Wavelet2D` is the separable, periodised discrete wavelet transform of Daubechies'
orthonormal wavelets [1]_ over the last two dimensions of real or complex tensors, written as
matrix products so that it runs on any device and dtype.  With periodic extension the
one-level analysis matrix ``[H; G]`` of a length ``n`` (even) is orthogonal, so the transform
``W`` is orthogonal (``W^T W = W W^T = I`` to floating-point precision) and its adjoint is its
inverse.  Its coefficients equal PyWavelets' ``pywt.wavedec2(x, name, mode="periodization",
level=levels)`` [2]_ (tested), stored in one array of the image's shape (the pyramid layout
of ``pywt.coeffs_to_array``): at each level the current approximation block ``[:h, :w]`` is replaced by
``[[A, V], [H, D]]``, with ``A`` the approximation ``[:h/2, :w/2]``, ``V`` (pywt's ``cV``,
high-pass along the last axis) top right, ``H`` (pywt's ``cH``, high-pass along rows) bottom
left and ``D`` the diagonal details bottom right.

The filter taps (the scaling filters ``h``, normalised to ``sum h = sqrt 2``) are written out
below from Daubechies' table [1]_ (equal to PyWavelets' ``rec_lo``); the analysis filters are
``dec_lo[k] = h[L-1-k]`` and ``dec_hi[k] = (-1)^(k+1) h[k]``, applied as
``c[m] = sum_k dec[k] x[(2 m + L/2 - k) mod n]`` (PyWavelets' periodisation).

:class:`WaveletSparsity` is ``lam ||W x||_1`` with the complex modulus (``sum_i |c_i|``): its
prox is exact, ``W^T S(W v)``, with the complex soft-thresholding :func:`soft_threshold`
(shrink the modulus, keep the phase) [3]_, as used by compressed-sensing MRI [4]_.

References
----------
.. [1] I. Daubechies, "Ten Lectures on Wavelets", SIAM, 1992, Table 6.1 (the ``N = 1, 2, 4,
       8`` filters below: Haar, db2, db4, db8).
.. [2] G. R. Lee, R. Gommers, F. Wasilewski, K. Wohlfahrt and A. O'Leary, "PyWavelets: A
       Python package for wavelet analysis", J. Open Source Softw. 4(36), 1237, 2019.
.. [3] I. Daubechies, M. Defrise and C. De Mol, "An iterative thresholding algorithm for linear
       inverse problems with a sparsity constraint", Comm. Pure Appl. Math. 57(11), 1413-1457,
       2004.
.. [4] M. Lustig, D. Donoho and J. M. Pauly, "Sparse MRI: The application of compressed sensing
       for rapid MR imaging", Magn. Reson. Med. 58(6), 1182-1195, 2007.
"""

from __future__ import annotations

import copy
from typing import Dict, Tuple

import torch

from ._loop import _sum
from .regularisers import Regulariser, _weight

__all__ = ["FILTERS", "Wavelet2D", "WaveletSparsity", "soft_threshold"]

#: Orthonormal scaling filters ``h`` (sum ``sqrt 2``, sum of squares 1), Daubechies [1]_.
FILTERS: Dict[str, Tuple[float, ...]] = {
    "haar": (0.7071067811865476, 0.7071067811865476),
    "db2": (0.48296291314453416, 0.8365163037378079, 0.2241438680420134, -0.12940952255126037),
    "db4": (0.2303778133088965, 0.7148465705529157, 0.6308807679298589, -0.027983769416859854,
            -0.18703481171909309, 0.030841381835560764, 0.0328830116668852,
            -0.010597401785069032),
    "db8": (0.05441584224310401, 0.31287159091429995, 0.6756307362972898, 0.5853546836542067,
            -0.015829105256349306, -0.2840155429615469, 0.0004724845739132828,
            0.12874742662047847, -0.017369301001807547, -0.044088253930794755,
            0.013981027917398282, 0.008746094047405777, -0.004870352993451574,
            -0.00039174037337694705, 0.0006754494064505693, -0.00011747678412476953),
}


def soft_threshold(c: torch.Tensor, threshold) -> torch.Tensor:
    """Soft-thresholding ``c max(0, 1 - t / |c|)``: the prox of ``t |.|`` for real or complex ``c``.

    Shrinks the modulus by ``t`` and keeps the phase (for real ``c``: ``sign(c) max(|c| - t,
    0)``); 0 where ``|c| <= t``.  ``threshold`` is a non-negative float or a tensor
    broadcasting against ``c``.
    """
    mag = c.abs()
    scale = torch.clamp(mag - threshold, min=0) / torch.clamp(mag, min=torch.finfo(mag.dtype).tiny)
    return c * scale


def _analysis_matrix(n: int, taps) -> torch.Tensor:
    """The one-level periodised analysis matrix ``[H; G]`` (n x n, float64, orthogonal)."""
    h = torch.tensor(taps, dtype=torch.float64)
    length = h.numel()
    dec_lo = h.flip(0)
    dec_hi = h * torch.tensor([(-1.0) ** (k + 1) for k in range(length)], dtype=torch.float64)
    m = torch.zeros((n, n), dtype=torch.float64)
    rows = torch.arange(n // 2)
    for k in range(length):
        cols = (2 * rows + length // 2 - k) % n
        m[rows, cols] += dec_lo[k]
        m[rows + n // 2, cols] += dec_hi[k]
    return m


class Wavelet2D:
    """Orthogonal separable 2-D DWT over the last two dimensions (see the module docstring).

    Parameters
    ----------
    wavelet : str
        A key of :data:`FILTERS` (``"haar"``, ``"db2"``, ``"db4"``, ``"db8"``).
    levels : int
        Maximum number of levels; an image of shape ``(H, W)`` gets
        :meth:`levels_for` ``(H, W)`` of them: as many as ``H`` and ``W`` stay divisible by 2
        (at most ``levels``), since the periodised transform needs even lengths.

    Notes
    -----
    ``forward`` and ``adjoint`` take ``(..., H, W)`` real or complex tensors (any device and
    dtype) and return the same shape and dtype; ``adjoint`` is the inverse.  The matrices are
    cached per size, dtype and device.
    """

    def __init__(self, wavelet: str = "db4", levels: int = 4):
        if wavelet not in FILTERS:
            raise ValueError(f"unknown wavelet {wavelet!r}; expected one of {', '.join(FILTERS)}")
        if isinstance(levels, bool) or not isinstance(levels, int) or levels < 1:
            raise ValueError(f"levels must be a positive int, got {levels!r}")
        self.wavelet, self.levels = wavelet, levels
        self._cache: Dict[tuple, torch.Tensor] = {}

    def levels_for(self, shape) -> int:
        """Levels used for images of shape ``(..., H, W)``; ``ValueError`` when ``H`` or ``W``
        is odd (no level possible)."""
        h, w = int(shape[-2]), int(shape[-1])
        n = 0
        while n < self.levels and h % 2 ** (n + 1) == 0 and w % 2 ** (n + 1) == 0:
            n += 1
        if n == 0:
            raise ValueError(f"the periodised wavelet transform needs an even image shape, got "
                             f"{h} x {w}")
        return n

    def _matrix(self, n: int, like: torch.Tensor) -> torch.Tensor:
        key = (n, like.dtype, str(like.device))
        if key not in self._cache:
            self._cache[key] = _analysis_matrix(n, FILTERS[self.wavelet]).to(
                device=like.device, dtype=like.dtype)
        return self._cache[key]

    def _check(self, x, what):
        if not isinstance(x, torch.Tensor) or x.dim() < 2:
            raise ValueError(f"Wavelet2D.{what} expects a tensor of shape (..., H, W), got "
                             f"{getattr(x, 'shape', type(x).__name__)}")
        return self.levels_for(x.shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Wavelet coefficients ``W x`` of ``x`` (..., H, W), in the pyramid layout."""
        levels = self._check(x, "forward")
        h, w = x.shape[-2:]
        out = x
        for _ in range(levels):
            block = self._matrix(h, x) @ out[..., :h, :w] @ self._matrix(w, x).transpose(0, 1)
            out = out.clone()
            out[..., :h, :w] = block
            h, w = h // 2, w // 2
        return out

    __call__ = forward

    def adjoint(self, c: torch.Tensor) -> torch.Tensor:
        """``W^T c`` (= ``W^{-1} c``): the image of coefficients ``c`` (..., H, W)."""
        levels = self._check(c, "adjoint")
        h, w = c.shape[-2:]
        sizes = [(h >> k, w >> k) for k in range(levels)]
        out = c
        for h, w in reversed(sizes):
            block = self._matrix(h, c).transpose(0, 1) @ out[..., :h, :w] @ self._matrix(w, c)
            out = out.clone()
            out[..., :h, :w] = block
        return out

    inverse = adjoint

    def approximation_mask(self, shape, device=None) -> torch.Tensor:
        """Boolean ``(H, W)``: ``True`` on the coarsest approximation band of the layout."""
        levels = self.levels_for(shape)
        h, w = int(shape[-2]), int(shape[-1])
        mask = torch.zeros((h, w), dtype=torch.bool, device=device)
        mask[:h >> levels, :w >> levels] = True
        return mask

    def __repr__(self):
        return f"Wavelet2D({self.wavelet!r}, levels={self.levels})"


class WaveletSparsity(Regulariser):
    """``r(x) = weight sum_i |(W x)_i|``: the l1 norm of orthogonal wavelet coefficients.

    ``|.|`` is the complex modulus for complex images (real and imaginary parts are
    transformed by the same real ``W``), so the penalty is phase-blind per coefficient.  By
    default the coarsest approximation band is not penalised (it holds the image's mean and
    smooth content, which is not sparse); ``penalise_approximation=True`` thresholds it too.
    The prox is exact [3]_: ``prox_{gamma r}(v) = W^T soft_threshold(W v, gamma weight)``.

    Parameters
    ----------
    weight : float >= 0
    wavelet : str
        A key of :data:`FILTERS` (default Daubechies' db4).
    levels : int
        Maximum levels (see :class:`Wavelet2D`).
    penalise_approximation : bool

    Notes
    -----
    No box constraint: the prox of an l1 norm in a transformed domain plus a box has no closed
    form (projecting the prox would not be the prox).  Images ``(B, C, H, W)`` with even
    ``H, W``; real or complex.
    """

    proximable = True

    def __init__(self, weight: float, wavelet: str = "db4", levels: int = 4, *,
                 penalise_approximation: bool = False):
        super().__init__(None, None)
        self.weight = _weight(weight, "WaveletSparsity")
        self.transform = Wavelet2D(wavelet, levels)
        self.penalise_approximation = bool(penalise_approximation)

    def check(self, x):
        super().check(x)
        if x.dim() != 4:
            raise ValueError(f"WaveletSparsity needs images of shape (B, C, H, W), got shape "
                             f"{tuple(x.shape)}")
        self.transform.levels_for(x.shape)

    def _penalised(self, x) -> torch.Tensor:
        """``(H, W)`` real: 1 on the penalised coefficients, 0 on a free approximation band."""
        free = self.transform.approximation_mask(x.shape, x.device)
        if self.penalise_approximation:
            free = torch.zeros_like(free)
        return (~free).to(x.real.dtype)

    def _value(self, x):
        return self.weight * _sum(self.transform.forward(x).abs() * self._penalised(x))

    def _prox(self, v, gamma):
        if self.weight == 0:
            return v
        threshold = (gamma * self.weight) * self._penalised(v)  # gamma: float or (B, C, 1, 1)
        return self.transform.adjoint(soft_threshold(self.transform.forward(v), threshold))

    def with_bounds(self, lower, upper):
        if lower is not None or upper is not None:
            raise NotImplementedError("WaveletSparsity takes no box constraint: the prox of a "
                                      "wavelet l1 norm plus a box has no closed form")
        return copy.copy(self)

    def rescaled(self, scale):
        out = copy.copy(self)
        out.weight = self.weight * scale * scale
        return out

    def __repr__(self):
        extra = ", penalise_approximation=True" if self.penalise_approximation else ""
        return (f"WaveletSparsity(weight={self.weight}, wavelet={self.transform.wavelet!r}, "
                f"levels={self.transform.levels}{extra})")

