"""The physics of each imaging modality, one sub-package each (``ct``, ``mri``, ``pet``).

A modality package provides its geometries and forward operators (registered
with the operator battery), its default initial reconstruction, its noise
models, readers and measurement shifts, and registers its tasks
(:func:`tomolearn.tasks.register_task`).  Nothing outside a modality's folder
branches on the modality.
"""

from . import ct, mri, pet  # noqa: F401

__all__ = ["ct", "mri", "pet"]
