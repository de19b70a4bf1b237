"""Hounsfield units <-> linear attenuation (1/m), with LoDoPaB-CT's constants and formula.

``mu = HU * (MU_WATER - MU_AIR) / 1000 + MU_WATER`` clipped at 0, with
``MU_WATER = 20`` 1/m and ``MU_AIR = 0.02`` 1/m (:mod:`tomolearn.noise`).
"""

from __future__ import annotations

import numpy as np
import torch

from ...noise import MU_AIR, MU_WATER

__all__ = ["hu_to_mu", "mu_to_hu"]


def hu_to_mu(hu, mu_water: float = MU_WATER, mu_air: float = MU_AIR):
    """Linear attenuation (1/m) of Hounsfield units, LoDoPaB-CT's formula.

    ``mu = hu * (mu_water - mu_air) / 1000 + mu_water``, clipped at 0 (values
    below about -1001 HU would otherwise be negative).

    Parameters
    ----------
    hu : float, numpy.ndarray or torch.Tensor
        Hounsfield units.
    mu_water, mu_air : float
        Attenuation of water and air in 1/m; defaults are LoDoPaB-CT's
        20 and 0.02 (:data:`tomolearn.noise.MU_WATER`, ``MU_AIR``).

    Returns
    -------
    mu : same type as `hu`
        1/m, >= 0.
    """
    mu = hu * ((mu_water - mu_air) / 1000.0) + mu_water
    if isinstance(mu, torch.Tensor):
        return mu.clamp_min(0.0)
    if isinstance(mu, np.ndarray):
        return np.maximum(mu, 0.0)
    return max(float(mu), 0.0)


def mu_to_hu(mu, mu_water: float = MU_WATER, mu_air: float = MU_AIR):
    """Hounsfield units of linear attenuation ``mu`` (1/m): the inverse of :func:`hu_to_mu`.

    ``hu = 1000 * (mu - mu_water) / (mu_water - mu_air)`` (no clipping).
    """
    return (mu - mu_water) * (1000.0 / (mu_water - mu_air))
