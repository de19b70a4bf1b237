"""NIfTI-1/2 volumes (``.nii``, ``.nii.gz``) in tomolearn's display orientation.

nibabel is optional (``pip install tomolearn[nifti]``) and imported on first use.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Tuple

import numpy as np
import torch

from .paths import PathLike, as_path

__all__ = ["NiftiVolume", "read_nifti", "read_nifti_volume"]


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
    path = as_path(path)
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
