"""The registry of example operators that the shared operator battery runs over.

Each modality registers small instances of its operators with
:func:`register_example` when it is imported; ``tests/test_operator_battery.py``
runs every registered factory through the same checks (adjoint test,
gradcheck, linearity, batching, dtype/device, norm).  A new operator joins the
battery by registering, not by new test code.  This module imports no
modality: importing :mod:`tomolearn` imports them all.
"""

from __future__ import annotations

from typing import Callable, Dict

import torch

from .base import LinearOperator
from .matrix import Identity, MatrixOperator

__all__ = ["register_example", "examples"]

# -- registry of example operators for the shared test battery ---------------
_EXAMPLES: Dict[str, Callable[[], LinearOperator]] = {}


def register_example(name: str):
    """Decorator: register a zero-argument factory of a small example operator.

    Every registered operator is run through the shared operator test battery
    (adjoint test, gradcheck, linearity, batching, dtype/device, norm).
    """

    def decorator(factory):
        if name in _EXAMPLES:
            raise ValueError(f"an example operator named {name!r} is already registered")
        _EXAMPLES[name] = factory
        return factory

    return decorator


def examples() -> Dict[str, Callable[[], LinearOperator]]:
    """All registered example-operator factories, by name (every imported modality's)."""
    return dict(_EXAMPLES)


def _random_matrix(m, n, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(m, n, generator=g, dtype=torch.float64)


@register_example("matrix")
def _example_matrix():
    return MatrixOperator(_random_matrix(7, 12, 1), domain_shape=(3, 4), range_shape=(7,))


@register_example("identity")
def _example_identity():
    return Identity((3, 4))


@register_example("matrix-algebra")
def _example_algebra():
    a = MatrixOperator(_random_matrix(6, 12, 2), domain_shape=(3, 4))
    b = MatrixOperator(_random_matrix(6, 12, 3), domain_shape=(3, 4))
    c = MatrixOperator(_random_matrix(5, 6, 4))
    return c @ (2.5 * a - b) + 0.5 * (c @ b)
