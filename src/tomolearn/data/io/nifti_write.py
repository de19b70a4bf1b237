"""Derived NIfTI files: a reconstruction of one slice of a NIfTI volume, in the volume's space.

nibabel is optional (``pip install tomolearn[nifti]``) and imported on first use.
"""

from __future__ import annotations

import gzip
from typing import Mapping

import numpy as np

from .nifti import NiftiVolume, _nibabel

__all__ = ["derived_nifti_affine", "derived_nifti_bytes"]


def derived_nifti_affine(volume: NiftiVolume, index: int, n: int, grid: Mapping) -> np.ndarray:
    """The ``(d, h, w, 1) -> world`` affine of an ``n x n`` grid over slice `index` of `volume`.

    Parameters
    ----------
    volume : NiftiVolume
        The source (display orientation, see :func:`read_nifti_volume`).
    index : int
        The slice (along ``D``) the grid lies in.
    n : int
        Grid size.
    grid : mapping
        ``"shape"`` (H, W) and ``"spacing"`` (row, column) of the source slice
        in mm, and ``"fov"``, the side in mm of the square field of view the
        ``n x n`` grid covers, centred on the slice's centre (the convention of
        :func:`~tomolearn.data.io.resample`).

    Returns
    -------
    numpy.ndarray, shape (4, 4)
        Output pixel ``(h', w')`` has its centre at source index
        ``h = (H - 1) / 2 + (h' + 1/2 - n/2) * step / row_spacing`` (likewise
        ``w``), ``step = fov / n``; the slice axis keeps the source's.
    """
    (H, W), (rs, cs) = grid["shape"], grid["spacing"]
    step = float(grid["fov"]) / n
    a, b = step / rs, step / cs
    to_source = np.array([[1.0, 0.0, 0.0, float(index)],
                          [0.0, a, 0.0, (H - 1) / 2 + (0.5 - n / 2) * a],
                          [0.0, 0.0, b, (W - 1) / 2 + (0.5 - n / 2) * b],
                          [0.0, 0.0, 0.0, 1.0]])
    return np.asarray(volume.affine, dtype=np.float64) @ to_source


def derived_nifti_bytes(volume: NiftiVolume, index: int, image, grid: Mapping,
                        description: str = "") -> bytes:
    """A ``.nii.gz`` file of `image` placed where it lies in `volume`, as bytes.

    Parameters
    ----------
    volume : NiftiVolume
        The source volume (its affine, header and spatial unit).
    index : int
        The slice of `volume` that `image` reconstructs.
    image : array-like, shape (N, N)
        The new values (display orientation: row 0 anterior, column 0 the
        patient's right), written as float32 without scaling.
    grid : mapping
        The source slice's grid and the field of view `image` covers (see
        :func:`derived_nifti_affine`).
    description : str
        The header's ``descrip`` (cut to its 80 bytes).

    Returns
    -------
    bytes
        A gzip-compressed NIfTI-1 file: a ``(N, N, 1)`` volume stored in RAS+
        voxel order, with the affine of :func:`derived_nifti_affine` as sform
        and qform (the source's codes, "aligned" if it had none) and the
        source's spatial unit, so that :func:`read_nifti_volume` gives back
        `image` with pixel spacing ``fov / N``.
    """
    nib = _nibabel()
    values = np.asarray(image, dtype=np.float32)
    n = values.shape[0]
    if values.shape != (n, n):
        raise ValueError(f"expected a square 2-D image, got shape {values.shape}")
    # Voxel (i, j, k) = display (d, h, w) = (k, n - 1 - j, n - 1 - i): the canonical layout.
    ras = np.array([[0.0, 0.0, 1.0, 0.0],
                    [0.0, -1.0, 0.0, n - 1.0],
                    [-1.0, 0.0, 0.0, n - 1.0],
                    [0.0, 0.0, 0.0, 1.0]])
    affine = derived_nifti_affine(volume, index, n, grid) @ ras
    data = np.ascontiguousarray(values[::-1, ::-1].T)[:, :, None]
    img = nib.Nifti1Image(data, affine)
    src = volume.header
    sform_code = qform_code = 0
    if src is not None and hasattr(src, "get_sform"):
        sform_code = int(src.get_sform(coded=True)[1] or 0)
        qform_code = int(src.get_qform(coded=True)[1] or 0)
    if sform_code == 0 and qform_code == 0:
        sform_code = qform_code = 2  # aligned to an anatomical space
    img.set_sform(affine, code=sform_code or 2)
    img.set_qform(affine, code=qform_code or sform_code or 2)
    unit = src.get_xyzt_units()[0] if src is not None and hasattr(src, "get_xyzt_units") \
        else "mm"
    img.header.set_xyzt_units(xyz=unit if unit != "unknown" else "mm")
    img.header["descrip"] = description.encode("ascii", "replace")[:79]
    img.header.set_slope_inter(1.0, 0.0)
    return gzip.compress(img.to_bytes(), mtime=0)
