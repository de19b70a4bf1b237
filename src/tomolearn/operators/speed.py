"""Operator speed cases per task: how ``tomolearn benchmark operators --task NAME`` finds them.

A modality registers, for a task kind, the names of its benchmark cases (geometries), the
function that times its operator against a peer on them, and a table formatter::

    register_operator_speed("mri", cases=("160x160-8coils", ...), run=benchmark_sense,
                            format=format_sense_table, batches=(1, 8))

``run(cases, batches=..., repeats=..., device=..., dtype=..., progress=..., **options)``
returns one row per (case, batch) with at least ``task``, ``geometry``, ``batch``,
``forward_ms``, ``adjoint_ms`` (per image, medians) and ``peer``, ``peer_forward_ms``,
``peer_adjoint_ms`` (``None`` without the peer); ``dtype`` is the real precision
(``torch.float32`` or ``torch.float64``; complex operators use the matching complex type).
``options`` names the extra keyword options ``run`` accepts (CT's ``backend``).  This module
imports no modality; modalities register when ``tomolearn`` is imported.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Tuple

__all__ = ["OperatorSpeed", "register_operator_speed", "operator_speed", "operator_speed_tasks",
           "median_seconds", "speed_table"]


@dataclass(frozen=True)
class OperatorSpeed:
    """The operator benchmark of one task kind (see the module docstring)."""
    task: str
    cases: Tuple[str, ...]
    run: Callable[..., List[dict]]
    format: Callable[[List[dict]], str]
    batches: Tuple[int, ...] = (1, 16)
    options: Tuple[str, ...] = ()
    accepts: Optional[Callable[[str], bool]] = None  # default: one of ``cases``
    peer: str = ""
    pattern: str = ""  # how other accepted case names look (e.g. "HxW-Ncoils"), for messages

    def accepted(self, case: str) -> bool:
        """Whether ``case`` names a benchmark case of this task."""
        return self.accepts(case) if self.accepts is not None else case in self.cases

    def describe(self) -> str:
        """The cases, for help texts and errors: ``"a,b,c"`` or ``"a,b,c or HxW-Ncoils"``."""
        return ",".join(self.cases) + (f" or any {self.pattern}" if self.pattern else "")


_SPEED: Dict[str, OperatorSpeed] = {}


def register_operator_speed(task: str, cases, run, format, batches=(1, 16), options=(),
                            accepts=None, peer: str = "", pattern: str = "") -> OperatorSpeed:
    """Register the operator benchmark of task kind ``task`` (once per kind)."""
    if task in _SPEED:
        raise ValueError(f"operator speed cases of task {task!r} are already registered")
    entry = OperatorSpeed(task, tuple(cases), run, format, tuple(batches), tuple(options),
                          accepts, peer, pattern)
    _SPEED[task] = entry
    return entry


def operator_speed(task: str) -> OperatorSpeed:
    """The registered operator benchmark of ``task``; ``KeyError`` naming those there are."""
    if task not in _SPEED:
        raise KeyError(f"task {task!r} registers no operator speed cases; tasks that do: "
                       f"{', '.join(sorted(_SPEED)) or 'none'}")
    return _SPEED[task]


def operator_speed_tasks() -> List[str]:
    """Task kinds with registered operator speed cases."""
    return sorted(_SPEED)


def median_seconds(fn, repeats: int) -> float:
    """Median wall time of ``repeats`` calls of ``fn()`` after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def speed_table(rows: List[dict], columns: List[Tuple[str, str, int, str]], note: str) -> str:
    """A plain-text table of operator speed rows (each task's ``format``).

    Parameters
    ----------
    rows : list of dict
        The rows of a registered ``run``.
    columns : list of (header, key, width, spec)
        One per column: the row key, the column width in characters and a format spec
        (``".3f"``; ``""`` for text; ``"x"``: a ratio printed as ``1.50x``).  The first column
        is left-aligned, the others right-aligned; a missing or None value prints as ``-``.
    note : str
        The last line (how the times were taken, what the ratio means).
    """
    def cell(value, width: int, spec: str, first: bool) -> str:
        if value is None:
            text = "-"
        elif spec == "x":
            text = f"{value:.2f}x"
        else:
            text = format(value, spec)
        return text.ljust(width) if first else text.rjust(width)

    head = "".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, _, w, _) in enumerate(columns))
    lines = [head, "-" * len(head)]
    lines += ["".join(cell(r.get(key), w, spec, i == 0)
                      for i, (_, key, w, spec) in enumerate(columns)) for r in rows]
    lines.append(note)
    return "\n".join(lines)

