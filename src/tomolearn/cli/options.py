"""What the verbs of the command line share: errors, the parser, output checks, examples.

Output paths are checked before any work (:func:`check_out_file`,
:func:`check_out_dir`, :func:`check_parent`) and written atomically
(:func:`write_json`); :class:`UsageError` and argparse errors become one line
on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Optional

import torch
import yaml

from ..files import atomic_write_bytes
from ..hardware import check_device as check_torch_device
from ..registry import methods, task, tasks
from ..resources import (ResourceError, available_memory_bytes, check_fits,
                         free_disk_bytes)
from ..report import check_report_dir

EXAMPLES = {
    "info": "tomolearn info\n  tomolearn info --json info.json",
    "demo": ("tomolearn demo                                   # writes report/index.html\n"
             "  tomolearn demo --out demo1 --n-images 8 --seed 1 --json demo.json\n"
             "  tomolearn demo --out sparse --angles 20 --noise 0.05 --overwrite   # flagged: shifted\n"
             "  tomolearn demo --methods fbp --families ellipses,rectangles --no-bounds\n"
             "  tomolearn demo --task all --out all         # every task, one section each"),
    "reconstruct": ("tomolearn reconstruct --input sino.npy --method fbp --out rec.npy\n"
                    "  tomolearn reconstruct --input slice.dcm --method lpd --angles 30 --out rec.npy"
                    "   # + rec.png, rec.dcm\n"
                    "  tomolearn reconstruct --input phantom.png --method tv --noise 0.05 --seed 1 "
                    "--out tv.npy\n"
                    "  tomolearn reconstruct --input test.h5 --index 3 --method fbp --out s3.npy --overwrite"),
    "evaluate": ("tomolearn evaluate --model lpd-ellipses --shift all --json lpd.json --plot lpd.png\n"
                 "  tomolearn evaluate --methods fbp,tv,lpd --shift all --n 20 --calibration-n 50 --report study\n"
                 "  tomolearn evaluate --methods fbp,tv --n 20 --calibration-n 50 --markdown table.md\n"
                 "  tomolearn evaluate --methods fbp --shift noise-10% --n 4 --calibration-n 9 --alpha 0.2"),
    "data": ("tomolearn data generate ellipses --split train --out ellipses_train.h5\n"
             "  tomolearn data generate ellipses --split test --n 100 --shift noise-5% --out test_noise5.h5\n"
             "  tomolearn data generate rectangles --split test --n 100 --out rectangles.h5"),
    "train": ("tomolearn train configs/lpd-ellipses.yaml\n"
              "  tomolearn train my.yaml --out runs/lpd2 --max-steps 100   # then: --resume\n"
              "  tomolearn train configs/lpd-ensemble.yaml --set train.seed=2 --out runs/lpd-ensemble-2\n"
              "  torchrun --standalone --nproc_per_node 4 -m tomolearn train my.yaml   # data-parallel"),
    "benchmark": ("tomolearn benchmark operators\n"
                  "  tomolearn benchmark operators --geometries ellipses,fan --batches 1,16 "
                  "--json operators.json\n"
                  "  tomolearn benchmark ellipses --methods fbp,tv --n 100 --json ellipses.json\n"
                  "  tomolearn benchmark ct --task-set n_angles=60 --methods fbp,tv --n 20\n"
                  "  tomolearn benchmark learned --batches 16 --json learned.json\n"
                  "  tomolearn benchmark contention --competitors 3\n"
                  "  tomolearn benchmark operators --task mri --json mri-ops.json\n"
                  "  tomolearn benchmark brain --task mri --n 20 --json mri.json\n"
                  "  tomolearn benchmark optimisers --n 2 --json optimisers.json"),
}


class UsageError(Exception):
    """Bad input from the user: reported as one line, exit status 2."""


class Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors: ``tomolearn VERB: error: ... (see ... --help)``."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")



class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """The verbs' help layout: descriptions as written, option help wrapped at spaces only
    (argparse's default also breaks after hyphens, splitting names such as osem-filtered)."""

    def _split_lines(self, text, width):
        return textwrap.wrap(" ".join(text.split()), width, break_on_hyphens=False)

def wrap(text: str) -> str:
    """A help description wrapped to 80 columns (the formatter keeps line breaks as given)."""
    return textwrap.fill(text, 80)


def add_debug(p: argparse.ArgumentParser) -> None:
    """``--debug`` after the verb too (``tomolearn VERB --debug``), same as before it."""
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                   help="show Python tracebacks on errors")


def add_output_flags(p: argparse.ArgumentParser, overwrite_help: Optional[str] = None) -> None:
    """``--overwrite`` (unless the verb has its own) and ``--parents``, shared by every verb that writes."""
    if overwrite_help is not None:
        p.add_argument("--overwrite", action="store_true", help=overwrite_help)
    p.add_argument("--parents", action="store_true",
                   help="create missing folders of the output paths (refused otherwise)")


def csv_list(value: str, kind=str) -> list:
    """A comma-separated option value as a list of ``kind`` (empty items dropped)."""
    try:
        return [kind(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a comma-separated list, got {value!r}") from None


def write_json(path: str, payload: dict) -> None:
    """Write ``payload`` to ``path`` atomically (checked by :func:`check_out_file` before the work)."""
    atomic_write_bytes(Path(path), (json.dumps(payload, indent=2) + "\n").encode())


def check_parent(target: Path, flag: str, parents: bool) -> None:
    """The folder an output goes into must exist (or ``--parents`` lets us create it)."""
    parent = target.absolute().parent
    if parent.exists():
        if not parent.is_dir():
            raise UsageError(f"{flag} {target}: {target.parent} is not a directory")
        return
    if not parents:
        raise UsageError(f"{flag} {target}: the folder {target.parent} does not exist (pass "
                         f"--parents to create it)")


def check_out_dir(path, flag: str, overwrite: bool, parents: bool = False) -> Path:
    """A report directory: absent, empty, or non-empty with ``--overwrite``; its parent exists."""
    check_parent(Path(path), flag, parents)
    try:
        check_report_dir(path, overwrite)
    except OSError as e:
        raise UsageError(f"{flag}: {e}") from None
    return Path(path)


def check_out_file(path, flag: str, overwrite: bool, parents: bool = False,
                   suffix: Optional[str] = None) -> Path:
    """Check an output file path before any work: not a directory, right suffix, free to
    write (``--overwrite`` to replace a file), in an existing folder (or ``--parents``)."""
    target = Path(path)
    if suffix is not None and target.suffix.lower() != suffix:
        raise UsageError(f"{flag} {path}: expected a {suffix} file name")
    if target.is_dir():
        raise UsageError(f"{flag} {path}: is a directory")
    if target.exists() and not overwrite:
        raise UsageError(f"{flag} {path}: file exists (pass --overwrite to replace it)")
    check_parent(target, flag, parents)
    return target


def note_unflaggable(verb: str, calibration_n: int, alpha: float) -> None:
    """Warn (stderr) when no conformal p-value can fall below alpha: 1/(n+1) >= alpha."""
    if calibration_n <= 1 / alpha - 1 + 1e-9:
        print(f"tomolearn {verb}: note: with {calibration_n} calibration images the smallest "
              f"p-value is 1/{calibration_n + 1} >= alpha {alpha:g}, so no image can be flagged; "
              f"use --calibration-n {math.floor(1 / alpha + 1e-9)} or more", file=sys.stderr)


def one_line(e: BaseException) -> str:
    """An exception's message on one line (a KeyError's without its quotes)."""
    text = str(e.args[0]) if isinstance(e, KeyError) and e.args else str(e)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return "; ".join(lines) or type(e).__name__


def methods_by_task() -> str:
    """The registered methods of each task, for ``--help`` texts: ``"ct: fbp, tv, ...; mri: ..."``."""
    return "; ".join(f"{kind}: {', '.join(methods(kind))}" for kind in tasks())


def add_task_options(p: argparse.ArgumentParser, default: str = "ct",
                     allow_all: bool = False) -> None:
    """``--task NAME`` (a registered task kind) and ``--task-set KEY=VALUE`` (repeatable: a
    task field by dotted name, the value as YAML), shared by the verbs that simulate data.
    ``allow_all``: the help says ``--task all`` runs every task (the verb handles ``all``
    itself; :func:`task_from_args` refuses it)."""
    p.add_argument("--task", default=default, metavar="NAME",
                   help=f"the inverse problem, a registered task (default {default}; "
                        "`tomolearn info` lists them)"
                        + ("; all: every registered task, one report with a section per task"
                           if allow_all else ""))
    p.add_argument("--task-set", action="append", default=[], metavar="KEY=VALUE",
                   help="change one field of the task, e.g. n_angles=60 or noise.level=0.05 "
                        "(repeatable)")


def task_from_args(args, shorthands: Optional[dict] = None):
    """The task ``--task`` names with the ``--task-set`` changes, and the shorthand flags
    ``shorthands`` (``{"angles": "n_angles"}``: ``--angles 20`` sets ``n_angles``) that were
    given (not None).  Errors name the flag; ``--task all`` is refused (only ``tomolearn
    demo`` takes it, and handles it before calling this)."""
    if args.task == "all":
        raise UsageError(f"--task all: name one task here (registered: {', '.join(tasks())}); "
                         "only `tomolearn demo` runs every task at once")
    changes = {}
    for item in args.task_set:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--task-set {item!r}: expected KEY=VALUE, e.g. n_angles=60")
        try:
            changes[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError as e:
            raise UsageError(f"--task-set {item!r}: the value is not valid YAML ({e})") from None
    for flag, field in (shorthands or {}).items():
        value = getattr(args, flag)
        if value is not None:
            changes[field] = value
    try:
        return task(args.task).updated(changes)
    except (TypeError, ValueError) as e:
        raise UsageError(f"--task {args.task}: {e}") from None


def check_device(value: str, flag: str = "--device") -> str:
    """``value`` if it names a torch device that exists here, else :class:`UsageError` naming
    the flag and the devices that do (e.g. ``--device cuda:7`` on a machine with one GPU)."""
    try:
        check_torch_device(value)
    except ValueError as e:
        raise UsageError(f"{flag} {e}") from None
    return value


def check_simulation_flags(args) -> None:
    """The shorthand simulation flags ``--angles`` (>= 1), ``--noise`` (relative, in [0, 1))
    and ``--seed`` (>= 0), where given."""
    if getattr(args, "angles", None) is not None and args.angles < 1:
        raise UsageError(f"--angles must be at least 1, got {args.angles}")
    if getattr(args, "noise", None) is not None and not 0 <= args.noise < 1:
        raise UsageError(f"--noise must be a relative level in [0, 1), got {args.noise}")
    if getattr(args, "seed", None) is not None and args.seed < 0:
        raise UsageError(f"--seed must be non-negative, got {args.seed}")


def add_force_flag(p: argparse.ArgumentParser) -> None:
    """``--force``: run even when the pre-flight estimate says the job will not fit."""
    p.add_argument("--force", action="store_true",
                   help="run even if the estimated memory or disk exceeds what is available")


def check_memory(what: str, t, batch: int, force: bool) -> None:
    """Refuse (one line) a job whose task needs more memory for ``batch`` images than is
    available (:meth:`tomolearn.registry.Task.estimated_bytes`), unless ``--force``."""
    try:
        check_fits(what, t.estimated_bytes(batch), available_memory_bytes(), "memory", force)
    except ResourceError as e:
        raise UsageError(str(e)) from None


def check_disk(what: str, need: float, path, force: bool) -> None:
    """Refuse (one line) writing about ``need`` bytes to ``path``'s file system when it has
    less free, unless ``--force``."""
    try:
        check_fits(what, need, free_disk_bytes(path), f"disk at {Path(path).parent}", force)
    except ResourceError as e:
        raise UsageError(str(e)) from None


@contextlib.contextmanager
def still_running(what: str, after: float = 2.0, every: float = 10.0, stream=None):
    """Say on stderr that ``what`` is still running when it takes longer than ``after``
    seconds, then every ``every`` seconds (so no step is silent for long); silent for
    quick steps."""
    stream = sys.stderr if stream is None else stream
    done = threading.Event()
    start = time.perf_counter()

    def report():
        wait = after
        while not done.wait(wait):
            print(f"  {what}: still running ({time.perf_counter() - start:.0f} s)",
                  file=stream, flush=True)
            wait = every

    thread = threading.Thread(target=report, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


def check_finite(tensor: torch.Tensor, what: str, hint: str = "") -> None:
    """Refuse (one line) a tensor holding NaN or infinite values, saying how many."""
    bad = int((~torch.isfinite(tensor)).sum())
    if bad:
        raise UsageError(f"{what} has {bad} non-finite value{'s' if bad > 1 else ''} (NaN or "
                         f"infinite) of {tensor.numel()}" + (f"; {hint}" if hint else ""))
