"""``tomolearn info``: versions, devices, threads and the ray-transform backends."""

from __future__ import annotations

import argparse
import os
import platform

import numpy
import scipy
import torch

from .. import __version__
from ..ct import RayTransform
from ..modalities.ct.speed import OPERATOR_CASES
from ..registry import method, methods, shifts, task, tasks
from ..weights import architecture_description, architectures
from .options import HelpFormatter, EXAMPLES, add_output_flags, check_out_file, write_json


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``info`` verb to ``subparsers`` (the top parser's subparsers action)."""
    p = subparsers.add_parser("info", help="versions, devices, threads and operator backends",
                              epilog="examples:\n  " + EXAMPLES["info"],
                              formatter_class=HelpFormatter)
    p.add_argument("--json", metavar="FILE", help="also write the information as JSON")
    add_output_flags(p, "replace an existing --json file")
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    """Print versions, devices, threads, the registered tasks and methods, and the operator
    backends (and write them as JSON with ``--json``)."""
    if args.json:
        check_out_file(args.json, "--json", args.overwrite, args.parents)
    devices = ["cpu"] + [f"cuda:{i} ({torch.cuda.get_device_name(i)})"
                         for i in range(torch.cuda.device_count())]
    try:
        import astra  # noqa: F401
        astra_version = astra.__version__
    except ImportError:
        astra_version = None
    backends = {}
    for name, case in OPERATOR_CASES.items():
        op = RayTransform(case.make_geometry(), (case.image_size, case.image_size))
        g = op.geometry
        backends[name] = {
            "geometry": f"{type(g).__name__}, {g.n_angles} angles x {g.n_detectors} detectors, "
                        f"{case.image_size}x{case.image_size} image",
            "backend": op.backend, "estimated_nnz": op.estimated_nnz(),
            "stored_angles": int(len(op._symmetry()[0])),
        }
    info = {
        "tomolearn": __version__, "python": platform.python_version(),
        "platform": platform.platform(), "torch": torch.__version__, "numpy": numpy.__version__,
        "scipy": scipy.__version__, "astra_toolbox": astra_version, "devices": devices,
        "torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
        "operator_backends": backends,
        "tasks": {k: {"spec": task(k).spec(), "units": task(k).units, "methods": methods(k),
                      "shifts": shifts(k)} for k in tasks()},
        "methods": {m: {"kind": method(m).kind, "description": method(m).description,
                        "weights": method(m).weights} for m in methods()},
        "architectures": {a: architecture_description(a) for a in architectures()},
    }
    print(f"tomolearn {info['tomolearn']}  (Python {info['python']}, {info['platform']})")
    print(f"torch {info['torch']}, numpy {info['numpy']}, scipy {info['scipy']}, "
          f"astra-toolbox {astra_version or 'not installed (test-only peer)'}")
    print(f"devices: {', '.join(devices)}")
    print(f"threads: torch {info['torch_threads']} of {info['cpu_count']} CPUs")
    for k, t in info["tasks"].items():
        print(f"task {k}: methods {', '.join(t['methods'])}; shifts {', '.join(t['shifts'])}")
    print(f"trainable architectures (tomolearn train model.name): "
          f"{', '.join(info['architectures'])}")
    print("ray-transform backends (backend='auto'):")
    for name, b in backends.items():
        print(f"  {name:<9} {b['geometry']}: {b['backend']} "
              f"(~{b['estimated_nnz'] / 1e6:.1f} M non-zeros, {b['stored_angles']} angles stored)")
    if args.json:
        write_json(args.json, info)
    return 0
