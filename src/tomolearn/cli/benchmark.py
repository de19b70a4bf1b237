"""``tomolearn benchmark {operators,learned,optimisers,TASK,FAMILY}``: speed and quality against
peers."""

from __future__ import annotations

import argparse
import sys

import torch
from tqdm import tqdm

from ..data import FAMILIES, SPLIT_SIZES
from ..modalities.ct.contention import benchmark_contention, format_contention_table
from ..operators.speed import operator_speed, operator_speed_tasks
from ..registry import method, methods, shifted, tasks
from ..studies import (SPEED_ARCHITECTURES, benchmark, benchmark_optimisers, default_methods,
                       format_figures_table, format_optimisers_table, format_quality_table,
                       format_speed_table, learned_speed, tv_time_to_converge)
from ..studies.optimisers import MAX_ITER, optimisers, problems
from .options import (EXAMPLES, HelpFormatter, UsageError, add_force_flag, add_output_flags,
                      add_task_options, check_device, check_memory, check_out_file, csv_list,
                      methods_by_task, task_from_args, write_json)


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``benchmark`` verb to ``subparsers`` (the top parser's subparsers action)."""
    p = subparsers.add_parser("benchmark", help="speed and quality benchmarks against peers",
                              epilog="examples:\n  " + EXAMPLES["benchmark"],
                              formatter_class=HelpFormatter)
    p.add_argument("what", metavar="operators|contention|learned|optimisers|TASK|FAMILY",
                   help="operators: forward/adjoint speed of --task's operator against a peer "
                        "(" + _operator_peers() + "); contention: how the projector "
                        "and ASTRA slow down beside --competitors other torch processes; learned: "
                        "inference and "
                        "training speed of the learned networks; optimisers: iterations and "
                        "seconds of optimisers to a relative objective gap of 1e-3 and 1e-6 on "
                        "--problems; a task (" + ", ".join(tasks())
                        + ") or an image family (e.g. ellipses): reconstruction quality of "
                        "--methods on its test split, beside published numbers where there are "
                        "some (DIVal's table for ct on ellipses)")
    add_task_options(p)
    p.add_argument("--family", default=None,
                   help="TASK: the image family (default: the task's training family, ellipses "
                        "for ct, brain for mri, then the families the task asks to be "
                        "reported beside it: pet adds nema-iq, with its NEMA figures of merit)")
    p.add_argument("--methods", type=csv_list, default=None,
                   help="quality: comma-separated registered methods (default: those the task "
                        "supports whose weights are installed; " + methods_by_task() + "); "
                        "learned: networks "
                        "(default fbpconvnet,lgd,lpd); optimisers: optimisers (default all: "
                        + ",".join(optimisers()) + ")")
    p.add_argument("--problems", type=csv_list, default=None,
                   help="optimisers: comma-separated problems (default all: "
                        + ", ".join(problems()) + ")")
    p.add_argument("--max-iter", type=int, default=MAX_ITER,
                   help=f"optimisers: iteration budget of every method (default {MAX_ITER})")
    p.add_argument("--reference-iter", type=int, default=None,
                   help="optimisers: iterations of the reference run that fixes the minimum "
                        "(default 1000 L-BFGS on smooth problems, 20000 PDHG on non-smooth)")
    p.add_argument("--n", type=int, default=None,
                   help="quality: first N test samples (default the whole split); optimisers: "
                        "images per problem (default 2)")
    p.add_argument("--batch-size", type=int, default=50, help="quality: images reconstructed together")
    p.add_argument("--amp", action="store_true",
                   help="quality: run the learned methods in bfloat16 (CPU) / float16 (CUDA) autocast")
    p.add_argument("--geometries", type=csv_list, default=None,
                   help="operators: comma-separated cases of --task (default all; "
                        + _operator_cases() + ")")
    p.add_argument("--batches", type=lambda v: csv_list(v, int), default=None,
                   help="operators: comma-separated batch sizes (default per task: "
                        + _operator_batches() + "); learned: one inference batch size "
                        "(default 16)")
    p.add_argument("--repeats", type=int, default=5, help="timed repetitions (median is reported)")
    p.add_argument("--competitors", type=int, default=3,
                   help="contention: competing 2-thread torch processes (default 3)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", choices=["float32", "float64"], default=None,
                   help="operators: the tensors' precision (default float32); optimisers runs "
                        "in float64 only")
    p.add_argument("--backend", choices=["auto", "sparse", "matrix_free"], default="auto",
                   help="operators: the operator's backend, for tasks whose benchmark has one "
                        "(ct's ray transform)")
    p.add_argument("--json", metavar="FILE", help="write the results as JSON")
    add_output_flags(p, "replace an existing --json file")
    add_force_flag(p)
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    """Run the benchmark ``args.what``; print its table (and write JSON with ``--json``)."""
    if args.json:
        check_out_file(args.json, "--json", args.overwrite, args.parents)
    if args.repeats < 1:
        raise UsageError(f"--repeats must be at least 1, got {args.repeats}")
    check_device(args.device)
    if args.what == "operators":
        return _operators(args)
    if args.what == "learned":
        return _learned(args)
    if args.what == "contention":
        return _contention(args)
    if args.what == "optimisers":
        return _optimisers(args)
    if args.what in tasks():
        if args.task not in ("ct", args.what):
            raise UsageError(f"benchmark {args.what} names the task; --task {args.task} "
                             f"contradicts it")
        args.task = args.what
    elif args.what in FAMILIES:
        args.family = args.what
    else:
        raise UsageError(f"unknown benchmark {args.what!r}; expected operators, contention, "
                         f"learned, optimisers, a task "
                         f"({', '.join(tasks())}) or an image family "
                         f"({', '.join(sorted(FAMILIES))})")
    return _quality(args)


def _progress(msg: str) -> None:
    print(f"[benchmark] {msg}", file=sys.stderr, flush=True)


def _operator_peers() -> str:
    return ", ".join(f"{t}: {operator_speed(t).peer or 'no peer'}" for t in operator_speed_tasks())


def _operator_cases() -> str:
    return "; ".join(f"{t}: {operator_speed(t).describe()}" for t in operator_speed_tasks())


def _operator_batches() -> str:
    return "; ".join(f"{t}: {','.join(map(str, operator_speed(t).batches))}"
                     for t in operator_speed_tasks())


def _operators(args) -> int:
    """Time the operator of ``--task`` against its peer on the cases the task registered
    (:mod:`tomolearn.operators.speed`)."""
    try:
        speed = operator_speed(args.task)
    except KeyError as e:
        raise UsageError(e.args[0]) from None
    if args.task_set:
        raise UsageError("benchmark operators times the task's registered cases; --task-set "
                         "does not apply (choose cases with --geometries)")
    geometries = args.geometries or list(speed.cases)
    unknown = [g for g in geometries if not speed.accepted(g)]
    if unknown:
        raise UsageError(f"unknown geometry {unknown[0]!r} for task {args.task}; expected some "
                         f"of {speed.describe()}")
    batches = args.batches or list(speed.batches)
    if any(b < 1 for b in batches):
        raise UsageError(f"--batches must be positive, got {batches}")
    options = {}
    if "backend" in speed.options:
        options["backend"] = args.backend
    elif args.backend != "auto":
        raise UsageError(f"--backend is not an option of task {args.task}'s operator benchmark")
    dtype = {"float32": torch.float32, "float64": torch.float64}[args.dtype or "float32"]
    rows = speed.run(geometries, batches=tuple(batches), repeats=args.repeats,
                     device=args.device, dtype=dtype, progress=_progress, **options)
    print(speed.format(rows))
    if args.json:
        write_json(args.json, {"results": rows})
    return 0


def _contention(args) -> int:
    if args.competitors < 1:
        raise UsageError(f"--competitors must be at least 1, got {args.competitors}")
    row = benchmark_contention(args.competitors, repeats=max(args.repeats, 3), progress=_progress)
    print(format_contention_table(row))
    if args.json:
        write_json(args.json, {"results": [row]})
    return 0


def _learned(args) -> int:
    networks = args.methods or list(SPEED_ARCHITECTURES)
    unknown = [m for m in networks if m not in SPEED_ARCHITECTURES]
    if unknown:
        raise UsageError(f"unknown network {unknown[0]!r}; expected some of "
                         f"{','.join(SPEED_ARCHITECTURES)}")
    args.batches = args.batches or [16]
    if len(args.batches) != 1 or args.batches[0] < 1:
        raise UsageError(f"--batches must be one positive batch size for 'learned', got {args.batches}")
    rows = learned_speed(networks, batch=args.batches[0], repeats=args.repeats, progress=_progress)
    print(format_speed_table(rows))
    if args.json:
        write_json(args.json, {"results": rows})
    return 0


def _optimisers(args) -> int:
    """Iterations and seconds of optimisers to relative objective gaps 1e-3 and 1e-6
    (:mod:`tomolearn.studies.optimisers`), CPU, float64."""
    names = {"--problems": (args.problems, problems()), "--methods": (args.methods, optimisers())}
    for flag, (given, known) in names.items():
        unknown = [v for v in (given or []) if v not in known]
        if unknown:
            raise UsageError(f"{flag}: unknown {flag[2:-1]} {unknown[0]!r}; expected some of "
                             f"{','.join(known)}")
        if given is not None and not given:
            raise UsageError(f"{flag}: give at least one of {','.join(known)}")
    if args.task != "ct" or args.task_set or args.family:
        raise UsageError("benchmark optimisers runs its registered problems (choose them with "
                         "--problems); --task, --task-set and --family do not apply")
    n = 2 if args.n is None else args.n
    for flag, value in (("--n", n), ("--max-iter", args.max_iter),
                        ("--reference-iter", args.reference_iter)):
        if value is not None and value < 1:
            raise UsageError(f"{flag} must be at least 1, got {value}")
    if args.device != "cpu":
        raise UsageError(f"benchmark optimisers runs on the CPU; --device {args.device} is not "
                         "supported")
    if args.dtype not in (None, "float64"):
        raise UsageError(f"benchmark optimisers runs in float64 (so that a gap of 1e-6 is "
                         f"resolved); --dtype {args.dtype} is not supported")
    rows = benchmark_optimisers(args.problems, args.methods, n=n, max_iter=args.max_iter,
                                reference_iter=args.reference_iter, progress=_progress)
    print(format_optimisers_table(rows))
    if args.json:
        write_json(args.json, {"results": rows})
    return 0


def _quality(args) -> int:
    t = task_from_args(args)
    families = [args.family] if args.family else \
        list(dict.fromkeys((t.families[0],) + tuple(t.benchmark_families)))
    args.family = families[0]
    check_memory(f"task {t.kind} at batch {args.batch_size}", t, max(1, args.batch_size),
                 args.force)  # before anything builds the task's operator
    supported = methods(t)
    names = args.methods or default_methods(t)
    unknown = [m for m in names if m not in methods()]
    if unknown:
        raise UsageError(f"unknown method {unknown[0]!r}; available: {','.join(supported)}")
    unsupported = [m for m in names if m not in supported]
    if unsupported:
        raise UsageError(f"method {unsupported[0]!r} does not support task {t.kind!r}; "
                         f"available: {','.join(supported)}")
    size = SPLIT_SIZES["test"]
    if args.n is not None and not 1 <= args.n <= size:
        raise UsageError(f"--n must be in [1, {size}] (the test split), got {args.n}")
    if args.batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, got {args.batch_size}")
    n = args.n or size
    rows = []
    for family in families:  # the training family, then those the task asks to be reported
        rows += _quality_family(args, t.for_family(family), family, names, n, size)
    extra = {}
    if "tv" in names:
        extra["tv_single_image"] = tv_time_to_converge(task=t, family=args.family)
        s = extra["tv_single_image"]
        print(f"TV, one image at a time: within {s['tolerance_db']} dB of its converged PSNR after "
              f"{s['iterations']:.0f} iterations, {s['seconds']:.2f} s (median of {s['n_images']})")
    if args.json:
        write_json(args.json, {"results": rows, "task": t.spec(), **extra})
    return 0


def _quality_family(args, t, family: str, names, n: int, size: int) -> list:
    """Benchmark rows of ``names`` on ``family`` under ``t``'s own setting, then under the
    shifts it asks to be reported beside (``t.benchmark_shifts``); prints a table per setting
    (and one of the task's figures of merit where it has some for the family)."""
    settings = [t] + [s for s in (shifted(t, name) for name in t.benchmark_shifts) if s != t]
    rows = []
    for setting in settings:
        part = []
        for name in names:
            params = {name: {"amp": True}} if args.amp and method(name).kind == "learned" else None
            with tqdm(total=n, desc=name, unit="img", file=sys.stderr, leave=False) as bar:
                part += benchmark([name], n=n, batch_size=args.batch_size, params=params,
                                  task=setting, family=family, device=args.device,
                                  progress=lambda done, total: bar.update(done - bar.n))
        described = ", ".join(f"{k} {v}" for k, v in setting.setting().items())
        print(f"task {t.kind}{' (' + described + ')' if described else ''}, {family} test "
              f"split, first {n} samples ({'all' if n == size else 'a prefix'}); torch threads "
              f"{part[0]['torch_threads']}")
        print(format_quality_table(part))
        figures = format_figures_table(part, part[0].get("figures_of_merit", []))
        if figures:
            print(f"figures of merit ({family}), means over the {n} images")
            print(figures)
        rows += part
    return rows
