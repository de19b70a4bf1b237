"""``tomolearn evaluate``: quality, error bounds and shift detection in and out of distribution."""

from __future__ import annotations

import argparse
import math
import shlex
import sys
import warnings
from pathlib import Path

import torch
from tqdm import tqdm

from .. import studies
from ..data import FAMILIES, SPLIT_SIZES
from ..files import atomic_write_bytes
from ..registry import method, methods as registered_methods
from ..report import software_versions, write_report
from ..weights import WeightsError, available, shipped_weights_for
from .options import (EXAMPLES, HelpFormatter, UsageError, add_debug, add_force_flag,
                      add_output_flags, add_task_options, check_memory, check_out_dir,
                      check_out_file, csv_list, methods_by_task, note_unflaggable, task_from_args,
                      wrap, write_json)


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``evaluate`` verb to ``subparsers`` (the top parser's subparsers action)."""
    p = subparsers.add_parser(
        "evaluate", help="quality, error bounds and shift detection in and out of distribution",
        description=wrap(
            "Calibrate distribution-free error bounds of each method on the "
            "ellipses validation split, then measure PSNR/SSIM, the bounds' "
            "coverage and shift detection on the test split and, with "
            "--shift, on other image families and measurement shifts."),
        epilog="examples:\n  " + EXAMPLES["evaluate"],
        formatter_class=HelpFormatter)
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--model", metavar="NAME",
                       help="shipped learned weights, e.g. lpd-ellipses (its method is evaluated)")
    which.add_argument("--methods", type=csv_list, metavar="LIST",
                       help="comma-separated registered methods of the task (" + methods_by_task()
                            + ")")
    add_task_options(p)
    p.add_argument("--dataset", default="ellipses", metavar="FAMILY",
                   help="image family of the training distribution: calibration and "
                        "in-distribution test (default ellipses)")
    p.add_argument("--shift", default=None, metavar="all|NAME|none",
                   help="also test under a shift: all, an image family (rectangles, ...), a "
                        "measurement shift (angles-20, noise-10%%, low-dose, ...), or a comma list "
                        "(default none: in distribution only)")
    p.add_argument("--n", type=int, default=100, help="test images per shift (default 100)")
    p.add_argument("--alpha", type=float, default=0.1,
                   help="miscoverage level of the bounds and false-alarm rate (default 0.1)")
    p.add_argument("--calibration-n", type=int, default=200, metavar="N",
                   help="ellipses validation images for calibration (default 200)")
    p.add_argument("--batch-size", type=int, default=50, help="images reconstructed together")
    p.add_argument("--json", metavar="FILE", help="write the rows (and calibration) as JSON")
    p.add_argument("--markdown", metavar="FILE", help="write the Markdown table")
    p.add_argument("--plot", metavar="FILE.png", help="write a bar chart of PSNR per shift")
    p.add_argument("--report", metavar="DIR",
                   help="write an HTML report of the study (tables and chart) to DIR/index.html")
    add_output_flags(p, "replace existing --json/--markdown/--plot files and the report in a "
                        "non-empty --report directory")
    add_force_flag(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_debug(p)
    p.set_defaults(func=run)
    return p


def _evaluate_methods(args, t) -> list:
    installed = available()
    supported = registered_methods(t)
    if args.model is not None:
        by_weights = {w: m for m in supported for w in method(m).weight_variants}
        if args.model not in by_weights:
            raise UsageError(f"unknown model {args.model!r}; shipped models: "
                             f"{', '.join(by_weights)} (use --methods for classical methods)")
        names = [by_weights[args.model]]
        chosen = shipped_weights_for(names[0], t)
        if chosen != args.model:
            raise UsageError(f"--model {args.model}: the {names[0]} method uses {chosen} for "
                             f"this task (the weights trained closest to it); choose the task "
                             f"setting {args.model} was trained for, or --model {chosen}")
    else:
        names = list(dict.fromkeys(args.methods))
        if not names:
            raise UsageError("--methods is empty; give e.g. --methods fbp,tv")
        unknown = [m for m in names if m not in supported]
        if unknown:
            raise UsageError(f"unknown method {unknown[0]!r}; available: {', '.join(supported)}")
    for m in names:
        if method(m).weights is None:
            continue
        try:
            weights = shipped_weights_for(m, t)
        except WeightsError as e:
            raise UsageError(f"--methods {m}: {e}") from None
        if weights not in installed:
            raise UsageError(f"method {m!r} needs the weights {weights!r}, which are not "
                             f"installed (installed: {', '.join(installed) or 'none'})")
    return names


def _factory(name: str, t):
    """``factory(op) -> recon(y)`` for :func:`studies.generalisation_report`, with one-line errors.

    ``recon`` returns ``(x_hat, scale)`` for methods with their own uncertainty (ensembles)."""
    registered = studies.registered_factory(name, t)

    def factory(op):
        def recon(y):
            try:
                return registered(op)(y)
            except ValueError as e:
                shape = "x".join(str(s) for s in op.range_shape)
                raise UsageError(f"method {name!r} cannot reconstruct {shape} data: {e}") from None
        return recon
    return factory


def run(args) -> int:
    """Quality, distribution-free bounds and shift detection in and out of distribution."""
    t = task_from_args(args)
    check_memory(f"task {t.kind} at batch {args.batch_size}", t, max(1, args.batch_size),
                 args.force)  # before anything builds the task's operator
    methods = _evaluate_methods(args, t)
    if args.dataset not in FAMILIES:
        raise UsageError(f"unknown dataset {args.dataset!r}; expected an image family: "
                         f"{', '.join(sorted(FAMILIES))}")
    known = studies.shift_names(t, args.dataset)
    if args.shift is None or args.shift == "none":
        shifts = ["none"]
    elif args.shift == "all":
        shifts = ["none"] + known
    else:
        shifts = ["none"]
        for s in (v.strip() for v in args.shift.split(",") if v.strip()):
            if s not in known and s != "none":
                raise UsageError(f"unknown shift {s!r}; expected all, none or one of "
                                 f"{', '.join(known)}")
            if s not in shifts:
                shifts.append(s)
    if not 2 <= args.n <= SPLIT_SIZES["test"]:
        raise UsageError(f"--n must be in [2, {SPLIT_SIZES['test']}] (the test split), "
                         f"got {args.n}")
    if not 2 <= args.calibration_n <= SPLIT_SIZES["validation"]:
        raise UsageError(f"--calibration-n must be in [2, {SPLIT_SIZES['validation']}] (the "
                         f"validation split), got {args.calibration_n}")
    if not 0 < args.alpha < 1:
        raise UsageError(f"--alpha must lie strictly between 0 and 1, got {args.alpha}")
    need = math.ceil(1 / args.alpha - 1 - 1e-9)
    if args.calibration_n < need:
        raise UsageError(f"--calibration-n {args.calibration_n} is too small for --alpha "
                         f"{args.alpha:g}: finite bounds need at least {need} calibration images")
    if args.batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, got {args.batch_size}")
    if args.json:
        check_out_file(args.json, "--json", args.overwrite, args.parents)
    if args.markdown:
        check_out_file(args.markdown, "--markdown", args.overwrite, args.parents)
    if args.plot:
        check_out_file(args.plot, "--plot", args.overwrite, args.parents, suffix=".png")
    if args.report:
        check_out_dir(args.report, "--report", args.overwrite, args.parents)

    note_unflaggable("evaluate", args.calibration_n, args.alpha)
    with tqdm(total=1, desc="evaluate", unit="img", file=sys.stderr, disable=args.quiet,
              leave=False) as bar:
        def progress(done, total):
            bar.total = total
            bar.update(done - bar.n)

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # calibration size checked above
            report = studies.generalisation_report(
                {m: _factory(m, t) for m in methods}, shifts, n=args.n, alpha=args.alpha,
                calibration_n=args.calibration_n, progress=progress, batch_size=args.batch_size,
                task=t, family=args.dataset)
    report["dataset"] = args.dataset
    table = studies.format_markdown(report)
    print(f"{', '.join(methods)} on {args.dataset} (task {t.kind}): first {args.n} test images "
          f"per shift; bounds at "
          f"alpha {args.alpha:g} calibrated on {args.calibration_n} validation images")
    print(table, end="")
    if args.json:
        write_json(args.json, report)
    if args.markdown:
        atomic_write_bytes(Path(args.markdown), table.encode("utf-8"))
    if args.plot:
        studies.plot_generalisation(report, args.plot)
    if args.report:
        settings = {"methods": ", ".join(methods), "shifts": ", ".join(shifts),
                    "test images per shift": args.n, "alpha": args.alpha,
                    f"calibration images ({args.dataset} validation)": args.calibration_n,
                    "task": t.spec(),
                    "torch threads": torch.get_num_threads()}
        meta = {"title": "tomolearn generalisation study",
                "description": ("Quality, conformal error bounds and data-consistency shift "
                                f"detection of each method in distribution ({args.dataset} test "
                                f"split, task {t.kind}) "
                                "and under each shift. The bounds are guaranteed in distribution "
                                "only; the other rows show whether they survive the shift."),
                "settings": settings, "versions": software_versions(),
                "command": "tomolearn " + " ".join(shlex.quote(a) for a in sys.argv[1:])}
        figure = studies.generalisation_figure(report)
        index = write_report(args.report, [], report["results"], meta, overwrite=args.overwrite,
                             figures=[("PSNR per shift and method", figure)])
        print(f"wrote {index}")
    return 0
