"""Grid search of the classical methods' parameters on a validation split (what the
registry's ``tuned`` parameters of the ``ct`` task come from; figures in docs/solvers.md).

``python -m tomolearn.studies.tuning [N]`` prints the grids as JSON.
"""

from __future__ import annotations

import json
import sys
from typing import Callable, Optional

from ..ct import FILTERS
from .quality import benchmark

__all__ = ["tune_ellipses"]


def tune_ellipses(n: int = 50, progress: Optional[Callable[[str], None]] = None) -> dict:
    """Grid search of the classical methods' hyper-parameters on the first ``n`` validation samples.

    FBP: every filter and ``frequency_scaling`` in 0.3..1.0; TV: ``lam`` in a
    log grid.  Returns the grids with their mean PSNR and the best values.
    """
    say = progress or (lambda msg: None)
    out = {"n": n, "split": "validation", "fbp": [], "tv": []}
    for filt in FILTERS[1:]:
        for fs in (0.3, 0.4, 0.5, 0.6, 0.7, 0.705, 0.8, 0.9, 1.0):
            row = benchmark(["fbp"], n=n, split="validation",
                                     params={"fbp": {"filter": filt, "frequency_scaling": fs}})[0]
            out["fbp"].append({"filter": filt, "frequency_scaling": fs, "psnr": row["psnr"],
                               "ssim": row["ssim"]})
        say(f"fbp {filt} done")
    for lam in (0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0):
        row = benchmark(["tv"], n=n, split="validation", params={"tv": {"lam": lam}})[0]
        out["tv"].append({"lam": lam, "psnr": row["psnr"], "ssim": row["ssim"]})
        say(f"tv lam={lam}: {row['psnr']:.2f} dB")
    out["best_fbp"] = max(out["fbp"], key=lambda r: r["psnr"])
    out["best_tv"] = max(out["tv"], key=lambda r: r["psnr"])
    return out


if __name__ == "__main__":
    result = tune_ellipses(int(sys.argv[1]) if len(sys.argv) > 1 else 50,
                           progress=lambda m: print(m, file=sys.stderr, flush=True))
    print(json.dumps(result, indent=1))
