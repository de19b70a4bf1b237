"""Grid search of the classical MRI baselines' parameters on the "mri" task's validation split.

    python scripts/tune_mri.py [--n 4] [--json FILE]

The default "mri" task (160 x 160 complex images, 8 birdcage coils, fastMRI equispaced 4x
mask with 8 % centre lines, 30 dB SNR), the first N validation samples of --family (default
brain, the task's training family; the first tuning ran on ellipses).  Each
method's grid is run on the batch; PSNR / SSIM on magnitudes (tl.metrics' convention for
complex images).  Prints every grid point, then the best point of each method side by side:
what the registry's ``tuned={"mri": ...}`` parameters of zero-filled, grappa, sense, cs-tv
and cs-wavelet come from.
"""

import argparse
import json
import sys

import torch

import tomolearn as tl
from tomolearn.data import SimulatedDataset
from tomolearn.registry import build_method

GRIDS = {
    "zero-filled": [{}],
    "grappa": [{"kernel_lines": 2, "kernel_readout": kr, "reg": reg}
               for kr in (3, 5) for reg in (0.1, 0.3, 1.0)],
    "sense": [{"n_iter": it, "damping": d} for it in (10, 20, 40) for d in (0.01, 0.03, 0.1)],
    "cs-tv": [{"lam": lam, "n_iter": 100, "inner_iter": 10}
              for lam in (2e-4, 5e-4, 1e-3, 2e-3, 4e-3, 8e-3)],
    "cs-wavelet": [{"lam": lam, "n_iter": 100, "wavelet": "db4", "levels": 4}
                   for lam in (2e-4, 5e-4, 1e-3, 2e-3, 4e-3)],
}


def _fmt(params: dict) -> str:
    return ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                     for k, v in params.items()) or "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=4, help="validation samples (default 4)")
    parser.add_argument("--family", default="brain",
                        help="image family of the validation samples (default brain, the mri "
                             "task's training family)")
    parser.add_argument("--json", default=None, help="also write the grids as JSON here")
    parser.add_argument("--methods", default=None, type=lambda v: v.split(","),
                        help="comma-separated subset of the methods (default all)")
    args = parser.parse_args()
    torch.manual_seed(0)
    task = tl.task("mri")
    y, x = SimulatedDataset(args.family, "validation", task, size=args.n).batch(range(args.n))
    rows = []
    for name, grid in GRIDS.items():
        if args.methods and name not in args.methods:
            continue
        for params in grid:
            with torch.no_grad():
                out = build_method(name, task, params=params)(y)
            row = {"method": name, "params": params,
                   "psnr": float(tl.metrics.psnr(out, x).mean()),
                   "ssim": float(tl.metrics.ssim(out, x).mean())}
            rows.append(row)
            print(f"{name:11s} {_fmt(params):52s} {row['psnr']:6.2f} dB  {row['ssim']:.3f}",
                  file=sys.stderr, flush=True)
    best = {}
    for row in rows:
        if row["method"] not in best or row["psnr"] > best[row["method"]]["psnr"]:
            best[row["method"]] = row
    print(f"\n# mri task (160x160, 8 coils, equispaced 4x, 30 dB), {args.family} validation, "
          f"n={args.n}\n")
    print("| method | parameters | PSNR (dB) | SSIM |")
    print("|---|---|---|---|")
    for row in rows:
        mark = " **best**" if best[row["method"]] is row else ""
        print(f"| {row['method']} | {_fmt(row['params'])}{mark} | {row['psnr']:.2f} | "
              f"{row['ssim']:.3f} |")
    print("\n| side by side | chosen parameters | PSNR (dB) | SSIM |")
    print("|---|---|---|---|")
    for name, row in best.items():
        print(f"| {name} | {_fmt(row['params'])} | {row['psnr']:.2f} | {row['ssim']:.3f} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"n": args.n, "task": task.spec(), "rows": rows,
                       "best": {k: v["params"] for k, v in best.items()}}, f, indent=1)


if __name__ == "__main__":
    main()
