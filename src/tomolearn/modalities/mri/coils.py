"""Coil sensitivity maps: synthetic birdcage maps and the validation of given maps.

A set of maps is a complex tensor ``(n_coils, H, W)``.  The SENSE model [1]_ measures
``S_c x`` with coil ``c``; maps normalised so that ``sum_c |S_c|^2 = 1`` at every pixel make
the coil expansion ``S`` an isometry (``S^H S = I``), so coil-combining with ``S^H`` returns
the image and the multi-coil operator keeps the scale of a single coil.

References
----------
.. [1] K. P. Pruessmann, M. Weiger, M. B. Scheidegger and P. Boesiger, "SENSE: Sensitivity
       encoding for fast MRI", Magn. Reson. Med. 42(5), 952-962, 1999.
.. [2] F. Ong and M. Lustig, "SigPy: a python package for high performance iterative
       reconstruction", ISMRM 2019; ``sigpy.mri.birdcage_maps`` (the same 2-D model).
"""

from __future__ import annotations

import math

import numpy as np
import torch

__all__ = ["birdcage_maps", "normalize_maps", "validate_maps"]


def _size(size):
    if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
        size = (int(size), int(size))
    try:
        out = tuple(int(s) for s in size)
        ok = len(out) == 2 and all(s > 0 and s == t for s, t in zip(out, size))
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError(f"size must be a positive int or two positive ints (H, W), got {size!r}")
    return out


def normalize_maps(maps: torch.Tensor, eps: float = 0.0) -> torch.Tensor:
    """``maps / sqrt(sum_c |S_c|^2)`` per pixel (pixels where all coils vanish stay 0)."""
    rss = torch.sqrt((maps.abs() ** 2).sum(0, keepdim=True))
    return torch.where(rss > eps, maps / torch.where(rss > eps, rss, torch.ones_like(rss)),
                       torch.zeros_like(maps))


def birdcage_maps(n_coils: int, size, radius: float = 1.5,
                  dtype: torch.dtype = torch.complex128) -> torch.Tensor:
    """Smooth complex sensitivities of ``n_coils`` coils evenly spaced around the field of view.

    Coil ``c`` is a straight wire through the plane at ``radius * (cos a_c, sin a_c)``,
    ``a_c = 2 pi c / n_coils``, in coordinates where the field of view is ``[-1, 1)^2``
    (pixel ``(i, j)`` at ``x = (j - W/2) / (W/2)``, ``y = (i - H/2) / (H/2)``).  Its field
    falls off as ``1 / r`` with the distance ``r`` to the wire (Biot-Savart for a long
    straight conductor) and its phase is the azimuth around the wire minus the coil's angle
    ``a_c``, the 2-D birdcage model of sigpy [2]_; the maps are then normalised so that
    ``sum_c |S_c|^2 = 1`` at every pixel.

    Parameters
    ----------
    n_coils : int
        Number of coils (8 to 16 is typical; 1 gives a constant unit map).
    size : int or (int, int)
        Image shape ``(H, W)``.
    radius : float
        Distance of the wires from the centre, relative to the half field of view (> 1 puts
        them outside the image).
    dtype : torch.dtype
        complex64 or complex128.

    Returns
    -------
    torch.Tensor, (n_coils, H, W), ``dtype``
    """
    if isinstance(n_coils, bool) or not isinstance(n_coils, int) or n_coils <= 0:
        raise ValueError(f"n_coils must be a positive int, got {n_coils!r}")
    h, w = _size(size)
    if isinstance(radius, bool) or not isinstance(radius, (int, float)) or not (
            math.isfinite(radius) and radius > 0):
        raise ValueError(f"radius must be a positive number, got {radius!r}")
    if dtype not in (torch.complex64, torch.complex128):
        raise ValueError(f"dtype must be torch.complex64 or torch.complex128, got {dtype}")
    c = torch.arange(n_coils, dtype=torch.float64)[:, None, None]
    i = torch.arange(h, dtype=torch.float64)[None, :, None]
    j = torch.arange(w, dtype=torch.float64)[None, None, :]
    angle = 2 * math.pi * c / n_coils
    dx = (j - w / 2) / (w / 2) - radius * torch.cos(angle)
    dy = (i - h / 2) / (h / 2) - radius * torch.sin(angle)
    r = torch.sqrt(dx ** 2 + dy ** 2)
    phase = torch.atan2(dx, -dy) - angle
    maps = torch.polar(1.0 / r, phase)
    return normalize_maps(maps).to(dtype)


def validate_maps(maps, image_shape=None, normalized: bool = True,
                  atol: float = 1e-5) -> torch.Tensor:
    """Check user-given sensitivity maps and return them as a complex tensor.

    Parameters
    ----------
    maps : torch.Tensor or numpy.ndarray, complex, (n_coils, H, W)
    image_shape : (int, int), optional
        Required ``(H, W)``.
    normalized : bool
        Require ``sum_c |S_c|^2 = 1`` at every pixel (to ``atol``), which makes the SENSE
        operator's coil expansion an isometry; ``False`` accepts any finite maps (e.g.
        ESPIRiT maps that vanish outside the object).
    atol : float

    Returns
    -------
    torch.Tensor, (n_coils, H, W), complex (complex128 for numpy or real input)

    Raises
    ------
    TypeError, ValueError
        Naming what was expected and what was given.
    """
    if isinstance(maps, np.ndarray):
        maps = torch.from_numpy(np.ascontiguousarray(maps))
    if not isinstance(maps, torch.Tensor):
        raise TypeError(f"coil maps must be a torch.Tensor or numpy array (n_coils, H, W), got "
                        f"{type(maps).__name__}")
    if not (maps.is_complex() or maps.is_floating_point()):
        raise TypeError(f"coil maps must be complex (or real floating point), got {maps.dtype}")
    if maps.dim() != 3 or min(maps.shape, default=0) == 0:
        raise ValueError(f"coil maps must have shape (n_coils, H, W) with positive sizes, got "
                         f"{tuple(maps.shape)}")
    if image_shape is not None and tuple(maps.shape[1:]) != tuple(image_shape):
        expected = ", ".join(map(str, image_shape))
        raise ValueError(f"coil maps of shape {tuple(maps.shape)} do not match the image shape "
                         f"{tuple(image_shape)}: expected (n_coils, {expected})")
    if not maps.is_complex():
        maps = torch.complex(maps.double(), torch.zeros_like(maps, dtype=torch.float64))
    if not bool(torch.isfinite(maps).all()):
        raise ValueError("coil maps contain NaN or infinite values")
    if normalized:
        sos = (maps.abs().double() ** 2).sum(0)
        dev = (sos - 1).abs()
        worst = float(dev.max())
        if worst > atol:
            at = np.unravel_index(int(dev.argmax()), tuple(sos.shape))
            raise ValueError(f"coil maps must satisfy sum_c |S_c|^2 = 1 at every pixel (to "
                             f"{atol:g}); got {float(sos[at]):.6g} at pixel {tuple(map(int, at))} "
                             f"(max deviation {worst:.3g}); normalise them with "
                             f"normalize_maps(maps) or pass normalized=False")
    return maps
