"""Speed of the PET projector (``tomolearn benchmark operators --task pet``), ASTRA beside it.

For each case, the reconstruction operator of a ``"pet"`` task, ``n . a . A . PSF``
(:class:`PETProjector`, or the :class:`TOFProjector` with TOF), is timed forward and adjoint
per image, and so is its ray transform ``A`` alone.  The peer is ASTRA's CPU ``linear``
parallel-beam projector on the same geometry (views, bins and voxels, in voxel units), i.e. a
peer of the ``A`` part only: ASTRA has no PSF, per-bin factors or TOF, and no PET package
with a CPU build installs from PyPI here (parallelproj ships its CPU library through
conda-forge).  The ratios compare ASTRA with our ``A`` (> 1: ours faster); the full
projector's times show what the PSF, the factors and TOF add.  ASTRA is an optional peer
(``pip install astra-toolbox``); without it only our timings are reported.
"""

from __future__ import annotations

import time
from typing import Callable, Dict, List, Optional

import torch

from ...operators.speed import median_seconds, register_operator_speed, speed_table
from ..ct.geometry import ParallelBeam2D
from ..ct.speed import OperatorCase, _AstraPeer, _peak_rss_mb
from .task import PETTask

__all__ = ["PET_CASES", "benchmark_pet", "format_pet_table"]

#: case name -> the "pet" task whose operator is timed
PET_CASES: Dict[str, PETTask] = {
    "mct": PETTask(),                          # 168 views x 400 bins, 128 x 128 voxels
    "mct-tof": PETTask(tof_bins=13),           # the same with the mCT's 13 TOF bins
}


def _astra_case(name: str, task: PETTask, ray):
    """ASTRA's view of ``ray``: the same angles, bins in voxel units, a square volume."""
    g = ray.geometry
    scaled = ParallelBeam2D(angles=g.angles, n_detectors=g.n_detectors,
                            detector_spacing=g.detector_spacing / ray.pixel_size)
    return _AstraPeer(OperatorCase(name, task.image_size, lambda: scaled, "linear"), scaled)


def benchmark_pet(cases=tuple(PET_CASES), batches=(1, 4), repeats: int = 5, device="cpu",
                  dtype=torch.float32, progress: Optional[Callable[[str], None]] = None,
                  peer: bool = True) -> List[dict]:
    """Time the PET projector and its ray transform per image beside ASTRA's ``A``.

    Returns one row per (case, batch): ``task`` ("pet"), ``geometry`` (the case), ``batch``,
    ``device``, ``image_shape``, ``range_shape``, ``forward_ms`` / ``adjoint_ms`` (the whole
    projector, per image, medians), ``ray_forward_ms`` / ``ray_adjoint_ms`` (``A`` alone),
    ``peer`` ("astra" or None), ``peer_forward_ms`` / ``peer_adjoint_ms`` (ASTRA's ``A``), the
    ratios ``forward_ratio`` / ``adjoint_ratio`` (ASTRA / our ``A``), ``setup_s``,
    ``peak_rss_mb`` and ``torch_threads``.
    """
    unknown = [c for c in cases if c not in PET_CASES]
    if unknown:
        raise ValueError(f"unknown PET benchmark case(s) {unknown}; expected some of "
                         f"{sorted(PET_CASES)}")
    say = progress or (lambda msg: None)
    rows = []
    for name in cases:
        task = PET_CASES[name]
        say(f"{name}: building operator")
        start = time.perf_counter()
        op = task.operator().to(device)
        ray = op.ray
        n = task.image_size
        with torch.no_grad():
            op(torch.zeros(1, 1, n, n, dtype=dtype, device=device))
        setup = time.perf_counter() - start
        astra_fwd = astra_adj = None
        if peer:
            astra = None
            try:
                astra = _astra_case(name, task, ray)
                astra_fwd = median_seconds(astra.forward, repeats) * 1e3
                astra_adj = median_seconds(astra.adjoint, repeats) * 1e3
            except ImportError:
                pass
            finally:
                if astra is not None:
                    astra.close()
        gen = torch.Generator().manual_seed(0)
        for batch in batches:
            say(f"{name}: batch {batch}")
            x = torch.rand((batch, 1, n, n), generator=gen).to(device=device, dtype=dtype)
            y = torch.rand((batch, 1) + tuple(op.range_shape), generator=gen).to(device, dtype)
            s = torch.rand((batch, 1) + tuple(ray.range_shape), generator=gen).to(device, dtype)

            def run(fn, arg):
                def call():
                    with torch.no_grad():
                        fn(arg)
                    if arg.is_cuda:
                        torch.cuda.synchronize()
                return call

            t = [median_seconds(run(fn, arg), repeats) * 1e3 / batch
                 for fn, arg in ((op, x), (op.adjoint, y), (ray, x), (ray.adjoint, s))]
            rows.append({
                "task": "pet", "geometry": name, "batch": int(batch), "device": str(device),
                "image_shape": [n, n], "range_shape": list(op.range_shape),
                "forward_ms": t[0], "adjoint_ms": t[1], "ray_forward_ms": t[2],
                "ray_adjoint_ms": t[3], "peer": "astra" if astra_fwd is not None else None,
                "peer_forward_ms": astra_fwd, "peer_adjoint_ms": astra_adj,
                "forward_ratio": astra_fwd / t[2] if astra_fwd else None,
                "adjoint_ratio": astra_adj / t[3] if astra_adj else None,
                "setup_s": setup, "peak_rss_mb": _peak_rss_mb(),
                "torch_threads": torch.get_num_threads(),
            })
    return rows


def format_pet_table(rows: List[dict]) -> str:
    """A plain-text table of :func:`benchmark_pet` rows."""
    columns = [
        ("case", "geometry", 9, ""),
        ("batch", "batch", 6, "d"),
        ("fwd ms", "forward_ms", 10, ".2f"),
        ("A fwd", "ray_forward_ms", 9, ".2f"),
        ("ASTRA", "peer_forward_ms", 9, ".2f"),
        ("ratio", "forward_ratio", 8, "x"),
        ("adj ms", "adjoint_ms", 10, ".2f"),
        ("A adj", "ray_adjoint_ms", 9, ".2f"),
        ("ASTRA", "peer_adjoint_ms", 9, ".2f"),
        ("ratio", "adjoint_ratio", 8, "x"),
    ]
    return speed_table(rows, columns,
                       "times per image (medians); fwd/adj: n.a.A.PSF (TOF where named), A: the ray "
                       "transform alone; ratio = ASTRA CPU time / our A (> 1: faster)")


register_operator_speed("pet", tuple(PET_CASES), benchmark_pet, format_pet_table,
                        batches=(1, 4), peer="astra")
