"""Operator speed benchmark: tomolearn's ray transforms against ASTRA's CPU projectors.

Both are timed in the same process on the same data; the figures that matter
are the ratios (these machines are noisy).  ASTRA is an optional peer
(``pip install astra-toolbox``); without it only our timings are reported.
"""

from __future__ import annotations

import math
import resource
import statistics
import sys
import time
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional

import numpy as np
import torch

from . import solvers
from .ct import FILTERS, FanBeam2D, ParallelBeam2D, RayTransform
from .data import ellipses_benchmark
from .metrics import psnr, ssim
from .registry import build_method, methods, task
from .registry import method as method_info
from .weights import build_model, learned_model


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


def _median_seconds(fn, repeats: int) -> float:
    fn()  # warm-up (builds matrices, allocates)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


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
        One row per (case, batch) with ``geometry``, ``batch``, ``backend``,
        ``forward_ms``, ``adjoint_ms`` (per image, medians), ``astra_forward_ms``,
        ``astra_adjoint_ms`` and the speed-ups ``forward_ratio`` /
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
            astra_fwd = _median_seconds(peer.forward, repeats) * 1e3
            astra_adj = _median_seconds(peer.adjoint, repeats) * 1e3
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

            fwd = _median_seconds(run(op, x), repeats) * 1e3 / batch
            adj = _median_seconds(run(op.adjoint, y), repeats) * 1e3 / batch
            rows.append({
                "geometry": name, "batch": batch, "backend": op.backend, "device": str(device),
                "image_shape": [n, n], "range_shape": list(op.range_shape),
                "forward_ms": fwd, "adjoint_ms": adj,
                "astra_forward_ms": astra_fwd, "astra_adjoint_ms": astra_adj,
                "forward_ratio": astra_fwd / fwd if astra_fwd else None,
                "adjoint_ratio": astra_adj / adj if astra_adj else None,
                "astra_projector": case.astra_projector, "setup_s": setup,
                "peak_rss_mb": _peak_rss_mb(), "torch_threads": torch.get_num_threads(),
            })
        del op
    return rows


def format_operator_table(rows: List[dict]) -> str:
    """A plain-text table of :func:`benchmark_operators` rows."""
    head = (f"{'geometry':<10}{'batch':>6}{'backend':>13}{'fwd ms':>10}{'ASTRA':>9}{'ratio':>8}"
            f"{'adj ms':>10}{'ASTRA':>9}{'ratio':>8}{'peak MB':>9}")
    lines = [head, "-" * len(head)]
    fmt = lambda v, spec: format(v, spec) if v is not None else "-".rjust(int(spec.split(".")[0]))
    for r in rows:
        lines.append(
            f"{r['geometry']:<10}{r['batch']:>6}{r['backend']:>13}{r['forward_ms']:>10.3f}"
            f"{fmt(r['astra_forward_ms'], '9.3f')}{fmt(r['forward_ratio'], '7.1f')}x"
            f"{r['adjoint_ms']:>10.3f}{fmt(r['astra_adjoint_ms'], '9.3f')}"
            f"{fmt(r['adjoint_ratio'], '7.1f')}x{r['peak_rss_mb']:>9.0f}")
    lines.append("times are per image (medians); ratio = ASTRA CPU time / ours (> 1: faster)")
    return "\n".join(lines)


# -- reconstruction quality on the ellipses benchmark ----------------------------------------
#: DIVal's published results on the ellipses test split (PSNR dB, SSIM).
DIVAL_ELLIPSES = {
    "fbp": (24.22, 0.598), "tv": (27.72, 0.837), "tv-adam": (27.84, 0.850),
    "iradonmap": (27.83, 0.871), "diptv": (28.94, 0.886), "fbpconvnet": (29.33, 0.897),
    "lgd": (30.28, 0.915), "lpd": (32.14, 0.939),
}

#: Learned methods: name -> the shipped weights (:func:`tomolearn.load`) trained on the benchmark
#: (registered in :mod:`tomolearn.weights`).  ``lpd-ensemble`` is a deep ensemble
#: (:class:`tomolearn.learned.DeepEnsemble`) of independently trained learned primal-dual models.
LEARNED = {name: method_info(name).weights for name in methods()
           if method_info(name).kind == "learned"}

#: Hyper-parameters of the classical methods on the ellipses benchmark (the registry's
#: parameters tuned for the "ct" task).
ELLIPSES_DEFAULTS = {name: method_info(name).params_for(task("ct"))
                     for name in methods() if method_info(name).kind == "classical"}

#: Every method :func:`reconstruct` knows, classical first.
METHODS = tuple(methods("ct"))


def reconstruct(method: str, op, y, params: Optional[dict] = None, uncertainty: bool = False):
    """Reconstruct ``y`` (B, 1, A, D) -> (B, 1, H, W) with ``method`` (one of :data:`METHODS`).

    Classical methods use their ellipses defaults (:data:`ELLIPSES_DEFAULTS`,
    overridden by ``params``); learned methods use the shipped weights bound
    to ``op`` (``params`` may hold ``{"amp": True}`` for bfloat16/float16 autocast).

    With ``uncertainty=True`` a method that carries its own uncertainty (a deep
    ensemble) returns ``(x_hat, scale)``: the members' mean and their per-pixel
    standard deviation (:func:`tomolearn.uq.scale_from_ensemble`), both
    (B, 1, H, W) in image units; every other method still returns ``x_hat``
    alone, and :func:`tomolearn.uq.split_scale` gives it the data-residual scale.
    """
    recon = build_method(method, "ct", op=op, device=y.device, params=params)
    if uncertainty and hasattr(recon, "uncertainty"):
        return recon.uncertainty(y)
    return recon(y)


def benchmark_ellipses(methods: List[str], n: Optional[int] = None, batch_size: int = 50,
                       split: str = "test", params: Optional[Dict[str, dict]] = None,
                       progress: Optional[Callable[[int, int], None]] = None) -> List[dict]:
    """PSNR/SSIM (mean and std over the first ``n`` samples) and time per image, per method.

    Rows follow DESIGN.md's JSON (``method, dataset, n, psnr, psnr_std, ssim,
    ssim_std, seconds_per_image``) plus DIVal's published figures.
    """
    dataset = ellipses_benchmark(split)
    n = len(dataset) if n is None else n
    if not 1 <= n <= len(dataset):
        raise ValueError(f"n must be in [1, {len(dataset)}], got {n}")
    op = dataset.operator()
    rows = []
    for method in methods:
        scores_p, scores_s, seconds = [], [], 0.0
        for start in range(0, n, batch_size):
            y, x = dataset.batch(range(start, min(start + batch_size, n)))
            t0 = time.perf_counter()
            with torch.no_grad():
                rec = reconstruct(method, op, y, (params or {}).get(method))
            seconds += time.perf_counter() - t0
            scores_p.append(psnr(rec, x))
            scores_s.append(ssim(rec, x))
            if progress is not None:
                progress(min(start + batch_size, n), n)
        p, s = torch.cat(scores_p), torch.cat(scores_s)
        ref = DIVAL_ELLIPSES.get(method, (None, None))
        extra = {}
        if method in LEARNED:
            card = learned_model(method, op).card
            extra = {"n_parameters": card["n_parameters"], "weights": LEARNED[method],
                     "training_samples_seen": card["training"]["samples_seen"],
                     "training_seconds": card["training"]["seconds"],
                     "training_hardware": card["training"]["hardware"]}
        rows.append({
            "method": method, "dataset": f"ellipses/{split}", "n": n,
            "psnr": float(p.mean()), "psnr_std": float(p.std()) if n > 1 else 0.0,
            "ssim": float(s.mean()), "ssim_std": float(s.std()) if n > 1 else 0.0,
            "seconds_per_image": seconds / n, "dival_psnr": ref[0], "dival_ssim": ref[1],
            "params": {**ELLIPSES_DEFAULTS.get(method, {}), **(params or {}).get(method, {})},
            "torch_threads": torch.get_num_threads(), **extra,
        })
    return rows


def format_quality_table(rows: List[dict]) -> str:
    """Plain-text table of :func:`benchmark_ellipses` rows with DIVal's numbers beside ours."""
    head = (f"{'method':<12}{'n':>6}{'PSNR':>8}{'±':>6}{'SSIM':>8}{'±':>7}{'s/img':>9}{'params':>9}"
            f"{'DIVal PSNR':>12}{'ΔPSNR':>8}{'DIVal SSIM':>12}")
    lines = [head, "-" * len(head)]
    for r in rows:
        dp = f"{r['psnr'] - r['dival_psnr']:+8.2f}" if r["dival_psnr"] else f"{'-':>8}"
        n_par = f"{r['n_parameters'] / 1e3:.0f}k" if r.get("n_parameters") else "-"
        lines.append(f"{r['method']:<12}{r['n']:>6}{r['psnr']:>8.2f}{r['psnr_std']:>6.2f}"
                     f"{r['ssim']:>8.3f}{r['ssim_std']:>7.3f}{r['seconds_per_image']:>9.4f}{n_par:>9}"
                     f"{(r['dival_psnr'] or float('nan')):>12.2f}{dp}{(r['dival_ssim'] or float('nan')):>12.3f}")
    return "\n".join(lines)


def tv_time_to_converge(n_images: int = 5, tolerance_db: float = 0.1, n_iter: int = 600) -> dict:
    """Iterations and seconds for single-image TV (FISTA) to come within ``tolerance_db`` of its
    converged PSNR, median over the first ``n_images`` test images (one at a time, batch 1)."""
    dataset = ellipses_benchmark("test")
    op = dataset.operator()
    params = dict(ELLIPSES_DEFAULTS["tv"])
    params.pop("n_iter")
    iters, secs = [], []
    for i in range(n_images):
        y, x = dataset.batch([i])
        ref = solvers.tv_fista(op, y, n_iter=n_iter, gt=x, **params)
        curve = ref.psnr[:, 0].numpy()
        outside = np.flatnonzero(np.abs(curve[-1] - curve) > tolerance_db)
        k = int(outside[-1]) + 2 if outside.size else 1  # stays within from iteration k on
        t0 = time.perf_counter()
        solvers.tv_fista(op, y, n_iter=k, **params)
        secs.append(time.perf_counter() - t0)
        iters.append(k)
    return {"iterations": float(np.median(iters)), "seconds": float(np.median(secs)),
            "tolerance_db": tolerance_db, "reference_iterations": n_iter, "n_images": n_images}


#: The shipped architectures, as :func:`learned_speed` builds them.
SPEED_ARCHITECTURES = {"fbpconvnet": {"channels": 16, "depth": 4}, "lgd": {}, "lpd": {}}


def learned_speed(methods=tuple(SPEED_ARCHITECTURES), batch: int = 16, repeats: int = 5,
                  train_batch: int = 8, progress: Optional[Callable[[str], None]] = None) -> List[dict]:
    """Inference and training speed of the learned methods on the ellipses geometry (CPU or CUDA).

    For each method: milliseconds per image at ``batch`` in float32 and in
    bfloat16 autocast, each with the default (NCHW) and the channels-last
    memory format; the share of the forward pass spent in the operator (its
    ``_forward`` / ``_adjoint`` calls timed in place); and the training
    throughput (samples/s of forward + backward + Adam step at
    ``train_batch``, bfloat16 autocast, as the shipped runs trained).
    Untrained weights of the shipped architectures are used (speed does not
    depend on the values).  Medians of ``repeats``.
    """
    say = progress or (lambda msg: None)
    dataset = ellipses_benchmark("test", size=max(batch, train_batch))
    op = dataset.operator()
    y, x = dataset.batch(range(max(batch, train_batch)))
    rows = []
    for method in methods:
        model = build_model(method, op, **SPEED_ARCHITECTURES[method]).eval()
        row = {"method": method, "batch": batch, "n_parameters": model.n_parameters,
               "torch_threads": torch.get_num_threads()}
        for amp in (False, True):
            for fmt in ("nchw", "channels_last"):
                model = model.to(memory_format=torch.channels_last if fmt == "channels_last"
                                 else torch.contiguous_format)

                def run():
                    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
                        model(y[:batch])

                run()
                key = f"{'bf16' if amp else 'fp32'}_{fmt}_ms"
                row[key] = _median_seconds(run, repeats) * 1e3 / batch
                say(f"{method} {key}: {row[key]:.1f} ms/image")
        # operator share of a float32 forward pass
        spent = [0.0]
        fwd, adj = op._forward, op._adjoint

        def timed(fn):
            def call(z):
                t0 = time.perf_counter()
                out = fn(z)
                spent[0] += time.perf_counter() - t0
                return out
            return call

        op._forward, op._adjoint = timed(fwd), timed(adj)
        try:
            model = model.to(memory_format=torch.contiguous_format)
            with torch.no_grad():
                t0 = time.perf_counter()
                model(y[:batch])
                total = time.perf_counter() - t0
        finally:
            del op._forward, op._adjoint
        row["operator_share"] = spent[0] / total
        # training throughput
        model.train()
        opt = torch.optim.Adam(model.parameters(), 1e-4)

        def step():
            opt.zero_grad()
            with torch.autocast("cpu", dtype=torch.bfloat16):
                out = model(y[:train_batch])
            torch.mean((out.float() - x[:train_batch]) ** 2).backward()
            opt.step()

        step()
        row["train_samples_per_s"] = train_batch / _median_seconds(step, max(2, repeats // 2))
        say(f"{method} training: {row['train_samples_per_s']:.1f} samples/s")
        rows.append(row)
    return rows


def format_speed_table(rows: List[dict]) -> str:
    """Plain-text table of :func:`learned_speed` rows (milliseconds per image, samples/s)."""
    head = (f"{'network':<12}{'params':>8}{'batch':>7}{'fp32 ms':>9}{'fp32 CL':>9}{'bf16 ms':>9}"
            f"{'bf16 CL':>9}{'operator':>10}{'train/s':>9}")
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r['method']:<12}{r['n_parameters'] / 1e3:>7.0f}k{r['batch']:>7}"
                     f"{r['fp32_nchw_ms']:>9.1f}{r['fp32_channels_last_ms']:>9.1f}"
                     f"{r['bf16_nchw_ms']:>9.1f}{r['bf16_channels_last_ms']:>9.1f}"
                     f"{100 * r['operator_share']:>9.0f}%{r['train_samples_per_s']:>9.1f}")
    lines.append("ms: inference milliseconds per image (median); CL: channels-last weights; operator: "
                 "share of a float32 forward pass spent in the ray transform; train/s: training "
                 f"samples per second (batch 8, bf16); torch threads {rows[0]['torch_threads'] if rows else '-'}")
    return "\n".join(lines)


def tune_ellipses(n: int = 50, progress: Optional[Callable[[str], None]] = None) -> dict:
    """Grid search of the classical methods' hyper-parameters on the first ``n`` validation samples.

    FBP: every filter and ``frequency_scaling`` in 0.3..1.0; TV: ``lam`` in a
    log grid.  Returns the grids with their mean PSNR and the best values.
    """
    say = progress or (lambda msg: None)
    out = {"n": n, "split": "validation", "fbp": [], "tv": []}
    for filt in FILTERS[1:]:
        for fs in (0.3, 0.4, 0.5, 0.6, 0.7, 0.705, 0.8, 0.9, 1.0):
            row = benchmark_ellipses(["fbp"], n=n, split="validation",
                                     params={"fbp": {"filter": filt, "frequency_scaling": fs}})[0]
            out["fbp"].append({"filter": filt, "frequency_scaling": fs, "psnr": row["psnr"],
                               "ssim": row["ssim"]})
        say(f"fbp {filt} done")
    for lam in (0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0):
        row = benchmark_ellipses(["tv"], n=n, split="validation", params={"tv": {"lam": lam}})[0]
        out["tv"].append({"lam": lam, "psnr": row["psnr"], "ssim": row["ssim"]})
        say(f"tv lam={lam}: {row['psnr']:.2f} dB")
    out["best_fbp"] = max(out["fbp"], key=lambda r: r["psnr"])
    out["best_tv"] = max(out["tv"], key=lambda r: r["psnr"])
    return out


if __name__ == "__main__":  # python -m tomolearn.benchmarks tune [N]
    import json as _json
    if len(sys.argv) >= 2 and sys.argv[1] == "tune":
        result = tune_ellipses(int(sys.argv[2]) if len(sys.argv) > 2 else 50,
                               progress=lambda m: print(m, file=sys.stderr, flush=True))
        print(_json.dumps(result, indent=1))
