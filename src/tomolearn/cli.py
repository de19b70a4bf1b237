"""The ``tomolearn`` command line.

Verbs available now: ``info``, ``demo`` and ``benchmark operators``.  Each
prints a one-line error and exits with status 2 on bad input (no traceback
unless ``--debug``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

from .files import atomic_write_bytes

EXAMPLES = {
    "info": "tomolearn info\n  tomolearn info --json info.json",
    "demo": "tomolearn demo\n  tomolearn demo --n-images 8 --seed 1 --json demo.json",
    "data": ("tomolearn data generate ellipses --split train --out ellipses_train.h5\n"
             "  tomolearn data generate ellipses --split test --n 100 --shift noise-5% --out test_noise5.h5\n"
             "  tomolearn data generate rectangles --split test --n 100 --out rectangles.h5"),
    "train": ("tomolearn train configs/lpd-ellipses.yaml\n"
              "  tomolearn train my.yaml --out runs/lpd2 --max-steps 100   # then: --resume\n"
              "  torchrun --standalone --nproc_per_node 4 -m tomolearn train my.yaml   # data-parallel"),
    "benchmark": ("tomolearn benchmark operators\n"
                  "  tomolearn benchmark operators --geometries ellipses,fan --batches 1,16 "
                  "--json operators.json\n"
                  "  tomolearn benchmark ellipses --methods fbp,tv --n 100 --json ellipses.json"),
}


class UsageError(Exception):
    """Bad input from the user: reported as one line, exit status 2."""


def _write_json(path: str, payload: dict, overwrite: bool = True) -> None:
    """Write ``payload`` to ``path`` atomically (temporary file, then rename)."""
    target = Path(path)
    if target.exists() and target.is_dir():
        raise UsageError(f"--json {path}: is a directory")
    if not overwrite and target.exists():
        raise UsageError(f"--json {path}: file exists (use --overwrite)")
    atomic_write_bytes(target, (json.dumps(payload, indent=2) + "\n").encode())


def _csv(value: str, kind=str):
    try:
        return [kind(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a comma-separated list, got {value!r}") from None


# -- info -------------------------------------------------------------------------------
def cmd_info(args) -> int:
    import numpy
    import scipy
    import torch

    import tomolearn
    from .benchmarks import OPERATOR_CASES
    from .ct import RayTransform

    devices = ["cpu"] + [f"cuda:{i} ({torch.cuda.get_device_name(i)})"
                         for i in range(torch.cuda.device_count())]
    try:
        import astra  # noqa: F401
        astra_version = astra.__version__
    except ImportError:
        astra_version = None
    backends = {}
    for name, case in OPERATOR_CASES.items():
        op = RayTransform(case.make_geometry(), (case.image_size, case.image_size))
        g = op.geometry
        backends[name] = {
            "geometry": f"{type(g).__name__}, {g.n_angles} angles x {g.n_detectors} detectors, "
                        f"{case.image_size}x{case.image_size} image",
            "backend": op.backend, "estimated_nnz": op.estimated_nnz(),
            "stored_angles": int(len(op._symmetry()[0])),
        }
    info = {
        "tomolearn": tomolearn.__version__, "python": platform.python_version(),
        "platform": platform.platform(), "torch": torch.__version__, "numpy": numpy.__version__,
        "scipy": scipy.__version__, "astra_toolbox": astra_version, "devices": devices,
        "torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
        "operator_backends": backends,
    }
    print(f"tomolearn {info['tomolearn']}  (Python {info['python']}, {info['platform']})")
    print(f"torch {info['torch']}, numpy {info['numpy']}, scipy {info['scipy']}, "
          f"astra-toolbox {astra_version or 'not installed (test-only peer)'}")
    print(f"devices: {', '.join(devices)}")
    print(f"threads: torch {info['torch_threads']} of {info['cpu_count']} CPUs")
    print("ray-transform backends (backend='auto'):")
    for name, b in backends.items():
        print(f"  {name:<9} {b['geometry']}: {b['backend']} "
              f"(~{b['estimated_nnz'] / 1e6:.1f} M non-zeros, {b['stored_angles']} angles stored)")
    if args.json:
        _write_json(args.json, info)
    return 0


# -- demo ---------------------------------------------------------------------------------
def cmd_demo(args) -> int:
    """Sparse-view noisy CT of held-out ellipses and of Shepp-Logan, reconstructed by FBP."""
    import numpy as np
    import torch

    from . import ct, metrics, noise, phantoms
    from .benchmarks import DIVAL_ELLIPSES, ELLIPSES_DEFAULTS, reconstruct

    unknown = [m for m in args.methods if m not in ELLIPSES_DEFAULTS]
    if unknown:
        raise UsageError(f"unknown method {unknown[0]!r}; available now: {','.join(ELLIPSES_DEFAULTS)}")
    if args.n_images < 1:
        raise UsageError(f"--n-images must be at least 1, got {args.n_images}")
    if not 0 <= args.noise < 1:
        raise UsageError(f"--noise must be a relative level in [0, 1), got {args.noise}")
    if args.angles < 1:
        raise UsageError(f"--angles must be at least 1, got {args.angles}")
    torch.manual_seed(args.seed)
    n, fine = 128, 400
    geometry = ct.ParallelBeam2D(n_angles=args.angles, n_detectors=183,
                                 detector_spacing=2 * 64 * math.sqrt(2) / 183)
    op = ct.RayTransform(geometry, (n, n))
    op_fine = ct.RayTransform(geometry, (fine, fine), pixel_size=n / fine)
    rng = np.random.default_rng(args.seed)
    images = {"shepp-logan": phantoms.shepp_logan(n).double()}
    for i in range(args.n_images):
        images[f"ellipses-{i}"] = phantoms.random_ellipses(n, rng, dtype=torch.float64)
    gen = torch.Generator().manual_seed(args.seed)
    rows = []
    print(f"simulating {args.angles}-angle parallel-beam CT at {fine}x{fine} "
          f"(no inverse crime), {100 * args.noise:g} % Gaussian noise; reconstructing on {n}x{n}",
          file=sys.stderr)
    for name, gt in images.items():
        up = torch.nn.functional.interpolate(gt[None, None], size=(fine, fine), mode="bilinear",
                                             align_corners=False)
        y = op_fine(up)
        if args.noise > 0:
            y = noise.gaussian(y, relative=args.noise, generator=gen)
        for method in args.methods:
            start = time.perf_counter()
            x = reconstruct(method, op, y)
            seconds = time.perf_counter() - start
            rows.append({"method": method, "image": name,
                         "psnr": float(metrics.psnr(x, gt[None, None])[0]),
                         "ssim": float(metrics.ssim(x, gt[None, None])[0]),
                         "seconds_per_image": seconds})
    print(f"{'image':<14}{'method':<8}{'PSNR dB':>9}{'SSIM':>8}{'ms':>8}")
    for r in rows:
        print(f"{r['image']:<14}{r['method']:<8}{r['psnr']:>9.2f}{r['ssim']:>8.3f}"
              f"{1e3 * r['seconds_per_image']:>8.1f}")
    for method in args.methods:
        ell = [r for r in rows if r["image"].startswith("ellipses") and r["method"] == method]
        ref = DIVAL_ELLIPSES[method]
        print(f"{method}: mean over {len(ell)} ellipses images PSNR "
              f"{np.mean([r['psnr'] for r in ell]):.2f} dB, SSIM {np.mean([r['ssim'] for r in ell]):.3f} "
              f"(DIVal's {method}: {ref[0]:.2f} dB, {ref[1]:.3f})")
    print("note: the learned methods and the HTML report arrive with the later issues; "
          "this demo runs the end-to-end path that exists today (simulate, FBP, TV, metrics).")
    if args.json:
        _write_json(args.json, {"results": rows, "spec": {"angles": args.angles, "noise": args.noise,
                                                          "seed": args.seed}})
    return 0


# -- data -------------------------------------------------------------------------------
def cmd_data(args) -> int:
    """Generate a simulated dataset into an HDF5 file (resumable)."""
    from tqdm import tqdm

    from .data import FAMILIES, SHIFTS, SimulatedDataset, SimulationSpec, generate_hdf5, shifted_spec

    if args.family not in FAMILIES:
        raise UsageError(f"unknown dataset {args.family!r}; expected one of {', '.join(sorted(FAMILIES))}")
    if args.shift is not None and args.shift not in SHIFTS:
        raise UsageError(f"unknown shift {args.shift!r}; expected one of {', '.join(SHIFTS)}")
    if args.n is not None and args.n < 1:
        raise UsageError(f"--n must be at least 1, got {args.n}")
    if args.batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, got {args.batch_size}")
    out = Path(args.out)
    if out.exists() and not args.overwrite:
        raise UsageError(f"{out} exists; pass --overwrite to replace it")
    spec = SimulationSpec(seed=args.seed)
    if args.shift:
        spec = shifted_spec(spec, args.shift)
    dataset = SimulatedDataset(args.family, args.split, spec, size=args.n)
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


# -- benchmark ------------------------------------------------------------------------------
def cmd_benchmark(args) -> int:
    import torch

    from .benchmarks import OPERATOR_CASES, benchmark_operators, format_operator_table

    if args.task == "ellipses":
        return _benchmark_ellipses(args)
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
        _write_json(args.json, {"results": rows})
    return 0


def _benchmark_ellipses(args) -> int:
    from tqdm import tqdm

    from .benchmarks import LEARNED, METHODS, benchmark_ellipses, format_quality_table, tv_time_to_converge

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
        _write_json(args.json, {"results": rows, **extra})
    return 0


# -- train ------------------------------------------------------------------------------
def cmd_train(args) -> int:
    from .train import trainer_from_config

    trainer = trainer_from_config(args.config, out_dir=args.out, progress=not args.quiet)
    summary = trainer.fit(resume=args.resume, max_steps=args.max_steps)
    if trainer.rank == 0:
        best = summary["best"]
        best_text = (f"best validation PSNR {best['psnr']:.2f} dB / SSIM {best['ssim']:.3f} at step "
                     f"{best['step']}" if best["step"] else "no validation yet")
        print(f"{summary['stopped']}: {summary['steps']} steps, {summary['samples_seen']} samples "
              f"in {summary['seconds']:.0f} s; {best_text}; run directory {trainer.out_dir}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tomolearn", description="Learned image reconstruction for tomography.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--debug", action="store_true", help="show Python tracebacks on errors")
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    sub.required = True

    p = sub.add_parser("info", help="versions, devices, threads and operator backends",
                       epilog="examples:\n  " + EXAMPLES["info"],
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--json", metavar="FILE", help="also write the information as JSON")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("demo", help="simulate sparse-view CT and reconstruct it (minutes, CPU)",
                       epilog="examples:\n  " + EXAMPLES["demo"],
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n-images", type=int, default=4, help="held-out ellipses images (default 4)")
    p.add_argument("--angles", type=int, default=30, help="projection angles (default 30)")
    p.add_argument("--noise", type=float, default=0.025,
                   help="relative Gaussian noise level (default 0.025, DIVal's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--methods", type=_csv, default=["fbp", "tv"], help="comma-separated (default fbp,tv)")
    p.add_argument("--json", metavar="FILE", help="write the metrics as JSON")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("data", help="generate datasets to HDF5 files",
                       epilog="examples:\n  " + EXAMPLES["data"],
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    data_sub = p.add_subparsers(dest="action", metavar="ACTION")
    data_sub.required = True
    g = data_sub.add_parser("generate", help="simulate a dataset into an HDF5 file (resumable)",
                            epilog="examples:\n  " + EXAMPLES["data"],
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    g.add_argument("family", metavar="NAME",
                   help="image family: ellipses (DIVal's benchmark), shepp-logan, rectangles, ...")
    g.add_argument("--split", choices=["train", "validation", "test"], default="train")
    g.add_argument("--out", required=True, metavar="FILE.h5")
    g.add_argument("--n", type=int, default=None,
                   help="number of samples (default: the split's size, 32000/3200/3200)")
    g.add_argument("--shift", default=None, help="measurement shift, e.g. angles-20, noise-5%%, low-dose")
    g.add_argument("--seed", type=int, default=1, help="dataset seed (default 1, the standard one)")
    g.add_argument("--batch-size", type=int, default=64)
    g.add_argument("--overwrite", action="store_true", help="replace an existing file")
    g.add_argument("--quiet", action="store_true", help="no progress bar")
    g.set_defaults(func=cmd_data)

    p = sub.add_parser("train", help="train a learned reconstructor from a YAML configuration",
                       epilog="examples:\n  " + EXAMPLES["train"],
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("config", metavar="CONFIG.yaml",
                   help="training configuration (keys: out_dir, model, data, train; see docs/training.md)")
    p.add_argument("--out", default=None, metavar="DIR", help="run directory (default: the config's out_dir)")
    p.add_argument("--resume", action="store_true", help="continue the run in the run directory")
    p.add_argument("--max-steps", type=int, default=None,
                   help="stop after this many steps (the schedule keeps its length; resume later)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("benchmark", help="speed and quality benchmarks against peers",
                       epilog="examples:\n  " + EXAMPLES["benchmark"],
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("task", choices=["operators", "ellipses"],
                   help="operators: projector speed against ASTRA; ellipses: reconstruction quality "
                        "on DIVal's ellipses test split against DIVal's published table")
    p.add_argument("--methods", type=_csv, default=["fbp", "tv"], help="ellipses: comma-separated methods")
    p.add_argument("--n", type=int, default=None, help="ellipses: first N test samples (default all 3200)")
    p.add_argument("--batch-size", type=int, default=50, help="ellipses: images reconstructed together")
    p.add_argument("--amp", action="store_true",
                   help="ellipses: run the learned methods in bfloat16 (CPU) / float16 (CUDA) autocast")
    p.add_argument("--geometries", type=_csv, default=["ellipses", "lodopab", "fan"],
                   help="comma-separated: ellipses,lodopab,fan (default all)")
    p.add_argument("--batches", type=lambda v: _csv(v, int), default=[1, 16],
                   help="comma-separated batch sizes (default 1,16)")
    p.add_argument("--repeats", type=int, default=5, help="timed repetitions (median is reported)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    p.add_argument("--backend", choices=["auto", "sparse", "matrix_free"], default="auto")
    p.add_argument("--json", metavar="FILE", help="write the results as JSON")
    p.set_defaults(func=cmd_benchmark)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from .train import TrainingDivergedError
    try:
        return args.func(args)
    except (UsageError, ValueError, TypeError, FileNotFoundError, FileExistsError,
            PermissionError, TrainingDivergedError) as e:
        if args.debug:
            raise
        print(f"tomolearn {args.verb}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"tomolearn {args.verb}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
