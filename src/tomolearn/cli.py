"""The ``tomolearn`` command line.

Verbs: ``info``, ``demo``, ``data generate``, ``train``, ``reconstruct``,
``evaluate`` and ``benchmark {operators,ellipses}``; ``tomolearn VERB --help``
shows each one's options and examples (docs/cli.md has them all).  Bad input
(a missing file, an unknown method, a shape or geometry that does not fit, an
output that exists) gives a one-line error on stderr and exit status 2; no
traceback unless ``--debug``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shlex
import sys
import time
from pathlib import Path
from typing import Optional

from .files import atomic_write_bytes

EXAMPLES = {
    "info": "tomolearn info\n  tomolearn info --json info.json",
    "demo": ("tomolearn demo                                   # writes report/index.html\n"
             "  tomolearn demo --out demo1 --n-images 8 --seed 1 --json demo.json\n"
             "  tomolearn demo --out sparse --angles 20 --noise 0.05 --overwrite   # flagged: shifted\n"
             "  tomolearn demo --methods fbp --families ellipses,rectangles --no-bounds"),
    "reconstruct": ("tomolearn reconstruct --input sino.npy --method fbp --out rec.npy\n"
                    "  tomolearn reconstruct --input slice.dcm --method lpd --angles 30 --out rec.npy"
                    "   # + rec.png, rec.dcm\n"
                    "  tomolearn reconstruct --input phantom.png --method tv --noise 0.05 --seed 1 "
                    "--out tv.npy\n"
                    "  tomolearn reconstruct --input test.h5 --index 3 --method fbp --out s3.npy --overwrite"),
    "evaluate": ("tomolearn evaluate --model lpd-ellipses --shift all --json lpd.json --plot lpd.png\n"
                 "  tomolearn evaluate --methods fbp,tv,lpd --shift all --n 20 --calibration-n 50 --report study\n"
                 "  tomolearn evaluate --methods fbp,tv --n 20 --calibration-n 50 --markdown table.md\n"
                 "  tomolearn evaluate --methods fbp --shift noise-10% --n 4 --calibration-n 9 --alpha 0.2"),
    "data": ("tomolearn data generate ellipses --split train --out ellipses_train.h5\n"
             "  tomolearn data generate ellipses --split test --n 100 --shift noise-5% --out test_noise5.h5\n"
             "  tomolearn data generate rectangles --split test --n 100 --out rectangles.h5"),
    "train": ("tomolearn train configs/lpd-ellipses.yaml\n"
              "  tomolearn train my.yaml --out runs/lpd2 --max-steps 100   # then: --resume\n"
              "  tomolearn train configs/lpd-ensemble.yaml --set train.seed=2 --out runs/lpd-ensemble-2\n"
              "  torchrun --standalone --nproc_per_node 4 -m tomolearn train my.yaml   # data-parallel"),
    "benchmark": ("tomolearn benchmark operators\n"
                  "  tomolearn benchmark operators --geometries ellipses,fan --batches 1,16 "
                  "--json operators.json\n"
                  "  tomolearn benchmark ellipses --methods fbp,tv --n 100 --json ellipses.json\n"
                  "  tomolearn benchmark learned --batches 16 --json learned.json"),
}


_RECONSTRUCT_NOTES = """\
input:
  sinogram  .npy (A, D) or (1, A, D) array; .npz with one array or key 'sinogram'
            ('measurement'), optional 'ground_truth'; .h5 with dataset 'measurement' or
            'sinogram' (tomolearn data files: geometry from their spec, --index picks the
            sample, PSNR against their ground truth).  Geometry otherwise: parallel beam,
            A angles at the midpoints of [0, pi), D detectors spanning the image diagonal
            (spacing N*sqrt(2)/D), an N x N image (--image-size, default 128).
  image     .png (grey; colour is converted to luminance), a square 2-D .npy (values as
            stored) or a DICOM file (by content; CT in HU is read as attenuation 1/m and
            mapped to [0, 1] by mu/81.36, LoDoPaB's scale).  Resampled to N x N (area average),
            data simulated on a 400 x 400 grid (no inverse crime) with --angles, --noise
            and --seed; the summary shows PSNR/SSIM against the resampled image.
output:
  FILE.npy  float32 (N, N) in the input's units (1/m for CT DICOM), written atomically
  FILE.png  8-bit grey, ground-truth range (else 0.5-99.5 percentiles) mapped to 0-255
  FILE.dcm  DICOM input only: the input dataset with the reconstruction as pixel data
            (HU for CT), new SOP/series UIDs, ImageType DERIVED\\SECONDARY"""


class UsageError(Exception):
    """Bad input from the user: reported as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors: ``tomolearn VERB: error: ... (see ... --help)``."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _wrap(text: str) -> str:
    """A help description wrapped to 80 columns (the formatter keeps line breaks as given)."""
    import textwrap

    return textwrap.fill(text, 80)


def _add_debug(p: argparse.ArgumentParser) -> None:
    """``--debug`` after the verb too (``tomolearn VERB --debug``), same as before it."""
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                   help="show Python tracebacks on errors")


def _write_json(path: str, payload: dict) -> None:
    """Write ``payload`` to ``path`` atomically (checked by :func:`_check_out_file` before the work)."""
    atomic_write_bytes(Path(path), (json.dumps(payload, indent=2) + "\n").encode())


def _add_output_flags(p: argparse.ArgumentParser, overwrite_help: Optional[str] = None) -> None:
    """``--overwrite`` (unless the verb has its own) and ``--parents``, shared by every verb that writes."""
    if overwrite_help is not None:
        p.add_argument("--overwrite", action="store_true", help=overwrite_help)
    p.add_argument("--parents", action="store_true",
                   help="create missing folders of the output paths (refused otherwise)")


def _csv(value: str, kind=str):
    try:
        return [kind(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a comma-separated list, got {value!r}") from None


# -- info -------------------------------------------------------------------------------
def cmd_info(args) -> int:
    import numpy
    import scipy
    import torch

    import tomolearn
    from .benchmarks import OPERATOR_CASES
    from .ct import RayTransform

    if args.json:
        _check_out_file(args.json, "--json", args.overwrite, args.parents)
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
        "tomolearn": tomolearn.__version__, "python": platform.python_version(),
        "platform": platform.platform(), "torch": torch.__version__, "numpy": numpy.__version__,
        "scipy": scipy.__version__, "astra_toolbox": astra_version, "devices": devices,
        "torch_threads": torch.get_num_threads(), "cpu_count": os.cpu_count(),
        "operator_backends": backends,
    }
    print(f"tomolearn {info['tomolearn']}  (Python {info['python']}, {info['platform']})")
    print(f"torch {info['torch']}, numpy {info['numpy']}, scipy {info['scipy']}, "
          f"astra-toolbox {astra_version or 'not installed (test-only peer)'}")
    print(f"devices: {', '.join(devices)}")
    print(f"threads: torch {info['torch_threads']} of {info['cpu_count']} CPUs")
    print("ray-transform backends (backend='auto'):")
    for name, b in backends.items():
        print(f"  {name:<9} {b['geometry']}: {b['backend']} "
              f"(~{b['estimated_nnz'] / 1e6:.1f} M non-zeros, {b['stored_angles']} angles stored)")
    if args.json:
        _write_json(args.json, info)
    return 0


# -- demo ---------------------------------------------------------------------------------
def _check_parent(target: Path, flag: str, parents: bool) -> None:
    """The folder an output goes into must exist (or ``--parents`` lets us create it)."""
    parent = target.absolute().parent
    if parent.exists():
        if not parent.is_dir():
            raise UsageError(f"{flag} {target}: {target.parent} is not a directory")
        return
    if not parents:
        raise UsageError(f"{flag} {target}: the folder {target.parent} does not exist (pass "
                         f"--parents to create it)")


def _check_out_dir(path, flag: str, overwrite: bool, parents: bool = False) -> Path:
    """A report directory: absent, empty, or non-empty with ``--overwrite``; its parent exists."""
    from .report import check_report_dir

    _check_parent(Path(path), flag, parents)
    try:
        check_report_dir(path, overwrite)
    except OSError as e:
        raise UsageError(f"{flag}: {e}") from None
    return Path(path)


def _check_out_file(path, flag: str, overwrite: bool, parents: bool = False,
                    suffix: Optional[str] = None) -> Path:
    """Check an output file path before any work: not a directory, right suffix, free to
    write (``--overwrite`` to replace a file), in an existing folder (or ``--parents``)."""
    target = Path(path)
    if suffix is not None and target.suffix.lower() != suffix:
        raise UsageError(f"{flag} {path}: expected a {suffix} file name")
    if target.is_dir():
        raise UsageError(f"{flag} {path}: is a directory")
    if target.exists() and not overwrite:
        raise UsageError(f"{flag} {path}: file exists (pass --overwrite to replace it)")
    _check_parent(target, flag, parents)
    return target


def _note_unflaggable(verb: str, calibration_n: int, alpha: float) -> None:
    """Warn (stderr) when no conformal p-value can fall below alpha: 1/(n+1) >= alpha."""
    if calibration_n <= 1 / alpha - 1 + 1e-9:
        print(f"tomolearn {verb}: note: with {calibration_n} calibration images the smallest "
              f"p-value is 1/{calibration_n + 1} >= alpha {alpha:g}, so no image can be flagged; "
              f"use --calibration-n {math.floor(1 / alpha + 1e-9)} or more", file=sys.stderr)


def cmd_demo(args) -> int:
    """Simulate sparse-view CT of several image families, reconstruct, bound the errors, report."""
    from .demo import default_methods, run_demo

    if args.n_images < 1:
        raise UsageError(f"--n-images must be at least 1, got {args.n_images}")
    if not 0 <= args.noise < 1:
        raise UsageError(f"--noise must be a relative level in [0, 1), got {args.noise}")
    if args.angles < 1:
        raise UsageError(f"--angles must be at least 1, got {args.angles}")
    if args.seed < 0:
        raise UsageError(f"--seed must be non-negative, got {args.seed}")
    if not 0 < args.alpha < 1:
        raise UsageError(f"--alpha must lie strictly between 0 and 1, got {args.alpha}")
    if not 2 <= args.calibration_n <= 3200:
        raise UsageError(f"--calibration-n must be in [2, 3200] (the validation split), "
                         f"got {args.calibration_n}")
    if not args.no_bounds and args.calibration_n < math.ceil(1 / args.alpha - 1 - 1e-9):
        raise UsageError(f"--calibration-n {args.calibration_n} is too small for --alpha "
                         f"{args.alpha:g}: finite bounds need at least "
                         f"{math.ceil(1 / args.alpha - 1 - 1e-9)} calibration images")
    out = _check_out_dir(args.out, "--out", args.overwrite, args.parents)
    if args.json:
        _check_out_file(args.json, "--json", args.overwrite, args.parents)
    methods = args.methods if args.methods is not None else default_methods()
    if not args.no_bounds:
        _note_unflaggable("demo", args.calibration_n, args.alpha)
    result = run_demo(out, n_images=args.n_images, angles=args.angles, noise=args.noise,
                      methods=methods, families=args.families, seed=args.seed,
                      device=args.device, overwrite=args.overwrite, progress=not args.quiet,
                      command=args.command_line, bounds=not args.no_bounds, alpha=args.alpha,
                      calibration_n=args.calibration_n)
    print(result["table"])
    if not args.no_bounds:
        print()
        print(f"error bounds (alpha {args.alpha:g}, calibrated on {args.calibration_n} ellipses "
              "validation images, standard spec; pixel cov. = mean fraction of pixels inside "
              "their intervals; map r = correlation of the uncertainty map with the error):")
        print(result["bounds_table"])
        flagged = [(c["name"], m) for c in result["cases"] for m, b in (c.get("bounds") or {}).items()
                   if isinstance(b, dict) and b.get("flagged")]
        n_pairs = sum(len(c.get("bounds") or {}) for c in result["cases"])
        print(f"flagged as unlike the calibration data: {len(flagged)} of {n_pairs} image/method "
              "pairs" + (" (their bounds are not guaranteed)" if flagged else ""))
    print(f"report: {result['report']} (open it in a browser); metrics: "
          f"{Path(result['report']).parent / 'metrics.json'}; {result['seconds_total']:.0f} s in all")
    if args.json:
        doc = {k: v for k, v in result.items() if k not in ("report", "seconds_total")}
        _write_json(args.json, doc)
    return 0


# -- reconstruct -----------------------------------------------------------------------------
_SINOGRAM_KEYS = ("sinogram", "measurement")
_IMAGE_SUFFIXES = (".png",)
_DICOM_SUFFIXES = (".dcm", ".dicom", ".ima")


def _detectors_for(image_size: int) -> int:
    """Detector count spanning the image diagonal at about unit spacing: 183 for 128 (DIVal's)."""
    return 2 * math.ceil(image_size / math.sqrt(2)) + 1


def _squeeze_leading(arr, where: str, ndim: int = 2):
    """Drop leading singleton axes down to ``ndim`` axes; refuse anything else."""
    shape = tuple(arr.shape)
    while arr.ndim > ndim and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != ndim:
        raise UsageError(f"{where}: expected a 2-D array (A, D) or (1, A, D), got shape {shape}")
    return arr


def _is_dicom(path: Path) -> bool:
    """DICOM by content (the 'DICM' preamble, pydicom's test), or by a DICOM suffix."""
    from pydicom.misc import is_dicom

    try:
        return path.suffix.lower() in _DICOM_SUFFIXES or bool(is_dicom(str(path)))
    except OSError:
        return False


class _Input:
    """What ``tomolearn reconstruct`` read: data to reconstruct and how to write results back.

    Attributes
    ----------
    kind : {"sinogram", "image", "dicom"}
    y : torch.Tensor, (1, 1, A, D) float32
        Measurements (line integrals in pixel units of the reconstruction grid).
    spec : SimulationSpec
        The geometry (and, for simulated data, noise and seed).
    gt : torch.Tensor (1, 1, N, N) float32 or None
        Ground truth on the reconstruction grid (in the same unit range as the
        reconstruction), when known.
    unit_scale : float
        Multiply the reconstruction by this to get the units of what the reader returned
        (1/m attenuation for CT DICOM, rescaled values for other DICOM, as stored otherwise).
    units : str
        Name of those units, for the summary.
    dicom : pydicom.Dataset or None
        The input dataset (for the derived DICOM output).
    dicom_geometry : dict or None
        Input pixel grid (shape, spacing, field of view) for the derived DICOM's geometry.
    note : str
        How the input was read, for the summary.
    """

    def __init__(self, **kw):
        self.gt = None
        self.unit_scale = 1.0
        self.units = "as stored"
        self.dicom = None
        self.dicom_geometry = None
        self.note = ""
        self.__dict__.update(kw)


def _sinogram_spec(args, n_angles: int, n_detectors: int):
    from .data import SimulationSpec

    if args.angles is not None and args.angles != n_angles:
        raise UsageError(f"--angles {args.angles} does not match the sinogram, which has "
                         f"{n_angles} angles (rows)")
    size = args.image_size if args.image_size is not None else 128
    return SimulationSpec(image_size=size, n_angles=n_angles, n_detectors=n_detectors)


def _read_sinogram(path: Path, args) -> _Input:
    """A sinogram file: .npy, .npz (one array, or key sinogram/measurement), .h5 (dataset
    measurement/sinogram, optional ground_truth and tomolearn's spec attribute)."""
    import numpy as np
    import torch

    from .data import SimulationSpec

    if args.noise is not None or args.seed is not None:
        raise UsageError("--noise and --seed apply only when the input is an image to simulate "
                         f"data from; {path} holds measured data")
    suffix = path.suffix.lower()
    gt = None
    spec = None
    index_note = ""
    if suffix in (".h5", ".hdf5"):
        import h5py

        try:
            f = h5py.File(path, "r")
        except OSError as e:
            raise UsageError(f"{path}: not a readable HDF5 file ({e})") from None
        with f:
            key = next((k for k in ("measurement", "sinogram") if k in f), None)
            if key is None:
                raise UsageError(f"{path}: no dataset 'measurement' or 'sinogram' in the HDF5 file "
                                 f"(it holds: {', '.join(f.keys()) or 'nothing'})")
            data = f[key]
            if data.ndim == 4:
                n = data.shape[0]
                if not 0 <= args.index < n:
                    raise UsageError(f"--index {args.index} is out of range: {path} holds {n} "
                                     f"sample(s)")
                arr = np.asarray(data[args.index])
                if "ground_truth" in f and f["ground_truth"].ndim == 4:
                    gt = np.asarray(f["ground_truth"][args.index], dtype=np.float32)
                index_note = f" sample {args.index} of {n},"
            else:
                if args.index != 0:
                    raise UsageError(f"--index {args.index}: {path} holds one sinogram")
                arr = np.asarray(data)
                if "ground_truth" in f:
                    gt = np.asarray(f["ground_truth"], dtype=np.float32)
            if "spec" in f.attrs:
                try:
                    sim = json.loads(f.attrs["spec"])["simulation"]
                    spec = SimulationSpec.from_dict(sim)
                except (KeyError, TypeError, ValueError) as e:
                    raise UsageError(f"{path}: unreadable 'spec' attribute ({e})") from None
    elif suffix in (".npy", ".npz"):
        try:
            loaded = np.load(path, allow_pickle=False)
        except Exception as e:
            raise UsageError(f"{path}: unreadable NumPy file ({type(e).__name__}: {e})") from None
        if isinstance(loaded, np.ndarray):
            arr = loaded
        else:
            with loaded:
                keys = list(loaded.files)
                key = next((k for k in _SINOGRAM_KEYS if k in keys), None)
                if key is None and len(keys) == 1:
                    key = keys[0]
                if key is None:
                    raise UsageError(f"{path}: .npz file holds {len(keys)} arrays "
                                     f"({', '.join(keys) or 'none'}); expected one array or one "
                                     "named 'sinogram' (or 'measurement')")
                arr = loaded[key]
                if "ground_truth" in keys:
                    gt = np.asarray(loaded["ground_truth"], dtype=np.float32)
        if args.index != 0:
            raise UsageError(f"--index applies to HDF5 files with several samples, not to {path}")
    else:
        raise UsageError(f"{path}: unknown sinogram file type {path.suffix!r}; expected .npy, "
                         ".npz, .h5 or .hdf5")
    if arr.dtype.kind not in "biuf":
        raise UsageError(f"{path}: array dtype {arr.dtype} is not real numeric")
    arr = _squeeze_leading(np.asarray(arr, dtype=np.float32), str(path))
    if not np.isfinite(arr).all():
        raise UsageError(f"{path}: the sinogram contains non-finite values (nan or inf)")
    n_angles, n_det = arr.shape
    if spec is not None:
        if (spec.n_angles, spec.n_detectors) != (n_angles, n_det):
            raise UsageError(f"{path}: sinogram shape {arr.shape} does not match the file's spec "
                             f"({spec.n_angles} angles x {spec.n_detectors} detectors)")
        if args.image_size is not None and args.image_size != spec.image_size:
            raise UsageError(f"--image-size {args.image_size} does not match {path}, whose spec "
                             f"has image size {spec.image_size}")
        if args.angles is not None and args.angles != n_angles:
            raise UsageError(f"--angles {args.angles} does not match the sinogram, which has "
                             f"{n_angles} angles")
        note = f"{path.name}:{index_note} geometry from the file's spec"
    else:
        spec = _sinogram_spec(args, n_angles, n_det)
        note = (f"{path.name}:{index_note} parallel beam, {n_angles} angles on [0, pi), "
                f"{n_det} detectors spanning the {spec.image_size}x{spec.image_size} image's "
                "diagonal")
    n = spec.image_size
    if gt is not None:
        gt = _squeeze_leading(gt, f"{path} ground_truth")
        if gt.shape != (n, n):
            raise UsageError(f"{path}: ground_truth has shape {gt.shape}, expected ({n}, {n})")
        gt = torch.from_numpy(np.ascontiguousarray(gt))[None, None]
    y = torch.from_numpy(np.ascontiguousarray(arr))[None, None]
    return _Input(kind="sinogram", y=y, spec=spec, gt=gt, note=note)


def _grey_png(path: Path):
    """A PNG as a grey (H, W) float64 array in [0, 1] (luminance of RGB; alpha ignored)."""
    import numpy as np
    from matplotlib.image import imread

    try:
        img = np.asarray(imread(path), dtype=np.float64)
    except Exception as e:
        raise UsageError(f"{path}: unreadable PNG file ({type(e).__name__}: {e})") from None
    if img.ndim == 3:
        if img.shape[2] < 3:
            img = img[..., 0]
        else:
            img = img[..., :3] @ np.array([0.299, 0.587, 0.114])
    if img.ndim != 2:
        raise UsageError(f"{path}: expected a 2-D image, got shape {img.shape}")
    return img


def _dicom_tags_ok(ds, path: Path) -> None:
    """Refuse DICOM files whose pixel data we could read but not write back."""
    if "PixelData" not in ds:
        raise UsageError(f"{path}: DICOM file has no integer PixelData; cannot write a derived "
                         "DICOM with its pixel format")
    if int(ds.get("BitsAllocated", 0) or 0) not in (8, 16, 32):
        raise UsageError(f"{path}: BitsAllocated {ds.get('BitsAllocated')} is not 8, 16 or 32")


def _read_image_input(path: Path, args) -> _Input:
    """An image to simulate data from: .png, .npy (2-D), or a DICOM file."""
    import numpy as np
    import torch

    from .data import NoiseSpec, SimulationSpec, resample, simulate
    from .noise import MU_MAX

    size = args.image_size if args.image_size is not None else 128
    angles = args.angles if args.angles is not None else 30
    level = args.noise if args.noise is not None else 0.025
    seed = args.seed if args.seed is not None else 0
    if args.index != 0:
        raise UsageError(f"--index applies to HDF5 sinogram files, not to {path}")
    spacing, dicom, geometry, unit_scale, units = None, None, None, 1.0, "as stored"
    if _is_dicom(path):
        import pydicom

        from .data.io import read_dicom_series

        try:
            header = pydicom.dcmread(path, stop_before_pixels=True)
        except pydicom.errors.InvalidDicomError:
            raise UsageError(f"{path}: not a DICOM file (no 'DICM' prefix after the 128-byte "
                             "preamble, or no file meta information)") from None
        except Exception as e:
            raise UsageError(f"{path}: not a readable DICOM file ({type(e).__name__}: {e})") from None
        modality = str(header.get("Modality", "") or "") or None
        ct = modality in (None, "CT")
        vol = read_dicom_series(path, units="mu_per_m" if ct else "rescaled")
        dicom = vol.datasets[0]
        _dicom_tags_ok(dicom, path)
        raw = vol.image[0].double().numpy()
        if ct:
            unit_scale, units = MU_MAX, "1/m (linear attenuation; DICOM output in HU)"
        else:
            top = float(np.abs(raw).max())
            unit_scale, units = (top if top > 0 else 1.0), f"{modality} rescaled values"
        img = np.clip(raw / unit_scale, 0.0, 1.0) if ct else raw / unit_scale
        spacing = vol.pixel_spacing
        kind, what = "dicom", f"{modality or 'CT'} DICOM"
    elif path.suffix.lower() in _IMAGE_SUFFIXES:
        img, kind, what = _grey_png(path), "image", "PNG, grey values in [0, 1]"
    elif path.suffix.lower() == ".npy":
        try:
            arr = np.load(path, allow_pickle=False)
        except Exception as e:
            raise UsageError(f"{path}: unreadable NumPy file ({type(e).__name__}: {e})") from None
        if arr.dtype.kind not in "biuf":
            raise UsageError(f"{path}: array dtype {arr.dtype} is not real numeric")
        while arr.ndim > 2 and arr.shape[0] == 1:
            arr = arr[0]
        if arr.ndim != 2:
            raise UsageError(f"{path}: expected a 2-D image (H, W), got shape {arr.shape}")
        img, kind, what = arr.astype(np.float64), "image", "NumPy image, values as stored"
    else:
        raise UsageError(f"{path}: unknown image file type {path.suffix!r}; expected .png, .npy "
                         "or a DICOM file")
    if not np.isfinite(img).all():
        raise UsageError(f"{path}: the image contains non-finite values (nan or inf)")
    H, W = img.shape
    if spacing is None:
        spacing = (1.0, 1.0)
    fov = max(H * spacing[0], W * spacing[1])          # square field of view, input length unit
    gt = resample(torch.from_numpy(np.ascontiguousarray(img)), (size, size), spacing=spacing,
                  target_spacing=fov / size, fill=0.0)  # (size, size) float64, area average
    # Data are simulated on a finer grid (DIVal's 400 for 128; 1.5x for large images).
    spec = SimulationSpec(image_size=size, n_angles=angles, n_detectors=_detectors_for(size),
                          fine_size=max(400, (3 * size) // 2),
                          noise=NoiseSpec(kind="gaussian", level=float(level)), seed=seed)
    y = simulate(gt[None, None], spec, torch.Generator().manual_seed(seed)).to(torch.float32)
    if dicom is not None:
        geometry = {"shape": (H, W), "spacing": spacing, "fov": fov}
    note = (f"{path.name} ({what}, {H}x{W}) resampled to {size}x{size}; simulated {angles} "
            f"parallel-beam angles x {spec.n_detectors} detectors on a {spec.fine_size}x"
            f"{spec.fine_size} grid, {100 * level:g} % Gaussian noise, seed {seed}")
    return _Input(kind=kind, y=y, spec=spec, gt=gt[None, None].to(torch.float32),
                  unit_scale=unit_scale, units=units, dicom=dicom, dicom_geometry=geometry,
                  note=note)


def _read_input(path: Path, args) -> _Input:
    import numpy as np

    if not path.exists():
        raise UsageError(f"--input {path}: no such file")
    if path.is_dir():
        raise UsageError(f"--input {path}: is a directory; expected one file (a sinogram, an "
                         "image or a DICOM file)")
    kind = args.kind
    if kind == "auto":
        suffix = path.suffix.lower()
        if suffix in (".h5", ".hdf5", ".npz"):
            kind = "sinogram"
        elif suffix == ".npy":
            try:
                shape = np.load(path, mmap_mode="r", allow_pickle=False).shape
            except Exception as e:
                raise UsageError(f"{path}: unreadable NumPy file ({type(e).__name__}: {e})") from None
            # A square 2-D array is an image, anything else (A, D) / (1, A, D) a sinogram.
            kind = "image" if len(shape) == 2 and shape[0] == shape[1] else "sinogram"
        else:
            kind = "image"
    return _read_sinogram(path, args) if kind == "sinogram" else _read_image_input(path, args)


def _png_bytes(image, lo: float, hi: float) -> bytes:
    """An 8-bit greyscale PNG of ``image`` (H, W), ``lo`` -> 0 and ``hi`` -> 255 (clipped)."""
    import io

    import numpy as np
    from PIL import Image  # matplotlib's own image dependency

    if not hi > lo:
        hi = lo + 1.0
    grey = np.clip((np.asarray(image, dtype=np.float64) - lo) / (hi - lo), 0.0, 1.0)
    buf = io.BytesIO()
    Image.fromarray(np.round(grey * 255).astype(np.uint8), mode="L").save(buf, format="PNG")
    return buf.getvalue()


def _derived_dicom(inp: _Input, rec_units, method: str) -> bytes:
    """The input DICOM dataset with its pixel data replaced by the reconstruction (bytes).

    ``rec_units`` (N, N) is in the reader's units (1/m for CT, converted back to HU and then
    to stored values through RescaleSlope/Intercept).  New SOP and series instance UIDs,
    ImageType DERIVED\\SECONDARY, DerivationDescription naming tomolearn, the method and the
    version; Rows, Columns, PixelSpacing and ImagePositionPatient describe the new grid (the
    input's field of view, padded to a square); everything else is kept.
    """
    import copy
    import io

    import numpy as np
    import pydicom
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    import tomolearn
    from .data import mu_to_hu

    ds = copy.deepcopy(inp.dicom)
    values = np.asarray(rec_units, dtype=np.float64)
    modality = str(ds.get("Modality", "") or "")
    if modality in ("", "CT"):
        values = mu_to_hu(values)
    slope = ds.get("RescaleSlope", None)
    intercept = ds.get("RescaleIntercept", None)
    slope = 1.0 if slope in (None, "") else float(slope)
    intercept = 0.0 if intercept in (None, "") else float(intercept)
    stored = np.round((values - intercept) / slope)
    bits = int(ds.BitsAllocated)
    bits_stored = int(ds.get("BitsStored", bits) or bits)
    signed = int(ds.get("PixelRepresentation", 0) or 0) == 1
    lo, hi = ((-(2 ** (bits_stored - 1)), 2 ** (bits_stored - 1) - 1) if signed
              else (0, 2 ** bits_stored - 1))
    meta = ds.file_meta
    tsuid = meta.get("TransferSyntaxUID", None)
    if tsuid is None or tsuid.is_compressed:
        meta.TransferSyntaxUID = tsuid = ExplicitVRLittleEndian
    dtype = np.dtype(f"{'i' if signed else 'u'}{bits // 8}").newbyteorder(
        "<" if tsuid.is_little_endian else ">")
    arr = np.clip(stored, lo, hi).astype(dtype)
    n = arr.shape[0]
    ds.Rows, ds.Columns = arr.shape
    ds.PixelData = arr.tobytes()
    ds["PixelData"].VR = "OB" if bits == 8 else "OW"
    for keyword in ("SmallestImagePixelValue", "LargestImagePixelValue", "NumberOfFrames"):
        if keyword in ds:
            delattr(ds, keyword)
    geo = inp.dicom_geometry
    step = geo["fov"] / n
    if "PixelSpacing" in ds:
        ds.PixelSpacing = [f"{step:.6g}", f"{step:.6g}"]
        pos = ds.get("ImagePositionPatient", None)
        iop = ds.get("ImageOrientationPatient", None)
        if pos is not None and iop is not None and len(pos) == 3 and len(iop) == 6:
            (H, W), (rs, cs) = geo["shape"], geo["spacing"]
            row_dir, col_dir = np.asarray(iop[:3], float), np.asarray(iop[3:], float)
            first = (np.asarray(pos, float)
                     + row_dir * ((W - 1) / 2 * cs + (0.5 - n / 2) * step)
                     + col_dir * ((H - 1) / 2 * rs + (0.5 - n / 2) * step))
            ds.ImagePositionPatient = [f"{v:.6f}" for v in first]
    image_type = list(ds.get("ImageType", []) or [])
    ds.ImageType = ["DERIVED", "SECONDARY"] + [str(v) for v in image_type[2:]]
    ds.DerivationDescription = (
        f"tomolearn {tomolearn.__version__}: {method} reconstruction on a {n}x{n} grid from "
        f"simulated {inp.spec.n_angles}-angle parallel-beam data "
        f"({100 * inp.spec.noise.level:g} % Gaussian noise, seed {inp.spec.seed})")[:1024]
    ds.SOPInstanceUID = generate_uid()
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.SeriesInstanceUID = generate_uid()
    buf = io.BytesIO()
    try:
        pydicom.dcmwrite(buf, ds, enforce_file_format=True)
    except TypeError:  # pydicom 2.x
        pydicom.dcmwrite(buf, ds, write_like_original=False)
    return buf.getvalue()


def cmd_reconstruct(args) -> int:
    """Reconstruct one sinogram, or data simulated from one image, with any method."""
    import io

    import numpy as np
    import torch

    from . import metrics
    from .benchmarks import LEARNED, METHODS, reconstruct
    from .weights import available

    if args.method not in METHODS:
        raise UsageError(f"unknown method {args.method!r}; available: {', '.join(METHODS)}")
    if args.method in LEARNED and LEARNED[args.method] not in available():
        raise UsageError(f"method {args.method!r} needs the weights {LEARNED[args.method]!r}, "
                         f"which are not installed (installed: {', '.join(available()) or 'none'})")
    if args.image_size is not None and not 8 <= args.image_size <= 4096:
        raise UsageError(f"--image-size must be in [8, 4096], got {args.image_size}")
    if args.angles is not None and args.angles < 1:
        raise UsageError(f"--angles must be at least 1, got {args.angles}")
    if args.noise is not None and not 0 <= args.noise < 1:
        raise UsageError(f"--noise must be a relative level in [0, 1), got {args.noise}")
    if args.seed is not None and args.seed < 0:
        raise UsageError(f"--seed must be non-negative, got {args.seed}")
    if args.index < 0:
        raise UsageError(f"--index must be non-negative, got {args.index}")
    out = _check_out_file(args.out, "--out", args.overwrite, args.parents, suffix=".npy")
    png = _check_out_file(out.with_suffix(".png"), "--out (its PNG)", args.overwrite, args.parents)
    inp = _read_input(Path(args.input), args)
    dcm = None
    if inp.dicom is not None:
        dcm = _check_out_file(out.with_suffix(".dcm"), "--out (its DICOM)", args.overwrite,
                              args.parents)

    op = inp.spec.operator()
    y = inp.y
    with torch.no_grad():
        try:
            reconstruct(args.method, op, torch.zeros_like(y))  # set-up (matrix, weights), untimed
        except ValueError as e:
            raise UsageError(f"method {args.method!r} cannot reconstruct this data "
                             f"({y.shape[2]} angles x {y.shape[3]} detectors, "
                             f"{inp.spec.image_size}x{inp.spec.image_size} image): {e}") from None
        t0 = time.perf_counter()
        rec = reconstruct(args.method, op, y).float()
        seconds = time.perf_counter() - t0
    quality = ""
    if inp.gt is not None:
        quality = (f"; PSNR {float(metrics.psnr(rec, inp.gt)[0]):.2f} dB, "
                   f"SSIM {float(metrics.ssim(rec, inp.gt)[0]):.3f} against the input image")
    image = rec[0, 0].numpy()
    in_units = (image.astype(np.float64) * inp.unit_scale).astype(np.float32)
    buf = io.BytesIO()
    np.save(buf, in_units, allow_pickle=False)
    if inp.gt is not None:
        lo, hi = float(inp.gt.min()), float(inp.gt.max())
    else:
        lo, hi = (float(v) for v in np.percentile(image, [0.5, 99.5]))
    files = [(out, buf.getvalue()), (png, _png_bytes(image, lo, hi))]
    if dcm is not None:
        files.append((dcm, _derived_dicom(inp, in_units, args.method)))
    for path, data in files:  # everything is computed: only the (atomic) writes remain
        atomic_write_bytes(path, data)
    n = inp.spec.image_size
    print(f"{args.method}: {n}x{n} image from {y.shape[2]} angles x {y.shape[3]} detectors in "
          f"{seconds:.3f} s{quality}; wrote {', '.join(str(p) for p, _ in files)} "
          f"[{inp.note}; .npy in {inp.units}]")
    return 0


# -- evaluate --------------------------------------------------------------------------------
#: Training distributions `evaluate --dataset` knows (calibration and in-distribution tests).
EVALUATE_DATASETS = ("ellipses",)


def _shift_names() -> list:
    """Every shift `evaluate --shift all` runs: other image families, then measurement shifts."""
    from .data import FAMILIES, SHIFTS

    return [f for f in FAMILIES if f != "ellipses"] + list(SHIFTS)


def _evaluate_methods(args) -> list:
    from .benchmarks import LEARNED, METHODS
    from .weights import available

    installed = available()
    if args.model is not None:
        by_weights = {w: m for m, w in LEARNED.items()}
        if args.model not in by_weights:
            raise UsageError(f"unknown model {args.model!r}; shipped models: "
                             f"{', '.join(LEARNED.values())} (use --methods for classical methods)")
        methods = [by_weights[args.model]]
    else:
        methods = list(dict.fromkeys(args.methods))
        if not methods:
            raise UsageError("--methods is empty; give e.g. --methods fbp,tv")
        unknown = [m for m in methods if m not in METHODS]
        if unknown:
            raise UsageError(f"unknown method {unknown[0]!r}; available: {', '.join(METHODS)}")
    for m in methods:
        if m in LEARNED and LEARNED[m] not in installed:
            raise UsageError(f"method {m!r} needs the weights {LEARNED[m]!r}, which are not "
                             f"installed (installed: {', '.join(installed) or 'none'})")
    return methods


def _factory(method: str):
    """``factory(op) -> recon(y)`` for :func:`uq.generalisation_report`, with one-line errors.

    ``recon`` returns ``(x_hat, scale)`` for methods with their own uncertainty (ensembles)."""
    from .benchmarks import reconstruct

    def factory(op):
        def recon(y):
            try:
                return reconstruct(method, op, y, uncertainty=True)
            except ValueError as e:
                shape = "x".join(str(s) for s in op.range_shape)
                raise UsageError(f"method {method!r} cannot reconstruct {shape} data "
                                 f"(angles x detectors): {e}") from None
        return recon
    return factory


def cmd_evaluate(args) -> int:
    """Quality, distribution-free bounds and shift detection in and out of distribution."""
    import warnings

    from tqdm import tqdm

    from . import uq

    methods = _evaluate_methods(args)
    if args.dataset not in EVALUATE_DATASETS:
        raise UsageError(f"unknown dataset {args.dataset!r}; the methods are trained and calibrated "
                         f"on: {', '.join(EVALUATE_DATASETS)}")
    known = _shift_names()
    if args.shift is None or args.shift == "none":
        shifts = ["none"]
    elif args.shift == "all":
        shifts = ["none"] + known
    else:
        shifts = ["none"]
        for s in (v.strip() for v in args.shift.split(",") if v.strip()):
            if s not in known and s != "none":
                raise UsageError(f"unknown shift {s!r}; expected all, none or one of "
                                 f"{', '.join(known)}")
            if s not in shifts:
                shifts.append(s)
    if not 2 <= args.n <= 3200:
        raise UsageError(f"--n must be in [2, 3200] (the test split), got {args.n}")
    if not 2 <= args.calibration_n <= 3200:
        raise UsageError(f"--calibration-n must be in [2, 3200] (the validation split), "
                         f"got {args.calibration_n}")
    if not 0 < args.alpha < 1:
        raise UsageError(f"--alpha must lie strictly between 0 and 1, got {args.alpha}")
    need = math.ceil(1 / args.alpha - 1 - 1e-9)
    if args.calibration_n < need:
        raise UsageError(f"--calibration-n {args.calibration_n} is too small for --alpha "
                         f"{args.alpha:g}: finite bounds need at least {need} calibration images")
    if args.batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, got {args.batch_size}")
    if args.json:
        _check_out_file(args.json, "--json", args.overwrite, args.parents)
    if args.markdown:
        _check_out_file(args.markdown, "--markdown", args.overwrite, args.parents)
    if args.plot:
        _check_out_file(args.plot, "--plot", args.overwrite, args.parents, suffix=".png")
    if args.report:
        _check_out_dir(args.report, "--report", args.overwrite, args.parents)

    _note_unflaggable("evaluate", args.calibration_n, args.alpha)
    with tqdm(total=1, desc="evaluate", unit="img", file=sys.stderr, disable=args.quiet,
              leave=False) as bar:
        def progress(done, total):
            bar.total = total
            bar.update(done - bar.n)

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # calibration size checked above
            report = uq.generalisation_report({m: _factory(m) for m in methods}, shifts, n=args.n,
                                              alpha=args.alpha, calibration_n=args.calibration_n,
                                              progress=progress, batch_size=args.batch_size)
    report["dataset"] = args.dataset
    table = uq.format_markdown(report)
    print(f"{', '.join(methods)} on {args.dataset}: first {args.n} test images per shift; bounds at "
          f"alpha {args.alpha:g} calibrated on {args.calibration_n} validation images")
    print(table, end="")
    if args.json:
        _write_json(args.json, report)
    if args.markdown:
        atomic_write_bytes(Path(args.markdown), table.encode("utf-8"))
    if args.plot:
        uq.plot_generalisation(report, args.plot)
    if args.report:
        import torch

        from .demo import software_versions
        from .report import write_report

        settings = {"methods": ", ".join(methods), "shifts": ", ".join(shifts),
                    "test images per shift": args.n, "alpha": args.alpha,
                    "calibration images (ellipses validation)": args.calibration_n,
                    "torch threads": torch.get_num_threads()}
        meta = {"title": "tomolearn generalisation study",
                "description": ("Quality, conformal error bounds and data-consistency shift "
                                "detection of each method in distribution (ellipses test split) "
                                "and under each shift. The bounds are guaranteed in distribution "
                                "only; the other rows show whether they survive the shift."),
                "settings": settings, "versions": software_versions(),
                "command": "tomolearn " + " ".join(shlex.quote(a) for a in sys.argv[1:])}
        index = write_report(args.report, [], report["results"], meta, overwrite=args.overwrite,
                             figures=[("PSNR per shift and method", uq.generalisation_figure(report))])
        print(f"wrote {index}")
    return 0


# -- data -------------------------------------------------------------------------------
def cmd_data(args) -> int:
    """Generate a simulated dataset into an HDF5 file (resumable)."""
    from tqdm import tqdm

    from .data import FAMILIES, SHIFTS, SimulatedDataset, SimulationSpec, generate_hdf5, shifted_spec

    if args.family not in FAMILIES:
        raise UsageError(f"unknown dataset {args.family!r}; expected one of {', '.join(sorted(FAMILIES))}")
    if args.shift is not None and args.shift not in SHIFTS:
        raise UsageError(f"unknown shift {args.shift!r}; expected one of {', '.join(SHIFTS)}")
    if args.n is not None and args.n < 1:
        raise UsageError(f"--n must be at least 1, got {args.n}")
    if args.batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, got {args.batch_size}")
    out = _check_out_file(args.out, "--out", args.overwrite, args.parents)
    spec = SimulationSpec(seed=args.seed)
    if args.shift:
        spec = shifted_spec(spec, args.shift)
    dataset = SimulatedDataset(args.family, args.split, spec, size=args.n)
    start = time.perf_counter()
    with tqdm(total=len(dataset), unit="sample", desc=f"{args.family}/{args.split}",
              disable=args.quiet, file=sys.stderr) as bar:
        def progress(done, total):
            bar.update(done - bar.n)

        generate_hdf5(dataset, out, overwrite=args.overwrite, batch_size=args.batch_size,
                      progress=progress)
    seconds = time.perf_counter() - start
    size_mb = out.stat().st_size / 2**20
    print(f"wrote {out}: {len(dataset)} samples of {args.family}/{args.split} in {seconds:.1f} s "
          f"({size_mb:.1f} MiB)")
    return 0


# -- benchmark ------------------------------------------------------------------------------
def cmd_benchmark(args) -> int:
    import torch

    from .benchmarks import OPERATOR_CASES, benchmark_operators, format_operator_table

    if args.json:
        _check_out_file(args.json, "--json", args.overwrite, args.parents)
    if args.task == "ellipses":
        return _benchmark_ellipses(args)
    if args.task == "learned":
        return _benchmark_learned(args)
    args.batches = args.batches or [1, 16]
    unknown = [g for g in args.geometries if g not in OPERATOR_CASES]
    if unknown:
        raise UsageError(f"unknown geometry {unknown[0]!r}; expected some of "
                         f"{','.join(OPERATOR_CASES)}")
    if any(b < 1 for b in args.batches):
        raise UsageError(f"--batches must be positive, got {args.batches}")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError(f"--device {args.device}: CUDA is not available here")
    dtype = {"float32": torch.float32, "float64": torch.float64}[args.dtype]
    progress = (lambda msg: print(f"[benchmark] {msg}", file=sys.stderr, flush=True))
    rows = benchmark_operators(args.geometries, batches=tuple(args.batches), repeats=args.repeats,
                               device=args.device, dtype=dtype, backend=args.backend,
                               progress=progress)
    print(format_operator_table(rows))
    if args.json:
        _write_json(args.json, {"results": rows})
    return 0


def _benchmark_learned(args) -> int:
    from .benchmarks import SPEED_ARCHITECTURES, format_speed_table, learned_speed

    methods = args.methods or list(SPEED_ARCHITECTURES)
    unknown = [m for m in methods if m not in SPEED_ARCHITECTURES]
    if unknown:
        raise UsageError(f"unknown network {unknown[0]!r}; expected some of "
                         f"{','.join(SPEED_ARCHITECTURES)}")
    args.batches = args.batches or [16]
    if len(args.batches) != 1 or args.batches[0] < 1:
        raise UsageError(f"--batches must be one positive batch size for 'learned', got {args.batches}")
    if args.repeats < 1:
        raise UsageError(f"--repeats must be at least 1, got {args.repeats}")
    progress = (lambda msg: print(f"[benchmark] {msg}", file=sys.stderr, flush=True))
    rows = learned_speed(methods, batch=args.batches[0], repeats=args.repeats, progress=progress)
    print(format_speed_table(rows))
    if args.json:
        _write_json(args.json, {"results": rows})
    return 0


def _benchmark_ellipses(args) -> int:
    from tqdm import tqdm

    from .benchmarks import LEARNED, METHODS, benchmark_ellipses, format_quality_table, tv_time_to_converge

    args.methods = args.methods or ["fbp", "tv"]
    unknown = [m for m in args.methods if m not in METHODS]
    if unknown:
        raise UsageError(f"unknown method {unknown[0]!r}; available: {','.join(METHODS)}")
    if args.n is not None and not 1 <= args.n <= 3200:
        raise UsageError(f"--n must be in [1, 3200] (the test split), got {args.n}")
    n = args.n or 3200
    rows = []
    for method in args.methods:
        with tqdm(total=n, desc=method, unit="img", file=sys.stderr, leave=False) as bar:
            rows += benchmark_ellipses([method], n=n, batch_size=args.batch_size,
                                       params={method: {"amp": True}} if args.amp and method in LEARNED else None,
                                       progress=lambda done, total: bar.update(done - bar.n))
    print(f"DIVal ellipses benchmark, test split, first {n} samples "
          f"({'all' if n == 3200 else 'a prefix'}); torch threads {rows[0]['torch_threads']}")
    print(format_quality_table(rows))
    extra = {}
    if "tv" in args.methods:
        extra["tv_single_image"] = tv_time_to_converge()
        t = extra["tv_single_image"]
        print(f"TV, one image at a time: within {t['tolerance_db']} dB of its converged PSNR after "
              f"{t['iterations']:.0f} iterations, {t['seconds']:.2f} s (median of {t['n_images']})")
    if args.json:
        _write_json(args.json, {"results": rows, **extra})
    return 0


# -- train ------------------------------------------------------------------------------
def cmd_train(args) -> int:
    from .train import distributed_teardown, trainer_from_config

    if args.out is not None:  # a run directory named in the configuration is created as named
        _check_parent(Path(args.out), "--out", args.parents)
    try:
        trainer = trainer_from_config(args.config, out_dir=args.out, progress=not args.quiet,
                                      overrides=args.set)
        summary = trainer.fit(resume=args.resume, max_steps=args.max_steps)
    except BaseException:
        distributed_teardown(wait=False)
        raise
    distributed_teardown()
    if trainer.rank == 0:
        best = summary["best"]
        best_text = (f"best validation PSNR {best['psnr']:.2f} dB / SSIM {best['ssim']:.3f} at step "
                     f"{best['step']}" if best["step"] else "no validation yet")
        print(f"{summary['stopped']}: {summary['steps']} steps, {summary['samples_seen']} samples "
              f"in {summary['seconds']:.0f} s; {best_text}; run directory {trainer.out_dir}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="tomolearn", description="Learned image reconstruction for tomography.",
        epilog=("examples:\n  tomolearn demo\n  tomolearn reconstruct --input sino.npy --method fbp "
                "--out rec.npy\n  tomolearn evaluate --methods fbp,tv --shift all --json eval.json\n"
                "  tomolearn VERB --help"),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--debug", action="store_true", help="show Python tracebacks on errors")
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    sub.required = True

    p = sub.add_parser("info", help="versions, devices, threads and operator backends",
                       epilog="examples:\n  " + EXAMPLES["info"],
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--json", metavar="FILE", help="also write the information as JSON")
    _add_output_flags(p, "replace an existing --json file")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("demo", help="simulate sparse-view CT, reconstruct, bound the errors, "
                                    "write an HTML report (minutes, CPU)",
                       description=_wrap(
                           "Simulate sparse-view CT of held-out test images of several image "
                           "families, reconstruct them with each method, attach calibrated "
                           "error bounds and shift flags, and write a self-contained HTML "
                           "report (index.html) with its metrics.json."),
                       epilog="examples:\n  " + EXAMPLES["demo"],
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="report", metavar="DIR",
                   help="report folder (default ./report); must be missing or empty unless --overwrite")
    p.add_argument("--n-images", type=int, default=4, help="test images per family (default 4)")
    p.add_argument("--angles", type=int, default=30, help="projection angles (default 30)")
    p.add_argument("--noise", type=float, default=0.025,
                   help="relative Gaussian noise level (default 0.025, DIVal's)")
    p.add_argument("--methods", type=_csv, default=None, metavar="LIST",
                   help="comma-separated methods (default: fbp,tv and every learned method whose "
                        "weights are installed)")
    p.add_argument("--families", type=_csv, default=["ellipses", "shepp-logan", "ct-slice",
                                                     "rectangles", "lesions"], metavar="LIST",
                   help="comma-separated image families (default ellipses,shepp-logan,ct-slice,"
                        "rectangles,lesions)")
    p.add_argument("--seed", type=int, default=0, help="seed of the test images and noise (default 0)")
    p.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda:0 (default cpu)")
    _add_output_flags(p, "replace the report in a non-empty --out and an existing --json file")
    p.add_argument("--json", metavar="FILE", help="also write the metrics JSON there")
    p.add_argument("--no-bounds", action="store_true", help="skip the error bounds (no calibration)")
    p.add_argument("--alpha", type=float, default=0.1,
                   help="miscoverage level of the bounds and false-alarm rate of the flag (default 0.1)")
    p.add_argument("--calibration-n", type=int, default=100, metavar="N",
                   help="ellipses validation images the bounds are calibrated on (default 100)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    _add_debug(p)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("reconstruct", help="reconstruct one sinogram, or simulated data of one image",
                       description=_wrap(
                           "Reconstruct a sinogram file (.npy, .npz, .h5), or data simulated "
                           "from an image (.png, a square 2-D .npy, a DICOM file), with any "
                           "method; write the image as .npy and .png (and .dcm for DICOM "
                           "input) beside --out."),
                       epilog=("examples:\n  " + EXAMPLES["reconstruct"] + "\n\n" + _RECONSTRUCT_NOTES),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--input", required=True, metavar="FILE",
                   help="sinogram (.npy/.npz/.h5) or image (.png, .npy, DICOM) file")
    p.add_argument("--method", required=True, metavar="NAME",
                   help="fbp, tv, or a learned method (fbpconvnet, lgd, lpd) with installed weights")
    p.add_argument("--out", required=True, metavar="FILE.npy",
                   help="output image; a .png (and a .dcm for DICOM input) with the same stem beside it")
    p.add_argument("--image-size", type=int, default=None, metavar="N",
                   help="reconstruction grid N x N (default 128, or the sinogram file's spec)")
    p.add_argument("--angles", type=int, default=None,
                   help="image input: projection angles to simulate (default 30); sinogram input: "
                        "checked against its rows")
    p.add_argument("--noise", type=float, default=None,
                   help="image input: relative Gaussian noise (default 0.025)")
    p.add_argument("--seed", type=int, default=None, help="image input: noise seed (default 0)")
    p.add_argument("--kind", choices=["auto", "sinogram", "image"], default="auto",
                   help="what --input holds (default auto: .npz/.h5 and non-square .npy are "
                        "sinograms; .png, DICOM and square 2-D .npy are images)")
    p.add_argument("--index", type=int, default=0,
                   help="sample of an HDF5 file holding several (default 0)")
    _add_output_flags(p, "replace existing output files")
    _add_debug(p)
    p.set_defaults(func=cmd_reconstruct)

    p = sub.add_parser("evaluate", help="quality, error bounds and shift detection in and out of "
                                        "distribution",
                       description=_wrap(
                           "Calibrate distribution-free error bounds of each method on the "
                           "ellipses validation split, then measure PSNR/SSIM, the bounds' "
                           "coverage and shift detection on the test split and, with "
                           "--shift, on other image families and measurement shifts."),
                       epilog="examples:\n  " + EXAMPLES["evaluate"],
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--model", metavar="NAME",
                       help="shipped learned weights, e.g. lpd-ellipses (its method is evaluated)")
    which.add_argument("--methods", type=_csv, metavar="LIST",
                       help="comma-separated methods, e.g. fbp,tv,lpd")
    p.add_argument("--dataset", default="ellipses",
                   help="training distribution: calibration and in-distribution test (default ellipses)")
    p.add_argument("--shift", default=None, metavar="all|NAME|none",
                   help="also test under a shift: all, an image family (rectangles, ...), a "
                        "measurement shift (angles-20, noise-10%%, low-dose, ...), or a comma list "
                        "(default none: in distribution only)")
    p.add_argument("--n", type=int, default=100, help="test images per shift (default 100)")
    p.add_argument("--alpha", type=float, default=0.1,
                   help="miscoverage level of the bounds and false-alarm rate (default 0.1)")
    p.add_argument("--calibration-n", type=int, default=200, metavar="N",
                   help="ellipses validation images for calibration (default 200)")
    p.add_argument("--batch-size", type=int, default=50, help="images reconstructed together")
    p.add_argument("--json", metavar="FILE", help="write the rows (and calibration) as JSON")
    p.add_argument("--markdown", metavar="FILE", help="write the Markdown table")
    p.add_argument("--plot", metavar="FILE.png", help="write a bar chart of PSNR per shift")
    p.add_argument("--report", metavar="DIR",
                   help="write an HTML report of the study (tables and chart) to DIR/index.html")
    _add_output_flags(p, "replace existing --json/--markdown/--plot files and the report in a "
                         "non-empty --report directory")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_debug(p)
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("data", help="generate datasets to HDF5 files",
                       epilog="examples:\n  " + EXAMPLES["data"],
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    data_sub = p.add_subparsers(dest="action", metavar="ACTION")
    data_sub.required = True
    g = data_sub.add_parser("generate", help="simulate a dataset into an HDF5 file (resumable)",
                            epilog="examples:\n  " + EXAMPLES["data"],
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    g.add_argument("family", metavar="NAME",
                   help="image family: ellipses (DIVal's benchmark), shepp-logan, rectangles, ...")
    g.add_argument("--split", choices=["train", "validation", "test"], default="train")
    g.add_argument("--out", required=True, metavar="FILE.h5")
    g.add_argument("--n", type=int, default=None,
                   help="number of samples (default: the split's size, 32000/3200/3200)")
    g.add_argument("--shift", default=None, help="measurement shift, e.g. angles-20, noise-5%%, low-dose")
    g.add_argument("--seed", type=int, default=1, help="dataset seed (default 1, the standard one)")
    g.add_argument("--batch-size", type=int, default=64)
    _add_output_flags(g, "replace an existing file")
    g.add_argument("--quiet", action="store_true", help="no progress bar")
    g.set_defaults(func=cmd_data)

    p = sub.add_parser("train", help="train a learned reconstructor from a YAML configuration",
                       epilog="examples:\n  " + EXAMPLES["train"],
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("config", metavar="CONFIG.yaml",
                   help="training configuration (keys: out_dir, model, data, train; see docs/training.md)")
    p.add_argument("--out", default=None, metavar="DIR", help="run directory (default: the config's out_dir)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override one configuration value (YAML), e.g. --set train.seed=1; repeatable")
    p.add_argument("--resume", action="store_true", help="continue the run in the run directory")
    _add_output_flags(p)
    p.add_argument("--max-steps", type=int, default=None,
                   help="stop after this many steps (the schedule keeps its length; resume later)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("benchmark", help="speed and quality benchmarks against peers",
                       epilog="examples:\n  " + EXAMPLES["benchmark"],
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("task", choices=["operators", "ellipses", "learned"],
                   help="operators: projector speed against ASTRA; ellipses: reconstruction quality "
                        "on DIVal's ellipses test split against DIVal's published table; learned: "
                        "inference and training speed of the learned networks, operator share")
    p.add_argument("--methods", type=_csv, default=None,
                   help="ellipses: comma-separated methods (default fbp,tv); learned: networks "
                        "(default fbpconvnet,lgd,lpd)")
    p.add_argument("--n", type=int, default=None, help="ellipses: first N test samples (default all 3200)")
    p.add_argument("--batch-size", type=int, default=50, help="ellipses: images reconstructed together")
    p.add_argument("--amp", action="store_true",
                   help="ellipses: run the learned methods in bfloat16 (CPU) / float16 (CUDA) autocast")
    p.add_argument("--geometries", type=_csv, default=["ellipses", "lodopab", "fan"],
                   help="comma-separated: ellipses,lodopab,fan (default all)")
    p.add_argument("--batches", type=lambda v: _csv(v, int), default=None,
                   help="operators: comma-separated batch sizes (default 1,16); learned: one "
                        "inference batch size (default 16)")
    p.add_argument("--repeats", type=int, default=5, help="timed repetitions (median is reported)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    p.add_argument("--backend", choices=["auto", "sparse", "matrix_free"], default="auto")
    p.add_argument("--json", metavar="FILE", help="write the results as JSON")
    _add_output_flags(p, "replace an existing --json file")
    p.set_defaults(func=cmd_benchmark)
    return parser


def _one_line(e: BaseException) -> str:
    """An exception's message on one line (a KeyError's without its quotes)."""
    text = str(e.args[0]) if isinstance(e, KeyError) and e.args else str(e)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return "; ".join(lines) or type(e).__name__


def main(argv=None) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    args.command_line = "tomolearn " + " ".join(shlex.quote(a) for a in argv)
    from .train import TrainingDivergedError
    try:
        return args.func(args)
    except (UsageError, ValueError, TypeError, KeyError, OSError, ImportError,
            TrainingDivergedError) as e:
        if args.debug:
            raise
        print(f"tomolearn {args.verb}: error: {_one_line(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"tomolearn {args.verb}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
