"""The main job: simulate a task's measurements of several image families, reconstruct, report.

:func:`run_demo` simulates held-out (test-split) samples of each image family under one
registered task (``"ct"`` by default: DIVal's sparse-view setting, or any
:class:`tomolearn.registry.Task`), reconstructs them with each registered method that
supports the task (:func:`tomolearn.registry.build_method`), scores them with
:mod:`tomolearn.metrics`, attaches distribution-free error bounds (:mod:`tomolearn.uq`,
calibrated on the training family's validation split under the task kind's registered
default, see :mod:`.demo_bounds`) and writes a self-contained HTML report with
:func:`tomolearn.report.write_report`.  Its two steps are public: :func:`demo_plan` checks
and normalises the settings (before any work), :func:`demo_section` computes the report's
cases, rows and meta; :func:`tomolearn.studies.demo_all.run_demo_all` runs them for every
task and writes one report with a section per task.
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path
from typing import Callable, Optional, Sequence, Union

import numpy as np
import torch
from tqdm import tqdm

from ..data import FAMILIES, SPLIT_SIZES, SimulatedDataset
from ..metrics import psnr, ssim
from ..registry import Task, build_method, method, methods as registered_methods
from ..registry import task as as_task
from ..report import check_report_dir, display_data, display_image, write_report
from ..uq import split_scale
from ..weights import WeightsError, available, shipped_weights_for
from .bias_noise import demo_figures
from .demo_bounds import _calibrate_bounds, _image_bounds, _with_uncertainty, format_bounds_table
from .demo_meta import _default_command, _meta, _task_summary, no_bounds_reason
from .quality import reference_columns

__all__ = ["run_demo", "demo_plan", "demo_section", "default_methods", "demo_methods",
           "format_bounds_table",
           "no_bounds_reason"]


def default_methods(task: Union[str, dict, Task] = "ct") -> list:
    """The registered methods that support ``task`` and run by default (not those of minutes
    per image, such as the deep image prior), in registry order: the classical ones and the
    learned ones with installed weights trained on ``task``'s kind
    (:func:`tomolearn.weights.shipped_weights_for`)."""
    t = as_task(task)
    installed = set(available())

    def has_weights(name):
        try:
            return shipped_weights_for(name, t) in installed
        except WeightsError:
            return False

    return [m for m in registered_methods(t) if method(m).by_default
            and (method(m).kind == "classical" or has_weights(m))]


def demo_methods(task: Union[str, dict, Task] = "ct") -> list:
    """The methods the demo of ``task`` shows by default: :func:`default_methods`, restricted
    to the task's ``demo_methods`` when it names some (a modality's three-minute story)."""
    t = as_task(task)
    found = default_methods(t)
    return found if t.demo_methods is None else [m for m in found if m in t.demo_methods]


# -- small helpers --------------------------------------------------------------------------------
def _resolve_device(device) -> torch.device:
    """``device`` as a torch device that exists here; ``ValueError`` naming it otherwise."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise ValueError(f"device must be a torch device such as 'cpu' or 'cuda:0', got {device!r}") from e
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {device!r}: CUDA is not available here")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"device {device!r}: only {torch.cuda.device_count()} CUDA device(s)")
    elif dev.type == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise ValueError(f"device {device!r}: MPS is not available here")
    return dev


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def _std(values) -> float:
    return float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def _mean(values) -> Optional[float]:
    return float(np.mean(values)) if len(values) else None


def _check_int(name: str, value, low: int, high: Optional[int] = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low \
            or (high is not None and value > high):
        rng = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise ValueError(f"{name} must be an int {rng}, got {value!r}")
    return int(value)


def _on(op, dev: torch.device):
    """``op`` on ``dev`` (operators that carry tensors move; others follow their input)."""
    return op.to(dev) if hasattr(op, "to") else op


# -- the steps of run_demo ------------------------------------------------------------------------
def _check_inputs(task, n_images, methods, families, seed, bounds, alpha, calibration_n,
                  batch_size, training_family) -> dict:
    """Every argument checked and normalised before any work; ``ValueError``/``TypeError``
    naming the first bad one."""
    n_images = _check_int("n_images", n_images, 1)
    seed = _check_int("seed", seed, 0)
    t = as_task(task).replace(seed=seed)
    if isinstance(methods, str) or isinstance(families, str):
        raise TypeError("methods and families must be sequences of names, not one string")
    methods = demo_methods(t) if methods is None else [str(m) for m in methods]
    families = [str(f) for f in families]
    if not methods:
        raise ValueError(f"methods is empty; give at least one of "
                         f"{', '.join(registered_methods(t)) or 'none'}")
    if not families:
        raise ValueError(f"families is empty; give some of {', '.join(sorted(FAMILIES))}")
    for what, names in (("method", methods), ("family", families)):
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"{what} {dupes[0]!r} given twice")
    for m in methods:
        if not method(m).supports(t):  # method() raises for an unknown name
            raise ValueError(f"method {m!r} does not support task {t.kind!r}; methods for it: "
                             f"{', '.join(registered_methods(t)) or 'none'}")
    unknown = [f for f in families + [str(training_family)] if f not in FAMILIES]
    if unknown:
        raise ValueError(f"unknown image family {unknown[0]!r}; expected some of "
                         f"{', '.join(sorted(FAMILIES))}")
    bounds = bool(bounds)
    if bounds:
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 < alpha < 1:
            raise ValueError(f"alpha must lie strictly between 0 and 1, got {alpha!r}")
        alpha = float(alpha)
        calibration_n = _check_int("calibration_n", calibration_n, 2, SPLIT_SIZES["validation"])
        need = math.ceil(1 / alpha - 1 - 1e-9)
        if calibration_n < need:
            raise ValueError(f"calibration_n={calibration_n} is too small for alpha={alpha:g}: "
                             f"finite bounds need at least {need} calibration images")
        batch_size = _check_int("batch_size", batch_size, 1)
    return {"task": t, "n_images": n_images, "methods": methods, "families": families,
            "seed": seed, "bounds": bounds, "alpha": alpha, "calibration_n": calibration_n,
            "batch_size": batch_size, "training_family": str(training_family),
            "bound_methods": [m for m in methods if not no_bounds_reason(m)] if bounds else []}


def _operators(t: Task, cal: Task, dev: torch.device):
    """``(op, cal_op)``: the operators of the demo task and of the calibration task, on ``dev``;
    one object when the tasks differ only in their seed (one set-up, one loaded model)."""
    cal_op = _on(cal.operator(), dev)
    return (cal_op if t.replace(seed=cal.seed) == cal else _on(t.operator(), dev)), cal_op


def _build_and_warm_up(t: Task, op, methods: Sequence[str], dev: torch.device) -> dict:
    """``name -> recon`` built on ``op``, each called once on zero data (untimed): a method that
    cannot run (weights that do not load, data it refuses) fails here, before any work, and
    one-off costs (system matrices, loading weights) stay out of the timings."""
    dtype = torch.complex64 if t.image_dtype.is_complex else torch.float32
    probe = torch.zeros((1, 1) + tuple(op.range_shape), dtype=dtype, device=dev)
    recons = {}
    for m in methods:
        try:
            recons[m] = build_method(m, t, op=op, device=dev)
            with torch.no_grad():
                recons[m](probe)
        except ValueError as e:
            raise ValueError(f"method {m!r} cannot reconstruct data of task "
                             f"{_task_summary(t)}: {e}") from e
    _sync(dev)
    return recons


def _calibrate(s: dict, cal: Task, cal_op, recons: dict, op, dev, progress: bool) -> dict:
    """Calibrate the bounds of ``s["bound_methods"]`` on the first ``calibration_n`` samples of
    the training family's validation split under ``cal`` (methods rebuilt on ``cal_op`` unless
    it is the demo's operator ``op``: the same reconstructors, e.g. the same shipped weights,
    bound to the calibration task's operator)."""
    names = s["bound_methods"]
    if not names:
        return {}
    cal_recons = ({m: recons[m] for m in names} if cal_op is op else
                  {m: build_method(m, s["task"], op=cal_op, device=dev) for m in names})
    dataset = SimulatedDataset(s["training_family"], "validation", cal, size=s["calibration_n"])
    with tqdm(total=s["calibration_n"] * len(names), desc="calibrating bounds", unit="recon",
              disable=not progress, file=sys.stderr, leave=False) as bar:
        return _calibrate_bounds(cal_recons, dataset, cal_op, cal.noise_std, s["alpha"],
                                 s["calibration_n"], dev, s["batch_size"], bar.update)


def _reconstruct_images(s: dict, op, recons: dict, calibration: dict, noise_std: Callable,
                        dev: torch.device, progress: bool) -> tuple:
    """Simulate ``n_images`` test samples per family, reconstruct each with each method (one
    at a time, timed), score them and bound them.  Returns ``(scores, cases, t_sim,
    t_bounds)``: ``scores[(family, method)]`` lists of psnr, ssim, seconds, bounds."""
    t, n, alpha = s["task"], s["n_images"], s["alpha"]
    scores = {(f, m): {"psnr": [], "ssim": [], "seconds": [], "bounds": []}
              for f in s["families"] for m in s["methods"]}
    cases, t_sim, t_bounds = [], 0.0, 0.0
    bar = tqdm(total=len(s["families"]) * n * len(s["methods"]), desc="demo", unit="recon",
               disable=not progress, file=sys.stderr)
    try:
        for family in s["families"]:
            t0 = time.perf_counter()
            y_all, x_all = SimulatedDataset(family, "test", t, size=n).batch(range(n))
            t_sim += time.perf_counter() - t0
            for i in range(n):
                y, x = y_all[i:i + 1].to(dev), x_all[i:i + 1].to(dev)
                case = {"name": f"{family} #{i}", "dataset": f"{family}/test",
                        "ground_truth": display_image(x_all[i, 0]), "sinogram": display_data(y_all[i, 0]),
                        "data_name": t.data_name, "data_axes": list(t.data_axes),
                        "reconstructions": {}, "metrics": {}}
                if s["bound_methods"]:
                    case["maps"], case["bounds"] = {}, {}
                for m, recon in recons.items():
                    bar.set_postfix_str(f"{family} #{i} {m}", refresh=False)
                    fn = _with_uncertainty(recon) if m in calibration else recon
                    _sync(dev)
                    t0 = time.perf_counter()
                    with torch.no_grad():
                        out = fn(y)
                    _sync(dev)
                    seconds = time.perf_counter() - t0
                    rec = out[0] if isinstance(out, tuple) else out
                    p, q = float(psnr(rec, x)[0]), float(ssim(rec, x)[0])
                    entry = scores[(family, m)]
                    entry["psnr"].append(p)
                    entry["ssim"].append(q)
                    entry["seconds"].append(seconds)
                    case["reconstructions"][m] = display_image(rec[0, 0])
                    case["metrics"][m] = {"psnr": p, "ssim": q, "seconds": seconds}
                    if m in calibration:
                        t0 = time.perf_counter()
                        _, scale, _ = split_scale(out, op, y)
                        maps, b = _image_bounds(calibration[m], op, rec, scale, y, x, alpha,
                                                noise_std)
                        t_bounds += time.perf_counter() - t0
                        case["maps"][m], case["bounds"][m] = maps, b
                        case["metrics"][m]["rmse"] = b["rmse"]
                        entry["bounds"].append(b)
                    bar.update(1)
                cases.append(case)
    finally:
        bar.close()
    return scores, cases, t_sim, t_bounds


_BOUND_KEYS = ("alpha", "coverage", "interval_width", "rmse_bound", "bound_coverage", "flagged",
               "calibration_n", "scale", "uncertainty_error_correlation")


def _rows(s: dict, scores: dict, calibration: dict) -> list:
    """One metrics row per family x method (see :func:`run_demo`)."""
    t, rows = s["task"], []
    for family in s["families"]:
        for m in s["methods"]:
            e, info = scores[(family, m)], method(m)
            row = {
                "method": m, "dataset": f"{family}/test", "n": s["n_images"],
                "psnr": float(np.mean(e["psnr"])), "psnr_std": _std(e["psnr"]),
                "ssim": float(np.mean(e["ssim"])), "ssim_std": _std(e["ssim"]),
                "seconds_per_image": float(np.mean(e["seconds"])),
                **reference_columns(t, family, m),
                "task": t.kind, **t.setting(), "family": family, "task_spec": t.spec(),
                "params": info.params_for(t),
            }
            b = e["bounds"]
            if b:
                row.update({
                    "alpha": s["alpha"], "coverage": _mean([v["coverage"] for v in b]),
                    "interval_width": _mean([v["interval_width"] for v in b]),
                    "rmse_bound": b[0]["rmse_bound"],
                    "bound_coverage": _mean([float(v["covered"]) for v in b]),
                    "flagged": _mean([float(v["flagged"]) for v in b]),
                    "calibration_n": s["calibration_n"], "scale": calibration[m]["scale"],
                    "uncertainty_error_correlation": _mean(
                        [v["uncertainty_error_correlation"] for v in b
                         if v["uncertainty_error_correlation"] is not None]),
                })
            else:
                row.update({k: None for k in _BOUND_KEYS})
                row["bounds_note"] = (no_bounds_reason(m) or "no bounds") if s["bounds"] \
                    else "bounds disabled"
            if info.kind == "learned":
                row["weights"] = shipped_weights_for(m, t)
            rows.append(row)
    return rows


def run_demo(out_dir, *, task: Union[str, dict, Task] = "ct", n_images: int = 2,
             methods: Optional[Sequence[str]] = None, families: Optional[Sequence[str]] = None,
             seed: int = 0, device="cpu", overwrite: bool = False, progress: bool = True,
             command: Optional[str] = None, bounds: bool = True, alpha: float = 0.1,
             calibration_n: int = 100, batch_size: int = 25,
             training_family: Optional[str] = None) -> dict:
    """Simulate, reconstruct, score and bound a task's measurements of several image families;
    write a report.

    Parameters
    ----------
    out_dir : str or Path
        Report folder (``index.html``, ``metrics.json``); must be missing or empty unless
        ``overwrite`` (checked before any work).
    task : str, dict or Task
        A registered task name, a spec dict or a task, e.g.
        ``tl.task("ct").updated({"n_angles": 20})``; its seed is replaced by ``seed``.
    n_images : int
        Test-split samples per family (samples ``0 .. n_images-1``).
    methods : sequence of str, optional
        Registered methods that support the task (learned ones load their weights during the
        untimed warm-up); an unknown or unsupported method, or weights that do not load, raise
        before any image is reconstructed.  Default :func:`default_methods`.
    families : sequence of str, optional
        Keys of :data:`tomolearn.data.FAMILIES`; default the task's ``families``.
    seed : int
        Seed of the simulated test datasets (the task's ``seed``): same seed, same images,
        noise and results.
    device : str or torch.device
        Where reconstruction, metrics and bounds run; simulation is always on the CPU.
    overwrite, progress : bool
        Replace a non-empty ``out_dir``; tqdm progress bars on stderr.
    command : str, optional
        The command line of the report's "reproduce" section; default an equivalent Python
        one-liner calling ``run_demo``.
    bounds : bool
        Attach distribution-free error bounds (:mod:`tomolearn.uq`) to every method except
        those registered as slow (:func:`no_bounds_reason`).  Each method is calibrated on the first ``calibration_n``
        samples of ``training_family``'s *validation* split under the task kind's registered
        default (``tomolearn.registry.task(task.kind)``, what the learned methods were trained
        on), whatever the demo task's settings: per-pixel intervals ``x_hat +- lam * s``, an
        RMSE bound and data-consistency scores under that task's ``noise_std``.  Each demo
        image then gets an uncertainty map (half-width ``lam * s``), an interval-width map, its
        RMSE bound, a conformal p-value and a shift flag (p < alpha).  The guarantees hold only
        for images like the calibration data; other families or task settings are out of
        distribution and should be flagged.
    alpha : float in (0, 1)
        Miscoverage level of both bounds and false-alarm rate of the flag.
    calibration_n, batch_size : int
        Calibration images (at least ``1/alpha - 1``, for finite bounds; at most the
        validation split), and how many are reconstructed together.
    training_family : str, optional
        The image family the learned methods were trained on (the calibration data); default
        the first of the task's ``families`` (ellipses for CT, brain for MRI).

    Returns
    -------
    dict
        What ``metrics.json`` holds: ``results`` (one row per family x method: ``method,
        dataset ("<family>/test"), n, psnr (dB), psnr_std, ssim, ssim_std,
        seconds_per_image`` plus ``task`` (the kind), ``family``, ``task_spec``, ``params``,
        ``weights`` (learned methods), the published ``reference_psnr``/``reference_ssim``/
        ``reference_source`` where
        :func:`tomolearn.studies.quality.references` has them (else None), and the bound
        columns ``alpha, coverage, interval_width, rmse_bound, bound_coverage, flagged,
        calibration_n, scale, uncertainty_error_correlation`` -- all None, with a
        ``bounds_note``, for methods without bounds), ``meta`` (settings, versions, timings
        in seconds, command, ``bounds``: calibration per method), ``cases`` (per image: name,
        dataset, metrics, bounds) and ``table`` (plain text); plus ``bounds_table``
        (:func:`format_bounds_table`), ``report`` (the path of ``index.html``) and
        ``seconds_total``.
    """
    t_start = time.perf_counter()
    s = demo_plan(task, n_images=n_images, methods=methods, families=families, seed=seed,
                  bounds=bounds, alpha=alpha, calibration_n=calibration_n,
                  batch_size=batch_size, training_family=training_family)
    dev = _resolve_device(device)
    out_dir = Path(out_dir)
    check_report_dir(out_dir, overwrite)
    if command is None:
        command = _default_command(out_dir, s, dev)
    cases, rows, meta = demo_section(s, device=dev, progress=progress, command=command)
    t0 = time.perf_counter()
    figures, meta["figure_sweeps"] = demo_figures(s["task"], s["methods"], device=dev)
    meta["timings"]["figure sweeps"] = time.perf_counter() - t0
    # The report's own time is only known afterwards; record the time up to writing it.
    meta["timings"]["total before writing the report"] = time.perf_counter() - t_start
    index = write_report(out_dir, cases, rows, meta, overwrite=overwrite, figures=figures)
    result = json.loads((index.parent / "metrics.json").read_text(encoding="utf-8"))
    result["bounds_table"] = format_bounds_table(rows)
    result["report"] = str(index)
    result["seconds_total"] = time.perf_counter() - t_start
    return result


def demo_plan(task: Union[str, dict, Task] = "ct", *, n_images: int = 2,
              methods: Optional[Sequence[str]] = None, families: Optional[Sequence[str]] = None,
              seed: int = 0, bounds: bool = True, alpha: float = 0.1, calibration_n: int = 100,
              batch_size: int = 25, training_family: Optional[str] = None) -> dict:
    """Check and normalise the settings of one demo, before any work (the first step of
    :func:`run_demo`; the arguments are :func:`run_demo`'s).

    Raises ``ValueError``/``TypeError`` naming the first bad argument: an unknown task,
    method or family, a method that does not support the task, an ``alpha`` or
    ``calibration_n`` that cannot give finite bounds.  Builds nothing.

    Returns
    -------
    dict
        The plan :func:`demo_section` runs: ``task`` (a :class:`~tomolearn.registry.Task`, its
        seed replaced by ``seed``), ``n_images``, ``methods`` (default
        :func:`default_methods`), ``families`` (default the task's), ``seed``, ``bounds``,
        ``alpha``, ``calibration_n``, ``batch_size``, ``training_family`` (default the first
        of the task's families) and ``bound_methods`` (those calibrated: all but the slow
        ones, none without bounds).
    """
    defaults = as_task(task).families
    families = list(defaults) if families is None else families
    training_family = defaults[0] if training_family is None else training_family
    return _check_inputs(task, n_images, methods, families, seed, bounds, alpha, calibration_n,
                         batch_size, training_family)


def demo_section(plan: dict, *, device="cpu", progress: bool = True,
                 command: Optional[str] = None) -> tuple:
    """Run a demo planned by :func:`demo_plan`: build and warm up the methods, calibrate the
    bounds, simulate, reconstruct, score and bound the test images (the work of
    :func:`run_demo`, without writing anything).

    Parameters
    ----------
    plan : dict
        :func:`demo_plan`'s result.
    device : str or torch.device
        Where reconstruction, metrics and bounds run (``ValueError`` if it does not exist).
    progress : bool
        tqdm progress bars on stderr.
    command : str, optional
        ``meta["command"]``, the report's "reproduce" line (None: not recorded).

    Returns
    -------
    tuple
        ``(cases, rows, meta)`` as :func:`tomolearn.report.write_report` takes them: one case
        per image (ground truth, data and reconstructions as 2-D arrays, metrics, bounds and
        uncertainty maps), one row per family x method (see :func:`run_demo`), and the meta
        (title, description, settings, bounds, command, versions, ``timings`` in seconds).
    """
    s, dev = plan, _resolve_device(device)
    t, cal = s["task"], as_task(s["task"].kind)

    t0 = time.perf_counter()
    op, cal_op = _operators(t, cal, dev)
    recons = _build_and_warm_up(t, op, s["methods"], dev)
    t_warm = time.perf_counter() - t0

    t0 = time.perf_counter()
    calibration = _calibrate(s, cal, cal_op, recons, op, dev, progress)
    t_cal = time.perf_counter() - t0 if calibration else 0.0

    scores, cases, t_sim, t_bounds = _reconstruct_images(s, op, recons, calibration,
                                                         cal.noise_std, dev, progress)
    rows = _rows(s, scores, calibration)
    timings = {"operator set-up and warm-up calls": t_warm,
               "calibration of the error bounds": t_cal, "simulation": t_sim,
               "reconstruction (all timed calls)": sum(sum(e["seconds"]) for e in scores.values()),
               "error bounds of the demo images": t_bounds}
    return cases, rows, _meta(s, cal, calibration, command, dev, timings)
