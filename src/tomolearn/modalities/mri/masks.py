"""Cartesian k-space sampling masks: fastMRI's 1-D line masks and 2-D variable-density
Poisson-disc masks.

Every mask is a boolean tensor of the k-space shape ``(H, W)`` (``True``: sampled), in the
centred layout of :func:`tomolearn.operators.fourier.fft2c` (zero frequency at
``(H // 2, W // 2)``).  The 1-D masks sample whole lines along the readout (row) axis and
choose the phase-encoding columns (the last axis), as fastMRI's mask functions [1]_ do; the
same column pattern is repeated on every row.

Acceleration ``R`` means ``W / R`` columns sampled on average (1-D masks) or ``H W / R``
k-space points (2-D masks); :func:`achieved_acceleration` measures it on a mask.

References
----------
.. [1] J. Zbontar et al., "fastMRI: An open dataset and benchmarks for accelerated MRI",
       arXiv:1811.08839, 2018; ``fastmri/data/subsample.py`` (``RandomMaskFunc``,
       ``EquispacedMaskFunc`` / ``EquispacedMaskFractionFunc``).
.. [2] R. Bridson, "Fast Poisson disk sampling in arbitrary dimensions", SIGGRAPH sketches,
       2007.
.. [3] M. Lustig, D. Donoho and J. M. Pauly, "Sparse MRI: The application of compressed
       sensing for rapid MR imaging", Magn. Reson. Med. 58(6), 1182-1195, 2007.
"""

from __future__ import annotations

import math
from typing import Tuple, Union

import numpy as np
import torch

__all__ = ["random_mask", "equispaced_mask", "poisson_disc_mask", "center_lines",
           "achieved_acceleration", "MASKS"]

#: Names of the mask kinds (what the ``"mri"`` task's ``mask`` field accepts).
MASKS = ("equispaced", "random", "poisson")


# -- validation ---------------------------------------------------------------------------------
def _shape(shape) -> Tuple[int, int]:
    try:
        out = tuple(int(s) for s in shape)
        ok = len(out) == 2 and all(s > 0 and s == t for s, t in zip(out, shape))
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"mask shape must be two positive ints (H, W), got {shape!r}")
    return out


def _acceleration(acceleration) -> float:
    if (isinstance(acceleration, bool) or not isinstance(acceleration, (int, float))
            or not math.isfinite(acceleration) or acceleration < 1):
        raise ValueError(f"acceleration must be a finite number >= 1 (sampled fraction "
                         f"1 / acceleration), got {acceleration!r}")
    return float(acceleration)


def _center_fraction(center_fraction) -> float:
    if (isinstance(center_fraction, bool) or not isinstance(center_fraction, (int, float))
            or not 0 < center_fraction < 1):
        raise ValueError(f"center_fraction must be a number in (0, 1) (fraction of fully "
                         f"sampled central columns), got {center_fraction!r}")
    return float(center_fraction)


def _seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2 ** 32:
        raise ValueError(f"seed must be an int in [0, 2**32), got {seed!r}")
    return int(seed)


def _low_frequencies(n_cols: int, acceleration: float, center_fraction: float) -> int:
    num_low = round(n_cols * center_fraction)  # Python's round, as fastMRI
    if num_low * acceleration >= n_cols and acceleration > 1:
        raise ValueError(f"the fully sampled centre ({num_low} of {n_cols} columns, "
                         f"center_fraction={center_fraction}) already exceeds the "
                         f"{n_cols / acceleration:g} columns of acceleration {acceleration:g}; "
                         f"need center_fraction * acceleration < 1")
    return num_low


def center_lines(n_cols: int, center_fraction: float) -> torch.Tensor:
    """The fully sampled central columns of fastMRI's masks, ``(n_cols,)`` bool.

    ``num_low = round(n_cols * center_fraction)`` columns starting at
    ``(n_cols - num_low + 1) // 2``, so the zero frequency ``n_cols // 2`` is among them.
    """
    if isinstance(n_cols, bool) or not isinstance(n_cols, int) or n_cols <= 0:
        raise ValueError(f"n_cols must be a positive int, got {n_cols!r}")
    num_low = round(n_cols * _center_fraction(center_fraction))
    lines = torch.zeros(n_cols, dtype=torch.bool)
    pad = (n_cols - num_low + 1) // 2
    lines[pad:pad + num_low] = True
    return lines


def _as_2d(columns: np.ndarray, shape) -> torch.Tensor:
    return torch.from_numpy(np.asarray(columns, dtype=bool)).expand(shape).contiguous()


# -- fastMRI's 1-D masks ------------------------------------------------------------------------
def _line_mask_setup(shape, acceleration, center_fraction):
    """The validated arguments of a phase-encoding line mask and its number of centre lines:
    ``(shape, acceleration, center_fraction, num_low)``."""
    shape = _shape(shape)
    acceleration, center_fraction = _acceleration(acceleration), _center_fraction(center_fraction)
    return shape, acceleration, center_fraction, _low_frequencies(shape[1], acceleration,
                                                                  center_fraction)


def random_mask(shape, acceleration: float, center_fraction: float,
                seed: int = 0) -> torch.Tensor:
    """fastMRI's ``RandomMaskFunc``: a fully sampled centre plus random columns.

    ``num_low = round(W * center_fraction)`` central columns (:func:`center_lines`) are
    sampled; every other column independently with probability
    ``(W / acceleration - num_low) / (W - num_low)``, so ``W / acceleration`` columns are
    sampled on average.  The draws are those of ``RandomMaskFunc([center_fraction],
    [acceleration])(shape, seed=seed)``: numpy's legacy ``RandomState(seed)``, one
    ``randint`` (fastMRI's choice among accelerations) then ``uniform(size=W)``.

    Parameters
    ----------
    shape : (int, int)
        k-space shape ``(H, W)``; columns (the last axis, phase encoding) are selected.
    acceleration : float
        Nominal acceleration ``R >= 1``.
    center_fraction : float
        Fraction of fully sampled central columns, in (0, 1), with
        ``center_fraction * acceleration < 1``.
    seed : int

    Returns
    -------
    torch.Tensor, (H, W) bool
    """
    shape, acceleration, center_fraction, num_low = _line_mask_setup(shape, acceleration,
                                                                      center_fraction)
    n_cols = shape[1]
    rs = np.random.RandomState(_seed(seed))
    rs.randint(0, 1)  # fastMRI's choose_acceleration among one (center_fraction, acceleration)
    prob = (n_cols / acceleration - num_low) / (n_cols - num_low)
    columns = rs.uniform(size=n_cols) < prob
    columns[center_lines(n_cols, center_fraction).numpy()] = True
    return _as_2d(columns, shape)


def equispaced_mask(shape, acceleration: float, center_fraction: float, seed: int = 0,
                    offset: Union[int, None] = None) -> torch.Tensor:
    """fastMRI's equispaced mask (``EquispacedMaskFunc`` of fastMRI 0.1, since renamed
    ``EquispacedMaskFractionFunc``): a fully sampled centre plus equally spaced columns.

    With ``num_low = round(W * center_fraction)`` central columns, the other columns are
    taken every ``adjusted = acceleration (num_low - W) / (num_low acceleration - W)``
    columns (rounded to the nearest column), starting at a random ``offset`` in
    ``[0, round(adjusted))``, so that about ``W / acceleration`` columns are sampled in all.
    The draws are fastMRI's: ``RandomState(seed)``, one ``randint`` (its choice among
    accelerations), then ``randint(0, round(adjusted))`` for the offset.

    Parameters
    ----------
    shape, acceleration, center_fraction, seed
        As :func:`random_mask`.
    offset : int, optional
        First equispaced column; default random as above.

    Returns
    -------
    torch.Tensor, (H, W) bool
    """
    shape, acceleration, center_fraction, num_low = _line_mask_setup(shape, acceleration,
                                                                      center_fraction)
    n_cols = shape[1]
    if acceleration == 1:
        return torch.ones(shape, dtype=torch.bool)
    adjusted = acceleration * (num_low - n_cols) / (num_low * acceleration - n_cols)
    rs = np.random.RandomState(_seed(seed))
    rs.randint(0, 1)
    drawn = rs.randint(0, max(1, round(adjusted)))
    if offset is None:
        offset = drawn
    elif isinstance(offset, bool) or not isinstance(offset, int) or not 0 <= offset < n_cols:
        raise ValueError(f"offset must be an int in [0, {n_cols}), got {offset!r}")
    columns = center_lines(n_cols, center_fraction).numpy().copy()
    samples = np.around(np.arange(offset, n_cols - 1, adjusted)).astype(np.int64)
    columns[samples[samples < n_cols]] = True
    return _as_2d(columns, shape)


def achieved_acceleration(mask) -> float:
    """``mask.numel() / (number of sampled points)`` of a boolean or 0/1 mask."""
    mask = torch.as_tensor(mask)
    sampled = int((mask != 0).sum())
    if sampled == 0:
        raise ValueError("the mask samples nothing")
    return mask.numel() / sampled


# -- 2-D variable-density Poisson disc ----------------------------------------------------------
def _calib(calib, shape) -> Tuple[int, int]:
    if isinstance(calib, (int, np.integer)) and not isinstance(calib, bool):
        calib = (int(calib), int(calib))
    try:
        out = tuple(int(c) for c in calib)
        ok = len(out) == 2 and all(0 <= c <= s and c == d for c, s, d in zip(out, shape, calib))
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"calib must be an int or two ints (h, w) within the shape {shape}, "
                         f"got {calib!r}")
    return out


def _poisson_pass(shape, radius_y, radius_x, order) -> np.ndarray:
    """Greedy dart throwing in the order ``order``: a point is accepted when no accepted point
    lies inside its ellipse of semi-axes ``(radius_y, radius_x)`` (pixels)."""
    h, w = shape
    ry_max = int(math.ceil(radius_y.max()))
    rx_max = int(math.ceil(radius_x.max()))
    occ = np.zeros((h + 2 * ry_max, w + 2 * rx_max), dtype=bool)
    dy = np.arange(-ry_max, ry_max + 1, dtype=np.float64)[:, None] ** 2
    dx = np.arange(-rx_max, rx_max + 1, dtype=np.float64)[None, :] ** 2
    for idx in order:
        i, j = divmod(int(idx), w)
        ry, rx = radius_y[i, j], radius_x[i, j]
        a, b = int(math.ceil(ry)) - 1, int(math.ceil(rx)) - 1
        if a < 0 or b < 0:
            occ[i + ry_max, j + rx_max] = True
            continue
        win = occ[i + ry_max - a:i + ry_max + a + 1, j + rx_max - b:j + rx_max + b + 1]
        inside = (dy[ry_max - a:ry_max + a + 1] / ry ** 2 + dx[:, rx_max - b:rx_max + b + 1]
                  / rx ** 2) < 1
        if not (win & inside).any():
            occ[i + ry_max, j + rx_max] = True
    return occ[ry_max:ry_max + h, rx_max:rx_max + w]


def poisson_disc_mask(shape, acceleration: float, calib=(0, 0), seed: int = 0,
                      tol: float = 0.02, max_iter: int = 40) -> torch.Tensor:
    """A 2-D variable-density Poisson-disc mask with a fully sampled calibration region.

    Points are thrown in a random order (seeded) and accepted when no accepted point lies
    within their exclusion radius ``r(k) = 1 + slope * d(k)`` pixels [2]_, where ``d`` is the
    normalised distance of the point from the calibration region (0 inside it, about 1 at
    the edge of k-space, scaled per axis for non-square shapes), so the density falls off
    away from the centre as in variable-density compressed sensing [3]_.  ``slope`` is found
    by bisection so that the achieved acceleration (calibration region included) is within
    ``tol`` (relative) of ``acceleration``; the calibration region is then sampled fully.

    Parameters
    ----------
    shape : (int, int)
        k-space shape ``(H, W)``.
    acceleration : float
        Target ``H W / (number of sampled points)``, >= 1.
    calib : int or (int, int)
        Side(s) of the fully sampled central calibration box (centred on ``(H//2, W//2)``).
    seed : int
    tol : float
        Relative tolerance on the achieved acceleration.
    max_iter : int
        Bisection steps; the closest mask found is returned if the tolerance is not met.

    Returns
    -------
    torch.Tensor, (H, W) bool
    """
    shape = _shape(shape)
    acceleration = _acceleration(acceleration)
    ch, cw = _calib(calib, shape)
    h, w = shape
    if ch * cw * acceleration > h * w:
        raise ValueError(f"the calibration region {ch}x{cw} alone exceeds the "
                         f"{h * w / acceleration:.0f} points of acceleration {acceleration:g} "
                         f"on {h}x{w}")
    if not (isinstance(tol, (int, float)) and tol > 0):
        raise ValueError(f"tol must be a positive number, got {tol!r}")
    box = np.zeros(shape, dtype=bool)
    box[h // 2 - ch // 2:h // 2 - ch // 2 + ch, w // 2 - cw // 2:w // 2 - cw // 2 + cw] = True
    if acceleration == 1:
        return torch.ones(shape, dtype=torch.bool)
    ii, jj = np.mgrid[:h, :w].astype(np.float64)
    dy = np.maximum(np.abs(ii - h // 2) - ch / 2, 0) / max(h / 2 - ch / 2, 1)
    dx = np.maximum(np.abs(jj - w // 2) - cw / 2, 0) / max(w / 2 - cw / 2, 1)
    dist = np.sqrt(dy ** 2 + dx ** 2)
    order = np.random.default_rng(_seed(seed)).permutation(h * w)
    scale_y, scale_x = h / max(h, w), w / max(h, w)
    lo, hi = 0.0, float(max(h, w))
    best, best_err = None, math.inf
    for _ in range(max_iter):
        slope = (lo + hi) / 2
        radius = 1 + slope * dist
        mask = _poisson_pass(shape, np.maximum(radius * scale_y, 1.0),
                             np.maximum(radius * scale_x, 1.0), order) | box
        achieved = h * w / mask.sum()
        err = abs(achieved - acceleration) / acceleration
        if err < best_err:
            best, best_err = mask, err
        if err <= tol:
            break
        if achieved < acceleration:
            lo = slope
        else:
            hi = slope
    return torch.from_numpy(best)
