"""Datasets: the DIVal ellipses benchmark, out-of-distribution families, files.

Every simulated sample is a pure function of (spec, split, index); see
:mod:`tomolearn.data.simulation`.
"""

from .families import FAMILIES, register_family  # noqa: F401
from .simulation import NoiseSpec, SimulationSpec, sample_rngs, simulate  # noqa: F401
