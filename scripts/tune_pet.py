"""Choose the RDP strength ``beta`` of ``rdp-map`` (BSREM; and check ``tv``'s lam) on the "pet" task.

    python scripts/tune_pet.py [--n 2] [--betas 1,3,10,30,100] [--image-size 128]

The default "pet" task (Siemens mCT sinogram 168 x 400, 128 x 128 voxels of 3.125 mm, 1e6
trues), the first N *validation* samples of its training family ``pet-torso``
(``PETTask.families[0]``).  Each grid point runs ``rdp-map`` with its other defaults (gamma 2,
1 OSEM + 20 BSREM iterations x 21 subsets) on the batch and prints PSNR / SSIM; the best
PSNR is ``BSREM_BETA`` in ``tomolearn.solvers.pet_methods``.  ``--tv-lams`` does the same for
the generic ``tv`` method (its ``tuned["pet"]``).  CPU, a few minutes for N = 2.
"""

import argparse
import json
import time

import torch

import tomolearn as tl
from tomolearn.data import SimulatedDataset
from tomolearn.registry import build_method


def _floats(v):
    return [float(s) for s in v.split(",") if s]


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=2)
    p.add_argument("--family", default=None, help="default: the task's training family")
    p.add_argument("--betas", type=_floats, default=[1, 3, 10, 30, 100])
    p.add_argument("--tv-lams", type=_floats, default=[])
    p.add_argument("--image-size", type=int, default=128)
    p.add_argument("--set", action="append", default=[], help="rdp-map parameter KEY=VALUE")
    args = p.parse_args()
    torch.manual_seed(0)
    task = tl.task("pet").replace(image_size=args.image_size)
    family = args.family or task.families[0]
    y, x = SimulatedDataset(family, "validation", task, size=args.n).batch(range(args.n))
    extra = {k: float(v) for k, v in (s.split("=", 1) for s in args.set)}
    grids = [("rdp-map", {"beta": b, **extra}) for b in args.betas] + \
        [("tv", {"lam": lam}) for lam in args.tv_lams]
    rows = []
    for name, params in grids:
        start = time.perf_counter()
        with torch.no_grad():
            out = build_method(name, task, params=params)(y)
        row = {"method": name, **params, "family": family, "split": "validation", "n": args.n,
               "psnr": float(tl.metrics.psnr(out, x).mean()),
               "ssim": float(tl.metrics.ssim(out, x).mean()),
               "seconds_per_image": (time.perf_counter() - start) / args.n}
        rows.append(row)
        print(json.dumps(row), flush=True)
    for name in sorted({r["method"] for r in rows}):
        best = max((r for r in rows if r["method"] == name), key=lambda r: r["psnr"])
        print(f"best {name}: {json.dumps(best)}")


if __name__ == "__main__":
    main()
