"""OSEM 21 subsets x 2 iterations on one 2-D slice of the default "pet" task, and the PET
projector's forward + adjoint beside the CT ray transform at the same size (docs/pet.md).

Usage: ``python scripts/pet_osem_speed.py [--repeats 7] [--threads 1,2]``.  Medians of
``--repeats`` timed calls after one untimed warm-up (which builds the subset operators).
"""

import argparse
import json
import statistics
import time

import torch

import tomolearn as tl
from tomolearn.data import SimulatedDataset
from tomolearn.modalities.ct.ray_transform import RayTransform
from tomolearn.modalities.pet import scanner
from tomolearn.registry import build_method


def median_seconds(fn, repeats):
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), min(times)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--threads", default="1,2")
    args = p.parse_args()
    t = tl.task("pet")
    y, _ = SimulatedDataset("pet-torso", "test", t, size=1).batch([0])
    op = t.operator()
    x = torch.rand((1, 1) + t.image_shape, dtype=y.dtype)
    geometry = scanner(t.scanner).geometry(t.view_mash, t.bin_mash)
    ray = RayTransform(geometry, t.image_shape, pixel_size=t.voxel_mm)  # CT's, same size
    ct = tl.task("ct").operator()  # the CT task's own (DIVal: 30 views x 183 bins, 128 x 128)
    xc = torch.rand((1, 1) + tuple(ct.domain_shape), dtype=torch.float32)
    osem = build_method("osem", t, params={"n_iter": 2, "n_subsets": 21})
    for threads in [int(v) for v in args.threads.split(",")]:
        torch.set_num_threads(threads)
        pet_shapes = (list(t.image_shape), list(y.shape[-2:]))
        ct_shapes = (list(ct.domain_shape), list(ct.range_shape))
        cases = {
            "osem 21 subsets x 2 iterations": (lambda: osem(y), pet_shapes),
            "pet projector forward + adjoint (n.a.A.PSF)": (lambda: op.adjoint(op(x)), pet_shapes),
            "ct ray transform A forward + adjoint, same geometry":
                (lambda: ray.adjoint(ray(x)), pet_shapes),
            "ct task operator forward + adjoint": (lambda: ct.adjoint(ct(xc)), ct_shapes),
        }
        for name, (fn, (image, data)) in cases.items():
            med, best = median_seconds(fn, args.repeats)
            print(json.dumps({"case": name, "threads": threads, "median_s": round(med, 4),
                              "min_s": round(best, 4), "repeats": args.repeats,
                              "image": image, "data": data}), flush=True)


if __name__ == "__main__":
    main()
