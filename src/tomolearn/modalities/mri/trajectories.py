"""Non-Cartesian k-space trajectories: golden-angle radial and spiral (coordinates only).

Coordinates are angular frequencies in **radians per pixel**, in ``[-pi, pi)``: a sample at
``k = (k_row, k_col)`` measures ``sum_n x[n] exp(-i k . (n - c))`` of an image ``x`` with
pixel indices ``n = (row, col)`` and centre ``c = (H // 2, W // 2)``, the continuous version
of the centred DFT of :func:`tomolearn.operators.fourier.fft2c` (whose grid points are
``k = 2 pi (m - N // 2) / N``).  Divide by ``2 pi`` for cycles per pixel (``[-1/2, 1/2)``);
multiply by ``N / (2 pi)`` for sigpy's ``coord`` convention (``[-N/2, N/2)``).  The last axis
of a trajectory holds ``(k_row, k_col)``, in the order of the image axes, as torchkbnufft's
``omega`` does.  The NUFFT operators that use them come later.

References
----------
.. [1] S. Winkelmann, T. Schaeffter, T. Koehler, H. Eggers and O. Doessel, "An optimal
       radial profile order based on the golden ratio for time-resolved MRI", IEEE Trans.
       Med. Imaging 26(1), 68-76, 2007.
.. [2] C. B. Ahn, J. H. Kim and Z. H. Cho, "High-speed spiral-scan echo planar NMR imaging",
       IEEE Trans. Med. Imaging 5(1), 2-7, 1986.
"""

from __future__ import annotations

import math

import torch

__all__ = ["GOLDEN_ANGLE", "radial_trajectory", "spiral_trajectory"]

#: The golden angle of radial MRI, ``pi (sqrt(5) - 1) / 2`` radians = 111.246 degrees [1]_:
#: the spoke increment that keeps any run of consecutive spokes nearly uniform in angle.
GOLDEN_ANGLE = math.pi * (math.sqrt(5.0) - 1.0) / 2.0


def _positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


def _wrap(k: torch.Tensor) -> torch.Tensor:
    """Map to ``[-pi, pi)`` (the DFT is 2 pi-periodic: ``pi`` and ``-pi`` are one frequency)."""
    return torch.where(k >= math.pi, k - 2 * math.pi, k)


def radial_trajectory(n_spokes: int, n_readout: int, dtype: torch.dtype = torch.float64
                      ) -> torch.Tensor:
    """Golden-angle radial spokes through the k-space centre.

    Spoke ``s`` has angle ``theta_s = s * GOLDEN_ANGLE mod pi`` (111.246 degrees apart, a
    full spoke covering both directions, so angles modulo pi) and samples the diameter at
    ``k_t = pi (2 t / n_readout - 1)``, ``t = 0 .. n_readout - 1`` (the Cartesian readout's
    radii: ``t = n_readout // 2`` is the centre), along ``(sin theta, cos theta)`` in
    ``(k_row, k_col)``: ``theta = 0`` is a readout along the columns.

    Parameters
    ----------
    n_spokes, n_readout : int
    dtype : torch.dtype
        Floating dtype of the result.

    Returns
    -------
    torch.Tensor, (n_spokes, n_readout, 2)
        ``(k_row, k_col)`` in radians per pixel, in ``[-pi, pi)``.
    """
    n_spokes = _positive_int(n_spokes, "n_spokes")
    n_readout = _positive_int(n_readout, "n_readout")
    theta = torch.remainder(torch.arange(n_spokes, dtype=torch.float64) * GOLDEN_ANGLE, math.pi)
    radius = math.pi * (2 * torch.arange(n_readout, dtype=torch.float64) / n_readout - 1)
    k = torch.stack([radius[None] * torch.sin(theta)[:, None],
                     radius[None] * torch.cos(theta)[:, None]], dim=-1)
    return _wrap(k).to(dtype)


def spiral_trajectory(n_interleaves: int, n_readout: int, n_turns: float,
                      k_max: float = math.pi, golden: bool = False,
                      dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Archimedean spiral interleaves from the k-space centre outwards.

    Sample ``t`` of interleave ``l`` is ``k_max * (t / n_readout) * (sin phi, cos phi)`` in
    ``(k_row, k_col)`` with ``phi = 2 pi n_turns t / n_readout + phi_l``: the radius grows
    linearly with the angle (constant radial spacing ``k_max / n_turns`` per turn [2]_), and
    the interleaves are rotated by ``phi_l = 2 pi l / n_interleaves`` (or by ``l *
    GOLDEN_ANGLE`` with ``golden=True``).

    Parameters
    ----------
    n_interleaves, n_readout : int
    n_turns : float
        Turns of each interleave (> 0).  Nyquist sampling of an ``N``-pixel field of view
        needs ``n_turns * n_interleaves >= N / 2`` (radial step ``2 pi / N`` for
        ``k_max = pi``).
    k_max : float
        Radius reached at the end of the readout (not included), in ``(0, pi]``.
    golden : bool
    dtype : torch.dtype

    Returns
    -------
    torch.Tensor, (n_interleaves, n_readout, 2)
        ``(k_row, k_col)`` in radians per pixel, in ``[-pi, pi)``; starts at 0.
    """
    n_interleaves = _positive_int(n_interleaves, "n_interleaves")
    n_readout = _positive_int(n_readout, "n_readout")
    if isinstance(n_turns, bool) or not isinstance(n_turns, (int, float)) or not (
            math.isfinite(n_turns) and n_turns > 0):
        raise ValueError(f"n_turns must be a positive number, got {n_turns!r}")
    if isinstance(k_max, bool) or not isinstance(k_max, (int, float)) or not 0 < k_max <= math.pi:
        raise ValueError(f"k_max must be in (0, pi] radians per pixel, got {k_max!r}")
    t = torch.arange(n_readout, dtype=torch.float64) / n_readout
    step = GOLDEN_ANGLE if golden else 2 * math.pi / n_interleaves
    phi0 = torch.arange(n_interleaves, dtype=torch.float64) * step
    phi = 2 * math.pi * n_turns * t[None] + phi0[:, None]
    radius = k_max * t[None]
    k = torch.stack([radius * torch.sin(phi), radius * torch.cos(phi)], dim=-1)
    return _wrap(k).to(dtype)
