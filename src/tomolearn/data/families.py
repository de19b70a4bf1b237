"""Image families: in-distribution ellipses and out-of-distribution phantoms.

A family is a function ``family(rng, size) -> torch.Tensor`` of shape
``(size, size)``, float64, values in [0, 1], drawn with the
``numpy.random.Generator`` it is given (same generator state, same image).
Families are registered by name in :data:`FAMILIES`; datasets and the
generalisation study refer to them by that name.
"""

from __future__ import annotations

from typing import Callable, Dict

import numpy as np
import torch

from .. import phantoms

__all__ = ["FAMILIES", "register_family"]

Family = Callable[[np.random.Generator, int], torch.Tensor]

#: Registered image families, by name.
FAMILIES: Dict[str, Family] = {}


def register_family(name: str):
    """Decorator registering an image family under ``name``."""

    def decorator(fn: Family) -> Family:
        if name in FAMILIES:
            raise ValueError(f"an image family named {name!r} is already registered")
        FAMILIES[name] = fn
        return fn

    return decorator


@register_family("ellipses")
def ellipses(rng: np.random.Generator, size: int) -> torch.Tensor:
    """DIVal's random ellipses (:func:`tomolearn.phantoms.random_ellipses`)."""
    return phantoms.random_ellipses(size, rng, dtype=torch.float64)


@register_family("shepp-logan")
def shepp_logan(rng: np.random.Generator, size: int) -> torch.Tensor:
    """The modified Shepp-Logan phantom (deterministic; ``rng`` is unused)."""
    return phantoms.shepp_logan(size, dtype=torch.float64)
