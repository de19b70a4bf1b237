"""Speed of the multi-coil SENSE operator against sigpy's, timed in the same process.

For each case (image size and number of coils, a 4x equispaced fastMRI column mask with 8 %
fully sampled centre) and batch size, :func:`benchmark_sense` times
:class:`MultiCoilSENSE` forward and adjoint per image, and sigpy's
``sigpy.mri.linop.Sense(maps, weights=mask)`` [1]_ (numpy on the CPU, one image per call;
forward its ``apply``, adjoint its ``.H`` ``apply``) on the same maps, mask and data.  The
calls are interleaved round-robin and the medians reported, so that both see the same load
(these machines are shared and noisy); what matters are the ratios.  sigpy is an optional,
benchmark-only peer (``pip install sigpy``); without it only our timings are reported.
Registered for ``tomolearn benchmark operators --task mri``.

References
----------
.. [1] F. Ong and M. Lustig, "SigPy: a python package for high performance iterative
       reconstruction", ISMRM 2019; ``sigpy/mri/linop.py``.
"""

from __future__ import annotations

import re
import resource
import statistics
import sys
import time
from typing import Callable, List, Optional, Tuple

import numpy as np
import torch

from ...operators.speed import register_operator_speed, speed_table
from .coils import birdcage_maps
from .masks import equispaced_mask
from .operators import MultiCoilSENSE

__all__ = ["SENSE_CASES", "parse_sense_case", "benchmark_sense", "format_sense_table"]

#: the default cases: fastMRI-like image sizes with 8 and 16 coils
SENSE_CASES = ("160x160-8coils", "160x160-16coils", "320x320-8coils", "320x320-16coils")
_CASE = re.compile(r"^(\d+)x(\d+)-(\d+)coils?$")


def parse_sense_case(name: str) -> Tuple[int, int, int]:
    """``"HxW-Ncoils"`` -> ``(H, W, n_coils)`` (any positive sizes; H, W at least 8)."""
    m = _CASE.match(name) if isinstance(name, str) else None
    if m is None or min(int(g) for g in m.groups()) < 1 or min(map(int, m.groups()[:2])) < 8:
        raise ValueError(f"an MRI operator case is 'HxW-Ncoils' (e.g. 160x160-8coils, H and W "
                         f"at least 8), got {name!r}")
    h, w, c = (int(g) for g in m.groups())
    return h, w, c


def _accepts(name: str) -> bool:
    try:
        parse_sense_case(name)
    except ValueError:
        return False
    return True


def _peak_rss_mb() -> float:
    scale = 1024 if sys.platform != "darwin" else 1024 * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20


def _interleaved_medians(fns, repeats: int) -> List[float]:
    """Median seconds of each ``fn()``, the calls interleaved round-robin after one warm-up."""
    for fn in fns:
        fn()
    times = [[] for _ in fns]
    for _ in range(repeats):
        for t, fn in zip(times, fns):
            start = time.perf_counter()
            fn()
            t.append(time.perf_counter() - start)
    return [statistics.median(t) for t in times]


def _sigpy_sense(maps: np.ndarray, mask: np.ndarray):
    """sigpy's SENSE operator and its adjoint, or ``None`` without sigpy."""
    try:
        import sigpy.mri
    except ImportError:
        return None
    op = sigpy.mri.linop.Sense(maps, weights=mask)
    return op, op.H


def benchmark_sense(cases=SENSE_CASES, batches=(1, 8), repeats: int = 5, device="cpu",
                    dtype=torch.float32, progress: Optional[Callable[[str], None]] = None,
                    peer: bool = True) -> List[dict]:
    """Time :class:`MultiCoilSENSE` forward and adjoint per image beside sigpy's SENSE.

    Parameters
    ----------
    cases : sequence of str
        ``"HxW-Ncoils"`` names (:data:`SENSE_CASES` by default; any sizes are accepted).
    batches : sequence of int
        Batch sizes of our operator (sigpy applies one image per call, looped over the batch).
    repeats : int
        Timed repetitions (medians are reported).
    device, dtype
        Our operator's device and real precision (``torch.float32`` -> complex64 data,
        ``torch.float64`` -> complex128); sigpy runs on numpy in the same precision.
    peer : bool
        Time sigpy beside ours (when it is installed).

    Returns
    -------
    list of dict
        One row per (case, batch): ``task`` ("mri"), ``geometry`` (the case name),
        ``batch``, ``device``, ``dtype``, ``image_shape``, ``range_shape``, ``n_coils``,
        ``acceleration``, ``forward_ms``, ``adjoint_ms`` (per image, medians), ``peer``
        ("sigpy", or None without it), ``peer_forward_ms``, ``peer_adjoint_ms``, the speed-ups
        ``forward_ratio`` / ``adjoint_ratio`` (sigpy time / ours; > 1 means we are faster),
        ``peer_rel_diff`` (relative L2 difference of the two forward results, a check that
        both compute the same operator), ``setup_s``, ``peak_rss_mb`` and ``torch_threads``.
    """
    parsed = [(name, parse_sense_case(name)) for name in cases]
    if repeats < 1 or any(int(b) < 1 for b in batches):
        raise ValueError(f"repeats and batches must be positive, got {repeats}, {batches}")
    if dtype not in (torch.float32, torch.float64):
        raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
    cdtype = torch.complex64 if dtype == torch.float32 else torch.complex128
    say = progress or (lambda msg: None)
    rows = []
    for name, (h, w, n_coils) in parsed:
        say(f"{name}: building operator")
        start = time.perf_counter()
        maps = birdcage_maps(n_coils, (h, w), dtype=cdtype)
        mask = equispaced_mask((h, w), 4.0, 0.08, seed=0)
        op = MultiCoilSENSE(maps, mask, atol=1e-4).to(device)
        setup = time.perf_counter() - start
        sp_op = _sigpy_sense(maps.numpy(), mask.numpy().astype(maps.real.numpy().dtype)) \
            if peer else None
        gen = torch.Generator().manual_seed(0)
        for batch in batches:
            say(f"{name}: batch {batch}")
            x = torch.randn((batch, 1, h, w), generator=gen, dtype=cdtype).to(device)
            y = op(x).detach()  # zero where not sampled, as measured data are
            sync = torch.cuda.synchronize if x.is_cuda else (lambda: None)

            def ours(fn, arg):
                def call():
                    with torch.no_grad():
                        fn(arg)
                    sync()
                return call

            fns = [ours(op, x), ours(op.adjoint, y)]
            diff = None
            if sp_op is not None:
                xs = [xi[0].cpu().numpy() for xi in x]
                ys = [yi[0].cpu().numpy() for yi in y]
                fwd_op, adj_op = sp_op
                fns += [lambda: [fwd_op.apply(v) for v in xs], lambda: [adj_op.apply(v) for v in ys]]
                ref = torch.from_numpy(np.asarray(fwd_op.apply(xs[0])))
                diff = float((y[0, 0].cpu() - ref).norm() / ref.norm())
            times = [t * 1e3 / batch for t in _interleaved_medians(fns, repeats)]
            fwd, adj = times[:2]
            peer_fwd, peer_adj = times[2:] if sp_op is not None else (None, None)
            rows.append({
                "task": "mri", "geometry": name, "batch": int(batch), "device": str(device),
                "dtype": str(cdtype).replace("torch.", ""), "image_shape": [h, w],
                "range_shape": list(op.range_shape), "n_coils": n_coils,
                "acceleration": mask.numel() / float(mask.sum()),
                "forward_ms": fwd, "adjoint_ms": adj,
                "peer": "sigpy" if sp_op is not None else None,
                "peer_forward_ms": peer_fwd, "peer_adjoint_ms": peer_adj,
                "forward_ratio": peer_fwd / fwd if peer_fwd else None,
                "adjoint_ratio": peer_adj / adj if peer_adj else None,
                "peer_rel_diff": diff, "setup_s": setup, "peak_rss_mb": _peak_rss_mb(),
                "torch_threads": torch.get_num_threads(),
            })
        del op
    return rows


def format_sense_table(rows: List[dict]) -> str:
    """A plain-text table of :func:`benchmark_sense` rows."""
    columns = [
        ("geometry", "geometry", 17, ""),
        ("batch", "batch", 6, "d"),
        ("fwd ms", "forward_ms", 10, ".3f"),
        ("sigpy", "peer_forward_ms", 9, ".3f"),
        ("ratio", "forward_ratio", 8, "x"),
        ("adj ms", "adjoint_ms", 10, ".3f"),
        ("sigpy", "peer_adjoint_ms", 9, ".3f"),
        ("ratio", "adjoint_ratio", 8, "x"),
        ("peak MB", "peak_rss_mb", 9, ".0f"),
    ]
    return speed_table(rows, columns,
                       "times are per image (medians, interleaved with sigpy); ratio = sigpy time / "
                       "ours (> 1: faster)")


register_operator_speed("mri", SENSE_CASES, benchmark_sense, format_sense_table, batches=(1, 8),
                        accepts=_accepts, peer="sigpy", pattern="HxW-Ncoils")
