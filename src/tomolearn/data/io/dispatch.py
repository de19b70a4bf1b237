"""Which reader a file needs: DICOM detection and :func:`read_image`'s dispatch on the file type."""

from __future__ import annotations

from pathlib import Path

import torch

from .arrays import read_array
from .dicom import read_dicom
from .nifti import read_nifti
from .paths import PathLike, as_path, file_type
from .tiff import read_tiff

__all__ = ["looks_like_dicom", "read_image"]

#: File name suffixes taken as DICOM whatever the content.
DICOM_SUFFIXES = (".dcm", ".dicom", ".ima")


def looks_like_dicom(path: Path) -> bool:
    """Whether `path` is a DICOM file: by content (the 'DICM' prefix after the 128-byte
    preamble, pydicom's test) or by a DICOM suffix (``.dcm``, ``.dicom``, ``.ima``).

    Unreadable files are not DICOM (False).
    """
    from pydicom.misc import is_dicom  # pydicom is imported lazily (start-up time)

    try:
        return path.suffix.lower() in DICOM_SUFFIXES or bool(is_dicom(str(path)))
    except OSError:
        return False


def read_image(path: PathLike, **kwargs) -> torch.Tensor:
    """Read an image file or DICOM series, choosing the reader from the file type.

    ============================================  ====================================
    path                                          reader
    ============================================  ====================================
    directory                                     :func:`read_dicom` (one series)
    ``.dcm``, ``.dicom``, ``.ima``                :func:`read_dicom`
    ``.nii``, ``.nii.gz``                         :func:`read_nifti`
    ``.npy``, ``.npz``                            :func:`read_array`
    ``.tif``, ``.tiff``                           :func:`read_tiff`
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
        NIfTI, NumPy and TIFF values as stored.

    Raises
    ------
    FileNotFoundError
        If `path` does not exist.
    ValueError
        For an unknown file type (and the readers' errors).
    """
    path = as_path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or directory")
    if path.is_dir():
        return read_dicom(path, **kwargs)
    name = path.name.lower()
    if name.endswith((".nii", ".nii.gz")):
        return read_nifti(path, **kwargs)
    if name.endswith((".npy", ".npz")):
        return read_array(path, **kwargs)
    if name.endswith((".tif", ".tiff")):
        return read_tiff(path, **kwargs)
    if looks_like_dicom(path):
        return read_dicom(path, **kwargs)
    raise ValueError(
        f"{path}: unknown image file type ({file_type(path) or 'no suffix'!r}, no DICOM "
        "preamble); expected a DICOM file or series directory, .dcm, .nii, .nii.gz, "
        ".npy, .npz, .tif or .tiff")
