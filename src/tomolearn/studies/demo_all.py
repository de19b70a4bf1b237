"""The demo of several tasks in one report (``tomolearn demo --task all``).

:func:`run_demo_all` runs, for each task (default: every registered task kind, ``ct`` first),
exactly what :func:`tomolearn.studies.demo.run_demo` runs for it -- the task's default
methods and image families, its own calibration of the error bounds -- and writes one
self-contained report with a section per task (:func:`tomolearn.report.write_report_sections`).
"""

from __future__ import annotations

import json
import shlex
import sys
import time
from pathlib import Path
from typing import Mapping, Optional, Sequence, Union

import torch

from ..registry import Task
from ..registry import task as as_task
from ..registry import tasks as registered_tasks
from ..report import check_report_dir, software_versions, write_report_sections
from .bias_noise import demo_figures
from .demo import _resolve_device, demo_plan, demo_section, format_bounds_table
from .demo_meta import _literal

__all__ = ["run_demo_all"]

TaskLike = Union[str, dict, Task]


def _as_tasks(tasks: Optional[Sequence[TaskLike]]) -> list:
    """``tasks`` (default every registered kind) as tasks of distinct kinds."""
    if tasks is None:
        tasks = registered_tasks()
    if isinstance(tasks, (str, dict, Task)):
        raise TypeError("tasks must be a sequence of task names, spec dicts or tasks, not one")
    ts = [as_task(t) for t in tasks]
    if not ts:
        raise ValueError(f"tasks is empty; give some of {', '.join(registered_tasks())}")
    kinds = [t.kind for t in ts]
    dupes = sorted({k for k in kinds if kinds.count(k) > 1})
    if dupes:
        raise ValueError(f"task {dupes[0]!r} given twice (one section per task kind)")
    return ts


def _per_task(name: str, value: Optional[Mapping[str, Sequence[str]]], kinds: list) -> dict:
    """A per-task mapping (kind -> names) checked against ``kinds``; {} for None."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise TypeError(f"{name} must map task kinds to lists of names, e.g. "
                        f"{{'ct': ['fbp']}}, got {type(value).__name__}")
    unknown = [k for k in value if k not in kinds]
    if unknown:
        raise ValueError(f"{name} names task {unknown[0]!r}, which is not among the tasks "
                         f"({', '.join(kinds)})")
    return dict(value)


def _default_command(out_dir, plans: list, dev: torch.device, bounds: bool) -> str:
    """A shell command that reruns this report through the library (the CLI passes its argv)."""
    p0, lit = plans[0], _literal
    call = (f"from tomolearn.studies.demo_all import run_demo_all; run_demo_all("
            f"{lit(str(out_dir))}, tasks={lit([p['task'].spec() for p in plans])}, "
            f"n_images={p0['n_images']}, "
            f"methods={lit({p['task'].kind: list(p['methods']) for p in plans})}, "
            f"families={lit({p['task'].kind: list(p['families']) for p in plans})}, "
            f"seed={p0['seed']}, device={lit(str(dev))}, "
            + (f"alpha={p0['alpha']!r}, calibration_n={p0['calibration_n']}, " if bounds
               else "bounds=False, ")
            + "overwrite=True)")
    return f"{shlex.quote(sys.executable)} -c {shlex.quote(call)}"


def run_demo_all(out_dir, *, tasks: Optional[Sequence[TaskLike]] = None, n_images: int = 2,
                 methods: Optional[Mapping[str, Sequence[str]]] = None,
                 families: Optional[Mapping[str, Sequence[str]]] = None, seed: int = 0,
                 device="cpu", overwrite: bool = False, progress: bool = True,
                 command: Optional[str] = None, bounds: bool = True, alpha: float = 0.1,
                 calibration_n: int = 100, batch_size: int = 25) -> dict:
    """The demo of several tasks (default: every registered one) in one report, a section each.

    Every task's settings are checked (:func:`~tomolearn.studies.demo.demo_plan`) and
    ``out_dir`` too before any work; then each section is computed exactly as
    :func:`~tomolearn.studies.demo.run_demo` computes that task's report
    (:func:`~tomolearn.studies.demo.demo_section`: the task's methods, families, training
    family and its own calibration of the bounds), and one ``index.html`` and
    ``metrics.json`` are written (:func:`tomolearn.report.write_report_sections`).

    Parameters
    ----------
    out_dir : str or Path
        Report folder; must be missing or empty unless ``overwrite`` (checked before any work).
    tasks : sequence of str, dict or Task, optional
        The sections, in order: registered task names, spec dicts or tasks (e.g.
        ``tl.task("mri").tiny()``), of distinct kinds; each one's seed is replaced by
        ``seed``.  Default every registered kind, in the order ``tomolearn info`` lists
        them (:func:`tomolearn.registry.tasks`: ``ct`` first).
    n_images : int
        Test-split samples per family, in every section.
    methods, families : mapping of task kind to sequence of str, optional
        Per-task methods and image families; a task not in the mapping gets its defaults
        (:func:`~tomolearn.studies.demo.demo_methods`, the task's ``families``).  A key
        that is not the kind of one of ``tasks`` raises ``ValueError``.
    seed, device, progress, bounds, alpha, calibration_n, batch_size
        As for :func:`~tomolearn.studies.demo.run_demo`, for every section (each task
        calibrates on ``calibration_n`` validation images of its own training family under
        its kind's registered default).
    overwrite : bool
        Replace the report in a non-empty ``out_dir``.
    command : str, optional
        The reproduce section's command line; default an equivalent Python one-liner calling
        ``run_demo_all``.

    Returns
    -------
    dict
        What ``metrics.json`` holds -- ``sections`` (per task, in order: ``task`` (the kind),
        ``results`` (its rows, as :func:`~tomolearn.studies.demo.run_demo`'s, each with
        ``"task"``), ``meta`` (its title, description, settings, bounds, ``timings`` in
        seconds; the command and versions are the page's), ``cases`` and ``table``),
        ``results`` (every section's rows concatenated), ``meta`` (title, description, shared
        settings, ``command``, ``versions``, ``timings``: seconds per section and up to
        writing the report), ``table`` (each section's table under its kind) and ``files``
        -- plus per section ``bounds_table``
        (:func:`~tomolearn.studies.demo.format_bounds_table`), and ``report`` (the path of
        ``index.html``) and ``seconds_total``.
    """
    t_start = time.perf_counter()
    ts = _as_tasks(tasks)
    kinds = [t.kind for t in ts]
    methods, families = _per_task("methods", methods, kinds), _per_task("families", families, kinds)
    plans = [demo_plan(t, n_images=n_images, methods=methods.get(t.kind),
                       families=families.get(t.kind), seed=seed, bounds=bounds, alpha=alpha,
                       calibration_n=calibration_n, batch_size=batch_size) for t in ts]
    dev = _resolve_device(device)
    out_dir = Path(out_dir)
    check_report_dir(out_dir, overwrite)
    bounds = plans[0]["bounds"]
    if command is None:
        command = _default_command(out_dir, plans, dev, bounds)

    sections, timings = [], {}
    for i, plan in enumerate(plans):
        kind = plan["task"].kind
        if progress:
            print(f"demo: task {kind} ({i + 1} of {len(plans)})", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        cases, rows, meta = demo_section(plan, device=dev, progress=progress)
        t1 = time.perf_counter()
        figures, meta["figure_sweeps"] = demo_figures(plan["task"], plan["methods"], device=dev)
        meta["timings"]["figure sweeps"] = time.perf_counter() - t1
        for key in ("command", "versions"):  # the page's, shown once
            meta.pop(key, None)
        timings[f"section {kind}"] = meta["timings"]["total of this section"] = \
            time.perf_counter() - t0
        sections.append({"task": kind, "cases": cases, "rows": rows, "meta": meta,
                         "figures": figures})

    p0 = plans[0]
    bounds_text = (f"alpha {p0['alpha']:g}; each task calibrated on the first "
                   f"{p0['calibration_n']} validation images of its own training family under "
                   "its registered default (see each section)" if bounds
                   else "off (bounds=False / --no-bounds)")
    meta = {
        "title": f"tomolearn demo: {', '.join(kinds)}",
        "description": (
            f"One section per task ({', '.join(kinds)}): each simulates {p0['n_images']} "
            "held-out test image(s) of each of the task's image families, reconstructs them "
            "with the task's methods and scores them"
            + (", with error bounds calibrated for that task" if bounds else "")
            + ", exactly as `tomolearn demo --task <task>` would. Tasks differ in their images, "
            "data and units: compare methods within a section, not across sections."),
        "settings": {"tasks": kinds, "images per family": p0["n_images"], "seed": p0["seed"],
                     "device": str(dev), "torch threads": torch.get_num_threads(),
                     "error bounds": bounds_text},
        "command": command,
        "versions": software_versions(),
        "timings": timings,
    }
    meta["timings"]["total before writing the report"] = time.perf_counter() - t_start
    index = write_report_sections(out_dir, sections, meta, overwrite=overwrite)
    result = json.loads((index.parent / "metrics.json").read_text(encoding="utf-8"))
    for section in result["sections"]:
        section["bounds_table"] = format_bounds_table(section["results"])
    result["report"] = str(index)
    result["seconds_total"] = time.perf_counter() - t_start
    return result
