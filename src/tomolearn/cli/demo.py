"""``tomolearn demo``: simulate a task's measurements (default sparse-view CT), reconstruct,
bound the errors, write a report (:func:`tomolearn.studies.demo.run_demo`); ``--task all``:
every registered task, one report with a section each
(:func:`tomolearn.studies.demo_all.run_demo_all`)."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from ..registry import tasks
from ..studies.demo import demo_methods, run_demo
from ..studies.demo_all import run_demo_all
from .options import (EXAMPLES, HelpFormatter, UsageError, add_debug, add_force_flag,
                      add_output_flags, add_task_options, check_memory, check_out_dir,
                      check_out_file, check_simulation_flags, csv_list, methods_by_task,
                      note_unflaggable, task, task_from_args, wrap, write_json)

#: The shorthand flags of ``--task-set`` fields.
SHORTHANDS = {"angles": "n_angles", "noise": "noise.level"}
#: Flags that change one task, refused with ``--task all`` (attribute -> flag).
TASK_SPECIFIC = {"angles": "--angles", "noise": "--noise", "task_set": "--task-set",
                 "methods": "--methods", "families": "--families"}


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``demo`` verb to ``subparsers`` (the top parser's subparsers action)."""
    p = subparsers.add_parser(
        "demo", help="simulate a task (default sparse-view CT), reconstruct, bound the errors, "
                     "write an HTML report (minutes, CPU)",
        description=wrap(
            "Simulate measurements of held-out test images of several image "
            "families under a task (default: sparse-view CT), reconstruct them "
            "with each method, attach calibrated error bounds and shift flags, "
            "and write a self-contained HTML report (index.html) with its "
            "metrics.json. --task all runs every registered task (each with its "
            "default methods, families and calibration) and writes one report with "
            "a section per task; --n-images, --seed, --device and the bound flags "
            "apply to every section."),
        epilog="examples:\n  " + EXAMPLES["demo"],
        formatter_class=HelpFormatter)
    p.add_argument("--out", default="report", metavar="DIR",
                   help="report folder (default ./report); must be missing or empty unless --overwrite")
    p.add_argument("--n-images", type=int, default=4, help="test images per family (default 4)")
    add_task_options(p, allow_all=True)
    p.add_argument("--angles", type=int, default=None,
                   help="projection angles, short for --task-set n_angles=N (default: the task's, "
                        "30 for ct)")
    p.add_argument("--noise", type=float, default=None,
                   help="relative Gaussian noise level, short for --task-set noise.level=X "
                        "(default: the task's, 0.025 for ct, DIVal's)")
    p.add_argument("--methods", type=csv_list, default=None, metavar="LIST",
                   help="comma-separated methods (default: the classical methods of the task and "
                        "every learned one whose weights are installed; " + methods_by_task() + ")")
    p.add_argument("--families", type=csv_list, default=None, metavar="LIST",
                   help="comma-separated image families (default: the task's, its training "
                        "family first; ct: ellipses,shepp-logan,ct-slice,rectangles,lesions; mri: "
                        "brain,ellipses,shepp-logan,lesions)")
    p.add_argument("--seed", type=int, default=0, help="seed of the test images and noise (default 0)")
    p.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda:0 (default cpu)")
    add_output_flags(p, "replace the report in a non-empty --out and an existing --json file")
    p.add_argument("--json", metavar="FILE", help="also write the metrics JSON there")
    p.add_argument("--no-bounds", action="store_true", help="skip the error bounds (no calibration)")
    p.add_argument("--alpha", type=float, default=0.1,
                   help="miscoverage level of the bounds and false-alarm rate of the flag (default 0.1)")
    p.add_argument("--calibration-n", type=int, default=100, metavar="N",
                   help="validation images of the training family (the first of the task's "
                        "families) the bounds are calibrated on (default 100)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    add_force_flag(p)
    add_debug(p)
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    """Simulate a task's measurements of several image families, reconstruct, bound the errors,
    report."""
    if args.n_images < 1:
        raise UsageError(f"--n-images must be at least 1, got {args.n_images}")
    check_simulation_flags(args)
    if not 0 < args.alpha < 1:
        raise UsageError(f"--alpha must lie strictly between 0 and 1, got {args.alpha}")
    if not 2 <= args.calibration_n <= 3200:
        raise UsageError(f"--calibration-n must be in [2, 3200] (the validation split), "
                         f"got {args.calibration_n}")
    if not args.no_bounds and args.calibration_n < math.ceil(1 / args.alpha - 1 - 1e-9):
        raise UsageError(f"--calibration-n {args.calibration_n} is too small for --alpha "
                         f"{args.alpha:g}: finite bounds need at least "
                         f"{math.ceil(1 / args.alpha - 1 - 1e-9)} calibration images")
    if args.task == "all":
        return _run_all(args)
    t = task_from_args(args, SHORTHANDS)
    out = check_out_dir(args.out, "--out", args.overwrite, args.parents)
    if args.json:
        check_out_file(args.json, "--json", args.overwrite, args.parents)
    # pre-flight: every test image of every family is simulated and kept with its reconstructions
    families = list(t.families) if args.families is None else args.families
    check_memory("demo", t, args.n_images * len(families), args.force)
    methods = args.methods if args.methods is not None else demo_methods(t)
    if not args.no_bounds:
        note_unflaggable("demo", args.calibration_n, args.alpha)
    result = run_demo(out, task=t, n_images=args.n_images, methods=methods, families=families, seed=args.seed,
                      device=args.device, overwrite=args.overwrite, progress=not args.quiet,
                      command=args.command_line, bounds=not args.no_bounds, alpha=args.alpha,
                      calibration_n=args.calibration_n)
    _print_section(result, t, args)
    _finish(result, args)
    return 0


def _print_section(result: dict, t, args) -> None:
    """One report's (or section's) metrics table and, with bounds, its bounds table and flags."""
    print(result["table"])
    if not args.no_bounds:
        print()
        print(f"error bounds (alpha {args.alpha:g}, calibrated on {args.calibration_n} {t.families[0]} "
              f"validation images, the {t.kind} task's default setting; pixel cov. = mean "
              "fraction of pixels inside their intervals; map r = correlation of the uncertainty "
              "map with the error):")
        print(result["bounds_table"])
        flagged = [(c["name"], m) for c in result["cases"] for m, b in (c.get("bounds") or {}).items()
                   if isinstance(b, dict) and b.get("flagged")]
        n_pairs = sum(len(c.get("bounds") or {}) for c in result["cases"])
        print(f"flagged as unlike the calibration data: {len(flagged)} of {n_pairs} image/method "
              "pairs" + (" (their bounds are not guaranteed)" if flagged else ""))


def _finish(result: dict, args) -> None:
    """The report's path, the time taken, and the ``--json`` copy of the metrics."""
    print(f"report: {result['report']} (open it in a browser); metrics: "
          f"{Path(result['report']).parent / 'metrics.json'}; {result['seconds_total']:.0f} s in all")
    if args.json:
        doc = {k: v for k, v in result.items() if k not in ("report", "seconds_total")}
        write_json(args.json, doc)


def _run_all(args) -> int:
    """``--task all``: every registered task's demo (its default methods, families and
    calibration), one report with a section per task."""
    given = [flag for attr, flag in TASK_SPECIFIC.items() if getattr(args, attr) not in (None, [])]
    if given:
        raise UsageError(f"{given[0]} changes one task and does not apply to --task all; run "
                         f"one task to change it (e.g. --task ct {given[0]} ...)")
    kinds = tasks()
    out = check_out_dir(args.out, "--out", args.overwrite, args.parents)
    if args.json:
        check_out_file(args.json, "--json", args.overwrite, args.parents)
    # pre-flight, per task: every test image of every family is kept with its reconstructions
    for t in map(task, kinds):
        check_memory(f"demo (task {t.kind})", t, args.n_images * len(t.families), args.force)
    if not args.no_bounds:
        note_unflaggable("demo", args.calibration_n, args.alpha)
    result = run_demo_all(out, tasks=kinds, n_images=args.n_images, seed=args.seed,
                          device=args.device, overwrite=args.overwrite, progress=not args.quiet,
                          command=args.command_line, bounds=not args.no_bounds, alpha=args.alpha,
                          calibration_n=args.calibration_n)
    for i, section in enumerate(result["sections"]):
        print(("\n" if i else "") + f"== task {section['task']} ==")
        _print_section(section, task(section["task"]), args)
    print()
    _finish(result, args)
    return 0
