"""The pixels of one DICOM file: reading the dataset, decoding, the modality LUT.

Errors name the file; compressed pixel data without an installed decoder plugin
raise :class:`MissingDecoderError` naming the packages to install.  pydicom is
imported lazily (on first use) to keep ``import tomolearn`` light.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import List, Sequence

import numpy as np

__all__ = ["MissingDecoderError"]

_PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")


class MissingDecoderError(ImportError):
    """A DICOM file's pixel data are compressed and no installed plugin decodes them."""


def _pydicom():
    import pydicom  # a core dependency; imported lazily to keep `import tomolearn` light

    return pydicom


def _read_dataset(path: Path, *, header_only: bool):
    """dcmread with errors that name the file; header_only defers large values."""
    pydicom = _pydicom()
    try:
        if header_only:
            return pydicom.dcmread(path, defer_size="4 KB")
        return pydicom.dcmread(path)
    except pydicom.errors.InvalidDicomError as e:
        raise ValueError(f"{path}: not a DICOM file (no 'DICM' prefix after the 128-byte "
                         "preamble, or no file meta information)") from e
    except (IsADirectoryError, FileNotFoundError, PermissionError):
        raise
    except Exception as e:  # truncated or corrupt files raise many things
        raise ValueError(f"{path}: unreadable DICOM file ({type(e).__name__}: {e})") from e


def _has_pixels(ds) -> bool:
    return any(k in ds for k in _PIXEL_KEYWORDS)


def _transfer_syntax(ds):
    meta = getattr(ds, "file_meta", None)
    if meta is None or "TransferSyntaxUID" not in meta:
        return None
    return meta.TransferSyntaxUID


def _install_hints(missing: Sequence[str]) -> List[str]:
    """``pip install ...`` lines from pydicom's ``Decoder.missing_dependencies`` strings.

    pydicom writes them as e.g. ``"pylibjpeg - requires pylibjpeg>=2.0 and
    pylibjpeg-libjpeg>=2.1"`` or ``"gdcm - requires gdcm>=3.0.10"``.
    """
    rename = {"gdcm": "python-gdcm", "pillow": "pillow"}
    hints = []
    for entry in missing:
        _, _, req = entry.partition(" - requires ")
        names = []
        for part in req.split(" and "):
            m = re.match(r"\s*([A-Za-z0-9_.\-]+)", part)
            if m and m.group(1).lower() != "numpy":
                names.append(rename.get(m.group(1).lower(), m.group(1)))
        if names:
            hints.append("pip install " + " ".join(names))
    return hints


def _check_decodable(ds, path: Path) -> None:
    """Raise a clear error when the pixel data are compressed and cannot be decoded."""
    tsuid = _transfer_syntax(ds)
    if tsuid is None or not tsuid.is_compressed:
        return
    try:
        from pydicom.pixels import get_decoder  # pydicom >= 3
    except ImportError:
        return  # pydicom 2.x: decoding errors are translated in _pixels
    name = f"{tsuid.name} ({tsuid})" if tsuid.name != str(tsuid) else str(tsuid)
    try:
        decoder = get_decoder(tsuid)
    except NotImplementedError:
        raise ValueError(
            f"{path}: pixel data use transfer syntax {name}, which pydicom cannot decode "
            "with any plugin; convert the file to an uncompressed transfer syntax "
            "(e.g. `gdcmconv --raw` or `dcmdjpeg`)"
        ) from None
    if not decoder.is_available:
        hints = _install_hints(decoder.missing_dependencies)
        fallback = {
            "jpeg-ls": ["pip install pyjpegls", "pip install pylibjpeg pylibjpeg-libjpeg"],
            "jpeg 2000": ["pip install pylibjpeg pylibjpeg-openjpeg", "pip install python-gdcm"],
        }
        if not hints:
            lname = tsuid.name.lower()
            hints = next((v for k, v in fallback.items() if k in lname),
                         ["pip install pylibjpeg pylibjpeg-libjpeg", "pip install python-gdcm"])
        raise MissingDecoderError(
            f"{path}: cannot decode pixel data compressed with transfer syntax {name}: "
            f"no decoder plugin for it is installed. Install one of: {'; '.join(hints)}"
        )


def _pixels(ds, path: Path) -> np.ndarray:
    """The 2-D stored pixel array of one slice, with errors naming the file."""
    if not _has_pixels(ds):
        raise ValueError(f"{path}: DICOM file has no pixel data (no PixelData element); "
                         "not an image")
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if frames > 1:
        raise ValueError(
            f"{path}: multi-frame DICOM with {frames} frames; expected one 2-D slice per "
            "file (enhanced multi-frame objects are not supported)")
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    if samples != 1:
        raise ValueError(f"{path}: {samples} samples per pixel "
                         f"({ds.get('PhotometricInterpretation', '?')}); expected a "
                         "single-channel (grayscale) image")
    _check_decodable(ds, path)
    try:
        arr = ds.pixel_array
    except Exception as e:
        tsuid = _transfer_syntax(ds)
        ts = f" (transfer syntax {tsuid.name})" if tsuid is not None else ""
        text = str(e).lower()
        if tsuid is not None and tsuid.is_compressed and (
                "missing required dependencies" in text or "no pixel data handlers" in text):
            # pydicom 2.x, where _check_decodable cannot ask for the decoder up front.
            raise MissingDecoderError(
                f"{path}: cannot decode pixel data compressed with transfer syntax "
                f"{tsuid.name} ({tsuid}): no decoder plugin for it is installed. Install "
                "one of: pip install pylibjpeg pylibjpeg-libjpeg pylibjpeg-openjpeg; "
                f"pip install python-gdcm ({e})") from e
        raise ValueError(f"{path}: could not decode pixel data{ts}: "
                         f"{type(e).__name__}: {e}") from e
    if arr.ndim != 2:
        raise ValueError(f"{path}: pixel data have shape {arr.shape}; expected a 2-D "
                         "(rows, columns) slice")
    return arr


def _rescaled(ds, arr: np.ndarray) -> np.ndarray:
    """Modality LUT: ``stored * RescaleSlope + RescaleIntercept`` in float64 (defaults 1, 0)."""
    slope = ds.get("RescaleSlope", None)
    intercept = ds.get("RescaleIntercept", None)
    slope = 1.0 if slope in (None, "") else float(slope)
    intercept = 0.0 if intercept in (None, "") else float(intercept)
    return arr.astype(np.float64) * slope + intercept
