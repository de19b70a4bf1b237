"""Derived DICOM files: a source dataset with its pixel data replaced by a reconstruction.

pydicom is imported on first use, to keep ``import tomolearn`` light.
"""

from __future__ import annotations

import copy
import io
from pathlib import Path
from typing import Mapping

import numpy as np

from .units import mu_to_hu

__all__ = ["check_dicom_writable", "derived_dicom_bytes"]


def check_dicom_writable(ds, path: Path) -> None:
    """Refuse a DICOM dataset whose pixel data could be read but not written back.

    Parameters
    ----------
    ds : pydicom.Dataset
        The dataset read from `path`.
    path : pathlib.Path
        Its file, for the message.

    Raises
    ------
    ValueError
        If it has no integer PixelData, or BitsAllocated is not 8, 16 or 32.
    """
    if "PixelData" not in ds:
        raise ValueError(f"{path}: DICOM file has no integer PixelData; cannot write a derived "
                         "DICOM with its pixel format")
    if int(ds.get("BitsAllocated", 0) or 0) not in (8, 16, 32):
        raise ValueError(f"{path}: BitsAllocated {ds.get('BitsAllocated')} is not 8, 16 or 32")


def derived_dicom_bytes(dataset, image, grid: Mapping, description: str) -> bytes:
    """A copy of `dataset` with its pixel data replaced by `image`, as DICOM file bytes.

    Parameters
    ----------
    dataset : pydicom.Dataset
        The source slice, with integer PixelData (see :func:`check_dicom_writable`);
        left unchanged.
    image : array-like, shape (N, N)
        The new pixel values in the units :func:`read_dicom_series` returns:
        linear attenuation in 1/m for CT (Modality CT or none; converted back to
        HU with :func:`mu_to_hu`), rescaled values for other modalities.  Stored
        values are ``round((value - RescaleIntercept) / RescaleSlope)``, clipped
        to the range of BitsStored and PixelRepresentation.
    grid : mapping
        The source pixel grid: ``"shape"`` (H, W) and ``"spacing"`` (row, column)
        in mm, and ``"fov"``, the side in mm of the square field of view that
        `image` covers (centred on the source's).
    description : str
        DerivationDescription (e.g. :func:`derivation_description`).

    Returns
    -------
    bytes
        The DICOM file: new SOP and series instance UIDs, ImageType
        DERIVED\\SECONDARY, Rows, Columns, PixelSpacing (``fov / N``) and
        ImagePositionPatient describing the new grid; compressed sources are
        written as Explicit VR Little Endian; everything else is kept.
    """
    import pydicom  # imported on first use (start-up time)
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    ds = copy.deepcopy(dataset)
    values = np.asarray(image, dtype=np.float64)
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
    step = grid["fov"] / n
    if "PixelSpacing" in ds:
        ds.PixelSpacing = [f"{step:.6g}", f"{step:.6g}"]
        pos = ds.get("ImagePositionPatient", None)
        iop = ds.get("ImageOrientationPatient", None)
        if pos is not None and iop is not None and len(pos) == 3 and len(iop) == 6:
            (H, W), (rs, cs) = grid["shape"], grid["spacing"]
            row_dir, col_dir = np.asarray(iop[:3], float), np.asarray(iop[3:], float)
            first = (np.asarray(pos, float)
                     + row_dir * ((W - 1) / 2 * cs + (0.5 - n / 2) * step)
                     + col_dir * ((H - 1) / 2 * rs + (0.5 - n / 2) * step))
            ds.ImagePositionPatient = [f"{v:.6f}" for v in first]
    image_type = list(ds.get("ImageType", []) or [])
    ds.ImageType = ["DERIVED", "SECONDARY"] + [str(v) for v in image_type[2:]]
    ds.DerivationDescription = description
    ds.SOPInstanceUID = generate_uid()
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.SeriesInstanceUID = generate_uid()
    buf = io.BytesIO()
    try:
        pydicom.dcmwrite(buf, ds, enforce_file_format=True)
    except TypeError:  # pydicom 2.x
        pydicom.dcmwrite(buf, ds, write_like_original=False)
    return buf.getvalue()
