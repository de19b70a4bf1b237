"""tomolearn: learned image reconstruction for tomography.

Layers (imports point down; docs/architecture.md): the ``registry`` of tasks
and methods and the ``operators`` protocol at the bottom; ``data`` (image
families, datasets, files); ``modalities`` (the physics of each modality,
which registers its tasks, shifts, operators and methods); solvers and
learned methods; training, bounds (``uq``), benchmarks and studies; the CLI.
``tl.tasks()`` and ``tl.methods(task=None)`` list what is registered.
"""

__version__ = "0.1.0"

import os as _os  # noqa: E402
import sys as _sys  # noqa: E402

# OpenMP threads that spin while waiting for work make tomolearn's kernels (sparse products,
# convolutions) lose badly beside other CPU-bound processes: 15x slower with three competing
# torch processes on 2 cores, against 3x for ASTRA; passive waiting keeps it at ASTRA's
# slowdown (docs/reliability.md, `tomolearn benchmark contention`).  The OpenMP runtime reads
# the variable when torch loads it, so it only takes effect if torch is not imported yet;
# set OMP_WAIT_POLICY=ACTIVE to keep spinning.
if "torch" not in _sys.modules:
    _os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# importing registers: modalities their tasks, operators and methods, solvers the classical
# methods, weights the shipped learned ones (in that order: classical methods list first)
from . import data, modalities, operators, solvers  # noqa: E402,F401
from . import ct, learned, metrics, noise, phantoms  # noqa: E402,F401
from .registry import (Task, methods, register_method, register_shift,  # noqa: E402,F401
                       register_task, task, tasks)
from .weights import load  # noqa: E402,F401
