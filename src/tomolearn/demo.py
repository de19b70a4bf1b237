"""The main job: simulate sparse-view CT of several image families, reconstruct, report.

:func:`run_demo` simulates held-out (test-split) samples of each image family
under one :class:`tomolearn.data.SimulationSpec` (parallel beam, 183
detectors, data simulated on a 400 x 400 grid against the inverse crime,
relative Gaussian noise), reconstructs them with each method through
:func:`tomolearn.benchmarks.reconstruct`, scores them with
:mod:`tomolearn.metrics` and writes a self-contained HTML report with
:func:`tomolearn.report.write_report`.
"""

from __future__ import annotations

import json
import platform
import shlex
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch

__all__ = ["run_demo", "DEFAULT_FAMILIES", "DEFAULT_METHODS"]

DEFAULT_METHODS = ("fbp", "tv")
DEFAULT_FAMILIES = ("ellipses", "shepp-logan", "ct-slice", "rectangles", "lesions")


def _versions() -> dict:
    import matplotlib

    from . import __version__

    return {"tomolearn": __version__, "python": platform.python_version(), "torch": torch.__version__,
            "numpy": np.__version__, "matplotlib": matplotlib.__version__,
            "platform": platform.platform()}


def _default_command(out_dir, n_images, angles, noise, methods, families, seed, device) -> str:
    """A shell command that reruns this demo through the library (the CLI passes its own argv)."""
    lit = json.dumps  # JSON strings and lists of strings are Python literals too, in double quotes
    call = (f"from tomolearn.demo import run_demo; run_demo({lit(str(out_dir))}, n_images={n_images}, "
            f"angles={angles}, noise={float(noise)!r}, methods={lit(list(methods))}, "
            f"families={lit(list(families))}, seed={seed}, device={lit(str(device))}, overwrite=True)")
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


def run_demo(out_dir, *, n_images: int = 2, angles: int = 30, noise: float = 0.025,
             methods: Sequence[str] = DEFAULT_METHODS, families: Sequence[str] = DEFAULT_FAMILIES,
             seed: int = 0, device="cpu", overwrite: bool = False, progress: bool = True,
             command: Optional[str] = None) -> dict:
    """Simulate, reconstruct and score sparse-view CT of several image families; write a report.

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
    methods : sequence of str
        Names :func:`tomolearn.benchmarks.reconstruct` knows
        (:data:`tomolearn.benchmarks.METHODS`: classical "fbp", "tv" and the
        learned ones, whose shipped weights are loaded during the untimed
        warm-up); an unknown method, or weights that do not load, raise
        before any image is reconstructed.
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
        tqdm progress bar on stderr.
    command : str, optional
        The command line shown in the report's "reproduce" section; default
        an equivalent ``tomolearn demo ...`` line.

    Returns
    -------
    dict
        What ``metrics.json`` holds: ``results`` (one row per family x
        method: ``method, dataset ("<family>/test"), n, psnr (dB), psnr_std,
        ssim, ssim_std, seconds_per_image`` plus ``family, angles, noise``
        and, for ellipses under the standard setting, DIVal's ``dival_psnr``
        and ``dival_ssim``), ``meta`` (settings, versions, timings in
        seconds, command), ``cases`` and ``table`` (plain text for a
        terminal); plus ``report``: the path of ``index.html``.
    """
    from tqdm import tqdm

    from . import benchmarks, metrics
    from .benchmarks import DIVAL_ELLIPSES, ELLIPSES_DEFAULTS, reconstruct
    from .data import FAMILIES, NoiseSpec, SimulatedDataset, SimulationSpec
    from .report import _check_out_dir, write_report

    t_start = time.perf_counter()
    # -- check everything before any work ----------------------------------------------------
    if isinstance(n_images, bool) or not isinstance(n_images, int) or n_images < 1:
        raise ValueError(f"n_images must be an int >= 1, got {n_images!r}")
    if isinstance(angles, bool) or not isinstance(angles, int) or angles < 1:
        raise ValueError(f"angles must be an int >= 1, got {angles!r}")
    if not isinstance(noise, (int, float)) or isinstance(noise, bool) or not 0 <= noise < 1:
        raise ValueError(f"noise must be a relative level in [0, 1), got {noise!r}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    methods, families = [str(m) for m in methods], [str(f) for f in families]
    if not methods:
        raise ValueError("methods is empty; give at least one, e.g. ('fbp', 'tv')")
    if not families:
        raise ValueError(f"families is empty; give some of {', '.join(sorted(FAMILIES))}")
    for what, names in (("method", methods), ("family", families)):
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"{what} {dupes[0]!r} given twice")
    known_methods = tuple(getattr(benchmarks, "METHODS", ()))
    learned = dict(getattr(benchmarks, "LEARNED", {}))
    if known_methods:
        unknown = [m for m in methods if m not in known_methods]
        if unknown:
            raise ValueError(f"unknown method {unknown[0]!r}; expected some of "
                             f"{', '.join(known_methods)}")
    unknown = [f for f in families if f not in FAMILIES]
    if unknown:
        raise ValueError(f"unknown image family {unknown[0]!r}; expected some of "
                         f"{', '.join(sorted(FAMILIES))}")
    dev = _resolve_device(device)
    out_dir = Path(out_dir)
    _check_out_dir(out_dir, overwrite)

    spec = SimulationSpec().replace(n_angles=angles, noise=NoiseSpec(kind="gaussian", level=float(noise)),
                                    seed=seed)
    op = SimulatedDataset(families[0], "test", spec, size=n_images).operator()
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
            raise
    _sync(dev)
    t_warm = time.perf_counter() - t0

    # -- simulate, reconstruct, score ----------------------------------------------------------
    scores = {(f, m): {"psnr": [], "ssim": [], "seconds": []} for f in families for m in methods}
    cases, t_sim = [], 0.0
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
                for m in methods:
                    bar.set_postfix_str(f"{family} #{i} {m}", refresh=False)
                    _sync(dev)
                    t0 = time.perf_counter()
                    with torch.no_grad():
                        rec = reconstruct(m, op, y)
                    _sync(dev)
                    seconds = time.perf_counter() - t0
                    p, s = float(metrics.psnr(rec, x)[0]), float(metrics.ssim(rec, x)[0])
                    entry = scores[(family, m)]
                    entry["psnr"].append(p)
                    entry["ssim"].append(s)
                    entry["seconds"].append(seconds)
                    case["reconstructions"][m] = rec[0, 0].detach().float().cpu().numpy()
                    case["metrics"][m] = {"psnr": p, "ssim": s, "seconds": seconds}
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
            rows.append({
                "method": m, "dataset": f"{family}/test", "n": n_images,
                "psnr": float(np.mean(e["psnr"])), "psnr_std": _std(e["psnr"]),
                "ssim": float(np.mean(e["ssim"])), "ssim_std": _std(e["ssim"]),
                "seconds_per_image": float(np.mean(e["seconds"])),
                "dival_psnr": ref[0], "dival_ssim": ref[1],
                "family": family, "angles": angles, "noise": float(noise),
                "params": dict(ELLIPSES_DEFAULTS.get(m, {})),
            })
            if m in learned:
                rows[-1]["weights"] = learned[m]

    if command is None:
        command = _default_command(out_dir, n_images, angles, noise, methods, families, seed, dev)
    t_rec = sum(sum(e["seconds"]) for e in scores.values())
    meta = {
        "title": "tomolearn demo: sparse-view CT reconstruction",
        "description": (
            f"{angles}-angle parallel-beam CT of {n_images} held-out test image(s) from each of "
            f"{len(families)} image famil{'y' if len(families) == 1 else 'ies'}, simulated on a "
            f"{spec.fine_size}×{spec.fine_size} grid (no inverse crime) with "
            f"{100 * noise:g} % relative Gaussian noise, reconstructed on the "
            f"{spec.image_size}×{spec.image_size} grid by {', '.join(methods)}. "
            "Ellipses are the training distribution of the learned methods (DIVal's benchmark); "
            "the other families test how methods generalise."),
        "settings": {"families": families, "methods": methods, "images per family": n_images,
                     "angles": angles, "noise (relative std)": float(noise), "seed": seed,
                     "device": str(dev), "torch threads": torch.get_num_threads(),
                     "simulation spec": spec.to_dict()},
        "command": command,
        "versions": _versions(),
        "timings": {"operator set-up and warm-up calls": t_warm, "simulation": t_sim,
                    "reconstruction (all timed calls)": t_rec},
        "timing_note": ("Wall-clock time of each reconstruction call, one image at a time (batch 1) "
                        f"on {dev}, after one untimed warm-up call per method (system matrix, "
                        "weights); simulation is excluded. Timings depend on the machine and its "
                        "load; nothing here is a timed assertion."),
    }
    t0 = time.perf_counter()
    # The report's own time is only known afterwards; record the time up to writing it.
    meta["timings"]["total before writing the report"] = t0 - t_start
    index = write_report(out_dir, cases, rows, meta, overwrite=overwrite)
    result = json.loads((index.parent / "metrics.json").read_text(encoding="utf-8"))
    result["report"] = str(index)
    result["seconds_total"] = time.perf_counter() - t_start
    return result
