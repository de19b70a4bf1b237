"""The demo's distribution-free error bounds: calibration, per-image bounds, a text table.

:func:`_calibrate_bounds` calibrates, per method, per-pixel conformal intervals, an RMSE
bound and the data-consistency scores that shift detection compares against, on held-out
validation samples of the distribution the learned methods were trained on;
:func:`_image_bounds` applies them to one demo image; :func:`format_bounds_table` shows the
bound columns of :func:`tomolearn.studies.demo.run_demo` rows.
"""

from __future__ import annotations

import math
from typing import Callable, Dict, Optional, Sequence, Tuple

import torch

from ..uq import (ImageErrorBound, PixelIntervals, conformal_pvalues, data_consistency,
                  image_rmse, pixel_ratios, split_scale, uncertainty_error_correlation)

__all__ = ["format_bounds_table"]


def _finite(v: float) -> Optional[float]:
    """``v`` as a float, or None when it is infinite (so that it is valid JSON)."""
    return float(v) if math.isfinite(v) else None


def _with_uncertainty(recon: Callable) -> Callable:
    """The method's own ``(x_hat, scale)`` reconstructor where it has one, else ``recon``."""
    return getattr(recon, "uncertainty", recon)


def _calibrate_bounds(recons: Dict[str, Callable], dataset, op, noise_std: Callable,
                      alpha: float, calibration_n: int, dev: torch.device, batch_size: int,
                      tick: Callable[[int], None]) -> dict:
    """Calibrate per-pixel intervals, an RMSE bound and shift-detection scores per method.

    Every method (``recons``: name -> ``recon(y)`` built on ``op``) reconstructs the first
    ``calibration_n`` samples of ``dataset`` (the training family's *validation* split under
    the task kind's registered default), simulated once, batch by batch, and shared by the
    methods.  Data consistency is scored with ``noise_std(y)`` (that task's noise model).

    The scale of the intervals is the method's own where it has one (a deep ensemble's
    standard deviation), else the data-residual scale (:func:`tomolearn.uq.split_scale`).

    Returns
    -------
    dict
        ``method -> {"intervals": uq.PixelIntervals, "rmse_bound": uq.ImageErrorBound,
        "dc": (n,) float64 tensor of data-consistency scores (CPU), "scale": "own" or
        "residual"}``.
    """
    acc = {m: {"ratios": [], "rmse": [], "dc": []} for m in recons}
    for start in range(0, calibration_n, batch_size):
        y, x = dataset.batch(range(start, min(start + batch_size, calibration_n)))
        y, x = y.to(dev), x.to(dev)
        for m, recon in recons.items():
            with torch.no_grad():
                rec, scale, kind = split_scale(_with_uncertainty(recon)(y), op, y)
            rec, scale = rec.to(x.dtype), scale.to(x.real.dtype)
            a = acc[m]
            a["scale"] = kind
            a["ratios"].append(pixel_ratios(rec, x, scale).cpu())
            a["rmse"].append(image_rmse(rec, x).cpu())
            a["dc"].append(data_consistency(op, rec, y, noise_std(y)).cpu())
            tick(y.shape[0])
    return {m: {"intervals": PixelIntervals.from_ratios(torch.cat(a["ratios"]), alpha),
                "rmse_bound": ImageErrorBound.calibrate(torch.cat(a["rmse"]), alpha),
                "dc": torch.cat(a["dc"]), "scale": a["scale"]}
            for m, a in acc.items()}


def _calibration_summary(calibration: dict) -> dict:
    """Per method, what ``metrics.json`` records of its calibration (JSON values)."""
    return {m: {"lambda": _finite(c["intervals"].lam), "pixel_risk": c["intervals"].risk,
                "rmse_bound": _finite(c["rmse_bound"].bound),
                "data_consistency_mean": float(c["dc"].mean()), "scale": c["scale"]}
            for m, c in calibration.items()}


def _image_bounds(cal: dict, op, rec: torch.Tensor, scale: torch.Tensor, y: torch.Tensor,
                  x: torch.Tensor, alpha: float, noise_std: Callable) -> Tuple[dict, dict]:
    """Maps and bounds of one reconstruction ``rec`` (1, 1, H, W) of data ``y`` (1, 1, ...).

    ``scale`` (1, 1, H, W) is the per-pixel scale of the intervals (:func:`uq.split_scale`);
    ``noise_std`` the calibration's (data consistency is scored as in calibration).
    Returns ``(maps, bounds)``: maps ``uncertainty`` (interval half-width ``lam * s``) and
    ``interval_width`` (``2 lam s``), (H, W) float32 numpy arrays in image units; bounds
    ``rmse_bound`` (image units), ``rmse``, ``covered`` (RMSE <= bound), ``coverage`` (fraction
    of pixels inside their interval), ``interval_width`` (mean), ``data_consistency``,
    ``p_value`` (conformal, against the calibration scores), ``flagged`` (p < alpha) and
    ``uncertainty_error_correlation`` (Pearson correlation of the map with the absolute error
    over the pixels; None for a constant map).
    """
    rec, scale = rec.detach().to(x.dtype), scale.detach().to(x.real.dtype)
    intervals, bound = cal["intervals"], cal["rmse_bound"]
    width = intervals.width(scale)
    corr = float(uncertainty_error_correlation(scale, rec, x)[0])
    rmse = image_rmse(rec, x)
    dc = data_consistency(op, rec, y, noise_std(y))
    p = float(conformal_pvalues(cal["dc"], dc.cpu())[0])
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
    """Plain-text table of the error-bound columns of :func:`~tomolearn.studies.demo.run_demo` rows.

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
