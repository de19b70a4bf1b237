"""``tomolearn reconstruct``: one sinogram, or data simulated from one image, with any method.

Reading the input and encoding the outputs live in :mod:`tomolearn.data.io`
and :mod:`tomolearn.modalities.ct.reconstruct_input`; this module checks the
options and output paths, reconstructs (a registered method, or the user's own
trained weights with ``--weights``), writes and prints the summary.
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from pathlib import Path

import numpy as np
import torch

from .. import __version__, metrics
from ..data.io import derived_dicom_bytes, derived_nifti_bytes, png_bytes
from ..modalities.ct.reconstruct_input import (InputOptionError, derivation_description,
                                               read_reconstruction_input)
from ..files import atomic_write_bytes
from ..registry import build_method, method, methods
from ..weights import WeightsError, available, load, load_weights
from ..modalities.ct import SimulationSpec
from .options import (EXAMPLES, HelpFormatter, UsageError, add_debug, add_force_flag,
                      add_output_flags, check_finite, check_memory, check_out_file,
                      check_simulation_flags, still_running, wrap, write_json)

RECONSTRUCT_NOTES = """\
input:
  sinogram  .npy (A, D) or (1, A, D) array; .npz with one array or key 'sinogram'
            ('measurement'), optional 'ground_truth'; .h5 with dataset 'measurement' or
            'sinogram' (tomolearn data files: geometry from their spec, --index picks the
            sample, PSNR against their ground truth).  Geometry otherwise: parallel beam,
            A angles at the midpoints of [0, pi), D detectors spanning the image diagonal
            (spacing N*sqrt(2)/D), an N x N image (--image-size, default 128).
  image     .png (grey; colour is converted to luminance), .tif/.tiff and .nii/.nii.gz
            (a 2-D slice, or a volume: --index picks the slice; values as stored; NIfTI
            needs nibabel: pip install 'tomolearn[nifti]'), a square 2-D .npy (values as
            stored) or a DICOM file (by content; CT in HU is read as attenuation 1/m and
            mapped to [0, 1] by mu/81.36, LoDoPaB's scale).  Resampled to N x N (area average),
            data simulated on a 400 x 400 grid (no inverse crime) with --angles, --noise
            and --seed; the summary shows PSNR/SSIM against the resampled image.
  --kind auto prints (stderr) what it took the file for and why; a .npy shape that fits
  neither (1-D, (k, A, D) with k > 1, ...) is refused.
method:
  --method NAME, or --weights FILE.safetensors: your own trained weights (with the model
  card FILE.json beside it, as tomolearn train writes them); the card names the method
  and is checked against this data's geometry.
output:
  FILE.npy     float32 (N, N) in the input's units (1/m for CT DICOM), written atomically
  FILE.png     8-bit grey, ground-truth range (else 0.5-99.5 percentiles) mapped to 0-255
  FILE.dcm     DICOM input only: the input dataset with the reconstruction as pixel data
               (HU for CT), new SOP/series UIDs, ImageType DERIVED\\SECONDARY
  FILE.nii.gz  NIfTI input only: the reconstruction where the slice lies in the input's
               space (its affine, pixel spacing fov/N)
  --json FILE  method, input, kind, image_shape, data_shape, seconds, psnr/ssim (with a
               ground truth) and the outputs"""


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``reconstruct`` verb to ``subparsers`` (the top parser's subparsers action)."""
    p = subparsers.add_parser(
        "reconstruct", help="reconstruct one sinogram, or simulated data of one image",
        description=wrap(
            "Reconstruct a sinogram file (.npy, .npz, .h5), or data simulated "
            "from an image (.png, .tif, .nii/.nii.gz, a square 2-D .npy, a DICOM "
            "file), with any method or your own trained weights; write the image "
            "as .npy and .png (and .dcm for DICOM input, .nii.gz for NIfTI input) "
            "beside --out."),
        epilog=("examples:\n  " + EXAMPLES["reconstruct"]
                + "\n  tomolearn reconstruct --input ct.nii.gz --index 40 --method fbp "
                "--out s40.npy   # + s40.png, s40.nii.gz"
                + "\n  tomolearn reconstruct --input sino.npy --weights runs/lpd2/best.safetensors "
                "--out rec.npy --json rec.json"
                + "\n\n" + RECONSTRUCT_NOTES),
        formatter_class=HelpFormatter)
    p.add_argument("--input", required=True, metavar="FILE",
                   help="sinogram (.npy/.npz/.h5) or image (.png, .tif, .nii, .nii.gz, .npy, "
                        "DICOM) file")
    p.add_argument("--method", metavar="NAME",
                   help="a registered method of the ct task: " + ", ".join(methods("ct"))
                        + " (learned ones need their installed weights); or give --weights")
    p.add_argument("--weights", metavar="FILE.safetensors",
                   help="your own trained weights (model card FILE.json beside them, as "
                        "tomolearn train writes them); the card names the method")
    p.add_argument("--out", required=True, metavar="FILE.npy",
                   help="output image; a .png (a .dcm for DICOM input, a .nii.gz for NIfTI "
                        "input) with the same stem beside it")
    p.add_argument("--json", metavar="FILE",
                   help="also write the run (method, input, kind, shapes, seconds, PSNR/SSIM, "
                        "outputs) as JSON")
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
                        "sinograms; .png, .tif, .nii, DICOM and square 2-D .npy are images; the "
                        "guess is printed on stderr)")
    p.add_argument("--index", type=int, default=0,
                   help="sample of an HDF5 file holding several, or slice of a NIfTI/TIFF "
                        "volume (default 0)")
    add_output_flags(p, "replace existing output files")
    add_force_flag(p)
    add_debug(p)
    p.set_defaults(func=run)
    return p


def _flag(option: str) -> str:
    """The command-line spelling of a reader keyword: ``image_size`` -> ``--image-size``."""
    return "--" + option.replace("_", "-")


def _read_input(args):
    """``--input`` read with the reconstruct options: a
    :class:`~tomolearn.modalities.ct.reconstruct_input.ReconstructionInput`.

    Option mismatches and a missing or directory ``--input`` become :class:`UsageError`
    naming the flags; other read errors (ValueError naming the file) pass through.
    """
    try:
        return read_reconstruction_input(Path(args.input), kind=args.kind, index=args.index,
                                         image_size=args.image_size, angles=args.angles,
                                         noise=args.noise, seed=args.seed)
    except InputOptionError as e:
        raise UsageError(e.describe(_flag, " ")) from None
    except (FileNotFoundError, IsADirectoryError) as e:
        raise UsageError(f"--input {e}") from None


def _method_and_weights(args):
    """``(method name, weights path or None)`` from ``--method`` and ``--weights``, checked
    before any work: a known method with its weights installed, or a weights file whose model
    card is sound and names the method ``--method`` says, if given."""
    if args.weights is None:
        if args.method is None:
            raise UsageError("give --method NAME (a registered method) or --weights "
                             "FILE.safetensors (your own trained weights)")
        known = methods("ct")
        if args.method not in known:
            raise UsageError(f"unknown method {args.method!r}; available: {', '.join(known)}")
        weights = method(args.method).weights
        if weights is not None and weights not in available():
            raise UsageError(f"method {args.method!r} needs the weights {weights!r}, which are "
                             f"not installed (installed: {', '.join(available()) or 'none'})")
        return args.method, None
    path = Path(args.weights)
    if path.suffix != ".safetensors":
        raise UsageError(f"--weights {path}: expected a .safetensors file (with its model card "
                         f"{path.with_suffix('.json').name} beside it, as tomolearn train writes "
                         "them)")
    if path.is_dir():
        raise UsageError(f"--weights {path}: is a directory")
    try:
        _, card = load_weights(path)
    except (FileNotFoundError, WeightsError) as e:
        raise UsageError(f"--weights {e}") from None
    name = card["model"]["name"]
    if args.method is not None and args.method != name:
        raise UsageError(f"--method {args.method} and --weights {path} disagree: the weights' "
                         f"model card says they are {name!r} weights; leave out --method (the "
                         f"card names the method) or pass --method {name}")
    return name, path


def _reconstructor(name: str, weights, inp, op):
    """``recon(y)`` of the method ``name`` (or the weights) on this input, set up (untimed)."""
    y = inp.y
    n = inp.spec.image_size
    with torch.no_grad():
        try:
            if weights is None:
                recon = build_method(name, inp.spec, op=op)
            else:
                model = load(weights, op=op)  # checks the model card against the operator

                def recon(data):
                    return model(data).float()
            recon(torch.zeros_like(y))  # set-up (matrix, weights), untimed
        except ValueError as e:
            who = f"method {name!r}" if weights is None else f"--weights {weights}"
            raise UsageError(f"{who} cannot reconstruct this data ({y.shape[2]} angles x "
                             f"{y.shape[3]} detectors, {n}x{n} image): {e}") from None
    return recon


def _check_args(args) -> None:
    if args.image_size is not None and not 8 <= args.image_size <= 4096:
        raise UsageError(f"--image-size must be in [8, 4096], got {args.image_size}")
    check_simulation_flags(args)
    if args.index < 0:
        raise UsageError(f"--index must be non-negative, got {args.index}")
    # pre-flight before reading: an image input is simulated at --angles on a fine grid
    planned = SimulationSpec().replace(**{k: v for k, v in (("n_angles", args.angles),
                                                            ("image_size", args.image_size))
                                         if v is not None})
    check_memory("reconstruct", planned, 1, args.force)


def run(args) -> int:
    """Reconstruct one sinogram, or data simulated from one image, with any method."""
    name, weights = _method_and_weights(args)
    label = name if weights is None else f"{name} (weights {weights.name})"
    _check_args(args)
    out = check_out_file(args.out, "--out", args.overwrite, args.parents, suffix=".npy")
    png = check_out_file(out.with_suffix(".png"), "--out (its PNG)", args.overwrite, args.parents)
    js = None
    if args.json:
        js = check_out_file(args.json, "--json", args.overwrite, args.parents, suffix=".json")
    inp = _read_input(args)
    check_finite(inp.y, f"the data of --input {args.input}",
                 "reconstruction needs finite data")
    dcm = nii = None
    if inp.dicom is not None:
        dcm = check_out_file(out.with_suffix(".dcm"), "--out (its DICOM)", args.overwrite,
                             args.parents)
    if inp.nifti is not None:
        nii = check_out_file(out.with_suffix(".nii.gz"), "--out (its NIfTI)", args.overwrite,
                             args.parents)

    recon = _reconstructor(name, weights, inp, inp.spec.operator())
    if inp.kind_note:
        print(f"tomolearn reconstruct: --kind auto: {inp.kind_note}", file=sys.stderr)
    y = inp.y
    with torch.no_grad(), still_running(f"reconstructing with {label}"):
        t0 = time.perf_counter()
        rec = recon(y).float()
        seconds = time.perf_counter() - t0
    check_finite(rec, f"the {label} reconstruction",
                 f"nothing was written (the data's largest magnitude is "
                 f"{float(y.abs().max()):.3g}; values this large overflow float32 arithmetic)")
    scores = {}
    quality = ""
    if inp.gt is not None:
        scores = {"psnr": float(metrics.psnr(rec, inp.gt)[0]),
                  "ssim": float(metrics.ssim(rec, inp.gt)[0])}
        quality = (f"; PSNR {scores['psnr']:.2f} dB, SSIM {scores['ssim']:.3f} against the "
                   "input image")
    image = rec[0, 0].numpy()
    in_units = (image.astype(np.float64) * inp.unit_scale).astype(np.float32)
    buf = io.BytesIO()
    np.save(buf, in_units, allow_pickle=False)
    if inp.gt is not None:
        lo, hi = float(inp.gt.min()), float(inp.gt.max())
    else:
        lo, hi = (float(v) for v in np.percentile(image, [0.5, 99.5]))
    files = [(out, buf.getvalue()), (png, png_bytes(image, lo, hi))]
    if dcm is not None:
        files.append((dcm, derived_dicom_bytes(inp.dicom, in_units, inp.dicom_geometry,
                                               derivation_description(label, inp.spec))))
    n = inp.spec.image_size
    if nii is not None:
        files.append((nii, derived_nifti_bytes(
            inp.nifti, inp.nifti_index, in_units, inp.grid,
            f"tomolearn {__version__}: {name}, {n}x{n}, {inp.spec.n_angles} angles simulated")))
    for path, data in files:  # everything is computed: only the (atomic) writes remain
        atomic_write_bytes(path, data)
    if js is not None:
        write_json(str(js), {
            "method": name, **({"weights": str(weights)} if weights is not None else {}),
            "input": str(args.input), "kind": "sinogram" if inp.kind == "sinogram" else "image",
            "format": inp.format, "image_shape": [n, n], "data_shape": [y.shape[2], y.shape[3]],
            "seconds": seconds, **scores, "outputs": [str(p) for p, _ in files]})
    written = [str(p) for p, _ in files] + ([str(js)] if js is not None else [])
    print(f"{label}: {n}x{n} image from {y.shape[2]} angles x {y.shape[3]} detectors in "
          f"{seconds:.3f} s{quality}; wrote {', '.join(written)} "
          f"[{inp.note}; .npy in {inp.units}]")
    return 0
