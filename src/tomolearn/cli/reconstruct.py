"""``tomolearn reconstruct``: one sinogram, or data simulated from one image, with any method.

Reading the input and encoding the outputs live in :mod:`tomolearn.data.io`;
this module checks the options and output paths, reconstructs, writes and
prints the summary.
"""

from __future__ import annotations

import argparse
import io
import time
from pathlib import Path

import numpy as np
import torch

from .. import metrics
from ..data.io import derived_dicom_bytes, png_bytes
from ..modalities.ct.reconstruct_input import (InputOptionError, derivation_description,
                                               read_reconstruction_input)
from ..files import atomic_write_bytes
from ..registry import build_method, method, methods
from ..weights import available
from .options import (EXAMPLES, UsageError, add_debug, add_output_flags, check_out_file, wrap)

RECONSTRUCT_NOTES = """\
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


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``reconstruct`` verb to ``subparsers`` (the top parser's subparsers action)."""
    p = subparsers.add_parser(
        "reconstruct", help="reconstruct one sinogram, or simulated data of one image",
        description=wrap(
            "Reconstruct a sinogram file (.npy, .npz, .h5), or data simulated "
            "from an image (.png, a square 2-D .npy, a DICOM file), with any "
            "method; write the image as .npy and .png (and .dcm for DICOM "
            "input) beside --out."),
        epilog=("examples:\n  " + EXAMPLES["reconstruct"] + "\n\n" + RECONSTRUCT_NOTES),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--input", required=True, metavar="FILE",
                   help="sinogram (.npy/.npz/.h5) or image (.png, .npy, DICOM) file")
    p.add_argument("--method", required=True, metavar="NAME",
                   help="a registered method of the ct task: " + ", ".join(methods("ct"))
                        + " (learned ones need their installed weights)")
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
    add_output_flags(p, "replace existing output files")
    add_debug(p)
    p.set_defaults(func=run)
    return p


def _flag(option: str) -> str:
    """The command-line spelling of a reader keyword: ``image_size`` -> ``--image-size``."""
    return "--" + option.replace("_", "-")


def _read_input(args):
    """``--input`` read with the reconstruct options: a :class:`~tomolearn.data.io.ReconstructionInput`.

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


def run(args) -> int:
    """Reconstruct one sinogram, or data simulated from one image, with any method."""
    known = methods("ct")
    if args.method not in known:
        raise UsageError(f"unknown method {args.method!r}; available: {', '.join(known)}")
    weights = method(args.method).weights
    if weights is not None and weights not in available():
        raise UsageError(f"method {args.method!r} needs the weights {weights!r}, "
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
    out = check_out_file(args.out, "--out", args.overwrite, args.parents, suffix=".npy")
    png = check_out_file(out.with_suffix(".png"), "--out (its PNG)", args.overwrite, args.parents)
    inp = _read_input(args)
    dcm = None
    if inp.dicom is not None:
        dcm = check_out_file(out.with_suffix(".dcm"), "--out (its DICOM)", args.overwrite,
                             args.parents)

    op = inp.spec.operator()
    y = inp.y
    with torch.no_grad():
        try:
            recon = build_method(args.method, inp.spec, op=op)
            recon(torch.zeros_like(y))  # set-up (matrix, weights), untimed
        except ValueError as e:
            raise UsageError(f"method {args.method!r} cannot reconstruct this data "
                             f"({y.shape[2]} angles x {y.shape[3]} detectors, "
                             f"{inp.spec.image_size}x{inp.spec.image_size} image): {e}") from None
        t0 = time.perf_counter()
        rec = recon(y).float()
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
    files = [(out, buf.getvalue()), (png, png_bytes(image, lo, hi))]
    if dcm is not None:
        files.append((dcm, derived_dicom_bytes(inp.dicom, in_units, inp.dicom_geometry,
                                               derivation_description(args.method, inp.spec))))
    for path, data in files:  # everything is computed: only the (atomic) writes remain
        atomic_write_bytes(path, data)
    n = inp.spec.image_size
    print(f"{args.method}: {n}x{n} image from {y.shape[2]} angles x {y.shape[3]} detectors in "
          f"{seconds:.3f} s{quality}; wrote {', '.join(str(p) for p, _ in files)} "
          f"[{inp.note}; .npy in {inp.units}]")
    return 0
