"""The main job: simulate sparse-view CT of several image families, reconstruct, report.

:func:`run_demo` simulates held-out (test-split) samples of each image family
under one :class:`tomolearn.data.SimulationSpec` (parallel beam, 183
detectors, data simulated on a 400 x 400 grid against the inverse crime,
relative Gaussian noise), reconstructs them with each method through
:func:`tomolearn.benchmarks.reconstruct`, scores them with
:mod:`tomolearn.metrics`, attaches distribution-free error bounds
(:mod:`tomolearn.uq`, calibrated on the ellipses validation split under the
standard spec) and writes a self-contained HTML report with
:func:`tomolearn.report.write_report`.
"""

from __future__ import annotations

import json
import math
import platform
import shlex
import sys
import time
from pathlib import Path
from typing import Optional, Sequence, Tuple

import numpy as np
import torch

__all__ = ["run_demo", "default_methods", "format_bounds_table", "DEFAULT_FAMILIES",
           "DEFAULT_METHODS", "NO_BOUNDS"]

#: Classical methods of the demo; :func:`default_methods` adds the learned ones with shipped weights.
DEFAULT_METHODS = ("fbp", "tv")
#: Methods the demo does not calibrate error bounds for, and why.
NO_BOUNDS = {"tv": "TV is too slow to calibrate in a demo (about a second per image, and "
                   "calibration reconstructs every calibration image); `tomolearn evaluate "
                   "--methods tv` computes its bounds"}
DEFAULT_FAMILIES = ("ellipses", "shepp-logan", "ct-slice", "rectangles", "lesions")


def software_versions() -> dict:
    """Versions of tomolearn, Python, torch, NumPy, Matplotlib and the platform, for reports."""
    import matplotlib

    from . import __version__

    return {"tomolearn": __version__, "python": platform.python_version(), "torch": torch.__version__,
            "numpy": np.__version__, "matplotlib": matplotlib.__version__,
            "platform": platform.platform()}


def default_methods() -> list:
    """``fbp``, ``tv`` and every learned method whose weights are shipped (installed) here."""
    from .benchmarks import LEARNED
    from .weights import available

    shipped = set(available())
    return list(DEFAULT_METHODS) + [m for m, w in LEARNED.items() if w in shipped]


def _default_command(out_dir, n_images, angles, noise, methods, families, seed, device,
                     bounds, alpha, calibration_n) -> str:
    """A shell command that reruns this demo through the library (the CLI passes its own argv)."""
    lit = json.dumps  # JSON strings and lists of strings are Python literals too, in double quotes
    call = (f"from tomolearn.demo import run_demo; run_demo({lit(str(out_dir))}, n_images={n_images}, "
            f"angles={angles}, noise={float(noise)!r}, methods={lit(list(methods))}, "
            f"families={lit(list(families))}, seed={seed}, device={lit(str(device))}, "
            + (f"alpha={float(alpha)!r}, calibration_n={calibration_n}, " if bounds else "bounds=False, ")
            + "overwrite=True)")
    return f"{shlex.quote(sys.executable)} -c {shlex.quote(call)}"


def _resolve_device(device) -> torch.device:
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


def _calibrate_bounds(methods: Sequence[str], alpha: float, calibration_n: int, dev: torch.device,
                      batch_size: int, tick) -> dict:
    """Calibrate per-pixel intervals, an RMSE bound and shift-detection scores per method.

    Every method reconstructs the first ``calibration_n`` samples of the ellipses
    *validation* split under the standard spec (``ellipses_benchmark("validation")``:
    30 angles, 2.5 % noise), simulated once, batch by batch, and shared by the methods.

    The scale of the intervals is the method's own where it has one (a deep ensemble's
    standard deviation), else the data-residual scale (:func:`uq.split_scale`).

    Returns
    -------
    dict
        ``method -> {"intervals": uq.PixelIntervals, "rmse_bound": uq.ImageErrorBound,
        "dc": (n,) float64 tensor of data-consistency scores (CPU), "scale": "own" or
        "residual"}``.
    """
    from . import uq
    from .benchmarks import reconstruct
    from .data import ellipses_benchmark

    dataset = ellipses_benchmark("validation", size=calibration_n)
    op = dataset.operator()
    if hasattr(op, "to"):
        op = op.to(dev)
    acc = {m: {"ratios": [], "rmse": [], "dc": []} for m in methods}
    for start in range(0, calibration_n, batch_size):
        y, x = dataset.batch(range(start, min(start + batch_size, calibration_n)))
        y, x = y.to(dev), x.to(dev)
        for m in methods:
            with torch.no_grad():
                rec, scale, kind = uq.split_scale(reconstruct(m, op, y, uncertainty=True), op, y)
            rec, scale = rec.to(x.dtype), scale.to(x.dtype)
            a = acc[m]
            a["scale"] = kind
            a["ratios"].append(uq.pixel_ratios(rec, x, scale).cpu())
            a["rmse"].append(uq.image_rmse(rec, x).cpu())
            a["dc"].append(uq.data_consistency(op, rec, y, uq.relative_noise_std(y)).cpu())
            tick(y.shape[0])
    out = {}
    for m, a in acc.items():
        out[m] = {"intervals": uq.PixelIntervals.from_ratios(torch.cat(a["ratios"]), alpha),
                  "rmse_bound": uq.ImageErrorBound.calibrate(torch.cat(a["rmse"]), alpha),
                  "dc": torch.cat(a["dc"]), "scale": a["scale"]}
    return out


def _image_bounds(cal: dict, op, rec: torch.Tensor, scale: torch.Tensor, y: torch.Tensor,
                  x: torch.Tensor, alpha: float) -> Tuple[dict, dict]:
    """Maps and bounds of one reconstruction ``rec`` (1, 1, H, W) of data ``y`` (1, 1, A, D).

    ``scale`` (1, 1, H, W) is the per-pixel scale of the intervals (:func:`uq.split_scale`).
    Returns ``(maps, bounds)``: maps ``uncertainty`` (interval half-width ``lam * s``) and
    ``interval_width`` (``2 lam s``), (H, W) float32 numpy arrays in image units; bounds
    ``rmse_bound`` (image units), ``rmse``, ``covered`` (RMSE <= bound), ``coverage`` (fraction
    of pixels inside their interval), ``interval_width`` (mean), ``data_consistency``,
    ``p_value`` (conformal, against the calibration scores), ``flagged`` (p < alpha) and
    ``uncertainty_error_correlation`` (Pearson correlation of the map with the absolute error
    over the pixels; None for a constant map).
    """
    from . import uq

    rec, scale = rec.detach().to(x.dtype), scale.detach().to(x.dtype)
    intervals, bound = cal["intervals"], cal["rmse_bound"]
    width = intervals.width(scale)
    corr = float(uq.uncertainty_error_correlation(scale, rec, x)[0])
    rmse = uq.image_rmse(rec, x)
    dc = uq.data_consistency(op, rec, y, uq.relative_noise_std(y))
    p = float(uq.conformal_pvalues(cal["dc"], dc.cpu())[0])
    maps = {"uncertainty": (width / 2)[0, 0].float().cpu().numpy(),
            "interval_width": width[0, 0].float().cpu().numpy()}
    bounds = {"rmse_bound": bound.bound, "rmse": float(rmse[0]),
              "covered": bool(bound.covers(rmse.cpu())[0]),
              "coverage": float(intervals.coverage(rec, scale, x)[0]),
              "interval_width": float(width.mean()), "data_consistency": float(dc[0]),
              "p_value": p, "flagged": bool(p < alpha),
              "uncertainty_error_correlation": corr if math.isfinite(corr) else None}
    return maps, bounds


def format_bounds_table(rows: Sequence[dict]) -> str:
    """Plain-text table of the error-bound columns of :func:`run_demo` rows.

    Columns: method, dataset, n, alpha, mean pixel coverage of the intervals (target
    ``>= 1 - alpha`` in distribution), mean interval width (image units), RMSE bound (image
    units), fraction of images whose RMSE is within it, fraction flagged as shifted, and the
    mean correlation of the uncertainty map with the absolute error.  Rows without bounds say
    why.
    """
    def f(v, spec):
        return "–" if v is None else format(v, spec)

    wm = max([6] + [len(str(r["method"])) for r in rows]) + 2
    wd = max([7] + [len(str(r["dataset"])) for r in rows]) + 2
    head = (f"{'method':<{wm}}{'dataset':<{wd}}{'n':>4}{'alpha':>7}{'pixel cov.':>12}"
            f"{'width':>9}{'RMSE bound':>12}{'bound cov.':>12}{'flagged':>9}{'map r':>7}")
    lines = [head, "-" * len(head)]
    for r in rows:
        line = f"{str(r['method']):<{wm}}{str(r['dataset']):<{wd}}{int(r['n']):>4}"
        if r.get("alpha") is None:
            note = str(r.get("bounds_note") or "").split(" (")[0].split(";")[0]
            line += f"  no bounds{': ' + note if note else ''}"
        else:
            line += (f"{f(r['alpha'], '.2f'):>7}{f(r['coverage'], '.3f'):>12}"
                     f"{f(r.get('interval_width'), '.4f'):>9}{f(r['rmse_bound'], '.4f'):>12}"
                     f"{f(r['bound_coverage'], '.2f'):>12}{f(r['flagged'], '.2f'):>9}"
                     f"{f(r.get('uncertainty_error_correlation'), '.2f'):>7}")
        lines.append(line)
    return "\n".join(lines)


def run_demo(out_dir, *, n_images: int = 2, angles: int = 30, noise: float = 0.025,
             methods: Optional[Sequence[str]] = None, families: Sequence[str] = DEFAULT_FAMILIES,
             seed: int = 0, device="cpu", overwrite: bool = False, progress: bool = True,
             command: Optional[str] = None, bounds: bool = True, alpha: float = 0.1,
             calibration_n: int = 100, batch_size: int = 25) -> dict:
    """Simulate, reconstruct, score and bound sparse-view CT of several image families; write a report.

    Parameters
    ----------
    out_dir : str or Path
        Report folder (``index.html``, ``metrics.json``); must be missing or
        empty unless ``overwrite`` (checked before any work).
    n_images : int
        Test-split samples per family (samples ``0 .. n_images-1``).
    angles : int
        Number of parallel-beam angles, midpoints of [0, pi).
    noise : float in [0, 1)
        Relative Gaussian noise: standard deviation ``noise * mean(|y|)`` per
        sample.
    methods : sequence of str, optional
        Names :func:`tomolearn.benchmarks.reconstruct` knows
        (:data:`tomolearn.benchmarks.METHODS`: classical "fbp", "tv" and the
        learned ones, whose shipped weights are loaded during the untimed
        warm-up); an unknown method, or weights that do not load, raise
        before any image is reconstructed.  Default :func:`default_methods`:
        fbp, tv and the learned methods whose weights are installed.
    families : sequence of str
        Keys of :data:`tomolearn.data.FAMILIES`.
    seed : int
        Seed of the simulated datasets (``SimulationSpec.seed``): same seed,
        same images, noise and results.
    device : str or torch.device
        Where measurements, reconstruction and metrics run.  The ray
        transform follows its input's device (its matrices are cached per
        device), so the data are moved there and the operator is moved with
        ``.to(device)`` for methods that carry parameters.  Simulation is
        always on the CPU (so data do not depend on the device).
    overwrite : bool
    progress : bool
        tqdm progress bars on stderr (calibration, then the demo images).
    command : str, optional
        The command line shown in the report's "reproduce" section; default
        an equivalent Python one-liner calling ``run_demo``.
    bounds : bool
        Attach distribution-free error bounds (:mod:`tomolearn.uq`) to every
        method except those in :data:`NO_BOUNDS` (TV: too slow to calibrate
        in a demo; the report says so).  Each method is calibrated on the
        first ``calibration_n`` samples of the ellipses *validation* split
        under the *standard* spec (30 angles, 2.5 % noise), whatever
        ``angles`` and ``noise`` are: per-pixel intervals
        ``x_hat +- lam * s`` (:class:`uq.PixelIntervals`, ``s`` from
        :func:`uq.scale_from_residual`), an RMSE bound
        (:class:`uq.ImageErrorBound`) and data-consistency scores
        (:func:`uq.data_consistency` with :func:`uq.relative_noise_std`).
        Each demo image then gets an uncertainty map (half-width
        ``lam * s``), an interval-width map (``2 lam s``), its RMSE bound, a
        conformal p-value and a shift flag (p < alpha).  The guarantees hold
        only for images like the calibration data (held-out ellipses under
        the standard spec); other families, angles or noise levels are out of
        distribution and should be flagged.
    alpha : float in (0, 1)
        Miscoverage level of both bounds and false-alarm rate of the flag.
    calibration_n : int
        Calibration images, at least ``1/alpha - 1`` (for finite bounds) and
        at most 3200 (the validation split).
    batch_size : int
        Calibration images reconstructed together.

    Returns
    -------
    dict
        What ``metrics.json`` holds: ``results`` (one row per family x
        method: ``method, dataset ("<family>/test"), n, psnr (dB), psnr_std,
        ssim, ssim_std, seconds_per_image`` plus ``family, angles, noise``,
        for ellipses under the standard setting DIVal's ``dival_psnr`` and
        ``dival_ssim``, and the bound columns ``alpha, coverage`` (mean
        fraction of pixels inside their intervals), ``interval_width`` (mean,
        image units), ``rmse_bound`` (image units), ``bound_coverage``
        (fraction of images with RMSE <= bound), ``flagged`` (fraction of
        images flagged), ``calibration_n`` -- all None, with a
        ``bounds_note``, for methods without bounds), ``meta`` (settings,
        versions, timings in seconds, command, ``bounds``: calibration per
        method), ``cases`` (per image: name, dataset, metrics, bounds) and
        ``table`` (plain text for a terminal); plus ``bounds_table`` (plain
        text, :func:`format_bounds_table`), ``report`` (the path of
        ``index.html``) and ``seconds_total``.
    """
    from tqdm import tqdm

    from . import benchmarks, metrics, uq
    from .benchmarks import DIVAL_ELLIPSES, ELLIPSES_DEFAULTS, reconstruct
    from .data import FAMILIES, NoiseSpec, SimulatedDataset, SimulationSpec
    from .report import check_report_dir, write_report

    t_start = time.perf_counter()
    # -- check everything before any work ----------------------------------------------------
    n_images = _check_int("n_images", n_images, 1)
    angles = _check_int("angles", angles, 1)
    if not isinstance(noise, (int, float)) or isinstance(noise, bool) or not 0 <= noise < 1:
        raise ValueError(f"noise must be a relative level in [0, 1), got {noise!r}")
    seed = _check_int("seed", seed, 0)
    if isinstance(methods, str) or isinstance(families, str):
        raise TypeError("methods and families must be sequences of names, not one string")
    methods = default_methods() if methods is None else [str(m) for m in methods]
    families = [str(f) for f in families]
    if not methods:
        raise ValueError("methods is empty; give at least one, e.g. ('fbp', 'tv')")
    if not families:
        raise ValueError(f"families is empty; give some of {', '.join(sorted(FAMILIES))}")
    for what, names in (("method", methods), ("family", families)):
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"{what} {dupes[0]!r} given twice")
    known_methods = tuple(benchmarks.METHODS)
    learned = dict(benchmarks.LEARNED)
    unknown = [m for m in methods if m not in known_methods]
    if unknown:
        raise ValueError(f"unknown method {unknown[0]!r}; expected some of {', '.join(known_methods)}")
    unknown = [f for f in families if f not in FAMILIES]
    if unknown:
        raise ValueError(f"unknown image family {unknown[0]!r}; expected some of "
                         f"{', '.join(sorted(FAMILIES))}")
    bounds = bool(bounds)
    if bounds:
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 < alpha < 1:
            raise ValueError(f"alpha must lie strictly between 0 and 1, got {alpha!r}")
        alpha = float(alpha)
        calibration_n = _check_int("calibration_n", calibration_n, 2, 3200)
        need = math.ceil(1 / alpha - 1 - 1e-9)
        if calibration_n < need:
            raise ValueError(f"calibration_n={calibration_n} is too small for alpha={alpha:g}: "
                             f"finite bounds need at least {need} calibration images")
        batch_size = _check_int("batch_size", batch_size, 1)
    dev = _resolve_device(device)
    out_dir = Path(out_dir)
    check_report_dir(out_dir, overwrite)

    spec = SimulationSpec().replace(n_angles=angles, noise=NoiseSpec(kind="gaussian", level=float(noise)),
                                    seed=seed)
    # The operator depends on the geometry only: take the one of the standard spec with these
    # angles, so that under the standard setting it is the calibration's operator (one set-up,
    # one loaded model).
    op = SimulationSpec().replace(n_angles=angles).operator()
    if hasattr(op, "to"):
        op = op.to(dev)
    # One untimed call per method on a zero sinogram: rejects methods `reconstruct` does not
    # know (or whose weights do not load) before any work, and keeps one-off costs (system
    # matrix, loading weights) out of the timings.
    t0 = time.perf_counter()
    probe = torch.zeros((1, 1) + tuple(op.range_shape), dtype=torch.float32, device=dev)
    for m in methods:
        try:
            with torch.no_grad():
                reconstruct(m, op, probe)
        except ValueError as e:
            if "unknown method" in str(e):
                raise ValueError(f"unknown method {m!r} ({e})") from e
            raise ValueError(f"method {m!r} cannot reconstruct {angles}-angle data: {e}") from e
    _sync(dev)
    t_warm = time.perf_counter() - t0

    # -- calibrate the error bounds -------------------------------------------------------------
    bound_methods = [m for m in methods if m not in NO_BOUNDS] if bounds else []
    calibration, t_cal = {}, 0.0
    if bound_methods:
        t0 = time.perf_counter()
        with tqdm(total=calibration_n * len(bound_methods), desc="calibrating bounds", unit="recon",
                  disable=not progress, file=sys.stderr, leave=False) as cbar:
            calibration = _calibrate_bounds(bound_methods, alpha, calibration_n, dev, batch_size,
                                            cbar.update)
        t_cal = time.perf_counter() - t0

    # -- simulate, reconstruct, score ----------------------------------------------------------
    scores = {(f, m): {"psnr": [], "ssim": [], "seconds": [], "bounds": []}
              for f in families for m in methods}
    cases, t_sim, t_bounds = [], 0.0, 0.0
    bar = tqdm(total=len(families) * n_images * len(methods), desc="demo", unit="recon",
               disable=not progress, file=sys.stderr)
    try:
        for family in families:
            t0 = time.perf_counter()
            ds = SimulatedDataset(family, "test", spec, size=n_images)
            y_all, x_all = ds.batch(range(n_images))  # (B,1,A,D), (B,1,N,N) float32
            t_sim += time.perf_counter() - t0
            for i in range(n_images):
                y, x = y_all[i:i + 1].to(dev), x_all[i:i + 1].to(dev)
                case = {"name": f"{family} #{i}", "dataset": f"{family}/test",
                        "ground_truth": x_all[i, 0].numpy(), "sinogram": y_all[i, 0].numpy(),
                        "reconstructions": {}, "metrics": {}}
                if bound_methods:
                    case["maps"], case["bounds"] = {}, {}
                for m in methods:
                    bar.set_postfix_str(f"{family} #{i} {m}", refresh=False)
                    _sync(dev)
                    t0 = time.perf_counter()
                    with torch.no_grad():
                        out = reconstruct(m, op, y, uncertainty=m in calibration)
                    _sync(dev)
                    seconds = time.perf_counter() - t0
                    rec = out[0] if isinstance(out, tuple) else out
                    p, s = float(metrics.psnr(rec, x)[0]), float(metrics.ssim(rec, x)[0])
                    entry = scores[(family, m)]
                    entry["psnr"].append(p)
                    entry["ssim"].append(s)
                    entry["seconds"].append(seconds)
                    case["reconstructions"][m] = rec[0, 0].detach().float().cpu().numpy()
                    case["metrics"][m] = {"psnr": p, "ssim": s, "seconds": seconds}
                    if m in calibration:
                        t0 = time.perf_counter()
                        _, scale, _ = uq.split_scale(out, op, y)
                        maps, b = _image_bounds(calibration[m], op, rec, scale, y, x, alpha)
                        t_bounds += time.perf_counter() - t0
                        case["maps"][m], case["bounds"][m] = maps, b
                        case["metrics"][m]["rmse"] = b["rmse"]
                        entry["bounds"].append(b)
                    bar.update(1)
                cases.append(case)
    finally:
        bar.close()

    standard = angles == 30 and abs(noise - 0.025) < 1e-12
    rows = []
    for family in families:
        for m in methods:
            e = scores[(family, m)]
            ref = DIVAL_ELLIPSES.get(m, (None, None)) if family == "ellipses" and standard else (None, None)
            row = {
                "method": m, "dataset": f"{family}/test", "n": n_images,
                "psnr": float(np.mean(e["psnr"])), "psnr_std": _std(e["psnr"]),
                "ssim": float(np.mean(e["ssim"])), "ssim_std": _std(e["ssim"]),
                "seconds_per_image": float(np.mean(e["seconds"])),
                "dival_psnr": ref[0], "dival_ssim": ref[1],
                "family": family, "angles": angles, "noise": float(noise),
                "params": dict(ELLIPSES_DEFAULTS.get(m, {})),
            }
            b = e["bounds"]
            if b:
                row.update({
                    "alpha": alpha, "coverage": _mean([v["coverage"] for v in b]),
                    "interval_width": _mean([v["interval_width"] for v in b]),
                    "rmse_bound": b[0]["rmse_bound"],
                    "bound_coverage": _mean([float(v["covered"]) for v in b]),
                    "flagged": _mean([float(v["flagged"]) for v in b]),
                    "calibration_n": calibration_n, "scale": calibration[m]["scale"],
                    "uncertainty_error_correlation": _mean(
                        [v["uncertainty_error_correlation"] for v in b
                         if v["uncertainty_error_correlation"] is not None]),
                })
            else:
                row.update({k: None for k in ("alpha", "coverage", "interval_width", "rmse_bound",
                                              "bound_coverage", "flagged", "calibration_n",
                                              "scale", "uncertainty_error_correlation")})
                row["bounds_note"] = (NO_BOUNDS.get(m, "no bounds") if bounds
                                      else "bounds disabled")
            if m in learned:
                row["weights"] = learned[m]
            rows.append(row)

    if command is None:
        command = _default_command(out_dir, n_images, angles, noise, methods, families, seed, dev,
                                   bounds, alpha, calibration_n)
    t_rec = sum(sum(e["seconds"]) for e in scores.values())
    shifted = not standard
    bounds_meta, bounds_text = None, "off (bounds=False / --no-bounds)"
    if bounds:
        bounds_meta = {
            "alpha": alpha, "calibration": {
                "dataset": "ellipses/validation", "n": calibration_n,
                "spec": SimulationSpec().to_dict(),
                "scale": "a method's own (deep ensembles: the members' standard deviation, "
                         "uq.scale_from_ensemble), else the data residual (uq.scale_from_residual)",
                "noise_std": "uq.relative_noise_std (0.025 mean |y|)"},
            "methods": {m: {"lambda": _finite(c["intervals"].lam), "pixel_risk": c["intervals"].risk,
                            "rmse_bound": _finite(c["rmse_bound"].bound),
                            "data_consistency_mean": float(c["dc"].mean()), "scale": c["scale"]}
                        for m, c in calibration.items()},
            "not_calibrated": {m: NO_BOUNDS[m] for m in methods if m in NO_BOUNDS},
        }
        bounds_text = (
            f"alpha {alpha:g}, calibrated on the first {calibration_n} ellipses validation images "
            "under the standard spec (30 angles, 2.5 % noise) for "
            + (", ".join(bound_methods) or "no method")
            + "; per image: uncertainty map (interval half-width), interval-width map, RMSE "
            "bound, conformal p-value of data consistency and a flag when p < alpha"
            + "".join(f"; none for {m}: {NO_BOUNDS[m]}" for m in methods if m in NO_BOUNDS))
    meta = {
        "title": "tomolearn demo: sparse-view CT reconstruction",
        "description": (
            f"{angles}-angle parallel-beam CT of {n_images} held-out test image(s) from each of "
            f"{len(families)} image famil{'y' if len(families) == 1 else 'ies'}, simulated on a "
            f"{spec.fine_size}×{spec.fine_size} grid (no inverse crime) with "
            f"{100 * noise:g} % relative Gaussian noise, reconstructed on the "
            f"{spec.image_size}×{spec.image_size} grid by {', '.join(methods)}. "
            "Ellipses are the training distribution of the learned methods (DIVal's benchmark); "
            "the other families test how methods generalise."
            + ("" if not bound_methods else
               f" Error bounds (level alpha = {alpha:g}) are calibrated on held-out ellipses under "
               "the standard setting (30 angles, 2.5 % noise); they are guaranteed only for images "
               "like those, and the shift flag marks images that do not look like them"
               + (" (every image here is measured differently, so all are out of distribution)"
                  if shifted else "") + ".")
            + "".join(f" No error bounds for {m}: {NO_BOUNDS[m]}."
                      for m in methods if bounds and m in NO_BOUNDS)),
        "settings": {"families": families, "methods": methods, "images per family": n_images,
                     "angles": angles, "noise (relative std)": float(noise), "seed": seed,
                     "device": str(dev), "torch threads": torch.get_num_threads(),
                     "error bounds": bounds_text,
                     "simulation spec": spec.to_dict()},
        "bounds": bounds_meta,
        "command": command,
        "versions": software_versions(),
        "timings": {"operator set-up and warm-up calls": t_warm,
                    "calibration of the error bounds": t_cal, "simulation": t_sim,
                    "reconstruction (all timed calls)": t_rec,
                    "error bounds of the demo images": t_bounds},
        "timing_note": ("Wall-clock time of each reconstruction call, one image at a time (batch 1) "
                        f"on {dev}, after one untimed warm-up call per method (system matrix, "
                        "weights); simulation, calibration and bounds are excluded. Timings depend "
                        "on the machine and its load; nothing here is a timed assertion."),
    }
    t0 = time.perf_counter()
    # The report's own time is only known afterwards; record the time up to writing it.
    meta["timings"]["total before writing the report"] = t0 - t_start
    index = write_report(out_dir, cases, rows, meta, overwrite=overwrite)
    result = json.loads((index.parent / "metrics.json").read_text(encoding="utf-8"))
    result["bounds_table"] = format_bounds_table(rows)
    result["report"] = str(index)
    result["seconds_total"] = time.perf_counter() - t_start
    return result


def _finite(v: float) -> Optional[float]:
    return float(v) if math.isfinite(v) else None
