"""Reading real images: DICOM, NIfTI and NumPy files, resampling, simulated pairs.

Real CT slices enter tomolearn through this module: read a file or a series
(:func:`read_dicom`, :func:`read_nifti`, :func:`read_array`, or
:func:`read_image` to dispatch on the file type), bring the slice to the
reconstruction grid (:func:`resample`), map it to ``[0, 1]`` the way
LoDoPaB-CT does (:func:`slice_to_unit_range`) and simulate measurements
without the inverse crime (:func:`real_measurement_pair`).

Conventions
-----------
Arrays
    Volumes are ``(D, H, W)`` float32 torch tensors, single slices
    ``(1, H, W)``: ``D`` indexes slices, row 0 of every slice is the top of
    the displayed image (as in :mod:`tomolearn.ct`).
Attenuation
    Linear attenuation coefficients are in 1/m, converted from Hounsfield
    units with LoDoPaB-CT's constants and formula
    (``lodopab_tech_ref/create_dataset.py``)::

        mu = HU * (MU_WATER - MU_AIR) / 1000 + MU_WATER,   clipped at mu >= 0

    with ``MU_WATER = 20`` 1/m and ``MU_AIR = 0.02`` 1/m
    (:mod:`tomolearn.noise`), so 0 HU (water) gives 20 1/m, -1000 HU (air)
    gives 0.02 1/m and 3071 HU gives ``MU_MAX`` = 81.35858 1/m.
Orientation
    DICOM slices keep the stored pixel order (row 0 = first stored row);
    for the usual axial CT orientation (``ImageOrientationPatient`` =
    ``[1, 0, 0, 0, 1, 0]``) that is the radiological display: anterior at
    the top, the patient's right on the image's left.  Slices of a series
    are ordered by increasing position along the slice normal (row
    direction x column direction), i.e. inferior to superior for axial CT.
    NIfTI volumes are brought to the same display (see :func:`read_nifti`).
Lengths
    Pixel and voxel spacings are in millimetres.

References
----------
.. [1] J. Leuschner, M. Schmidt, D. O. Baguer and P. Maass, "LoDoPaB-CT, a
       benchmark dataset for low-dose computed tomography reconstruction",
       Sci. Data 8, 109, 2021; https://github.com/jleuschn/lodopab_tech_ref
.. [2] DICOM PS3.3, C.7.6.2 (Image Plane Module) and C.11.1 (Modality LUT).
"""

from __future__ import annotations

import math
import numbers
import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from ..noise import MU_AIR, MU_MAX, MU_WATER
from .simulation import SimulationSpec, simulate

__all__ = [
    "DicomVolume",
    "MissingDecoderError",
    "NiftiVolume",
    "hu_to_mu",
    "mu_to_hu",
    "read_array",
    "read_dicom",
    "read_dicom_series",
    "read_image",
    "read_nifti",
    "read_nifti_volume",
    "real_measurement_pair",
    "resample",
    "slice_to_unit_range",
]

PathLike = Union[str, os.PathLike]

_UNITS = ("mu_per_m", "hu", "rescaled")

#: SOP class of a DICOMDIR (media storage directory); never an image.
_DICOMDIR_SOP_CLASS = "1.2.840.10008.1.3.10"

_PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")


class MissingDecoderError(ImportError):
    """A DICOM file's pixel data are compressed and no installed plugin decodes them."""


# ----------------------------------------------------------------------------------------------
# HU <-> attenuation
# ----------------------------------------------------------------------------------------------

def hu_to_mu(hu, mu_water: float = MU_WATER, mu_air: float = MU_AIR):
    """Linear attenuation (1/m) of Hounsfield units, LoDoPaB-CT's formula.

    ``mu = hu * (mu_water - mu_air) / 1000 + mu_water``, clipped at 0 (values
    below about -1001 HU would otherwise be negative).

    Parameters
    ----------
    hu : float, numpy.ndarray or torch.Tensor
        Hounsfield units.
    mu_water, mu_air : float
        Attenuation of water and air in 1/m; defaults are LoDoPaB-CT's
        20 and 0.02 (:data:`tomolearn.noise.MU_WATER`, ``MU_AIR``).

    Returns
    -------
    mu : same type as `hu`
        1/m, >= 0.
    """
    mu = hu * ((mu_water - mu_air) / 1000.0) + mu_water
    if isinstance(mu, torch.Tensor):
        return mu.clamp_min(0.0)
    if isinstance(mu, np.ndarray):
        return np.maximum(mu, 0.0)
    return max(float(mu), 0.0)


def mu_to_hu(mu, mu_water: float = MU_WATER, mu_air: float = MU_AIR):
    """Hounsfield units of linear attenuation ``mu`` (1/m): the inverse of :func:`hu_to_mu`.

    ``hu = 1000 * (mu - mu_water) / (mu_water - mu_air)`` (no clipping).
    """
    return (mu - mu_water) * (1000.0 / (mu_water - mu_air))


# ----------------------------------------------------------------------------------------------
# DICOM
# ----------------------------------------------------------------------------------------------

@dataclass
class DicomVolume:
    """A DICOM image or series with the metadata needed to use and re-write it.

    Attributes
    ----------
    image : torch.Tensor, shape (D, H, W), float32
        Slices in `units`, ordered along the slice normal (see
        :func:`read_dicom_series`); ``D = 1`` for a single file.
    units : {"mu_per_m", "hu", "rescaled"}
        ``"mu_per_m"``: linear attenuation in 1/m; ``"hu"``: Hounsfield
        units; ``"rescaled"``: stored values times RescaleSlope plus
        RescaleIntercept (any modality).
    pixel_spacing : (float, float) or None
        ``(row spacing, column spacing)`` in mm: the distance between the
        centres of adjacent rows, and of adjacent columns (DICOM
        PixelSpacing); None if the files do not say.
    slice_positions : tuple of float or None
        Position of each slice along the slice normal, in mm (the
        ImagePositionPatient projected on row direction x column direction),
        increasing; None when the series was ordered by InstanceNumber or
        file name.
    slice_spacing : float or None
        Median distance between adjacent slice positions in mm; for a single
        slice (or without positions) the SliceThickness if given, else None.
    orientation : tuple of 6 float or None
        ImageOrientationPatient: row direction then column direction (LPS).
    image_positions : list of (float, float, float) or None
        ImagePositionPatient of each slice in mm (centre of its first pixel).
    modality : str or None
        DICOM Modality ("CT", ...).
    series_uid : str or None
    files : list of pathlib.Path
        Source file of each slice, in slice order.
    datasets : list of pydicom.Dataset
        The full dataset of each slice, in slice order (kept to write derived
        DICOM files with the original metadata).
    """

    image: torch.Tensor
    units: str
    pixel_spacing: Optional[Tuple[float, float]]
    slice_positions: Optional[Tuple[float, ...]]
    slice_spacing: Optional[float]
    orientation: Optional[Tuple[float, ...]]
    image_positions: Optional[List[Tuple[float, float, float]]]
    modality: Optional[str]
    series_uid: Optional[str]
    files: List[Path] = field(default_factory=list)
    datasets: list = field(default_factory=list, repr=False)

    @property
    def spacing(self) -> Tuple[Optional[float], Optional[float], Optional[float]]:
        """``(slice, row, column)`` spacing in mm (entries may be None)."""
        row, col = self.pixel_spacing if self.pixel_spacing is not None else (None, None)
        return (self.slice_spacing, row, col)


def _pydicom():
    import pydicom  # a core dependency; imported lazily to keep `import tomolearn` light

    return pydicom


def _as_path(path, what="path") -> Path:
    if isinstance(path, bytes):
        path = path.decode()
    try:
        return Path(path)
    except TypeError:
        raise TypeError(f"{what} must be a str or os.PathLike, got {type(path).__name__}") from None


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


def _floats(value, n) -> Optional[Tuple[float, ...]]:
    if value is None:
        return None
    try:
        out = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        return None
    return out if len(out) == n and all(math.isfinite(v) for v in out) else None


def _describe_series(uid, headers) -> str:
    ds = headers[0][1]
    desc = ds.get("SeriesDescription", "")
    number = ds.get("SeriesNumber", "")
    return (f"  {uid}: {len(headers)} file(s), modality {ds.get('Modality', '?')}"
            + (f", series number {number}" if number not in ("", None) else "")
            + (f", '{desc}'" if desc else ""))


def _collect_series(directory: Path, series_uid: Optional[str]):
    """Headers of the image files of one series in `directory` (not recursive)."""
    pydicom = _pydicom()
    files = sorted(p for p in directory.iterdir() if p.is_file() and not p.name.startswith("."))
    if not files:
        raise FileNotFoundError(f"{directory}: empty directory; expected DICOM files of one series")
    series = {}
    skipped = []
    for p in files:
        try:
            ds = pydicom.dcmread(p, defer_size="4 KB")
        except pydicom.errors.InvalidDicomError:
            skipped.append(p.name)
            continue
        except Exception as e:
            raise ValueError(f"{p}: unreadable DICOM file ({type(e).__name__}: {e})") from e
        sop = ds.get("SOPClassUID", None) or getattr(ds.file_meta, "MediaStorageSOPClassUID", None)
        if str(sop) == _DICOMDIR_SOP_CLASS:
            skipped.append(p.name)
            continue
        series.setdefault(str(ds.get("SeriesInstanceUID", "")) or None, []).append((p, ds))
    if not series:
        listed = ", ".join(skipped[:5]) + (", ..." if len(skipped) > 5 else "")
        raise FileNotFoundError(f"{directory}: no DICOM files found ({len(skipped)} other "
                                f"file(s): {listed})")
    # Series without any pixel data (reports, presentation states) are not images.
    images = {uid: h for uid, h in series.items() if any(_has_pixels(ds) for _, ds in h)}
    if series_uid is not None:
        if series_uid not in series:
            raise ValueError(f"{directory}: no series with SeriesInstanceUID {series_uid!r}; "
                             "the directory holds:\n"
                             + "\n".join(_describe_series(u, h) for u, h in series.items()))
        return series_uid, series[series_uid]
    if not images:
        # Report the first file's problem (no pixel data) by name.
        p, ds = next(iter(series.values()))[0]
        _pixels(ds, p)
    if len(images) > 1:
        raise ValueError(
            f"{directory}: holds {len(images)} image series; pass series_uid= to pick one:\n"
            + "\n".join(_describe_series(u, h) for u, h in images.items()))
    return next(iter(images.items()))


def _order_slices(headers, where: Path):
    """Sort (path, ds) pairs along the slice normal, else by InstanceNumber, else by name.

    Returns the sorted list and the positions along the normal (or None).
    """
    if len(headers) == 1:
        p, ds = headers[0]
        pos = _floats(ds.get("ImagePositionPatient", None), 3)
        iop = _floats(ds.get("ImageOrientationPatient", None), 6)
        if pos is not None and iop is not None:
            normal = np.cross(iop[:3], iop[3:])
            if np.linalg.norm(normal) > 1e-6:
                return headers, (float(np.dot(pos, normal / np.linalg.norm(normal))),)
        return headers, None
    positions = [_floats(ds.get("ImagePositionPatient", None), 3) for _, ds in headers]
    orients = [_floats(ds.get("ImageOrientationPatient", None), 6) for _, ds in headers]
    if all(p is not None for p in positions) and all(o is not None for o in orients):
        ref = np.asarray(orients[0])
        for (p, _), o in zip(headers, orients):
            if np.max(np.abs(np.asarray(o) - ref)) > 1e-4:
                raise ValueError(
                    f"{where}: slices have different ImageOrientationPatient "
                    f"({headers[0][0].name}: {orients[0]}, {p.name}: {o}); "
                    "expected one series of parallel slices")
        normal = np.cross(ref[:3], ref[3:])
        norm = np.linalg.norm(normal)
        if norm > 1e-6:
            normal = normal / norm
            proj = np.array([np.dot(p, normal) for p in positions])
            order = np.argsort(proj, kind="stable")
            proj = proj[order]
            gaps = np.diff(proj)
            dup = np.flatnonzero(np.abs(gaps) < 1e-4)
            if dup.size:
                a, b = headers[order[dup[0]]][0], headers[order[dup[0] + 1]][0]
                raise ValueError(
                    f"{where}: {dup.size + 1} or more slices share a position along the "
                    f"slice normal (e.g. {a.name} and {b.name} at {proj[dup[0]]:.4g} mm); "
                    "expected one slice per position (several acquisitions or echoes in "
                    "one series?)")
            return [headers[i] for i in order], tuple(float(v) for v in proj)
    numbers_ = [ds.get("InstanceNumber", None) for _, ds in headers]
    if all(n not in (None, "") for n in numbers_):
        keys = [int(n) for n in numbers_]
        if len(set(keys)) != len(keys):
            raise ValueError(f"{where}: slices lack positions and their InstanceNumbers "
                             "repeat; cannot order the series")
        order = np.argsort(keys, kind="stable")
        return [headers[i] for i in order], None
    warnings.warn(f"{where}: slices have neither ImagePositionPatient/ImageOrientationPatient "
                  "nor InstanceNumber; ordering them by file name", stacklevel=3)
    return sorted(headers, key=lambda h: h[0].name), None


def read_dicom_series(path: PathLike, *, series_uid: Optional[str] = None,
                      units: str = "mu_per_m") -> DicomVolume:
    """Read one DICOM file or one series from a directory, with its metadata.

    Parameters
    ----------
    path : str or os.PathLike
        A DICOM file, or a directory whose (non-hidden, top-level) files hold
        one image series.  Files that are not DICOM (no ``DICM`` preamble)
        and a DICOMDIR are skipped in a directory; series without pixel data
        (structured reports, ...) are ignored.
    series_uid : str, optional
        SeriesInstanceUID of the series to read when the directory holds
        several (otherwise an error lists them).
    units : {"mu_per_m", "hu", "rescaled"}
        ``"mu_per_m"`` (default): linear attenuation in 1/m,
        :func:`hu_to_mu` of the Hounsfield units (LoDoPaB-CT's constants,
        clipped at 0).  ``"hu"``: Hounsfield units, ``stored *
        RescaleSlope + RescaleIntercept`` applied per file.  ``"rescaled"``:
        the same rescaling without reading it as HU, for non-CT modalities.
        ``"mu_per_m"`` and ``"hu"`` need Modality CT (or no Modality).

    Returns
    -------
    DicomVolume
        ``image`` of shape ``(D, H, W)``, float32 (``D = 1`` for a file).
        A series is ordered by the ImagePositionPatient of its slices
        projected on the slice normal (cross product of the row and column
        directions of ImageOrientationPatient), increasing; without
        positions by InstanceNumber; without either by file name (with a
        warning).  Pixels keep their stored order (row 0 = first stored row).

    Raises
    ------
    FileNotFoundError
        If `path` does not exist, or the directory is empty or holds no
        DICOM file.
    ValueError
        If a file is not DICOM or is corrupt, has no pixel data, is
        multi-frame or not grayscale, slices have different shapes, pixel
        spacings or orientations, positions repeat, the directory holds
        several image series and `series_uid` is not given, or `units` does
        not fit the modality.  The message names the file.
    MissingDecoderError (an ImportError)
        If the pixel data are compressed and no installed pydicom plugin
        decodes them; the message names the transfer syntax and the
        packages to install.
    """
    if units not in _UNITS:
        raise ValueError(f"units must be one of {_UNITS}, got {units!r}")
    path = _as_path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or directory")
    if path.is_dir():
        uid, headers = _collect_series(path, series_uid)
    else:
        ds = _read_dataset(path, header_only=False)
        uid = str(ds.get("SeriesInstanceUID", "")) or None
        if series_uid is not None and uid != series_uid:
            raise ValueError(f"{path}: SeriesInstanceUID is {uid!r}, not the requested "
                             f"{series_uid!r}")
        headers = [(path, ds)]
    headers, positions = _order_slices(headers, path)

    slices, datasets, files = [], [], []
    shape = spacing = None
    modality = None
    for p, header in headers:
        # Directory headers were read with large values deferred; keep complete datasets.
        ds = _read_dataset(p, header_only=False) if path.is_dir() else header
        arr = _pixels(ds, p)
        if shape is None:
            shape = arr.shape
        elif arr.shape != shape:
            raise ValueError(f"{p}: slice has shape {arr.shape} but {files[0].name} has "
                             f"{shape}; all slices of a series must have the same shape")
        ps = _floats(ds.get("PixelSpacing", None), 2)
        if spacing is None and not files:
            spacing = ps
        elif ps is not None and spacing is not None and \
                max(abs(a - b) for a, b in zip(ps, spacing)) > 1e-4 * max(spacing):
            raise ValueError(f"{p}: PixelSpacing {ps} differs from {files[0].name}'s "
                             f"{spacing}; expected one pixel grid for the series")
        mod = str(ds.get("Modality", "")) or None
        modality = modality or mod
        if units != "rescaled" and mod not in (None, "CT"):
            raise ValueError(f"{p}: modality {mod} has no Hounsfield units; use "
                             "units='rescaled' for non-CT images")
        values = _rescaled(ds, arr)
        if units == "mu_per_m":
            values = hu_to_mu(values)
        slices.append(values.astype(np.float32))
        datasets.append(ds)
        files.append(p)

    image = torch.from_numpy(np.stack(slices))
    image_positions = [_floats(ds.get("ImagePositionPatient", None), 3) for ds in datasets]
    if any(p is None for p in image_positions):
        image_positions = None
    if positions is not None and len(positions) > 1:
        slice_spacing = float(np.median(np.diff(positions)))
    else:
        thick = datasets[0].get("SliceThickness", None)
        try:
            slice_spacing = float(thick) if thick not in (None, "") else None
        except (TypeError, ValueError):
            slice_spacing = None
    orientation = _floats(datasets[0].get("ImageOrientationPatient", None), 6)
    return DicomVolume(image=image, units=units, pixel_spacing=spacing,
                       slice_positions=positions, slice_spacing=slice_spacing,
                       orientation=orientation, image_positions=image_positions,
                       modality=modality, series_uid=uid, files=files, datasets=datasets)


def read_dicom(path: PathLike, *, series_uid: Optional[str] = None,
               units: str = "mu_per_m") -> torch.Tensor:
    """Linear attenuation (1/m) of a DICOM CT file or series directory.

    Parameters
    ----------
    path : str or os.PathLike
        A DICOM file or a directory holding one series.
    series_uid : str, optional
        Which series to read when the directory holds several.
    units : {"mu_per_m", "hu", "rescaled"}
        ``"mu_per_m"`` (default): ``mu = HU * (MU_WATER - MU_AIR) / 1000 +
        MU_WATER`` clipped at 0, with MU_WATER = 20 1/m and MU_AIR = 0.02 1/m
        (LoDoPaB-CT); ``"hu"``: Hounsfield units; ``"rescaled"``: stored
        values times RescaleSlope plus RescaleIntercept.

    Returns
    -------
    torch.Tensor, float32
        ``(1, H, W)`` for a file, ``(D, H, W)`` for a series ordered along
        the slice normal.  See :func:`read_dicom_series` for the ordering,
        the metadata and the errors.
    """
    return read_dicom_series(path, series_uid=series_uid, units=units).image


# ----------------------------------------------------------------------------------------------
# NIfTI
# ----------------------------------------------------------------------------------------------

@dataclass
class NiftiVolume:
    """A NIfTI volume in tomolearn's display orientation.

    Attributes
    ----------
    image : torch.Tensor, shape (D, H, W), float32
        Values as stored, scaled by the header's ``scl_slope`` / ``scl_inter``.
    spacing : (float, float, float)
        Voxel size along ``(D, H, W)`` in mm.
    affine : numpy.ndarray, shape (4, 4)
        Maps ``(d, h, w, 1)`` indices of `image` to RAS+ world coordinates in
        the file's length unit (normally mm).
    header
        The nibabel header of the file.
    """

    image: torch.Tensor
    spacing: Tuple[float, float, float]
    affine: np.ndarray
    header: object = field(repr=False, default=None)


def _nibabel():
    try:
        import nibabel
    except ImportError as e:
        raise ImportError("reading NIfTI files needs nibabel: pip install tomolearn[nifti]") from e
    return nibabel


def read_nifti_volume(path: PathLike) -> NiftiVolume:
    """Read a NIfTI-1/2 file (``.nii`` or ``.nii.gz``) in the display orientation.

    The image is reoriented with ``nibabel.as_closest_canonical`` to RAS+
    (voxel axes ``i, j, k`` increasing towards the patient's Right, Anterior
    and Superior, the axes permuted and flipped as the affine says; no
    interpolation, so oblique acquisitions are reoriented only to the
    closest axes), then arranged like an axial DICOM series::

        out[d, h, w] = canonical[I - 1 - w, J - 1 - h, d]

    i.e. ``d`` runs inferior to superior, row ``h = 0`` is the most anterior
    row (top of the display), column ``w = 0`` is the patient's right
    (radiological convention, the left of the display).  This is what
    :func:`read_dicom_series` gives for a standard axial CT series.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    NiftiVolume
        ``image`` ``(D, H, W)`` float32 and ``spacing`` ``(D, H, W)`` in mm
        (from the header's spatial unit; unknown units are taken as mm).
        A 2-D file gives ``D = 1``; 4-D and higher files are accepted only
        when the extra dimensions have size 1.

    Raises
    ------
    ImportError
        If nibabel is not installed (``pip install tomolearn[nifti]``).
    FileNotFoundError, ValueError
        Missing file; unreadable file or unsupported dimensions.
    """
    nib = _nibabel()
    path = _as_path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        img = nib.load(str(path))
    except Exception as e:
        raise ValueError(f"{path}: not a readable NIfTI file ({type(e).__name__}: {e})") from e
    shape = img.shape
    if len(shape) > 3:
        if any(s != 1 for s in shape[3:]):
            raise ValueError(f"{path}: NIfTI image has shape {shape}; expected a 3-D volume "
                             "(extra dimensions of size 1 are accepted)")
        img = nib.Nifti1Image(np.asarray(img.get_fdata(dtype=np.float32)).reshape(shape[:3]),
                              img.affine, img.header)
    elif len(shape) == 2:
        img = nib.Nifti1Image(np.asarray(img.get_fdata(dtype=np.float32))[:, :, None],
                              img.affine, img.header)
    elif len(shape) != 3:
        raise ValueError(f"{path}: NIfTI image has shape {shape}; expected 2-D or 3-D")
    canonical = nib.as_closest_canonical(img)
    data = np.asarray(canonical.get_fdata(dtype=np.float32))
    ni, nj, _ = data.shape
    out = np.ascontiguousarray(data.transpose(2, 1, 0)[:, ::-1, ::-1])
    # (d, h, w) -> (i, j, k) = (ni - 1 - w, nj - 1 - h, d)
    perm = np.array([[0.0, 0.0, -1.0, ni - 1.0],
                     [0.0, -1.0, 0.0, nj - 1.0],
                     [1.0, 0.0, 0.0, 0.0],
                     [0.0, 0.0, 0.0, 1.0]])
    affine = canonical.affine @ perm
    zooms = np.sqrt((canonical.affine[:3, :3] ** 2).sum(axis=0))  # along i, j, k
    unit = img.header.get_xyzt_units()[0] if hasattr(img.header, "get_xyzt_units") else "mm"
    scale = {"meter": 1000.0, "micron": 1e-3}.get(unit, 1.0)
    spacing = tuple(float(z * scale) for z in (zooms[2], zooms[1], zooms[0]))
    return NiftiVolume(image=torch.from_numpy(out), spacing=spacing, affine=affine,
                       header=img.header)


def read_nifti(path: PathLike) -> torch.Tensor:
    """``(D, H, W)`` float32 volume of a NIfTI file in the display orientation.

    Values are returned as stored (after ``scl_slope`` / ``scl_inter``); for
    CT in Hounsfield units convert with :func:`hu_to_mu`.  See
    :func:`read_nifti_volume` for the orientation and the voxel spacing.
    """
    return read_nifti_volume(path).image


# ----------------------------------------------------------------------------------------------
# NumPy files and dispatch
# ----------------------------------------------------------------------------------------------

def _to_volume(arr: np.ndarray, where: str) -> torch.Tensor:
    if arr.dtype == object or arr.dtype.kind not in "biuf":
        raise ValueError(f"{where}: array dtype {arr.dtype} is not real numeric")
    if arr.ndim == 2:
        arr = arr[None]
    elif arr.ndim != 3:
        raise ValueError(f"{where}: array has shape {arr.shape}; expected (H, W) or (D, H, W)")
    return torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))


def read_array(path: PathLike, key: Optional[str] = None) -> torch.Tensor:
    """Read an image from a ``.npy`` or ``.npz`` file.

    Parameters
    ----------
    path : str or os.PathLike
    key : str, optional
        Array name in an ``.npz`` file; needed when it holds several.

    Returns
    -------
    torch.Tensor, float32
        ``(1, H, W)`` for a 2-D array, ``(D, H, W)`` for a 3-D one; values
        unchanged (no unit conversion).

    Raises
    ------
    FileNotFoundError, ValueError, KeyError
        Missing file; wrong suffix, unreadable file, non-numeric dtype or a
        shape that is neither 2-D nor 3-D; `key` missing or needed (the
        message lists the keys).
    """
    path = _as_path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix not in (".npy", ".npz"):
        raise ValueError(f"{path}: expected a .npy or .npz file, got suffix {path.suffix!r}")
    try:
        loaded = np.load(path, allow_pickle=False)
    except Exception as e:
        raise ValueError(f"{path}: unreadable NumPy file ({type(e).__name__}: {e})") from e
    if isinstance(loaded, np.ndarray):
        if key is not None:
            raise ValueError(f"{path}: key={key!r} given but a .npy file holds one array")
        return _to_volume(loaded, str(path))
    with loaded:
        keys = list(loaded.files)
        if not keys:
            raise ValueError(f"{path}: .npz file holds no arrays")
        if key is None:
            if len(keys) > 1:
                raise ValueError(f"{path}: .npz file holds {len(keys)} arrays; pass key= "
                                 f"one of {keys}")
            key = keys[0]
        if key not in keys:
            raise KeyError(f"{path}: no array {key!r} in .npz file; keys: {keys}")
        return _to_volume(loaded[key], f"{path}[{key!r}]")


def _is_dicom_file(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            head = f.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:132] == b"DICM"


def read_image(path: PathLike, **kwargs) -> torch.Tensor:
    """Read an image file or DICOM series, choosing the reader from the file type.

    ============================================  ====================================
    path                                          reader
    ============================================  ====================================
    directory                                     :func:`read_dicom` (one series)
    ``.dcm``, ``.dicom``, ``.ima``                :func:`read_dicom`
    ``.nii``, ``.nii.gz``                         :func:`read_nifti`
    ``.npy``, ``.npz``                            :func:`read_array`
    other suffix or none, with the DICM preamble  :func:`read_dicom`
    ============================================  ====================================

    Parameters
    ----------
    path : str or os.PathLike
    **kwargs
        Passed to the reader (e.g. ``units=`` for DICOM, ``key=`` for npz).

    Returns
    -------
    torch.Tensor, float32, shape (D, H, W)
        DICOM in linear attenuation (1/m) unless ``units`` says otherwise;
        NIfTI and NumPy values as stored.

    Raises
    ------
    FileNotFoundError
        If `path` does not exist.
    ValueError
        For an unknown file type (and the readers' errors).
    """
    path = _as_path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or directory")
    if path.is_dir():
        return read_dicom(path, **kwargs)
    name = path.name.lower()
    if name.endswith((".nii", ".nii.gz")):
        return read_nifti(path, **kwargs)
    if name.endswith((".npy", ".npz")):
        return read_array(path, **kwargs)
    if name.endswith((".dcm", ".dicom", ".ima")) or _is_dicom_file(path):
        return read_dicom(path, **kwargs)
    raise ValueError(
        f"{path}: unknown image file type (suffix {path.suffix or 'none'!r}, no DICOM "
        "preamble); expected a DICOM file or series directory, .dcm, .nii, .nii.gz, "
        ".npy or .npz")


# ----------------------------------------------------------------------------------------------
# Resampling and value range
# ----------------------------------------------------------------------------------------------

def _pair(value, name) -> Tuple[float, float]:
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        value = (value, value)
    try:
        out = tuple(float(v) for v in value)
    except TypeError:
        raise TypeError(f"{name} must be a number or a (row, column) pair, got {value!r}") \
            from None
    if len(out) != 2:
        raise ValueError(f"{name} must be a number or a (row, column) pair, got {value!r} "
                         "(resampling is in-plane only: pass the in-plane part of a 3-D "
                         "spacing)")
    if not all(math.isfinite(v) and v > 0 for v in out):
        raise ValueError(f"{name} must be finite and positive, got {value!r}")
    return out


def _shape_pair(shape) -> Tuple[int, int]:
    if isinstance(shape, (int, np.integer)) and not isinstance(shape, bool):
        shape = (shape, shape)
    if not isinstance(shape, (tuple, list, torch.Size)) or len(shape) != 2 or not all(
            isinstance(s, (int, np.integer)) and not isinstance(s, bool) and s > 0
            for s in shape):
        raise ValueError(f"shape must be a positive int or (H, W) of positive ints, got {shape!r}")
    return int(shape[0]), int(shape[1])


def _axis_weights(n_in: int, s_in: float, n_out: int, s_out: float):
    """Resampling matrix ``(n_out, n_in)`` along one axis and the covered fraction ``(n_out,)``.

    Both grids are centred on 0.  Output cell ``o`` covers
    ``[(o - n_out/2) s_out, (o + 1 - n_out/2) s_out]``.  For ``s_out >=
    s_in`` (down-sampling or same size) the weight of input cell ``i`` is
    its overlap with that interval divided by ``s_out`` (box / area
    average); for ``s_out < s_in`` it is linear interpolation at the output
    pixel centre (edge values held within half an input pixel).  The covered
    fraction is the part of the output cell inside the input field of view.
    """
    w = np.zeros((n_out, n_in))
    o = np.arange(n_out)
    if s_out >= s_in:
        lo_out = (o - n_out / 2.0) * s_out
        hi_out = (o + 1 - n_out / 2.0) * s_out
        i = np.arange(n_in)
        lo_in = (i - n_in / 2.0) * s_in
        hi_in = (i + 1 - n_in / 2.0) * s_in
        overlap = np.minimum(hi_out[:, None], hi_in[None, :]) - \
            np.maximum(lo_out[:, None], lo_in[None, :])
        w = np.clip(overlap, 0.0, None) / s_out
        cover = w.sum(axis=1)
        # Round-off: a fully covered cell has weight sum 1.
        cover = np.where(np.abs(cover - 1.0) < 1e-9, 1.0, cover)
        return w, cover
    centre = (o + 0.5 - n_out / 2.0) * s_out
    p = centre / s_in + n_in / 2.0 - 0.5          # continuous input index
    inside = (p >= -0.5 - 1e-9) & (p <= n_in - 0.5 + 1e-9)
    q = np.clip(p, 0.0, n_in - 1.0)
    i0 = np.clip(np.floor(q).astype(np.int64), 0, max(n_in - 2, 0))
    frac = q - i0
    rows = np.flatnonzero(inside)
    if n_in == 1:
        w[rows, 0] = 1.0
    else:
        w[rows, i0[rows]] += 1.0 - frac[rows]
        w[rows, i0[rows] + 1] += frac[rows]
    return w, inside.astype(np.float64)


def resample(image, shape=None, spacing=None, target_spacing=None, *, fill: float = 0.0):
    """Resample 2-D slices to another pixel grid, antialiased when down-sampling.

    Each slice is resampled in-plane (the slice axis of a volume is left
    alone) with a separable linear map, per axis:

    * down-sampling (output pixel at least as large as the input pixel):
      each output pixel is the average of the input over its footprint,
      partial input pixels weighted by their overlap (exact box / "area"
      filter for any, also non-integer, factor; the integral of the image
      over a region is preserved);
    * up-sampling: linear interpolation at the output pixel centres (as
      ``torch.nn.functional.interpolate(mode="bilinear",
      align_corners=False)``).

    Parameters
    ----------
    image : torch.Tensor or numpy.ndarray, shape (H, W) or (D, H, W)
        Real, finite values.
    shape : int or (int, int), optional
        Output ``(H', W')``.  May be left out when both spacings are given:
        then ``round(H * spacing / target_spacing)`` per axis.
    spacing : float or (float, float), optional
        Input pixel size ``(row, column)``, e.g. DICOM PixelSpacing in mm.
    target_spacing : float or (float, float), optional
        Output pixel size in the unit of `spacing`.  With both spacings, the
        output grid covers ``shape * target_spacing`` centred on the input's
        centre: larger fields of view are cropped, smaller ones padded with
        `fill`.  Without `target_spacing`, the output covers exactly the
        input's field of view (pixel size ``spacing * H / H'`` per axis;
        `spacing` itself then does not matter).
    fill : float
        Value outside the input field of view (0 = air in attenuation units).

    Returns
    -------
    torch.Tensor, shape (H', W') or (D, H', W')
        Same dtype as a floating `image` (float32 otherwise), on its device;
        computed in float64.

    Examples
    --------
    A 512 x 512 CT slice with 0.7 mm pixels, to a 128 x 128 grid over the
    LoDoPaB field of view of 260 mm:

    >>> x = resample(ct, (128, 128), spacing=0.7, target_spacing=260 / 128)  # doctest: +SKIP
    """
    if isinstance(image, np.ndarray):
        image = torch.from_numpy(np.ascontiguousarray(image))
    if not isinstance(image, torch.Tensor):
        raise TypeError(f"image must be a torch.Tensor or numpy array, got {type(image).__name__}")
    if image.dim() not in (2, 3):
        raise ValueError(f"image must have shape (H, W) or (D, H, W), got {tuple(image.shape)}")
    if image.is_complex() or image.dtype == torch.bool:
        raise ValueError(f"image must be real numeric, got dtype {image.dtype}")
    if image.numel() == 0:
        raise ValueError(f"image is empty, shape {tuple(image.shape)}")
    out_dtype = image.dtype if image.dtype.is_floating_point else torch.float32
    x = image.to(torch.float64)
    if not bool(torch.isfinite(x).all()):
        raise ValueError("image contains non-finite values (nan or inf)")
    H, W = image.shape[-2:]
    if target_spacing is not None and spacing is None:
        raise ValueError("target_spacing needs spacing (the input pixel size) too")
    if spacing is not None:
        s_in = _pair(spacing, "spacing")
    else:
        s_in = (1.0, 1.0)
    if target_spacing is not None:
        s_out = _pair(target_spacing, "target_spacing")
        if shape is None:
            shape = tuple(max(1, int(round(n * a / b))) for n, a, b in zip((H, W), s_in, s_out))
        shape = _shape_pair(shape)
    else:
        if shape is None:
            raise ValueError("give shape, or both spacing and target_spacing")
        shape = _shape_pair(shape)
        s_out = (s_in[0] * H / shape[0], s_in[1] * W / shape[1])
    if not math.isfinite(fill):
        raise ValueError(f"fill must be finite, got {fill}")
    wr, cr = _axis_weights(H, s_in[0], shape[0], s_out[0])
    wc, cc = _axis_weights(W, s_in[1], shape[1], s_out[1])
    wr = torch.from_numpy(wr).to(x.device)
    wc = torch.from_numpy(wc).to(x.device)
    out = torch.einsum("oh,...hw,pw->...op", wr, x, wc)
    if fill != 0.0:
        uncovered = 1.0 - np.outer(cr, cc)       # fraction of each output pixel outside
        out = out + fill * torch.from_numpy(uncovered).to(x.device)
    return out.to(out_dtype)


def slice_to_unit_range(mu, mu_max: float = MU_MAX):
    """Map linear attenuation to ``[0, 1]`` as LoDoPaB-CT does: ``clip(mu / mu_max, 0, 1)``.

    Parameters
    ----------
    mu : torch.Tensor or numpy.ndarray
        Linear attenuation in 1/m (e.g. from :func:`read_dicom`).
    mu_max : float
        Attenuation mapped to 1, in 1/m; default :data:`tomolearn.noise.MU_MAX`
        = 81.35858 (3071 HU), LoDoPaB-CT's.

    Returns
    -------
    torch.Tensor
        Same shape; float dtype of `mu` (float32 for other dtypes).
    """
    if isinstance(mu, np.ndarray):
        mu = torch.from_numpy(np.ascontiguousarray(mu))
    if not isinstance(mu, torch.Tensor):
        raise TypeError(f"mu must be a torch.Tensor or numpy array, got {type(mu).__name__}")
    if isinstance(mu_max, bool) or not isinstance(mu_max, numbers.Real) or \
            not math.isfinite(mu_max) or mu_max <= 0:
        raise ValueError(f"mu_max must be a finite positive number, got {mu_max!r}")
    if not mu.dtype.is_floating_point:
        mu = mu.to(torch.float32)
    return (mu / float(mu_max)).clamp(0.0, 1.0)


# ----------------------------------------------------------------------------------------------
# Real slices -> simulated measurements
# ----------------------------------------------------------------------------------------------

def real_measurement_pair(image, spec: SimulationSpec, generator=None):
    """A simulated measurement of one real slice, for a :class:`SimulationSpec`.

    The slice is resampled (:func:`resample`, area average when shrinking)
    to the ``spec.image_size`` square grid covering its field of view; a
    non-square slice is padded with 0 (air) to a centred square first, so
    pixels stay square.  That is the ground truth; the data are
    ``simulate(gt[None, None], spec, generator)``, which upsamples it
    bilinearly to ``spec.fine_size`` and projects with the fine operator
    (no inverse crime), then adds the spec's noise.

    Parameters
    ----------
    image : torch.Tensor or numpy.ndarray, shape (H, W) or (1, H, W)
        One slice with values in ``[0, 1]`` (e.g. :func:`slice_to_unit_range`
        of attenuation), any size.
    spec : SimulationSpec
    generator : torch.Generator or int, optional
        Noise generator (CPU), or a seed for one.

    Returns
    -------
    y : torch.Tensor, shape (1, n_angles, n_detectors), float32
        Measurements (line integrals in units of the reconstruction grid's
        pixel, plus noise).
    x : torch.Tensor, shape (1, image_size, image_size), float32
        Ground truth on the reconstruction grid.

    Raises
    ------
    TypeError, ValueError
        For a wrong type, shape, non-finite values or values outside
        ``[0, 1]`` (convert with :func:`slice_to_unit_range` first).
    """
    if not isinstance(spec, SimulationSpec):
        raise TypeError(f"spec must be a SimulationSpec, got {type(spec).__name__}")
    if isinstance(image, np.ndarray):
        image = torch.from_numpy(np.ascontiguousarray(image))
    if not isinstance(image, torch.Tensor):
        raise TypeError(f"image must be a torch.Tensor or numpy array, got {type(image).__name__}")
    if image.dim() == 3 and image.shape[0] == 1:
        image = image[0]
    if image.dim() != 2:
        raise ValueError(f"image must be one slice of shape (H, W) or (1, H, W), got "
                         f"{tuple(image.shape)}")
    img = image.detach().to(device="cpu", dtype=torch.float64)
    if not bool(torch.isfinite(img).all()):
        raise ValueError("image contains non-finite values (nan or inf)")
    lo, hi = float(img.min()), float(img.max())
    if lo < -1e-6 or hi > 1 + 1e-6:
        raise ValueError(f"image values must lie in [0, 1], got [{lo:.4g}, {hi:.4g}]; map "
                         "attenuation with slice_to_unit_range first")
    if isinstance(generator, (int, np.integer)) and not isinstance(generator, bool):
        generator = torch.Generator().manual_seed(int(generator))
    elif generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator, an int seed or None, got "
                        f"{type(generator).__name__}")
    n = spec.image_size
    H, W = img.shape
    side = max(H, W)
    gt = resample(img, (n, n), spacing=1.0, target_spacing=side / n, fill=0.0)
    y = simulate(gt[None, None], spec, generator)
    return y[0].to(torch.float32), gt[None].to(torch.float32)
