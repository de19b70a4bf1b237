"""The task protocol: one object describes one inverse problem, and one registry lists them.

A **task** is everything about an inverse problem that is not the image: the
forward operator (on the reconstruction grid), how measurements are simulated
from a ground truth (the simulation operator, without the inverse crime where
the modality allows, and the noise model), the likelihood a data term should
use, the default initial reconstruction (FBP for CT, the adjoint for MRI, ...),
the image dtype, value range and units, and a plain-data spec (JSON round trip,
content hash) that rebuilds it.  A dataset is a task + an image family + a
split + a seed (:class:`tomolearn.data.SimulatedDataset`).

Every layer above the modalities (solvers, learned methods, training,
benchmarks, bounds, studies, CLI, model cards) takes a task or its operator and
never asks which modality it is.  A modality registers its task kinds with
:func:`register_task` and its measurement shifts with :func:`register_shift`;
``tl.tasks()`` lists the registered names.

Example: a new task kind ::

    @dataclass(frozen=True)
    class Deblur(Task):
        size: int = 32
        ...
    register_task("deblur", Deblur)
    tl.task("deblur")                                  # default instance
    tl.task({"task": "deblur", "size": 64})            # from a spec
"""

from __future__ import annotations

import abc
import dataclasses
import hashlib
import json
import math
from typing import Callable, Dict, List, Optional, Tuple, Union

import torch

__all__ = ["Task", "register_task", "task", "tasks", "register_shift", "shifts", "shifted",
           "LIKELIHOODS"]

#: Likelihoods a task may declare (the data term a solver or training loss should use).
LIKELIHOODS = ("gaussian", "poisson", "complex-gaussian")


class Task(abc.ABC):
    """Base class of inverse problems (subclass as a frozen dataclass of plain fields).

    A subclass defines the class attributes ``likelihood`` (one of
    :data:`LIKELIHOODS`), ``image_dtype``, ``value_range`` and ``units``, a
    ``seed`` field, and the methods below.  ``to_dict``/``from_dict`` come for
    free from the dataclass fields (nested dataclasses become dicts).
    """

    #: Name under which the kind is registered (set by :func:`register_task`).
    kind: str = ""
    likelihood: str = "gaussian"
    #: Whether :meth:`operator` is a :class:`~tomolearn.operators.LinearOperator` (nonlinear
    #: physics such as EIT sets False); declared so that no operator is built to ask.
    linear: bool = True
    #: The fields (dotted for nested ones) that name the task's setting in result rows, e.g.
    #: ``("acceleration",)`` for MRI (:meth:`setting`).
    headline: Tuple[str, ...] = ()
    #: Shifts whose settings ``tomolearn benchmark TASK`` reports beside the task's own (e.g.
    #: MRI's 8x beside its 4x), each a registered shift name.
    benchmark_shifts: Tuple[str, ...] = ()
    #: Image families ``tomolearn benchmark TASK`` reports beside the training family when no
    #: ``--family`` is given (e.g. PET's NEMA phantom, whose figures of merit it adds to rows).
    benchmark_families: Tuple[str, ...] = ()
    #: Parameter sweeps of registered methods whose :meth:`figures_of_merit` the demo plots
    #: (:mod:`tomolearn.studies.bias_noise`): ``(family, label, method, parameter, values,
    #: fixed params)`` tuples, e.g. PET's OSEM over iterations and MAP over its prior strength.
    figure_sweeps: Tuple[tuple, ...] = ()
    #: Image families the demo shows, the training (in-distribution) family first.
    families: Tuple[str, ...] = ("ellipses", "shepp-logan", "rectangles", "lesions")
    #: Methods the demo shows by default, when not every default method fits its three
    #: minutes (None: all; ``benchmark`` still runs all).
    demo_methods: Optional[Tuple[str, ...]] = None
    #: How reports label one measurement shown as an image: its name and (row, column) axes.
    data_name: str = "data"
    data_axes: Tuple[str, str] = ("row", "column")
    image_dtype: torch.dtype = torch.float32
    value_range: Tuple[float, float] = (0.0, 1.0)
    units: str = ""

    # -- physics ---------------------------------------------------------------------
    @abc.abstractmethod
    def operator(self):
        """The forward operator on the reconstruction grid, ``(B, C, *image_shape) ->
        (B, C, *data_shape)`` (a :class:`tomolearn.operators.Operator`)."""

    @abc.abstractmethod
    def simulate(self, images: torch.Tensor, generator=None) -> torch.Tensor:
        """Noisy measurements ``(B, C, *data_shape)`` of ground truths ``(B, C, *image_shape)``.

        ``generator`` is a ``torch.Generator`` or a list of one per image (so a
        batch equals the images simulated one at a time).
        """

    def ground_truth(self, images: torch.Tensor, generator=None) -> torch.Tensor:
        """The task's ground truths ``(B, C, *image_shape)`` made from an image family's real
        images: here the images themselves.  A task with complex images overrides it (MRI
        multiplies by a smooth random phase); randomness is drawn from ``generator`` (a
        ``torch.Generator`` or a list of one per image, the ones :meth:`simulate` then gets),
        so a dataset sample stays a pure function of its index."""
        return images

    def initial_reconstruction(self, y: torch.Tensor, op=None) -> torch.Tensor:
        """The task's default first guess from data ``y`` with ``op`` (default the task's):
        the operator's own (``op.initial_reconstruction``: FBP for CT, a scaled adjoint by
        default); override for another."""
        return (self.operator() if op is None else op).initial_reconstruction(y)

    @abc.abstractmethod
    def noise_std(self, y: torch.Tensor) -> torch.Tensor:
        """Per-sample noise standard deviation ``(B,)`` (float64, data units) estimated from
        the measured data ``y`` alone under this task's noise model (shift detection compares
        data residuals against it)."""

    def for_family(self, family: str) -> "Task":
        """The task an image family is benchmarked under: here ``self``.  A modality whose
        families come with their own physics overrides it (PET: the NEMA phantom in the
        NEMA body's attenuation)."""
        return self

    def figures_of_merit(self, family: str, x_hat: torch.Tensor,
                         x: torch.Tensor) -> Optional[List[dict]]:
        """Task-specific figures of merit of reconstructions ``x_hat`` of ground truths ``x``
        ``(B, C, *image_shape)`` of ``family``: one dict per image (keys to floats or to dicts
        of floats, e.g. per-sphere contrast recovery), or None where the task has none for
        that family (the default).  :func:`tomolearn.studies.quality.benchmark` adds their
        means over the images to its rows."""
        return None

    @classmethod
    def tiny(cls) -> "Task":
        """A small instance of this kind for the shared batteries (default: the defaults)."""
        return cls()

    # -- shapes ----------------------------------------------------------------------
    @property
    def image_shape(self) -> Tuple[int, ...]:
        """Shape of one channel of one image."""
        return tuple(self.operator().domain_shape)

    @property
    def data_shape(self) -> Tuple[int, ...]:
        """Shape of one channel of one measurement."""
        return tuple(self.operator().range_shape)

    def estimated_bytes(self, batch: int = 1) -> int:
        """Rough memory (bytes) to build the task's operators and to simulate and reconstruct
        ``batch`` images: here eight float64 copies of the images and data of a batch;
        modalities that store their operators add them.  Used to refuse, before any work,
        jobs that cannot fit (:mod:`tomolearn.resources`)."""
        return 64 * batch * (math.prod(self.image_shape) + math.prod(self.data_shape))

    # -- spec ------------------------------------------------------------------------
    def to_dict(self) -> dict:
        """The task's fields as plain JSON-serialisable data (without the kind)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Task":
        """Inverse of :meth:`to_dict`; unknown keys are rejected by name."""
        if not isinstance(d, dict):
            raise TypeError(f"a {cls.__name__} spec must be a dict, got {type(d).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown {cls.kind or cls.__name__} task spec field(s): "
                             f"{', '.join(unknown)}; expected some of {', '.join(sorted(known))}")
        return cls(**d)

    def spec(self) -> dict:
        """``{"task": kind, **fields}``: what model cards and dataset files store."""
        return {"task": self.kind, **self.to_dict()}

    def setting(self) -> dict:
        """The :attr:`headline` fields and their values (dots become underscores), which
        benchmark rows carry beside ``task`` so results compare across releases."""
        out = {}
        for name in self.headline:
            value = self
            for part in name.split("."):
                value = getattr(value, part)
            out[name.replace(".", "_")] = value
        return out

    def content_hash(self) -> str:
        """SHA-256 (hex) of the canonical JSON of :meth:`spec`: equal specs, equal hashes."""
        return hashlib.sha256(json.dumps(self.spec(), sort_keys=True).encode()).hexdigest()

    def replace(self, **changes) -> "Task":
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)

    def updated(self, changes: Dict[str, object]) -> "Task":
        """A copy with fields changed by dotted name (``{"n_angles": 60, "noise.level": 0.05}``:
        nested dataclass fields too).  Unknown names raise ``ValueError`` listing the fields."""
        fields = {}
        for key, value in changes.items():
            head, _, rest = key.partition(".")
            names = [f.name for f in dataclasses.fields(self)]
            if head not in names:
                raise ValueError(f"task {self.kind!r} has no field {key!r}; its fields: "
                                 f"{', '.join(names)}")
            fields.setdefault(head, {})[rest] = value
        new = {}
        for head, sub in fields.items():
            if "" in sub:
                new[head] = sub[""]
                continue
            inner = getattr(self, head)
            if not dataclasses.is_dataclass(inner):
                raise ValueError(f"task field {head!r} has no sub-fields "
                                 f"({', '.join(head + '.' + k for k in sub)} given)")
            known = [f.name for f in dataclasses.fields(inner)]
            unknown = [k for k in sub if k.partition(".")[0] not in known]
            if unknown:
                raise ValueError(f"task field {head!r} has no field {unknown[0]!r}; its fields: "
                                 f"{', '.join(known)}")
            new[head] = dataclasses.replace(inner, **sub)
        return dataclasses.replace(self, **new)


_TASKS: Dict[str, type] = {}
_SHIFTS: Dict[str, Dict[str, Callable[[Task], Task]]] = {}


def register_task(kind: str, cls: type) -> type:
    """Register the task class ``cls`` (a :class:`Task` dataclass) under ``kind``.

    ``tl.task(kind)`` then builds its default instance and ``tl.task(spec)`` any
    instance from a spec with ``"task": kind``.
    """
    if not (isinstance(cls, type) and issubclass(cls, Task) and dataclasses.is_dataclass(cls)):
        raise TypeError(f"register_task needs a Task dataclass, got {cls!r}")
    if kind in _TASKS and _TASKS[kind] is not cls:
        raise ValueError(f"a task kind {kind!r} is already registered ({_TASKS[kind].__name__})")
    cls.kind = kind
    _TASKS[kind] = cls
    _SHIFTS.setdefault(kind, {})
    return cls


def tasks() -> List[str]:
    """Names of the registered task kinds."""
    return sorted(_TASKS)


def task(name_or_spec: Union[str, dict, Task]) -> Task:
    """A task from a registered kind name (its defaults), a spec dict, or a task (returned).

    Raises ``ValueError`` for an unknown kind or unknown spec fields, naming the
    registered kinds or the expected fields.
    """
    if isinstance(name_or_spec, Task):
        return name_or_spec
    if isinstance(name_or_spec, str):
        kind, fields = name_or_spec, {}
    elif isinstance(name_or_spec, dict):
        if "task" not in name_or_spec:
            raise ValueError(f"a task spec needs a 'task' key naming its kind (one of "
                             f"{', '.join(tasks())}); got keys {sorted(name_or_spec)}")
        fields = dict(name_or_spec)
        kind = fields.pop("task")
    else:
        raise TypeError(f"expected a task name, spec dict or Task, got "
                        f"{type(name_or_spec).__name__}")
    if kind not in _TASKS:
        raise ValueError(f"unknown task {kind!r}; registered: {', '.join(tasks()) or 'none'}")
    return _TASKS[kind].from_dict(fields)


def register_shift(kind: str, name: str, shift: Callable[[Task], Task]) -> None:
    """Register a measurement shift of tasks of ``kind``: ``shift(task) -> shifted task``."""
    if kind not in _TASKS:
        raise ValueError(f"register the task {kind!r} before its shifts")
    if name in _SHIFTS[kind]:
        raise ValueError(f"a shift {name!r} is already registered for task {kind!r}")
    _SHIFTS[kind][name] = shift


def shifts(kind_or_task: Union[str, Task]) -> List[str]:
    """Names of the measurement shifts registered for a task kind."""
    kind = kind_or_task.kind if isinstance(kind_or_task, Task) else kind_or_task
    if kind not in _TASKS:
        raise ValueError(f"unknown task {kind!r}; registered: {', '.join(tasks()) or 'none'}")
    return sorted(_SHIFTS[kind])


def shifted(t: Task, shift: str) -> Task:
    """``t`` under the registered measurement shift ``shift``."""
    known = shifts(t)
    if shift not in known:
        raise ValueError(f"unknown shift {shift!r} for task {t.kind!r}; expected one of "
                         f"{', '.join(known) or 'none registered'}")
    return _SHIFTS[t.kind][shift](t)
