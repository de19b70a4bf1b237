"""Bias-noise curves: a task's figures of merit along parameter sweeps of registered methods.

A task that has figures of merit for an image family (:meth:`Task.figures_of_merit`, e.g. PET's
NEMA contrast recovery per sphere and background variability) may declare sweeps in
``Task.figure_sweeps``: ``(family, label, method, parameter, values, fixed params)``, e.g. OSEM
over its iterations, MAP over its prior strength.  :func:`figure_sweeps` reconstructs the first
``n`` test images of the family along each sweep (under ``task.for_family(family)``) and at
the registered defaults of other methods (one point each), and :func:`bias_noise_figure` plots
one figure (``y_key``, e.g. ``crc``) against another (``x_key``, e.g. ``background_variability``)
per sub-key (e.g. per sphere): a method above and left of a curve recovers more contrast at the
same noise.  Modality-free: any task that declares sweeps gets them, in the demo too
(``tomolearn demo --task pet``: one extra figure).
"""

from __future__ import annotations

import io
import time
from typing import Callable, List, Optional, Sequence, Union

import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..data import SimulatedDataset
from ..metrics import psnr
from ..registry import Task, build_method
from ..registry import task as as_task
from .quality import mean_figures

__all__ = ["figure_sweeps", "bias_noise_figure", "demo_figures"]


def _point(t: Task, family: str, y, x, op, name: str, params: dict, device) -> dict:
    recon = build_method(name, t, op=op, device=device, params=params)
    t0 = time.perf_counter()
    with torch.no_grad():
        out = recon(y)
    seconds = time.perf_counter() - t0
    figures = t.figures_of_merit(family, out, x)
    if figures is None:
        raise ValueError(f"task {t.kind!r} has no figures of merit for family {family!r}")
    return {"psnr": float(psnr(out, x).mean()), "seconds": seconds, **mean_figures(figures)}


def figure_sweeps(task: Union[str, dict, Task], n: int = 1, methods: Sequence[str] = (),
                  device="cpu", progress: Optional[Callable[[str], None]] = None) -> List[dict]:
    """Figures of merit along ``task.figure_sweeps`` and at the defaults of ``methods``.

    Returns one row per point: ``family, label, method, parameter, value`` (None for a
    method's default point, whose ``label`` is the method), ``n``, ``psnr`` (mean dB),
    ``seconds`` (all ``n`` images) and the task's mean figures of merit (``crc``, ...).
    ``ValueError`` if the task declares no sweeps.
    """
    t0 = as_task(task)
    if not t0.figure_sweeps:
        raise ValueError(f"task {t0.kind!r} declares no figure sweeps (Task.figure_sweeps)")
    rows = []
    for family in dict.fromkeys(s[0] for s in t0.figure_sweeps):
        t = t0.for_family(family)
        dataset = SimulatedDataset(family, "test", t, size=n)
        y, x = dataset.batch(range(n))
        y, x = y.to(device), x.to(device)
        op = dataset.operator()
        for fam, label, name, parameter, values, fixed in t0.figure_sweeps:
            if fam != family:
                continue
            for value in values:
                if progress is not None:
                    progress(f"{family}: {label}, {parameter} = {value}")
                row = _point(t, family, y, x, op, name, {**fixed, parameter: value}, device)
                rows.append({"family": family, "label": label, "method": name,
                             "parameter": parameter, "value": value, "n": n, **row})
        for name in methods:
            if progress is not None:
                progress(f"{family}: {name}")
            rows.append({"family": family, "label": name, "method": name, "parameter": None,
                         "value": None, "n": n, **_point(t, family, y, x, op, name, {}, device)})
    return rows


def bias_noise_figure(rows: List[dict], x_key: str = "background_variability",
                      y_key: str = "crc", dpi: int = 90) -> bytes:
    """PNG bytes: ``y_key`` against ``x_key`` of :func:`figure_sweeps` rows, one panel per
    sub-key (e.g. sphere diameter), a line per sweep (its parameter values annotated at the
    ends) and a marker per method's default point (its PSNR in the legend: a method that wins
    PSNR but loses contrast shows as a high-PSNR marker below the curves)."""
    rows = [r for r in rows if isinstance(r.get(y_key), dict) and isinstance(r.get(x_key), dict)]
    if not rows:
        raise ValueError(f"no rows with {y_key!r} and {x_key!r} figures to plot")
    subs = list(rows[0][y_key])
    cols = min(3, len(subs))
    panels = -(-len(subs) // cols)
    height = 3.0 * panels + 0.5
    fig = Figure(figsize=(3.4 * cols, height))
    FigureCanvasAgg(fig)
    labels = list(dict.fromkeys(r["label"] for r in rows))
    for i, sub in enumerate(subs):
        ax = fig.add_subplot(panels, cols, i + 1)
        for j, label in enumerate(labels):
            pts = [r for r in rows if r["label"] == label]
            xs = [r[x_key][sub] for r in pts]
            ys = [r[y_key][sub] for r in pts]
            default = pts[0]["parameter"] is None
            name = f"{label} ({pts[0]['psnr']:.1f} dB)" if default else label
            style = dict(color=f"C{j}", label=name if i == 0 else None)
            if default:
                ax.plot(xs, ys, "s", markersize=6, **style)
                continue
            ax.plot(xs, ys, "o-", markersize=3, **style)
            for r in (pts[0], pts[-1]):
                ax.annotate(f"{r['value']:g}", (r[x_key][sub], r[y_key][sub]), fontsize=6,
                            textcoords="offset points", xytext=(3, 3), color=f"C{j}")
        ax.set_title(f"{sub}" + (" mm" if sub.replace(".", "").isdigit() else ""), fontsize=9)
        ax.set_xlabel(x_key.replace("_", " "), fontsize=8)
        ax.set_ylabel(y_key.upper() if len(y_key) <= 4 else y_key, fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    fig.legend(loc="lower center", ncol=min(len(labels), 6), fontsize=7, frameon=False)
    fig.tight_layout(rect=(0, 0.4 / height, 1, 1))
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, facecolor="white", metadata={"Software": None})
    return buf.getvalue()


def demo_figures(task: Union[str, dict, Task], methods: Sequence[str] = (), n: int = 1,
                 device="cpu", progress: Optional[Callable[[str], None]] = None) -> tuple:
    """The demo's extra figures of ``task``: ``([(caption, PNG bytes)], rows)``, a bias-noise
    figure of :func:`figure_sweeps` (``methods`` not swept as single points) on ``n`` images;
    ``([], [])`` if the task declares no sweeps."""
    t = as_task(task)
    if not t.figure_sweeps:
        return [], []
    swept = {s[2] for s in t.figure_sweeps}
    rows = figure_sweeps(t, n=n, methods=[m for m in methods if m not in swept], device=device,
                         progress=progress)
    families = ", ".join(dict.fromkeys(r["family"] for r in rows))
    sweeps = "; ".join(f"{s[1]} {', '.join(f'{v:g}' for v in s[4])}" for s in t.figure_sweeps)
    caption = (f"Bias-noise curves on {families} (first {n} test image{'s' * (n > 1)}): "
               f"contrast recovery against background variability per sphere, along {sweeps}; "
               f"other methods at their defaults (squares, PSNR in the legend).  Up and to the "
               f"left is better.")
    return [(caption, bias_noise_figure(rows))], rows
