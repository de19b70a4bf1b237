"""``tomolearn benchmark {operators,ellipses,learned}``: speed and quality against peers."""

from __future__ import annotations

import argparse
import sys

from .options import EXAMPLES, UsageError, add_output_flags, check_out_file, csv_list, write_json


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``benchmark`` verb to ``subparsers`` (the top parser's subparsers action)."""
    p = subparsers.add_parser("benchmark", help="speed and quality benchmarks against peers",
                              epilog="examples:\n  " + EXAMPLES["benchmark"],
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("task", choices=["operators", "ellipses", "learned"],
                   help="operators: projector speed against ASTRA; ellipses: reconstruction quality "
                        "on DIVal's ellipses test split against DIVal's published table; learned: "
                        "inference and training speed of the learned networks, operator share")
    p.add_argument("--methods", type=csv_list, default=None,
                   help="ellipses: comma-separated methods (default fbp,tv); learned: networks "
                        "(default fbpconvnet,lgd,lpd)")
    p.add_argument("--n", type=int, default=None, help="ellipses: first N test samples (default all 3200)")
    p.add_argument("--batch-size", type=int, default=50, help="ellipses: images reconstructed together")
    p.add_argument("--amp", action="store_true",
                   help="ellipses: run the learned methods in bfloat16 (CPU) / float16 (CUDA) autocast")
    p.add_argument("--geometries", type=csv_list, default=["ellipses", "lodopab", "fan"],
                   help="comma-separated: ellipses,lodopab,fan (default all)")
    p.add_argument("--batches", type=lambda v: csv_list(v, int), default=None,
                   help="operators: comma-separated batch sizes (default 1,16); learned: one "
                        "inference batch size (default 16)")
    p.add_argument("--repeats", type=int, default=5, help="timed repetitions (median is reported)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    p.add_argument("--backend", choices=["auto", "sparse", "matrix_free"], default="auto")
    p.add_argument("--json", metavar="FILE", help="write the results as JSON")
    add_output_flags(p, "replace an existing --json file")
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    """Run the benchmark ``args.task``; print its table (and write JSON with ``--json``)."""
    import torch

    from ..benchmarks import OPERATOR_CASES, benchmark_operators, format_operator_table

    if args.json:
        check_out_file(args.json, "--json", args.overwrite, args.parents)
    if args.task == "ellipses":
        return _benchmark_ellipses(args)
    if args.task == "learned":
        return _benchmark_learned(args)
    args.batches = args.batches or [1, 16]
    unknown = [g for g in args.geometries if g not in OPERATOR_CASES]
    if unknown:
        raise UsageError(f"unknown geometry {unknown[0]!r}; expected some of "
                         f"{','.join(OPERATOR_CASES)}")
    if any(b < 1 for b in args.batches):
        raise UsageError(f"--batches must be positive, got {args.batches}")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError(f"--device {args.device}: CUDA is not available here")
    dtype = {"float32": torch.float32, "float64": torch.float64}[args.dtype]
    progress = (lambda msg: print(f"[benchmark] {msg}", file=sys.stderr, flush=True))
    rows = benchmark_operators(args.geometries, batches=tuple(args.batches), repeats=args.repeats,
                               device=args.device, dtype=dtype, backend=args.backend,
                               progress=progress)
    print(format_operator_table(rows))
    if args.json:
        write_json(args.json, {"results": rows})
    return 0


def _benchmark_learned(args) -> int:
    from ..benchmarks import SPEED_ARCHITECTURES, format_speed_table, learned_speed

    methods = args.methods or list(SPEED_ARCHITECTURES)
    unknown = [m for m in methods if m not in SPEED_ARCHITECTURES]
    if unknown:
        raise UsageError(f"unknown network {unknown[0]!r}; expected some of "
                         f"{','.join(SPEED_ARCHITECTURES)}")
    args.batches = args.batches or [16]
    if len(args.batches) != 1 or args.batches[0] < 1:
        raise UsageError(f"--batches must be one positive batch size for 'learned', got {args.batches}")
    if args.repeats < 1:
        raise UsageError(f"--repeats must be at least 1, got {args.repeats}")
    progress = (lambda msg: print(f"[benchmark] {msg}", file=sys.stderr, flush=True))
    rows = learned_speed(methods, batch=args.batches[0], repeats=args.repeats, progress=progress)
    print(format_speed_table(rows))
    if args.json:
        write_json(args.json, {"results": rows})
    return 0


def _benchmark_ellipses(args) -> int:
    from tqdm import tqdm

    from ..benchmarks import LEARNED, METHODS, benchmark_ellipses, format_quality_table, tv_time_to_converge

    args.methods = args.methods or ["fbp", "tv"]
    unknown = [m for m in args.methods if m not in METHODS]
    if unknown:
        raise UsageError(f"unknown method {unknown[0]!r}; available: {','.join(METHODS)}")
    if args.n is not None and not 1 <= args.n <= 3200:
        raise UsageError(f"--n must be in [1, 3200] (the test split), got {args.n}")
    n = args.n or 3200
    rows = []
    for method in args.methods:
        with tqdm(total=n, desc=method, unit="img", file=sys.stderr, leave=False) as bar:
            rows += benchmark_ellipses([method], n=n, batch_size=args.batch_size,
                                       params={method: {"amp": True}} if args.amp and method in LEARNED else None,
                                       progress=lambda done, total: bar.update(done - bar.n))
    print(f"DIVal ellipses benchmark, test split, first {n} samples "
          f"({'all' if n == 3200 else 'a prefix'}); torch threads {rows[0]['torch_threads']}")
    print(format_quality_table(rows))
    extra = {}
    if "tv" in args.methods:
        extra["tv_single_image"] = tv_time_to_converge()
        t = extra["tv_single_image"]
        print(f"TV, one image at a time: within {t['tolerance_db']} dB of its converged PSNR after "
              f"{t['iterations']:.0f} iterations, {t['seconds']:.2f} s (median of {t['n_images']})")
    if args.json:
        write_json(args.json, {"results": rows, **extra})
    return 0
