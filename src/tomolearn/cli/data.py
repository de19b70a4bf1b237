"""``tomolearn data generate``: simulate a dataset into an HDF5 file (resumable)."""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

from tqdm import tqdm

from ..data import FAMILIES, SimulatedDataset, generate_hdf5
from ..registry import shifted, shifts
from .options import (EXAMPLES, HelpFormatter, UsageError, add_force_flag, add_output_flags,
                      add_task_options, check_disk, check_memory, check_out_file, task_from_args)


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``data`` verb (with its ``generate`` action) to ``subparsers``."""
    p = subparsers.add_parser("data", help="generate datasets to HDF5 files",
                              epilog="examples:\n  " + EXAMPLES["data"],
                              formatter_class=HelpFormatter)
    data_sub = p.add_subparsers(dest="action", metavar="ACTION")
    data_sub.required = True
    g = data_sub.add_parser("generate", help="simulate a dataset into an HDF5 file (resumable)",
                            epilog="examples:\n  " + EXAMPLES["data"],
                            formatter_class=HelpFormatter)
    g.add_argument("family", metavar="NAME",
                   help="image family: ellipses (DIVal's benchmark), shepp-logan, rectangles, ...")
    g.add_argument("--split", choices=["train", "validation", "test"], default="train")
    g.add_argument("--out", required=True, metavar="FILE.h5",
                   help="the HDF5 file to write (.h5 or .hdf5)")
    g.add_argument("--n", type=int, default=None,
                   help="number of samples (default: the split's size, 32000/3200/3200)")
    add_task_options(g)
    g.add_argument("--shift", default=None,
                   help="measurement shift of the task, e.g. angles-20, noise-5%%, low-dose")
    g.add_argument("--seed", type=int, default=1, help="dataset seed (default 1, the standard one)")
    g.add_argument("--batch-size", type=int, default=64)
    add_output_flags(g, "replace an existing file")
    add_force_flag(g)
    g.add_argument("--quiet", action="store_true", help="no progress bar")
    g.set_defaults(func=run)
    return p


def run(args) -> int:
    """Generate a simulated dataset into an HDF5 file (resumable)."""
    suffix = Path(args.out).suffix
    if suffix.lower() not in (".h5", ".hdf5"):
        raise UsageError(f"--out {args.out}: data generate writes an HDF5 file; expected a .h5 or "
                         f".hdf5 file name, got {suffix or 'no suffix'!r}")
    if args.family not in FAMILIES:
        raise UsageError(f"unknown dataset {args.family!r}; expected one of {', '.join(sorted(FAMILIES))}")
    t = task_from_args(args)
    if args.shift is not None and args.shift not in shifts(t):
        raise UsageError(f"unknown shift {args.shift!r}; expected one of {', '.join(shifts(t))}")
    if args.n is not None and args.n < 1:
        raise UsageError(f"--n must be at least 1, got {args.n}")
    if args.batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, got {args.batch_size}")
    out = check_out_file(args.out, "--out", args.overwrite, args.parents)
    spec = t.replace(seed=args.seed)
    if args.shift:
        spec = shifted(spec, args.shift)
    dataset = SimulatedDataset(args.family, args.split, spec, size=args.n)
    # pre-flight: one batch in memory, the whole file on disk (float32, complex64 for complex)
    check_memory("data generate", spec, args.batch_size, args.force)
    itemsize = 8 if spec.image_dtype.is_complex else 4
    check_disk("data generate", len(dataset) * itemsize * (math.prod(spec.image_shape)
                                                           + math.prod(spec.data_shape)),
               out, args.force)
    start = time.perf_counter()
    with tqdm(total=len(dataset), unit="sample", desc=f"{args.family}/{args.split}",
              disable=args.quiet, file=sys.stderr) as bar:
        def progress(done, total):
            bar.update(done - bar.n)

        generate_hdf5(dataset, out, overwrite=args.overwrite, batch_size=args.batch_size,
                      progress=progress)
    seconds = time.perf_counter() - start
    size_mb = out.stat().st_size / 2**20
    print(f"wrote {out}: {len(dataset)} samples of {args.family}/{args.split} in {seconds:.1f} s "
          f"({size_mb:.1f} MiB)")
    return 0
