"""GRAPPA: k-space interpolation of missing phase-encoding lines from neighbouring coils' data.

GRAPPA [1]_ fills each unsampled k-space column (phase-encoding line) of every coil with a
linear combination of the acquired neighbouring columns of all coils: a kernel of
``kernel_lines`` source columns (the nearest sampled ones, half on each side) times
``kernel_readout`` readout points (rows ``r - 1, r, r + 1`` for 3) per coil.  The weights are
calibrated per scan on the auto-calibration signal (ACS), the fully sampled centre of
k-space, by regularised least squares: every position of the ACS where the kernel's source
and target columns are all acquired gives one equation per row, and
``w = (S^H S + lambda I)^{-1} S^H T`` with ``lambda = reg * trace(S^H S) / n_weights``
(Tikhonov regularisation relative to the calibration energy, which makes ``reg`` scale-free).
Acquired data are kept as they are; only missing columns are estimated.

Sampling patterns.  A kernel is the set of offsets from the target column to its source
columns; GRAPPA fits one kernel per distinct offset pattern among the missing columns.  With
a regular (integer) spacing ``R`` there are ``R - 1`` patterns, Griswold's original kernels.
fastMRI's "equispaced" masks are spaced by a non-integer ``adjusted`` acceleration (columns
5 or 6 apart at 4x on 160 columns), and random masks have arbitrary gaps; both are handled by
the same per-pattern fit.  A pattern is calibrated when the ACS is wide enough to contain its
span (the distance from its leftmost to its rightmost column, target included); when it is
not, the kernel falls back to fewer source columns (one per side, then the single nearest
column), and a column that no kernel can be calibrated for stays zero (as in the zero-filled
reconstruction) with a warning at build time (:class:`GrappaPlan` lists such columns).
Random masks with large gaps therefore get GRAPPA where the gaps allow it and zero filling
elsewhere.  Masks that are not 1-D (Poisson disc: different columns per row) are refused with
a ``ValueError``.

Periodicity.  Column and row neighbours wrap around the ends of k-space: on the DFT grid,
coil sensitivities act on k-space by circular convolution, so the GRAPPA relations are
circular too.

References
----------
.. [1] M. A. Griswold, P. M. Jakob, R. M. Heidemann, M. Nittka, V. Jellus, J. Wang,
       B. Kiefer and A. Haase, "Generalized autocalibrating partially parallel acquisitions
       (GRAPPA)", Magn. Reson. Med. 47(6), 1202-1210, 2002.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import List, Tuple

import torch

__all__ = ["GrappaPlan", "grappa_plan", "grappa", "acs_columns"]


def _columns(mask) -> torch.Tensor:
    """The sampled columns ``(W,)`` bool of a 1-D mask given as ``(H, W)`` or ``(W,)``."""
    mask = torch.as_tensor(mask)
    if mask.dim() not in (1, 2) or mask.numel() == 0:
        raise ValueError(f"the mask must have shape (H, W) or (W,), got {tuple(mask.shape)}")
    mask = mask != 0
    if mask.dim() == 2:
        if not bool((mask == mask[:1]).all()):
            raise ValueError("GRAPPA needs 1-D (phase-encoding) undersampling: whole k-space "
                             "columns, the same on every row; this mask samples different "
                             "columns on different rows (a 2-D mask such as Poisson disc); use "
                             "sense, cs-tv or cs-wavelet for it")
        mask = mask[0]
    return mask.cpu()


def acs_columns(mask) -> Tuple[int, int]:
    """The auto-calibration region: the run ``[start, stop)`` of consecutive sampled columns
    containing the centre column ``W // 2`` (fastMRI's fully sampled centre lines, plus any
    sampled column adjoining them).  ``ValueError`` when the centre column is not sampled."""
    cols = _columns(mask)
    w = cols.numel()
    if not bool(cols[w // 2]):
        raise ValueError(f"GRAPPA needs a fully sampled centre for calibration, but the centre "
                         f"column {w // 2} of k-space is not sampled")
    start, stop = w // 2, w // 2 + 1
    while start > 0 and bool(cols[start - 1]):
        start -= 1
    while stop < w and bool(cols[stop]):
        stop += 1
    return start, stop


@dataclass(frozen=True)
class GrappaPlan:
    """Which kernels GRAPPA fits for one mask (from :func:`grappa_plan`).

    Attributes
    ----------
    width : int
        Number of k-space columns ``W``.
    acs : (int, int)
        The calibration columns ``[start, stop)``.
    kernels : list of (offsets, targets, positions)
        Per pattern: the source offsets (tuple of ints, sorted), the missing columns it fills
        (``(m,)`` long) and the ACS target columns it is calibrated on (``(p,)`` long).
    unfilled : tuple of int
        Missing columns that no kernel can be calibrated for (left zero).
    """

    width: int
    acs: Tuple[int, int]
    kernels: List[Tuple[Tuple[int, ...], torch.Tensor, torch.Tensor]]
    unfilled: Tuple[int, ...]


def _candidates(j: int, sampled: List[int], width: int, n_side: int):
    """Source offset sets for missing column ``j``, largest first: ``n, n-1, ..., 1`` nearest
    sampled columns per side (circularly), then the single nearest column."""
    left = sorted(((j - s) % width for s in sampled))  # distances to the left
    right = sorted(((s - j) % width for s in sampled))
    out = [tuple(sorted([-d for d in left[:n]] + right[:n])) for n in range(n_side, 0, -1)]
    nearest = -left[0] if left[0] <= right[0] else right[0]
    return out + [(nearest,)]


def _positions(offsets, acs) -> torch.Tensor:
    """ACS columns ``t`` whose kernel ``t + offsets`` lies inside the ACS too."""
    start, stop = acs
    lo, hi = min(min(offsets), 0), max(max(offsets), 0)
    return torch.arange(start - lo, max(stop - hi, start - lo), dtype=torch.long)


def grappa_plan(mask, kernel_lines: int = 2, warn: bool = True) -> GrappaPlan:
    """Plan GRAPPA's kernels for a 1-D mask (see the module docstring).

    Parameters
    ----------
    mask : torch.Tensor, (H, W) or (W,)
        Sampled k-space (boolean or 0/1), centred layout, whole columns.
    kernel_lines : int
        Source columns per kernel, an even number (half on each side); 2 is Griswold's
        standard kernel.
    warn : bool
        Warn when some missing columns cannot be filled.

    Returns
    -------
    GrappaPlan
    """
    if isinstance(kernel_lines, bool) or not isinstance(kernel_lines, int) or kernel_lines < 2 \
            or kernel_lines % 2:
        raise ValueError(f"kernel_lines must be an even int >= 2 (source columns, half on each "
                         f"side), got {kernel_lines!r}")
    cols = _columns(mask)
    width = cols.numel()
    acs = acs_columns(cols)
    sampled = [int(s) for s in torch.nonzero(cols).reshape(-1)]
    groups, unfilled = {}, []
    for j in (int(c) for c in torch.nonzero(~cols).reshape(-1)):
        for offsets in _candidates(j, sampled, width, kernel_lines // 2):
            if len(_positions(offsets, acs)) > 0:
                groups.setdefault(offsets, []).append(j)
                break
        else:
            unfilled.append(j)
    kernels = [(offsets, torch.tensor(targets, dtype=torch.long), _positions(offsets, acs))
               for offsets, targets in sorted(groups.items())]
    if unfilled and warn:
        warnings.warn(f"GRAPPA: the calibration region (columns {acs[0]}..{acs[1] - 1}, "
                      f"{acs[1] - acs[0]} wide) is too narrow to calibrate a kernel for "
                      f"{len(unfilled)} of {width - len(sampled)} missing k-space columns; "
                      f"they stay zero-filled", UserWarning, stacklevel=2)
    return GrappaPlan(width, acs, kernels, tuple(unfilled))


def _sources(k: torch.Tensor, columns: torch.Tensor, offsets, readout: int) -> torch.Tensor:
    """Kernel source vectors ``(N, H * m, n_coils * n_offsets * readout)`` for target
    ``columns`` (m,) of k-space ``k`` (N, n_coils, H, W), rows and columns wrapping around."""
    n, _, h, w = k.shape
    idx = (columns[:, None] + torch.tensor(offsets, dtype=torch.long)[None, :]) % w  # (m, o)
    idx = idx.to(k.device)
    shifts = range(-(readout // 2), readout // 2 + 1)
    rolled = torch.stack([torch.roll(k, shifts=-d, dims=-2) for d in shifts], dim=2)
    g = rolled[..., idx]  # (N, coils, readout, H, m, o)
    return g.permute(0, 3, 4, 1, 5, 2).reshape(n, h * len(columns), -1)


def grappa(kspace: torch.Tensor, plan: GrappaPlan, kernel_readout: int = 3,
           reg: float = 1e-3) -> torch.Tensor:
    """Fill the missing columns of multi-coil k-space by GRAPPA [1]_.

    Parameters
    ----------
    kspace : torch.Tensor, complex, (B, C, n_coils, H, W)
        Zero-filled k-space in the centred layout; every ``(b, c)`` is calibrated on its own.
    plan : GrappaPlan
        From :func:`grappa_plan` for the mask of ``kspace``.
    kernel_readout : int
        Readout points per source column (odd; 3 is standard).
    reg : float
        Relative Tikhonov weight of the calibration (>= 0; module docstring).

    Returns
    -------
    torch.Tensor, the shape, dtype and device of ``kspace``
        Acquired columns unchanged, missing ones estimated (or zero where the plan has no
        kernel).  Calibration is solved in double precision.
    """
    if not isinstance(kspace, torch.Tensor) or not kspace.is_complex() or kspace.dim() != 5 \
            or kspace.shape[-1] != plan.width:
        shape = tuple(kspace.shape) if isinstance(kspace, torch.Tensor) else type(kspace).__name__
        raise ValueError(f"grappa expects complex k-space of shape (B, C, n_coils, H, "
                         f"{plan.width}), got {shape}")
    if isinstance(kernel_readout, bool) or not isinstance(kernel_readout, int) or \
            kernel_readout < 1 or kernel_readout % 2 == 0:
        raise ValueError(f"kernel_readout must be a positive odd int, got {kernel_readout!r}")
    if isinstance(reg, bool) or not isinstance(reg, (int, float)) or not reg >= 0:
        raise ValueError(f"reg must be a non-negative number, got {reg!r}")
    b, c, coils, h, w = kspace.shape
    k = kspace.reshape(b * c, coils, h, w)
    work = torch.complex128 if k.device.type != "mps" else torch.complex64
    out = k.clone()
    for offsets, targets, positions in plan.kernels:
        src = _sources(k, positions, offsets, kernel_readout).to(work)
        tgt = k[..., positions.to(k.device)].permute(0, 2, 3, 1).reshape(b * c, -1, coils)
        gram = src.mH @ src
        f = gram.shape[-1]
        trace = torch.diagonal(gram, dim1=-2, dim2=-1).real.sum(-1)
        lam = torch.where(trace > 0, reg * trace / f, torch.ones_like(trace))  # 0 data: w = 0
        gram = gram + lam[:, None, None] * torch.eye(f, dtype=work, device=k.device)
        weights = torch.linalg.solve(gram, src.mH @ tgt.to(work))  # (N, f, coils)
        est = _sources(k, targets, offsets, kernel_readout).to(work) @ weights
        est = est.reshape(b * c, h, len(targets), coils).permute(0, 3, 1, 2)
        out[..., targets.to(k.device)] = est.to(k.dtype)
    return out.reshape(kspace.shape)
