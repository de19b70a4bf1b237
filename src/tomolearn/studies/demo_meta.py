"""What a demo report says about itself: the title, description, settings, bounds summary and
the command that reruns it (:func:`tomolearn.studies.demo.run_demo`), and which methods the
demo does not bound (:func:`no_bounds_reason`)."""

from __future__ import annotations

import json
import shlex
import sys
from typing import Optional

import torch

from ..registry import Task, method
from ..registry import task as as_task
from ..report import software_versions
from .demo_bounds import _calibration_summary

__all__ = ["no_bounds_reason"]


def no_bounds_reason(name: str) -> Optional[str]:
    """Why the demo does not calibrate error bounds for the method ``name`` (registered as
    ``slow``), or None when it does."""
    if not method(name).slow:
        return None
    return (f"{name} is too slow to calibrate in a demo (seconds per image, and calibration "
            f"reconstructs every calibration image); `tomolearn evaluate --methods {name}` "
            f"computes its bounds")


def _flat(d: dict, prefix: str = "") -> dict:
    """A nested spec as ``{"noise.level": 0.025, ...}``."""
    out = {}
    for k, v in d.items():
        out.update(_flat(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
    return out


def _task_summary(t: Task) -> str:
    """``"ct (n_angles=20, noise.level=0.05; else the registered default)"``: the fields (but the
    seed) where ``t`` differs from its kind's registered default."""
    mine, default = _flat(t.to_dict()), _flat(as_task(t.kind).to_dict())
    changed = [f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
               for k, v in mine.items() if k != "seed" and default.get(k) != v]
    return (f"{t.kind} ({', '.join(changed)}; else the registered default)" if changed
            else f"{t.kind} (the registered default)")


def _literal(v) -> str:
    """Plain data (a spec, names) as a Python literal, strings in double quotes."""
    if isinstance(v, dict):
        return "{" + ", ".join(f"{json.dumps(str(k))}: {_literal(x)}" for k, x in v.items()) + "}"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(map(_literal, v)) + "]"
    return json.dumps(v) if isinstance(v, str) else repr(v)


def _default_command(out_dir, s: dict, dev: torch.device) -> str:
    """A shell command that reruns this demo through the library (the CLI passes its own argv)."""
    lit = _literal
    call = (f"from tomolearn.studies.demo import run_demo; run_demo({lit(str(out_dir))}, "
            f"task={lit(s['task'].spec())}, n_images={s['n_images']}, "
            f"methods={lit(list(s['methods']))}, families={lit(list(s['families']))}, "
            f"seed={s['seed']}, device={lit(str(dev))}, "
            f"training_family={lit(s['training_family'])}, "
            + (f"alpha={s['alpha']!r}, calibration_n={s['calibration_n']}, " if s["bounds"]
               else "bounds=False, ")
            + "overwrite=True)")
    return f"{shlex.quote(sys.executable)} -c {shlex.quote(call)}"


def _meta(s: dict, cal: Task, calibration: dict, command: str, dev: torch.device,
          timings: dict) -> dict:
    """The report's title, description, settings, calibration, versions and timings."""
    t, methods, families, alpha = s["task"], s["methods"], s["families"], s["alpha"]
    bound_methods, train = s["bound_methods"], s["training_family"]
    unbounded = [m for m in methods if s["bounds"] and no_bounds_reason(m)]
    shifted = t.replace(seed=cal.seed) != cal
    bounds_meta, bounds_text = None, "off (bounds=False / --no-bounds)"
    if s["bounds"]:
        bounds_meta = {
            "alpha": alpha, "calibration": {
                "dataset": f"{train}/validation", "n": s["calibration_n"], "task": cal.spec(),
                "scale": "a method's own (deep ensembles: the members' standard deviation, "
                         "uq.scale_from_ensemble), else the data residual (uq.scale_from_residual)",
                "noise_std": f"the {cal.kind} task's noise_std (its noise model, from the data)"},
            "methods": _calibration_summary(calibration),
            "not_calibrated": {m: no_bounds_reason(m) for m in unbounded},
        }
        bounds_text = (
            f"alpha {alpha:g}, calibrated on the first {s['calibration_n']} {train} validation "
            f"images under task {_task_summary(cal)} for "
            + (", ".join(bound_methods) or "no method")
            + "; per image: uncertainty map (interval half-width), interval-width map, RMSE "
            "bound, conformal p-value of data consistency and a flag when p < alpha"
            + "".join(f"; none for {m}: {no_bounds_reason(m)}" for m in unbounded))
    description = (
        f"Task {_task_summary(t)} on {s['n_images']} held-out test image(s) from each of "
        f"{len(families)} image famil{'y' if len(families) == 1 else 'ies'}, reconstructed by "
        f"{', '.join(methods)}" + (f"; units: {t.units}" if t.units else "") + ". "
        f"{train.capitalize()} is the distribution the learned methods were trained on; the "
        "other families test how methods generalise."
        + ("" if not bound_methods else
           f" Error bounds (level alpha = {alpha:g}) are calibrated on held-out {train} under "
           f"task {_task_summary(cal)}; they are guaranteed only for images like those, and the "
           "shift flag marks images that do not look like them"
           + (" (every image here is measured differently, so all are out of distribution)"
              if shifted else "") + ".")
        + "".join(f" No error bounds for {m}: {no_bounds_reason(m)}." for m in unbounded))
    return {
        "title": f"tomolearn demo: {t.kind}",
        "description": description,
        "settings": {"task": t.kind, "families": families, "methods": methods,
                     "images per family": s["n_images"], "seed": s["seed"], "device": str(dev),
                     "torch threads": torch.get_num_threads(), "error bounds": bounds_text,
                     "training family": train, "task spec": t.spec(), "units": t.units},
        "bounds": bounds_meta,
        "command": command,
        "versions": software_versions(),
        "timings": timings,
        "timing_note": ("Wall-clock time of each reconstruction call, one image at a time (batch 1) "
                        f"on {dev}, after one untimed warm-up call per method (operators, "
                        "weights); simulation, calibration and bounds are excluded. Timings depend "
                        "on the machine and its load; nothing here is a timed assertion."),
    }
