"""Reconstruction quality of registered methods on a task and an image family, beside the
published reference numbers where there are some (DIVal's ellipses table for the ``ct`` task).

Rows follow DESIGN.md's JSON (``method, dataset, n, psnr, psnr_std, ssim, ssim_std,
seconds_per_image``) plus ``task``, the method's parameters and, for learned methods, the
training figures of their model card.
"""

from __future__ import annotations

import time
from typing import Callable, Dict, List, Optional, Union

import numpy as np
import torch

from ..data import SimulatedDataset
from ..metrics import psnr, ssim
from ..registry import Task, build_method, method, task as as_task
from ..solvers import tv_fista

__all__ = ["REFERENCE_RESULTS", "references", "reference_columns", "benchmark", "format_quality_table",
           "format_figures_table", "mean_figures", "tv_time_to_converge"]

#: Published results (PSNR dB, SSIM) per (task kind, image family) on its test split, with
#: their source.  DIVal's ellipses table: GPU-trained on all 32 000 training samples.
REFERENCE_RESULTS = {
    ("ct", "ellipses"): {
        "source": "DIVal",
        "results": {"fbp": (24.22, 0.598), "tv": (27.72, 0.837), "tv-adam": (27.84, 0.850),
                    "iradonmap": (27.83, 0.871), "diptv": (28.94, 0.886),
                    "fbpconvnet": (29.33, 0.897), "lgd": (30.28, 0.915), "lpd": (32.14, 0.939)},
    },
}


def references(t: Task, family: str) -> Dict[str, tuple]:
    """Published ``method -> (psnr, ssim)`` for ``t`` and ``family``: only for the registered
    default setting of the task kind (another seed is the same benchmark), else empty."""
    ref = REFERENCE_RESULTS.get((t.kind, family))
    if ref is None or t.replace(seed=0) != as_task(t.kind).replace(seed=0):
        return {}
    return ref["results"]


def reference_columns(t: Task, family: str, method_name: str) -> dict:
    """The published figures a result row carries beside ours: ``reference_psnr``,
    ``reference_ssim`` and ``reference_source`` (e.g. "DIVal"), all None where there are
    none for this task setting, family and method."""
    ref = references(t, family).get(method_name)
    if ref is None:
        return {"reference_psnr": None, "reference_ssim": None, "reference_source": None}
    return {"reference_psnr": ref[0], "reference_ssim": ref[1],
            "reference_source": REFERENCE_RESULTS[(t.kind, family)]["source"]}


def benchmark(methods: List[str], n: Optional[int] = None, batch_size: int = 50,
              split: str = "test", params: Optional[Dict[str, dict]] = None,
              progress: Optional[Callable[[int, int], None]] = None,
              task: Union[str, dict, Task] = "ct", family: str = "ellipses",
              device="cpu") -> List[dict]:
    """PSNR/SSIM (mean and std over the first ``n`` samples of ``split``) and seconds per image
    of each registered method on ``family`` simulated under ``task``.

    ``params`` overrides a method's registered parameters (``{"tv": {"lam": 1.0}}``; learned
    methods take ``{"amp": True}``); ``progress(done, total)`` after every batch.  Raises
    ``ValueError`` for an unknown method or one that does not support the task.  Where the
    task has figures of merit for ``family`` (:meth:`Task.figures_of_merit`, e.g. PET's NEMA
    contrast recovery), rows carry their means over the images and ``figures_of_merit``, the
    list of their keys.
    """
    t = as_task(task)
    dataset = SimulatedDataset(family, split, t, size=n)
    n = len(dataset)
    op = dataset.operator()
    recons = {m: build_method(m, t, op=op, device=device, params=(params or {}).get(m))
              for m in methods}
    rows = []
    for name, recon in recons.items():
        scores_p, scores_s, seconds, figures = [], [], 0.0, []
        for start in range(0, n, batch_size):
            y, x = dataset.batch(range(start, min(start + batch_size, n)))
            y, x = y.to(device), x.to(device)
            t0 = time.perf_counter()
            with torch.no_grad():
                rec = recon(y)
            seconds += time.perf_counter() - t0
            scores_p.append(psnr(rec, x).cpu())
            scores_s.append(ssim(rec, x).cpu())
            figures += t.figures_of_merit(family, rec, x) or []
            if progress is not None:
                progress(min(start + batch_size, n), n)
        p, s = torch.cat(scores_p), torch.cat(scores_s)
        info = method(name)
        extra = {}
        card = getattr(recon, "card", None)
        if card is not None:
            extra = {"n_parameters": card["n_parameters"], "weights": getattr(recon, "weights", info.weights),
                     "training_samples_seen": card["training"]["samples_seen"],
                     "training_seconds": card["training"]["seconds"],
                     "training_hardware": card["training"]["hardware"]}
        rows.append({
            "task": t.kind, **t.setting(), "method": name, "dataset": f"{family}/{split}", "n": n,
            "psnr": float(p.mean()), "psnr_std": float(p.std()) if n > 1 else 0.0,
            "ssim": float(s.mean()), "ssim_std": float(s.std()) if n > 1 else 0.0,
            "seconds_per_image": seconds / n, **reference_columns(t, family, name),
            "params": info.params_for(t, (params or {}).get(name)),
            "torch_threads": torch.get_num_threads(), **extra, **mean_figures(figures),
        })
    return rows


def mean_figures(figures: List[dict]) -> dict:
    """The mean over images of per-image figures of merit (:meth:`Task.figures_of_merit`:
    dicts of floats or of dicts of floats, the same keys for every image) and
    ``figures_of_merit``, the list of their keys; ``{}`` for none."""
    if not figures:
        return {}
    out = {"figures_of_merit": list(figures[0])}
    for key, value in figures[0].items():
        if isinstance(value, dict):
            out[key] = {k: float(np.mean([f[key][k] for f in figures])) for k in value}
        else:
            out[key] = float(np.mean([f[key] for f in figures]))
    return out


def format_figures_table(rows: List[dict], keys: List[str]) -> str:
    """Plain-text table of the figures of merit ``keys`` of :func:`benchmark` rows (a column per
    key, or per sub-key of a dict-valued key, e.g. per sphere diameter); "" if no row has one."""
    rows = [r for r in rows if any(k in r for k in keys)]
    if not rows:
        return ""
    columns = []  # (key, sub-key or None)
    for key in keys:
        value = next((r[key] for r in rows if key in r), None)
        if isinstance(value, dict):
            columns += [(key, sub) for sub in value]
        elif value is not None:
            columns.append((key, None))
    groups, head = f"{'':<16}", f"{'method':<16}"
    for key in dict.fromkeys(k for k, _ in columns):
        subs = [sub for k, sub in columns if k == key]
        width = 8 * len(subs)
        groups += f"  {key[:width - 2]:<{width - 2}}"
        head += "".join(f"{'' if sub is None else str(sub):>8}" for sub in subs)
    lines = [groups, head, "-" * len(head)]
    for r in rows:
        cells = [(r.get(k) or {}).get(sub) if sub is not None else r.get(k) for k, sub in columns]
        lines.append(f"{r['method']:<16}" + "".join(
            f"{c:>8.3f}" if isinstance(c, float) else f"{'-':>8}" for c in cells))
    return "\n".join(lines)


def format_quality_table(rows: List[dict]) -> str:
    """Plain-text table of :func:`benchmark` rows with the published numbers beside ours."""
    source = next((r["reference_source"] for r in rows if r.get("reference_source")), None)
    head = (f"{'method':<12}{'n':>6}{'PSNR':>8}{'±':>6}{'SSIM':>8}{'±':>7}{'s/img':>9}{'params':>9}"
            + (f"{source + ' PSNR':>12}{'ΔPSNR':>8}{source + ' SSIM':>12}" if source else ""))
    lines = [head, "-" * len(head)]
    for r in rows:
        n_par = f"{r['n_parameters'] / 1e3:.0f}k" if r.get("n_parameters") else "-"
        line = (f"{r['method']:<12}{r['n']:>6}{r['psnr']:>8.2f}{r['psnr_std']:>6.2f}"
                f"{r['ssim']:>8.3f}{r['ssim_std']:>7.3f}{r['seconds_per_image']:>9.4f}{n_par:>9}")
        if source:
            dp = f"{r['psnr'] - r['reference_psnr']:+8.2f}" if r["reference_psnr"] else f"{'-':>8}"
            line += (f"{(r['reference_psnr'] or float('nan')):>12.2f}{dp}"
                     f"{(r['reference_ssim'] or float('nan')):>12.3f}")
        lines.append(line)
    if source:
        lines.append(f"ΔPSNR = our PSNR minus {source}'s published PSNR (positive: better than "
                     "published; every Δ tomolearn prints is row minus reference)")
    return "\n".join(lines)


def tv_time_to_converge(n_images: int = 5, tolerance_db: float = 0.1, n_iter: int = 600,
                        task: Union[str, dict, Task] = "ct", family: str = "ellipses") -> dict:
    """Iterations and seconds for single-image TV (FISTA, the registered ``tv`` parameters of
    the task) to come within ``tolerance_db`` of its converged PSNR, median over the first
    ``n_images`` test images of ``family`` (one at a time, batch 1)."""
    t = as_task(task)
    dataset = SimulatedDataset(family, "test", t)
    op = dataset.operator()
    params = method("tv").params_for(t)
    params.pop("n_iter")
    iters, secs = [], []
    for i in range(n_images):
        y, x = dataset.batch([i])
        ref = tv_fista(op, y, n_iter=n_iter, gt=x, **params)
        curve = ref.psnr[:, 0].numpy()
        outside = np.flatnonzero(np.abs(curve[-1] - curve) > tolerance_db)
        k = int(outside[-1]) + 2 if outside.size else 1  # stays within from iteration k on
        t0 = time.perf_counter()
        tv_fista(op, y, n_iter=k, **params)
        secs.append(time.perf_counter() - t0)
        iters.append(k)
    return {"iterations": float(np.median(iters)), "seconds": float(np.median(secs)),
            "tolerance_db": tolerance_db, "reference_iterations": n_iter, "n_images": n_images}
