"""STIR Interfile images (``.hv`` / ``.v``) and 2-D sinograms (``.hs`` / ``.s``); PET DICOM.

Interfile (version 3.3 keys as STIR writes them [1]_): a text header of ``key := value`` lines
(keys are case-insensitive, a leading ``!`` is ignored) naming a raw data file (``name of data
file``, relative to the header).  Supported number formats: ``float`` (4 or 8 bytes), ``signed
integer`` and ``unsigned integer`` (1, 2 or 4 bytes), either byte order; ``image scaling
factor[1]`` and ``data offset in bytes[1]`` are honoured.

* Images: ``number of dimensions := 3``, ``matrix size [1]`` (x, fastest), ``[2]`` (y), ``[3]``
  (z, 1 here); ``scaling factor (mm/pixel)`` per axis.  Array ``(H, W)`` = ``(size[2],
  size[1])``, rows as stored (row 0 first).
* Sinograms: ``number of dimensions := 4``, ``matrix axis label [4] := segment`` (1),
  ``[3] := view``, ``[2] := axial coordinate`` (1), ``[1] := tangential coordinate``; a
  ``Scanner parameters`` block (the :class:`~tomolearn.modalities.pet.scanner.Scanner`'s
  figures in cm, as STIR states them).  Array ``(n_views, n_bins)``.

The axes are stored as tomolearn holds them; STIR's own orientation and view-angle conventions
are not re-checked here.  Writers are atomic (data file, then header, each through a
temporary file) and refuse to overwrite an existing file unless ``overwrite=True``.
:func:`read_pet_dicom` reads a PET DICOM image with its rescale to Bq/ml.

References
----------
.. [1] K. Thielemans et al., STIR, Phys. Med. Biol. 57(4), 867-883, 2012; STIR's Interfile
       headers (``InterfileHeader.cxx``) and the Interfile 3.3 standard (Todd-Pokropek,
       Cradduck and Deconinck, Eur. J. Nucl. Med. 19, 1992).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Dict, Tuple

import numpy as np

from ...files import atomic_write_bytes
from .scanner import Scanner

__all__ = ["InterfileError", "read_interfile", "write_interfile_image",
           "write_interfile_sinogram", "read_pet_dicom"]


class InterfileError(ValueError):
    """An Interfile header or data file that cannot be read as asked (says what and where)."""


_FORMATS = {("float", 4): "f4", ("float", 8): "f8", ("signed integer", 1): "i1",
            ("signed integer", 2): "i2", ("signed integer", 4): "i4",
            ("unsigned integer", 1): "u1", ("unsigned integer", 2): "u2",
            ("unsigned integer", 4): "u4"}


def _parse(path: Path) -> Dict[str, str]:
    keys = {}
    for line in path.read_text(errors="replace").splitlines():
        if ":=" not in line:
            continue
        key, _, value = line.partition(":=")
        key = re.sub(r"\s+", " ", key.strip().lstrip("!").strip().lower())
        key = re.sub(r"\s*\[\s*(\d+)\s*\]", r" [\1]", key)
        keys[key] = value.strip()
    if "interfile" not in keys:
        raise InterfileError(f"{path} is not an Interfile header (no '!INTERFILE :=' line)")
    return keys


def _int(keys, key, path):
    try:
        return int(keys[key].strip("{} "))
    except (KeyError, ValueError):
        raise InterfileError(f"{path}: key {key!r} missing or not an integer") from None


def read_interfile(path) -> Tuple[np.ndarray, Dict[str, str]]:
    """Read an Interfile image or sinogram.

    Returns
    -------
    array : numpy.ndarray, float64
        ``(H, W)`` for a one-plane image, ``(n_views, n_bins)`` for a one-segment one-plane
        sinogram (otherwise the full array, slowest axis first), times ``image scaling factor``.
    header : dict
        All keys (lower case, ``!`` dropped) and their values as text.

    Raises
    ------
    FileNotFoundError
        The header or its data file does not exist (both paths named).
    InterfileError
        A missing key, an unsupported number format, or a data file of the wrong size.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no Interfile header at {path}")
    keys = _parse(path)
    if "name of data file" not in keys:
        raise InterfileError(f"{path}: no 'name of data file' key")
    data = (path.parent / keys["name of data file"]).resolve()
    if not data.is_file():
        raise FileNotFoundError(f"{path} names the data file {keys['name of data file']!r}, "
                                f"which does not exist (looked for {data})")
    fmt = keys.get("number format", "float").lower()
    nbytes = _int(keys, "number of bytes per pixel", path)
    if (fmt, nbytes) not in _FORMATS:
        raise InterfileError(f"{path}: unsupported number format {fmt!r} with {nbytes} bytes per "
                             f"pixel; supported: " + ", ".join(f"{f} ({b} bytes)" for f, b in _FORMATS))
    order = keys.get("imagedata byte order", "LITTLEENDIAN").upper()
    dtype = np.dtype(("<" if order.startswith("LITTLE") else ">") + _FORMATS[(fmt, nbytes)])
    ndim = _int(keys, "number of dimensions", path)
    sizes = [_int(keys, f"matrix size [{k}]", path) for k in range(ndim, 0, -1)]  # slowest first
    offset = int(keys.get("data offset in bytes [1]", "0") or 0)
    count = int(np.prod(sizes))
    raw = data.read_bytes()
    if len(raw) < offset + count * nbytes:
        raise InterfileError(f"{data} holds {len(raw)} bytes; the header {path} describes "
                             f"{offset} + {count} x {nbytes}")
    arr = np.frombuffer(raw, dtype=dtype, count=count, offset=offset).astype(np.float64)
    arr = arr.reshape(sizes) * float(keys.get("image scaling factor [1]", "1") or 1)
    if ndim == 4 and sizes[0] == sizes[2] == 1:  # one segment, one axial position
        return arr.reshape(sizes[1], sizes[3]), keys
    return (arr.reshape(sizes[-2:]) if int(np.prod(sizes[:-2])) == 1 else arr), keys


def _write(header: Path, data_name: str, array: np.ndarray, lines, overwrite: bool) -> None:
    header = Path(header)
    data = header.parent / data_name
    for p in (header, data):
        if p.exists() and not overwrite:
            raise FileExistsError(f"{p} exists; pass overwrite=True to replace it")
    atomic_write_bytes(data, np.ascontiguousarray(array, dtype="<f4").tobytes())
    text = ["!INTERFILE  :=", f"name of data file := {data_name}"] + list(lines) + \
        ["!END OF INTERFILE :="]
    atomic_write_bytes(header, ("\n".join(text) + "\n").encode())


def _check_2d(array, what):
    arr = np.asarray(array.detach().cpu().numpy() if hasattr(array, "detach") else array,
                     dtype=np.float64)
    arr = arr.reshape(arr.shape[-2:]) if arr.ndim > 2 and int(np.prod(arr.shape[:-2])) == 1 \
        else arr
    if arr.ndim != 2 or not np.all(np.isfinite(arr)):
        raise ValueError(f"{what} must be a finite 2-D array, got shape {arr.shape}")
    return arr


#: The keys every header this module writes opens with, and its data format (float32).
_HEADER_START = ["!imaging modality := PT", "!version of keys := STIR4.0", "!GENERAL DATA :=",
                 "!GENERAL IMAGE DATA :=", "!type of data := PET",
                 "imagedata byte order := LITTLEENDIAN", "!PET STUDY (General) :="]
_FLOAT32 = ["!number format := float", "!number of bytes per pixel := 4"]


def write_interfile_image(path, image, voxel_mm: float, overwrite: bool = False) -> Path:
    """Write ``image`` ``(H, W)`` (or ``(1, 1, H, W)``) as a STIR Interfile image: header
    ``path`` (``.hv``) and data ``path`` with ``.v`` (float32, little endian); voxels
    ``voxel_mm`` mm.  Returns the header path."""
    path = Path(path)
    arr = _check_2d(image, "image")
    h, w = arr.shape
    lines = [*_HEADER_START,
             "!PET data type := Image", "process status := Reconstructed",
             *_FLOAT32,
             "number of dimensions := 3",
             "matrix axis label [1] := x", f"!matrix size [1] := {w}",
             f"scaling factor (mm/pixel) [1] := {voxel_mm}",
             "matrix axis label [2] := y", f"!matrix size [2] := {h}",
             f"scaling factor (mm/pixel) [2] := {voxel_mm}",
             "matrix axis label [3] := z", "!matrix size [3] := 1",
             f"scaling factor (mm/pixel) [3] := {voxel_mm}",
             "number of time frames := 1", "image scaling factor [1] := 1",
             "data offset in bytes [1] := 0", "quantification units := 1"]
    _write(path, path.with_suffix(".v").name, arr, lines, overwrite)
    return path


def write_interfile_sinogram(path, sinogram, scanner: Scanner, bin_mm: float,
                             overwrite: bool = False) -> Path:
    """Write a direct-plane sinogram ``(n_views, n_bins)`` (or ``(1, 1, V, K)``) as a STIR
    Interfile projection-data header ``path`` (``.hs``) and data ``.s`` (float32), with the
    scanner's figures (cm, as STIR states them) and the bin size ``bin_mm``."""
    path = Path(path)
    arr = _check_2d(sinogram, "sinogram")
    views, bins = arr.shape
    lines = [*_HEADER_START,
             "!PET data type := Emission", "applied corrections := {None}",
             *_FLOAT32,
             "number of dimensions := 4",
             "matrix axis label [4] := segment", "!matrix size [4] := 1",
             "matrix axis label [3] := view", f"!matrix size [3] := {views}",
             "matrix axis label [2] := axial coordinate", "!matrix size [2] := { 1}",
             "matrix axis label [1] := tangential coordinate", f"!matrix size [1] := {bins}",
             "minimum ring difference per segment := {0}",
             "maximum ring difference per segment := {0}",
             "Scanner parameters:=", f"Scanner type := {scanner.name}",
             "Number of rings := 1",
             f"Number of detectors per ring := {scanner.crystals_per_ring}",
             f"Inner ring diameter (cm) := {2 * scanner.ring_radius_mm / 10:g}",
             f"Average depth of interaction (cm) := {scanner.doi_mm / 10:g}",
             f"Default bin size (cm) := {scanner.bin_size_mm / 10:g}",
             "View offset (degrees) := 0",
             f"Maximum number of non-arc-corrected bins := {scanner.n_bins}",
             f"Default number of arc-corrected bins := {scanner.n_bins}",
             "end scanner parameters:=",
             f"effective central bin size (cm) := {bin_mm / 10:g}",
             "number of time frames := 1", "image scaling factor [1] := 1",
             "data offset in bytes [1] := 0"]
    _write(path, path.with_suffix(".s").name, arr, lines, overwrite)
    return path


def read_pet_dicom(path) -> Tuple[np.ndarray, dict]:
    """A PET DICOM image ``(H, W)`` float64 in Bq/ml: stored values times ``RescaleSlope`` plus
    ``RescaleIntercept``.  Returns it with ``{"units", "slope", "intercept", "pixel_mm"}``;
    ``ValueError`` for a non-PET file or units other than ``BQML``."""
    import pydicom  # lazy: only DICOM reading needs it

    ds = pydicom.dcmread(str(path))
    if getattr(ds, "Modality", None) != "PT":
        raise ValueError(f"{path} is not a PET image (Modality {getattr(ds, 'Modality', None)!r})")
    units = str(getattr(ds, "Units", "BQML")).upper()
    if units != "BQML":
        raise ValueError(f"{path}: units {units!r}; only BQML (Bq/ml) images are supported")
    slope = float(getattr(ds, "RescaleSlope", 1.0))
    intercept = float(getattr(ds, "RescaleIntercept", 0.0))
    image = ds.pixel_array.astype(np.float64) * slope + intercept
    spacing = [float(v) for v in getattr(ds, "PixelSpacing", [1.0, 1.0])]
    return image, {"units": "Bq/ml", "slope": slope, "intercept": intercept,
                   "pixel_mm": tuple(spacing)}
