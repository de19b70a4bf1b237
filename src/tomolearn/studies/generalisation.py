"""The generalisation study: quality, distribution-free bounds and shift detection of methods
in distribution and under every shift of a task (other image families, measurement shifts)."""

from __future__ import annotations

import math
import time
import warnings
from typing import Callable, Dict, List, Optional, Sequence, Union

import torch

from ..data import FAMILIES, SimulatedDataset
from ..metrics import psnr, ssim
from ..registry import Task, build_method, shifted, shifts as task_shifts, task as as_task
from ..uq.checks import _TOL, _check_alpha
from ..uq.conformal import ImageErrorBound, PixelIntervals, image_rmse, pixel_ratios
from ..uq.scales import spearman, split_scale, uncertainty_error_correlation
from ..uq.shift import auroc, conformal_pvalues, data_consistency

__all__ = ["generalisation_report", "shift_names", "registered_factory"]


def shift_names(task: Union[str, dict, Task] = "ct", family: str = "ellipses") -> List[str]:
    """What the study can test under for ``task`` trained on ``family``: the other image
    families, then the task's registered measurement shifts."""
    t = as_task(task)
    return sorted(f for f in FAMILIES if f != family) + task_shifts(t)


def _resolve_shift(name: str, t: Task, family: str):
    """(family, task, dataset label) of a shift name."""
    if name == "none":
        return family, t, f"{family}/test"
    if name in FAMILIES and name != family:
        return name, t, f"{name}/test"
    if name in task_shifts(t):
        return family, shifted(t, name), f"{family}-{name}/test"
    raise ValueError(f"unknown shift {name!r}; expected 'none', an image family other than "
                     f"{family} ({', '.join(sorted(f for f in FAMILIES if f != family))}) or a "
                     f"measurement shift of task {t.kind!r} ({', '.join(task_shifts(t))})")


def registered_factory(name: str, t: Task, device="cpu") -> Callable:
    """``factory(op)`` of the registered method ``name`` for task ``t``: its reconstructor
    bound to ``op``, returning ``(x_hat, scale)`` when the method has its own uncertainty."""
    def factory(op):
        recon = build_method(name, t, op=op, device=device)
        return getattr(recon, "uncertainty", recon)
    return factory


def _finite_or_none(v: float) -> Optional[float]:
    return float(v) if math.isfinite(v) else None


def _run(recon, op, dataset, n: int, batch_size: int, noise_std, tick,
         intervals: Optional[PixelIntervals] = None) -> dict:
    """Reconstruct the first n samples of ``dataset`` batch by batch; per-image statistics.

    Without ``intervals`` the pixel ratios (for calibration) are kept, with them only the
    per-image coverage and mean width, so memory stays O(batch) on the test sets.
    """
    out: Dict[str, list] = {}
    seconds = 0.0
    for start in range(0, n, batch_size):
        y, x = dataset.batch(range(start, min(start + batch_size, n)))
        with torch.no_grad():
            t0 = time.perf_counter()
            output = recon(y)
            seconds += time.perf_counter() - t0
            first = output[0] if isinstance(output, tuple) else output
            if not isinstance(first, torch.Tensor) or first.shape != x.shape:
                got = tuple(first.shape) if isinstance(first, torch.Tensor) else type(first).__name__
                raise ValueError(f"a reconstruction callable must return images of shape "
                                 f"{tuple(x.shape)} (or a pair of them: x_hat, scale), got {got}")
            x_hat, scale, kind = split_scale(output, op, y)
            x_hat, scale = x_hat.to(x.dtype), scale.to(x.real.dtype)
            stats = {"psnr": psnr(x_hat, x), "ssim": ssim(x_hat, x), "rmse": image_rmse(x_hat, x),
                     "dc": data_consistency(op, x_hat, y, noise_std(y)),
                     "corr": uncertainty_error_correlation(scale, x_hat, x),
                     "mean_scale": scale.double().reshape(x.shape[0], -1).mean(1)}
            if intervals is None:
                stats["ratios"] = pixel_ratios(x_hat, x, scale)
            else:
                stats["coverage"] = intervals.coverage(x_hat, scale, x)
                stats["width"] = intervals.width(scale).reshape(x.shape[0], -1).mean(1)
        for k, v in stats.items():
            out.setdefault(k, []).append(v)
        tick(y.shape[0])
    res = {k: torch.cat(v) for k, v in out.items()}
    res["seconds"] = seconds
    res["scale_kind"] = kind
    return res


def _nanmean_or_none(t: torch.Tensor) -> Optional[float]:
    t = t[~torch.isnan(t)]
    return float(t.mean()) if t.numel() else None


def generalisation_report(methods: Dict[str, Callable], shifts: Sequence[str], n: int = 100,
                          alpha: float = 0.1, calibration_n: int = 200,
                          progress: Optional[Callable[[int, int], None]] = None,
                          batch_size: int = 50,
                          noise_std: Optional[Callable[[torch.Tensor], torch.Tensor]] = None,
                          task: Union[str, dict, Task] = "ct", family: str = "ellipses") -> dict:
    """Quality, distribution-free bounds and shift detection of methods under distribution shifts.

    For each method, calibrated once on the ``family`` *validation* split of ``task`` (its first
    ``calibration_n`` samples; held out from training and testing): per-pixel intervals
    (:class:`PixelIntervals`, scale from :func:`scale_from_residual`), an RMSE bound
    (:class:`ImageErrorBound`), and the data-consistency scores (:func:`data_consistency` with
    ``sigma = noise_std(y)``) that shift detection compares against.  Then on the first ``n``
    test samples of every shift: PSNR/SSIM (DIVal convention), time per image, the bounds'
    empirical coverage, and the detection AUROC of data consistency (in-distribution test
    scores against this shift's) and the fraction flagged (conformal p-value < alpha).  The
    bounds are guaranteed only for "none"; on the shifts the report shows whether they hold.

    Parameters
    ----------
    methods : dict or list of str
        Registered method names (:func:`registered_factory` builds each for ``task``), or
        ``name -> factory``; ``factory(op)`` returns a callable mapping data (B, 1, A, D) to
        images (B, 1, H, W) for operator ``op`` (learned models rebind to ``op`` in there),
        or to a pair ``(x_hat, scale)`` whose per-pixel ``scale`` (e.g. a deep ensemble's
        standard deviation) replaces the data-residual scale (see :func:`split_scale`).
    shifts : sequence of str
        ``"none"`` (``family`` under ``task``), another image family of
        ``tomolearn.data.FAMILIES``, or a measurement shift registered for the task
        (:func:`shift_names`).  ``"none"`` is added first if missing, so that gaps can be
        computed.
    n : int
        Test samples per shift.
    alpha : float in (0, 1)
        Miscoverage level of both bounds and false-alarm level of the detector.  Finite
        bounds need ``calibration_n >= 1/alpha - 1``; otherwise they are infinite (reported
        as null, coverage 1) and nothing is flagged.
    calibration_n : int
        Calibration samples (the family's validation split).
    progress : callable(done, total), optional
        Called after every batch with the images processed so far and in all.
    batch_size : int
    noise_std : callable, optional
        ``noise_std(y) -> (N,)`` noise std estimate from the data alone; default the
        task's own (:meth:`tomolearn.registry.Task.noise_std`, in distribution).
    task : str, dict or Task
        The task the methods are calibrated and tested on (default ``"ct"``).
    family : str
        The image family of the training distribution (default ``"ellipses"``).

    Returns
    -------
    dict
        ``{"results": rows, "alpha": alpha, "calibration": {...}}``; one row per (method,
        shift) with ``method, dataset, shift, n, psnr, psnr_std, ssim, ssim_std,
        seconds_per_image, psnr_delta, ssim_delta`` (this shift minus in-distribution:
        negative is worse, the sign convention of every Δ tomolearn prints),
        ``alpha, coverage, interval_width, rmse_bound, bound_coverage, detection_auroc``
        (null for "none"), ``flagged``, ``scale`` ("residual" or "own"),
        ``uncertainty_error_correlation`` (mean over images of the pixel-wise Pearson
        correlation of the scale map with the absolute error,
        :func:`uncertainty_error_correlation`) and ``uncertainty_rmse_spearman`` (Spearman
        correlation over images of the mean scale with the RMSE; null for the residual scale,
        which has mean 1 in every image); ``calibration`` holds per method ``lambda``,
        ``pixel_risk``, ``rmse_bound``, ``scale`` and the mean calibration data-consistency
        score.
        Infinite values are given as null (None) so the dict is valid JSON.
    """
    t = as_task(task)
    noise_std = t.noise_std if noise_std is None else noise_std
    alpha = _check_alpha(alpha)
    if isinstance(methods, (list, tuple)):
        methods = {name: registered_factory(name, t) for name in methods}
    if not isinstance(methods, dict) or not methods:
        raise ValueError("methods must be a non-empty dict of name -> factory(op)")
    for name, factory in methods.items():
        if not callable(factory):
            raise TypeError(f"methods[{name!r}] must be callable factory(op), "
                            f"got {type(factory).__name__}")
    if isinstance(shifts, str):
        raise TypeError(f"shifts must be a list of names, got the string {shifts!r}")
    shifts = list(dict.fromkeys(shifts))
    if "none" not in shifts:
        shifts.insert(0, "none")
    resolved = {s: _resolve_shift(s, t, family) for s in shifts}
    for name, value in (("n", n), ("calibration_n", calibration_n), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    if n < 2 or calibration_n < 2:
        raise ValueError(f"need n >= 2 and calibration_n >= 2, got n={n}, "
                         f"calibration_n={calibration_n}")
    if calibration_n < 1 / alpha - 1 - _TOL:
        warnings.warn(f"calibration_n={calibration_n} < 1/alpha - 1 = {1 / alpha - 1:g}: the "
                      f"bounds at alpha={alpha} are infinite", RuntimeWarning, stacklevel=2)

    total = len(methods) * (calibration_n + n * len(shifts))
    done = [0]

    def tick(k):
        done[0] += k
        if progress is not None:
            progress(done[0], total)

    calibration_ds = SimulatedDataset(family, "validation", t, size=calibration_n)
    rows, calibration = [], {}
    for method, factory in methods.items():
        op = calibration_ds.operator()
        cal = _run(factory(op), op, calibration_ds, calibration_n, batch_size, noise_std, tick)
        intervals = PixelIntervals.from_ratios(cal["ratios"], alpha)
        rmse_bound = ImageErrorBound.calibrate(cal["rmse"], alpha)
        calibration[method] = {
            "lambda": _finite_or_none(intervals.lam), "pixel_risk": intervals.risk,
            "rmse_bound": _finite_or_none(rmse_bound.bound),
            "data_consistency_mean": float(cal["dc"].mean()), "scale": cal["scale_kind"],
        }
        per_shift = {}
        for shift in shifts:
            family, spec, label = resolved[shift]
            ds = SimulatedDataset(family, "test", spec, size=n)
            op = ds.operator()
            res = _run(factory(op), op, ds, n, batch_size, noise_std, tick, intervals)
            pvals = conformal_pvalues(cal["dc"], res["dc"])
            per_shift[shift] = res
            rows.append({
                "task": t.kind, "method": method, "dataset": label, "shift": shift, "n": n,
                "psnr": float(res["psnr"].mean()), "psnr_std": float(res["psnr"].std()),
                "ssim": float(res["ssim"].mean()), "ssim_std": float(res["ssim"].std()),
                "seconds_per_image": res["seconds"] / n,
                "alpha": alpha,
                "coverage": float(res["coverage"].mean()),
                "interval_width": _finite_or_none(float(res["width"].mean())),
                "rmse_bound": _finite_or_none(rmse_bound.bound),
                "bound_coverage": float(rmse_bound.covers(res["rmse"]).double().mean()),
                "flagged": float((pvals < alpha).double().mean()),
                "scale": res["scale_kind"],
                "uncertainty_error_correlation": _nanmean_or_none(res["corr"]),
                # the residual scale has mean 1 in every image: no image-level information
                "uncertainty_rmse_spearman": None if res["scale_kind"] == "residual" else
                _finite_or_none(spearman(res["mean_scale"], res["rmse"])),
            })
        ref = per_shift["none"]
        for row in rows[-len(shifts):]:
            res = per_shift[row["shift"]]
            row["psnr_delta"] = float(res["psnr"].mean() - ref["psnr"].mean())
            row["ssim_delta"] = float(res["ssim"].mean() - ref["ssim"].mean())
            row["detection_auroc"] = (None if row["shift"] == "none"
                                      else auroc(ref["dc"], res["dc"]))
    return {"results": rows, "alpha": alpha,
            "task": t.spec(),
            "calibration": {"dataset": f"{family}/validation", "n": calibration_n,
                            "noise_std": getattr(noise_std, "__name__",
                                                                      repr(noise_std)),
                            "methods": calibration}}
