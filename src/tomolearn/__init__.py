"""tomolearn: learned image reconstruction for tomography.

Layers (imports point down; docs/architecture.md): the ``registry`` of tasks
and methods and the ``operators`` protocol at the bottom; ``data`` (image
families, datasets, files); ``modalities`` (the physics of each modality,
which registers its tasks, shifts, operators and methods); solvers and
learned methods; training, bounds (``uq``), benchmarks and studies; the CLI.
``tl.tasks()`` and ``tl.methods(task=None)`` list what is registered.
"""

__version__ = "0.1.0"

# importing registers: modalities their tasks, operators and methods, solvers the classical
# methods, weights the shipped learned ones (in that order: classical methods list first)
from . import data, modalities, operators, solvers  # noqa: E402,F401
from . import ct, learned, metrics, noise, phantoms  # noqa: E402,F401
from .registry import (Task, methods, register_method, register_shift,  # noqa: E402,F401
                       register_task, task, tasks)
from .weights import load  # noqa: E402,F401
