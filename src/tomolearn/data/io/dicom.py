"""DICOM files and series: slices in attenuation, HU or rescaled values, with metadata.

A series is ordered along the slice normal (ImagePositionPatient projected on
row direction x column direction of ImageOrientationPatient), else by
InstanceNumber, else by file name; pixels keep their stored order (row 0 =
first stored row).  Spacings are in mm, attenuation in 1/m (see
:mod:`tomolearn.data.io`).  References: DICOM PS3.3, C.7.6.2 (Image Plane
Module) and C.11.1 (Modality LUT).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional, Tuple

import numpy as np
import torch

from .dicom_pixels import _has_pixels, _pixels, _pydicom, _read_dataset, _rescaled
from .paths import PathLike, as_path
from .units import hu_to_mu

__all__ = ["DicomVolume", "read_dicom", "read_dicom_series"]

_UNITS = ("mu_per_m", "hu", "rescaled")

#: SOP class of a DICOMDIR (media storage directory); never an image.
_DICOMDIR_SOP_CLASS = "1.2.840.10008.1.3.10"


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
    path = as_path(path)
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
