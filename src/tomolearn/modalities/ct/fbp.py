"""Filtered back-projection for parallel and flat-detector fan beam.

A. C. Kak and M. Slaney, "Principles of Computerized Tomographic Imaging",
IEEE Press, 1988, chapter 3 (band-limited ramp, weighted FBP for fan beam);
windows and ``frequency_scaling`` as ODL's ``fbp_op``.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .geometry import FanBeam2D, ParallelBeam2D, _positive_float

__all__ = ["fbp", "ramp_filter", "FILTERS", "FBP_DEFAULTS"]

#: The default initial reconstruction of CT tasks and the ``fbp`` method's tuned setting:
#: Hamming window, frequency scaling 0.7 (chosen on the ellipses validation split,
#: docs/solvers.md); FBPConvNet starts from the same FBP.
FBP_DEFAULTS = {"filter": "hamming", "frequency_scaling": 0.7}


def _window(name: str):
    """Apodisation windows as functions of frequency / (scaling * Nyquist), ODL's definitions."""
    return {
        "ramp": lambda f: np.ones_like(f),
        "ram-lak": lambda f: np.ones_like(f),
        "shepp-logan": lambda f: np.sinc(f / 2),
        "cosine": lambda f: np.cos(f * np.pi / 2),
        "hamming": lambda f: 0.54 + 0.46 * np.cos(f * np.pi),
        "hann": lambda f: np.cos(f * np.pi / 2) ** 2,
    }[name]


#: Names accepted by :func:`fbp`'s ``filter`` argument.
FILTERS = ("ramp", "ram-lak", "shepp-logan", "cosine", "hamming", "hann")


def ramp_filter(n_fft: int, spacing: float, filter: str = "ramp", frequency_scaling: float = 1.0):
    """Frequency response of the apodised ramp filter on an ``rfft`` grid.

    The ramp is the DFT of the band-limited spatial ramp kernel of Kak and
    Slaney [3]_ (eq. 61, chapter 3), which avoids the DC bias of sampling
    ``|nu|`` directly; it is multiplied by the window evaluated at
    ``|nu| / (frequency_scaling * nu_Nyquist)`` and set to zero above
    ``frequency_scaling * nu_Nyquist`` (ODL's convention).

    Returns
    -------
    numpy.ndarray, shape (n_fft // 2 + 1,)
        Multiply ``rfft(p, n_fft)`` by this and ``irfft`` to get ``p * h``
        in the continuous sense (units: 1 / spacing).
    """
    name = filter.lower()
    if name not in FILTERS:
        raise ValueError(f"unknown filter {filter!r}; expected one of {FILTERS}")
    frequency_scaling = _positive_float(frequency_scaling, "frequency_scaling")
    if frequency_scaling > 1:
        raise ValueError(f"frequency_scaling must be in (0, 1], got {frequency_scaling}")
    k = np.concatenate([np.arange(0, n_fft // 2 + 1), np.arange(-(n_fft - n_fft // 2 - 1), 0)])
    h = np.zeros(n_fft)
    h[0] = 1 / (4 * spacing**2)
    odd = k % 2 == 1
    h[odd] = -1 / (np.pi * k[odd] * spacing) ** 2
    response = np.fft.rfft(h).real * spacing
    f = np.arange(n_fft // 2 + 1) / (n_fft / 2)  # fraction of Nyquist
    window = _window(name)(f / frequency_scaling) * (f <= frequency_scaling)
    return response * window


def _angle_weights(angles: np.ndarray, period: float) -> np.ndarray:
    """Quadrature weights for angles folded onto [0, period): half the gap to each neighbour."""
    a = np.mod(angles, period)
    order = np.argsort(a)
    s = a[order]
    gaps = np.diff(np.concatenate([s, [s[0] + period]]))
    if len(s) == 1:
        gaps = np.array([period])
    w_sorted = 0.5 * (gaps + np.roll(gaps, 1))
    w = np.empty_like(w_sorted)
    w[order] = w_sorted
    return w


def fbp(op, sinogram: torch.Tensor, filter: str = "ramp",
        frequency_scaling: float = 1.0) -> torch.Tensor:
    """Filtered back-projection for parallel and (full-scan) flat fan beam.

    Parameters
    ----------
    op : RayTransform
        The operator whose data is inverted (geometry, image grid).
    sinogram : torch.Tensor, shape (B, C, n_angles, n_detectors)
        Line integrals in the geometry's length unit.
    filter : {"ramp", "ram-lak", "shepp-logan", "cosine", "hamming", "hann"}
        Apodisation window (definitions as ODL's ``fbp_op``).
    frequency_scaling : float in (0, 1]
        Relative cut-off: frequencies above ``frequency_scaling * Nyquist`` are
        removed and the window is stretched to end there.

    Returns
    -------
    torch.Tensor, shape (B, C, H, W)
        Attenuation values (inverse length unit), same dtype and device.

    Notes
    -----
    Parallel beam: ramp filter along the detector, pixel-driven linear
    interpolation back-projection, angles weighted by their spacing on
    [0, pi).  Fan beam: the flat-detector weighted FBP of [3]_ (section
    3.4.2): data rescaled to a virtual detector through the rotation centre,
    cosine pre-weighting, ramp filtering, and back-projection with the
    distance weight ``(R / (R - x . s))^2``; it needs angles covering the
    full circle (a short scan would need Parker weights, not implemented).
    """
    if not isinstance(getattr(op, "geometry", None), (ParallelBeam2D, FanBeam2D)):
        raise TypeError(f"fbp needs a RayTransform, got {type(op).__name__}")
    op._check(sinogram, op.range_shape, "fbp")
    if sinogram.is_complex():
        raise TypeError("fbp expects a real sinogram")
    g = op.geometry
    H, W = op.domain_shape
    ps = op.pixel_size
    dtype, device = sinogram.dtype, sinogram.device
    B, C, n_ang, n_det = sinogram.shape
    angles = np.asarray(g.angles)
    u = g.detector_positions()

    if isinstance(g, FanBeam2D):
        R, D = g.source_radius, g.source_radius + g.detector_radius
        folded = np.sort(np.mod(angles, 2 * math.pi))
        largest_gap = np.max(np.diff(np.concatenate([folded, [folded[0] + 2 * math.pi]])))
        if largest_gap > 3 * 2 * math.pi / n_ang:
            raise ValueError(
                "fan-beam FBP needs angles covering the full circle [0, 2 pi); these leave a "
                f"gap of {math.degrees(largest_gap):.1f} degrees (short scans need Parker "
                "weights, which are not implemented)"
            )
        s = u * R / D  # virtual detector through the rotation centre
        spacing = g.detector_spacing * R / D
        pre = torch.as_tensor(R / np.sqrt(R**2 + s**2), dtype=dtype, device=device)
        data = sinogram * pre
        weights = 0.5 * _angle_weights(angles, 2 * math.pi)  # every ray is measured twice
    else:
        s, spacing, data = u, g.detector_spacing, sinogram
        weights = _angle_weights(angles, math.pi)
        if np.ptp(np.mod(angles, 2 * math.pi)) > math.pi + 1e-9 and n_ang > 1:
            weights = 0.5 * _angle_weights(angles, 2 * math.pi)

    n_fft = max(64, int(2 ** math.ceil(math.log2(2 * n_det))))
    response = torch.as_tensor(ramp_filter(n_fft, spacing, filter, frequency_scaling),
                               dtype=dtype, device=device)
    filtered = torch.fft.irfft(torch.fft.rfft(data, n=n_fft, dim=-1) * response, n=n_fft,
                               dim=-1)[..., :n_det]

    # Pixel-driven back-projection with linear interpolation on the detector.
    x = torch.as_tensor((np.arange(W) - (W - 1) / 2) * ps, dtype=torch.float64, device=device)
    y = torch.as_tensor(((H - 1) / 2 - np.arange(H)) * ps, dtype=torch.float64, device=device)
    X, Y = x[None, :].expand(H, W).reshape(-1), y[:, None].expand(H, W).reshape(-1)
    q = filtered.reshape(B * C, n_ang, n_det)
    q = torch.nn.functional.pad(q, (1, 1))  # zero outside the detector
    out = torch.zeros(B * C, H * W, dtype=dtype, device=device)
    block = max(1, min(n_ang, (32 * 2**20) // max(1, H * W * (B * C + 4) * 8)))
    s0, ds = float(s[0]), float(s[1] - s[0]) if n_det > 1 else 1.0
    for start in range(0, n_ang, block):
        idx = slice(start, min(start + block, n_ang))
        th = torch.as_tensor(angles[idx], dtype=torch.float64, device=device)[:, None]
        proj = X * torch.cos(th) + Y * torch.sin(th)  # x . u
        w = torch.as_tensor(weights[idx], dtype=torch.float64, device=device)[:, None]
        if isinstance(g, FanBeam2D):
            towards_source = X * torch.sin(th) - Y * torch.cos(th)  # x . s_hat
            mag = R / (R - towards_source)
            proj = proj * mag
            w = w * mag**2
        k = (proj - s0) / ds + 1  # +1 for the pad
        k = k.clamp(0, n_det + 1)
        k0 = torch.floor(k).clamp(max=n_det)
        frac = (k - k0).to(dtype)
        k0 = k0.long()
        qa = q[:, idx]
        v0 = torch.gather(qa, 2, k0[None].expand(B * C, -1, -1))
        v1 = torch.gather(qa, 2, (k0 + 1)[None].expand(B * C, -1, -1))
        out += (((1 - frac) * v0 + frac * v1) * w.to(dtype)).sum(1)
    return out.reshape(B, C, H, W)
