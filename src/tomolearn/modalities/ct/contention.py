"""How the ray transform and ASTRA slow down beside other CPU-bound torch processes.

:func:`benchmark_contention` times the forward projection of a batch of ellipses-sized images
(ours, then ASTRA's CPU ``linear`` projector on the same images one by one) alone, then while
``competitors`` other processes each run 2-thread torch matrix products, and reports each
slowdown (contended / alone) and their ratio.  OpenMP threads that spin while waiting
(``OMP_WAIT_POLICY=ACTIVE``, libgomp's default spin) steal the cores the competitors need and
lose them in turn; ``tomolearn`` sets ``OMP_WAIT_POLICY=PASSIVE`` unless it is set
(:mod:`tomolearn`'s import; docs/reliability.md has the measurements).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from typing import Callable, Optional

import torch

from .ray_transform import RayTransform
from .speed import OPERATOR_CASES, _AstraPeer, median_seconds

__all__ = ["benchmark_contention", "format_contention_table", "COMPETITOR"]

#: What each competing process runs: 2-thread torch matrix products, forever (killed after).
COMPETITOR = ("import torch\ntorch.set_num_threads(2)\na = torch.randn(400, 400)\n"
              "while True:\n    a @ a\n")


def _time_both(op, x, peer, repeats: int):
    ours = median_seconds(lambda: op(x), repeats)
    astra = median_seconds(lambda: [peer.forward() for _ in range(x.shape[0])], repeats)
    return ours, astra


def benchmark_contention(competitors: int = 3, batch: int = 16, repeats: int = 15,
                         settle_s: float = 2.0,
                         progress: Optional[Callable[[str], None]] = None) -> dict:
    """Slowdown of our forward projection and ASTRA's under ``competitors`` other processes.

    Returns ``{"competitors", "batch", "torch_threads", "omp_wait_policy", "forward_ms_alone",
    "forward_ms_contended", "astra_ms_alone", "astra_ms_contended", "slowdown",
    "astra_slowdown", "slowdown_ratio"}`` (milliseconds per batch, medians; ratio = our
    slowdown / ASTRA's, the target is at most 2).  Needs astra-toolbox (ImportError without).
    """
    if isinstance(competitors, bool) or not isinstance(competitors, int) or competitors < 1:
        raise ValueError(f"competitors must be a positive int, got {competitors!r}")
    say = progress or (lambda msg: None)
    case = OPERATOR_CASES["ellipses"]
    geometry = case.make_geometry()
    op = RayTransform(geometry, (case.image_size, case.image_size))
    x = torch.rand(batch, 1, case.image_size, case.image_size,
                   generator=torch.Generator().manual_seed(0))
    peer = _AstraPeer(case, geometry)
    procs = []
    try:
        with torch.no_grad():
            say("alone")
            ours_alone, astra_alone = _time_both(op, x, peer, repeats)
            say(f"starting {competitors} competing torch processes")
            procs = [subprocess.Popen([sys.executable, "-c", COMPETITOR],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                     for _ in range(competitors)]
            time.sleep(settle_s)
            say("contended")
            ours_busy, astra_busy = _time_both(op, x, peer, repeats)
    finally:
        for p in procs:
            p.kill()
            p.wait()
        peer.close()
    slowdown, astra_slowdown = ours_busy / ours_alone, astra_busy / astra_alone
    return {"competitors": competitors, "batch": batch, "torch_threads": torch.get_num_threads(),
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
            "forward_ms_alone": ours_alone * 1e3, "forward_ms_contended": ours_busy * 1e3,
            "astra_ms_alone": astra_alone * 1e3, "astra_ms_contended": astra_busy * 1e3,
            "slowdown": slowdown, "astra_slowdown": astra_slowdown,
            "slowdown_ratio": slowdown / astra_slowdown}


def format_contention_table(row: dict) -> str:
    """A plain-text summary of :func:`benchmark_contention`."""
    return "\n".join([
        f"{'':<22}{'alone ms':>10}{'contended ms':>14}{'slowdown':>10}",
        f"{'tomolearn forward':<22}{row['forward_ms_alone']:>10.2f}"
        f"{row['forward_ms_contended']:>14.2f}{row['slowdown']:>9.1f}x",
        f"{'ASTRA CPU forward':<22}{row['astra_ms_alone']:>10.2f}"
        f"{row['astra_ms_contended']:>14.2f}{row['astra_slowdown']:>9.1f}x",
        f"batch {row['batch']} of 128x128 images, 30 angles; {row['competitors']} competing "
        f"2-thread torch processes; torch threads {row['torch_threads']}, OMP_WAIT_POLICY "
        f"{row['omp_wait_policy'] or 'unset'}; our slowdown / ASTRA's = "
        f"{row['slowdown_ratio']:.2f} (target <= 2)"])
