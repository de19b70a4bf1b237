"""The one method registry: reconstruction method name -> builder, supported tasks, defaults.

Every reconstruction method, classical or learned, becomes visible to
``benchmark``, ``evaluate``, ``reconstruct``, the demo, the generalisation
study and the bounds by one call of :func:`register_method`, made in the file
that implements it.  A method declares which tasks it supports either by task
kind (``tasks=("ct",)``, e.g. FBP, which is CT physics) or by what it needs
from a task (``requires=("linear", "real")``, e.g. TV, which runs on any linear
task with real images).  ``tl.methods()`` lists the names; ``tl.methods(task)``
those that support a task.

A builder is ``build(task, op, device, **params) -> recon`` where
``recon(y) -> x_hat`` maps a batch ``(B, C, *data_shape)`` to ``(B, C, *image_shape)``.
It may also carry ``recon.uncertainty(y) -> (x_hat, scale)`` when the method
has its own per-pixel uncertainty (a deep ensemble), ``recon.card`` (the
model card) when it runs trained weights, and ``recon.solve(y)`` (a
:class:`tomolearn.solvers.Result` with the objective per iteration) when it is
an iterative solver; the method battery checks that objective decreases.

Example::

    def build_landweber(task, op, device, n_iter=100):
        return lambda y: tl.solvers.landweber(op, y, n_iter=n_iter).x

    register_method("landweber", build_landweber, requires=("linear", "real"),
                    defaults={"n_iter": 100}, description="Landweber iteration")
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Tuple, Union

from .tasks import Task, task as as_task, tasks as task_kinds

__all__ = ["MethodInfo", "register_method", "methods", "method", "build_method", "CAPABILITIES"]

#: What a method may require of a task, and how it is checked.
CAPABILITIES: Dict[str, Callable[[Task], bool]] = {
    "linear": lambda t: t.linear,  # declared, so that listing methods builds no operator
    "real": lambda t: not t.image_dtype.is_complex,
    "complex": lambda t: t.image_dtype.is_complex,
    "2d": lambda t: len(t.image_shape) == 2,
}


@dataclass(frozen=True)
class MethodInfo:
    """A registered reconstruction method (see :func:`register_method`)."""

    name: str
    build: Callable
    tasks: Optional[Tuple[str, ...]] = None
    requires: Tuple[str, ...] = ()
    defaults: dict = field(default_factory=dict)
    tuned: Dict[str, dict] = field(default_factory=dict)
    kind: str = "classical"
    weights: Optional[str] = None
    architecture: Optional[Callable] = None
    description: str = ""
    slow: bool = False
    quick: dict = field(default_factory=dict)
    by_default: bool = True
    weight_variants: Tuple[str, ...] = ()

    def supports(self, t: Task) -> bool:
        """Whether the method runs on task ``t``."""
        if self.tasks is not None and t.kind not in self.tasks:
            return False
        return all(CAPABILITIES[c](t) for c in self.requires)

    def params_for(self, t: Task, params: Optional[dict] = None) -> dict:
        """Defaults, then the parameters tuned for ``t``'s kind, then ``params``."""
        return {**self.defaults, **self.tuned.get(t.kind, {}), **(params or {})}


_METHODS: Dict[str, MethodInfo] = {}


def register_method(name: str, build: Callable, *, tasks: Optional[Tuple[str, ...]] = None,
                    requires: Tuple[str, ...] = (), defaults: Optional[dict] = None,
                    tuned: Optional[Dict[str, dict]] = None, kind: str = "classical",
                    weights: Optional[str] = None, architecture: Optional[Callable] = None,
                    description: str = "", slow: bool = False,
                    quick: Optional[dict] = None, by_default: bool = True,
                    weight_variants: Tuple[str, ...] = ()) -> MethodInfo:
    """Register the reconstruction method ``name``.

    Parameters
    ----------
    build : callable
        ``build(task, op, device, **params) -> recon`` with ``recon(y) -> x_hat``.
    tasks : tuple of str, optional
        Task kinds the method supports (None: every task meeting ``requires``).
    requires : tuple of str
        Capabilities from :data:`CAPABILITIES` a task must have.
    defaults : dict
        Default parameters of ``build``.
    tuned : dict of task kind -> dict
        Parameters tuned on a task's validation split (override ``defaults``).
    kind : {"classical", "learned"}
    weights : str, optional
        Name of the shipped weights a learned method loads.
    weight_variants : tuple of str
        All its shipped weights, ``weights`` first, when it has one per task setting (e.g.
        4x and 8x MRI, or one denoiser per modality): a build picks the one trained closest
        to its task (:func:`tomolearn.weights.shipped_weights_for`).
    architecture : callable, optional
        ``architecture(op, **params) -> nn.Module``: a learned method's untrained network
        (what ``tomolearn train`` builds for ``model.name``).
    description : str
        One line for ``--help`` lists and reports.
    slow : bool
        Seconds per image (an iterative solver run to convergence): the demo does not
        calibrate its error bounds, which would reconstruct every calibration image.
    quick : dict, optional
        Parameters for a quick run in the shared method battery (on a task's ``tiny()``
        instance, or for learned methods on the task their weights fit), for methods whose
        cost does not shrink with the problem (e.g. a fixed number of network-fitting
        iterations per image).
    by_default : bool
        Whether the demo and ``benchmark`` run it when no methods are named (False for
        methods that take minutes per image, e.g. the deep image prior).
    """
    if name in _METHODS:
        raise ValueError(f"a method named {name!r} is already registered")
    unknown = [c for c in requires if c not in CAPABILITIES]
    if unknown:
        raise ValueError(f"unknown capability {unknown[0]!r}; expected some of "
                         f"{', '.join(CAPABILITIES)}")
    if kind not in ("classical", "learned"):
        raise ValueError(f"kind must be 'classical' or 'learned', got {kind!r}")
    info = MethodInfo(name, build, None if tasks is None else tuple(tasks), tuple(requires),
                      dict(defaults or {}), dict(tuned or {}), kind, weights, architecture,
                      description, bool(slow), dict(quick or {}), bool(by_default),
                      tuple(weight_variants) or ((weights,) if weights else ()))
    _METHODS[name] = info
    return info


def method(name: str) -> MethodInfo:
    """The registered method ``name``; ``ValueError`` naming the registered ones otherwise."""
    if name not in _METHODS:
        raise ValueError(f"unknown method {name!r}; registered: {', '.join(_METHODS) or 'none'}")
    return _METHODS[name]


def methods(task: Union[None, str, dict, Task] = None) -> List[str]:
    """Registered method names in registration order (classical first as registered);
    with ``task`` (a name, spec or task), only those that support it."""
    if task is None:
        return list(_METHODS)
    t = as_task(task)
    return [n for n, info in _METHODS.items() if info.supports(t)]


def build_method(name: str, task: Union[str, dict, Task], op=None, device="cpu",
                 params: Optional[dict] = None):
    """A ready reconstructor ``recon(y) -> x_hat`` of method ``name`` for ``task``.

    ``op`` defaults to the task's operator (pass another one, e.g. with more
    angles, to reconstruct shifted data).  Raises ``ValueError`` when the method
    does not support the task, naming the tasks it supports.
    """
    info = method(name)
    t = as_task(task)
    if not info.supports(t):
        where = (", ".join(info.tasks) if info.tasks is not None else
                 "tasks that are " + " and ".join(info.requires))
        raise ValueError(f"method {name!r} does not support task {t.kind!r}; it supports "
                         f"{where} (registered tasks: {', '.join(task_kinds())})")
    return info.build(t, t.operator() if op is None else op, device, **info.params_for(t, params))
