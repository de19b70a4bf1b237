"""Speed of the ray transform against ASTRA's CPU projectors, timed in the same process.

Both run on the same data; the figures that matter are the ratios (these machines are
noisy).  ASTRA is an optional, test-only peer (``pip install astra-toolbox``); without it
only our timings are reported.
"""

from __future__ import annotations

import math
import resource
import sys
import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional

import numpy as np
import torch

from ...operators.speed import median_seconds, register_operator_speed, speed_table
from .geometry import FanBeam2D, ParallelBeam2D
from .ray_transform import RayTransform

__all__ = ["OperatorCase", "OPERATOR_CASES", "benchmark_operators", "format_operator_table",
           "median_seconds"]


@dataclass(frozen=True)
class OperatorCase:
    """A benchmark geometry: our operator and the matching ASTRA projector type."""
    name: str
    image_size: int
    make_geometry: Callable[[], object]
    astra_projector: str


OPERATOR_CASES: Dict[str, OperatorCase] = {
    "ellipses": OperatorCase(
        "ellipses", 128,
        lambda: ParallelBeam2D(n_angles=30, n_detectors=183, detector_spacing=2 * 64 * math.sqrt(2) / 183),
        "linear"),
    "lodopab": OperatorCase(
        "lodopab", 362,
        lambda: ParallelBeam2D(n_angles=1000, n_detectors=513, detector_spacing=362 * math.sqrt(2) / 513),
        "linear"),
    "fan": OperatorCase(
        "fan", 256,
        lambda: FanBeam2D(n_angles=360, n_detectors=512, source_radius=500.0, detector_radius=500.0,
                          detector_spacing=1.0),
        "line_fanflat"),
}


def _peak_rss_mb() -> float:
    scale = 1024 if sys.platform != "darwin" else 1024 * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20


class _AstraPeer:
    """ASTRA CPU forward (FP) and back-projection (BP) on preallocated data."""
    def __init__(self, case: OperatorCase, geometry):
        import astra

        self.astra = astra
        n = case.image_size
        angles = np.asarray(geometry.angles)
        if isinstance(geometry, FanBeam2D):
            pg = astra.create_proj_geom("fanflat", geometry.detector_spacing, geometry.n_detectors,
                                        angles, geometry.source_radius, geometry.detector_radius)
        else:
            pg = astra.create_proj_geom("parallel", geometry.detector_spacing, geometry.n_detectors,
                                        angles)
        vg = astra.create_vol_geom(n, n)
        self.pid = astra.create_projector(case.astra_projector, pg, vg)
        rng = np.random.default_rng(0)
        self.vol = astra.data2d.create("-vol", vg, rng.random((n, n)).astype(np.float32))
        self.sino = astra.data2d.create("-sino", pg, rng.random((len(angles), geometry.n_detectors)
                                                               ).astype(np.float32))
        self.algs = {}
        for kind, volume_key in (("FP", "VolumeDataId"), ("BP", "ReconstructionDataId")):
            cfg = astra.astra_dict(kind)
            cfg.update({"ProjectorId": self.pid, "ProjectionDataId": self.sino, volume_key: self.vol})
            self.algs[kind] = astra.algorithm.create(cfg)

    def forward(self):
        self.astra.algorithm.run(self.algs["FP"])

    def adjoint(self):
        self.astra.algorithm.run(self.algs["BP"])

    def close(self):
        for a in self.algs.values():
            self.astra.algorithm.delete(a)
        self.astra.data2d.delete([self.vol, self.sino])
        self.astra.projector.delete(self.pid)


def benchmark_operators(cases: List[str], batches=(1, 16), repeats: int = 5, device="cpu",
                        dtype=torch.float32, backend: str = "auto",
                        progress: Optional[Callable[[str], None]] = None) -> List[dict]:
    """Time forward and adjoint per image for each case and batch size, with ASTRA beside them.

    Returns
    -------
    list of dict
        One row per (case, batch) with ``task`` ("ct"), ``geometry``, ``batch``, ``backend``,
        ``forward_ms``, ``adjoint_ms`` (per image, medians), ``astra_forward_ms``,
        ``astra_adjoint_ms`` (also as the operator benchmarks' common ``peer`` ("astra", or
        None without it), ``peer_forward_ms``, ``peer_adjoint_ms``), the speed-ups
        ``forward_ratio`` /
        ``adjoint_ratio`` (ASTRA time / ours; > 1 means we are faster), the
        matrix set-up time ``setup_s`` and the process peak memory ``peak_rss_mb``.
    """
    rows = []
    for name in cases:
        if name not in OPERATOR_CASES:
            raise ValueError(f"unknown benchmark geometry {name!r}; expected one of "
                             f"{sorted(OPERATOR_CASES)}")
        case = OPERATOR_CASES[name]
        geometry = case.make_geometry()
        n = case.image_size
        say = progress or (lambda msg: None)
        say(f"{name}: building operator")
        start = time.perf_counter()
        op = RayTransform(geometry, (n, n), backend=backend)
        with torch.no_grad():
            op(torch.zeros(1, 1, n, n, dtype=dtype, device=device))
        setup = time.perf_counter() - start
        peer = None
        try:
            peer = _AstraPeer(case, geometry)
            astra_fwd = median_seconds(peer.forward, repeats) * 1e3
            astra_adj = median_seconds(peer.adjoint, repeats) * 1e3
        except ImportError:
            astra_fwd = astra_adj = None
        finally:
            if peer is not None:
                peer.close()
        gen = torch.Generator().manual_seed(0)
        for batch in batches:
            say(f"{name}: batch {batch}")
            x = torch.rand((batch, 1, n, n), generator=gen).to(device=device, dtype=dtype)
            y = torch.rand((batch, 1) + op.range_shape, generator=gen).to(device=device, dtype=dtype)

            def run(fn, arg):
                def call():
                    with torch.no_grad():
                        fn(arg)
                    if x.is_cuda:
                        torch.cuda.synchronize()
                return call

            fwd = median_seconds(run(op, x), repeats) * 1e3 / batch
            adj = median_seconds(run(op.adjoint, y), repeats) * 1e3 / batch
            rows.append({
                "task": "ct", "geometry": name, "batch": batch, "backend": op.backend, "device": str(device),
                "image_shape": [n, n], "range_shape": list(op.range_shape),
                "forward_ms": fwd, "adjoint_ms": adj,
                "astra_forward_ms": astra_fwd, "astra_adjoint_ms": astra_adj,
                "peer": "astra" if astra_fwd is not None else None,
                "peer_forward_ms": astra_fwd, "peer_adjoint_ms": astra_adj,
                "forward_ratio": astra_fwd / fwd if astra_fwd else None,
                "adjoint_ratio": astra_adj / adj if astra_adj else None,
                "astra_projector": case.astra_projector, "setup_s": setup,
                "peak_rss_mb": _peak_rss_mb(), "torch_threads": torch.get_num_threads(),
            })
        del op
    return rows


def format_operator_table(rows: List[dict]) -> str:
    """A plain-text table of :func:`benchmark_operators` rows."""
    columns = [
        ("geometry", "geometry", 10, ""),
        ("batch", "batch", 6, "d"),
        ("backend", "backend", 13, ""),
        ("fwd ms", "forward_ms", 10, ".3f"),
        ("ASTRA", "peer_forward_ms", 9, ".3f"),
        ("ratio", "forward_ratio", 8, "x"),
        ("adj ms", "adjoint_ms", 10, ".3f"),
        ("ASTRA", "peer_adjoint_ms", 9, ".3f"),
        ("ratio", "adjoint_ratio", 8, "x"),
        ("peak MB", "peak_rss_mb", 9, ".0f"),
    ]
    return speed_table(rows, columns,
                       "times are per image (medians); ratio = ASTRA CPU time / ours (> 1: faster)")


# `tomolearn benchmark operators --task ct` (the default task) finds these cases here
register_operator_speed("ct", tuple(OPERATOR_CASES), benchmark_operators, format_operator_table,
                        batches=(1, 16), options=("backend",), peer="astra")
