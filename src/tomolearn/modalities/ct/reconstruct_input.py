"""One file to reconstruct: a measured sinogram, or an image to simulate measurements from.

:func:`read_reconstruction_input` reads what ``tomolearn reconstruct --input``
accepts and returns a :class:`ReconstructionInput`: measurements, their
geometry (a :class:`~tomolearn.data.SimulationSpec`), the ground truth when
known, and how to write results back in the input's units.

Sinograms (``.npy``, ``.npz``, ``.h5``; :mod:`.reconstruct_sinogram`) are used
as stored, on a parallel-beam geometry (or the spec of a tomolearn data file).
Images (``.png``, ``.tif``, ``.nii``/``.nii.gz``, a 2-D ``.npy``, DICOM;
:mod:`.reconstruct_image`) are resampled to the reconstruction grid (area
average) and measurements are simulated on a finer grid (no inverse crime).
:func:`guess_input_kind` says which a file is, and why.

Errors: ``FileNotFoundError`` / ``IsADirectoryError`` for the path itself,
:class:`InputOptionError` (a ValueError) for an option that does not fit the
file, ``ValueError`` (naming the file) for unreadable or unusable content,
``ImportError`` for NIfTI input without nibabel.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Tuple

from ... import __version__
from ...data.io import file_type, looks_like_dicom, npy_header
from .reconstruct_common import (InputOptionError, ReconstructionInput, default_detectors,
                                 squeeze_leading)
from .reconstruct_image import IMAGE_TYPES, read_image_input
from .reconstruct_sinogram import read_sinogram_input
from .task import SimulationSpec

__all__ = ["IMAGE_TYPES", "InputOptionError", "ReconstructionInput", "SINOGRAM_TYPES",
           "default_detectors", "derivation_description", "guess_input_kind", "read_image_input",
           "read_reconstruction_input", "read_sinogram_input", "reconstruction_input_kind",
           "squeeze_leading"]

#: Sinogram file types by name.
SINOGRAM_TYPES = (".npy", ".npz", ".h5", ".hdf5")

_BY_TYPE = {".h5": ("sinogram", "HDF5 file"), ".hdf5": ("sinogram", "HDF5 file"),
            ".npz": ("sinogram", ".npz file"), ".png": ("image", "PNG image"),
            ".tif": ("image", "TIFF image"), ".tiff": ("image", "TIFF image"),
            ".nii": ("image", "NIfTI image"), ".nii.gz": ("image", "NIfTI image")}


def guess_input_kind(path: Path) -> Tuple[str, str]:
    """``("sinogram" or "image", why)``: what `path` holds, judged by its type and shape.

    ``.h5``, ``.hdf5`` and ``.npz`` are sinograms; a ``.npy`` is an image if it
    is a square 2-D array, a sinogram if it is a non-square 2-D array or
    ``(1, A, D)``; ``.png``, ``.tif``, ``.tiff``, ``.nii``, ``.nii.gz`` and
    DICOM files (by suffix or content) are images.  `why` reads, e.g.,
    ``"sino.npy: (30, 183) array, not square: read as a sinogram"``.

    Raises
    ------
    ValueError
        For a ``.npy`` whose shape fits neither (1-D, ``(k, A, D)`` with
        ``k > 1``, ...) or whose header cannot be read, and for an unknown file type.
    """
    suffix = file_type(path)
    name = path.name
    if suffix in _BY_TYPE:
        kind, what = _BY_TYPE[suffix]
        return kind, f"{name}: {what}: read as {'a sinogram' if kind == 'sinogram' else 'an image'}"
    if suffix == ".npy":
        shape, _ = npy_header(path)
        if len(shape) == 2 and shape[0] == shape[1]:
            return "image", f"{name}: {shape} array, square: read as an image"
        if len(shape) == 2:
            return "sinogram", f"{name}: {shape} array, not square: read as a sinogram"
        if len(shape) == 3 and shape[0] == 1:
            return "sinogram", f"{name}: {shape} array, (1, A, D): read as a sinogram"
        raise ValueError(f"{path}: expected a 2-D array (A, D) or (1, A, D), got shape {shape}: "
                         "neither a sinogram ((A, D), (1, A, D)) nor an image (a square 2-D "
                         "array)")
    if looks_like_dicom(path):
        return "image", f"{name}: DICOM file: read as an image"
    raise ValueError(f"{path}: unknown input file type {suffix or 'no suffix'!r} and no DICOM "
                     f"preamble; expected a sinogram ({', '.join(SINOGRAM_TYPES)}) or an image "
                     f"({', '.join(IMAGE_TYPES)}, DICOM)")


def reconstruction_input_kind(path: Path, kind: str = "auto") -> str:
    """``"sinogram"`` or ``"image"``: `kind` as given, or for "auto" :func:`guess_input_kind`'s."""
    return kind if kind != "auto" else guess_input_kind(path)[0]


def read_reconstruction_input(path: Path, *, kind: str = "auto", index: int = 0,
                              image_size: Optional[int] = None, angles: Optional[int] = None,
                              noise: Optional[float] = None,
                              seed: Optional[int] = None) -> ReconstructionInput:
    """Read a sinogram, or simulate measurements of an image, from one file.

    Parameters
    ----------
    path : pathlib.Path
        The file (see :func:`read_sinogram_input` and :func:`read_image_input`).
    kind : {"auto", "sinogram", "image"}
        What `path` holds (see :func:`guess_input_kind`); with "auto" the
        result's ``kind_note`` says what the file was taken for and why.
    index, image_size, angles, noise, seed
        Passed to the reader; see there.

    Returns
    -------
    ReconstructionInput

    Raises
    ------
    FileNotFoundError, IsADirectoryError
        If `path` does not exist or is a directory.
    InputOptionError, ValueError, ImportError
        From the readers.
    """
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    if path.is_dir():
        raise IsADirectoryError(f"{path}: is a directory; expected one file (a sinogram, an "
                                "image or a DICOM file)")
    note = ""
    if kind == "auto":
        kind, note = guess_input_kind(path)
    options = dict(index=index, image_size=image_size, angles=angles, noise=noise, seed=seed)
    reader = read_sinogram_input if kind == "sinogram" else read_image_input
    result = reader(path, **options)
    result.kind_note = note
    return result


def derivation_description(method: str, spec: SimulationSpec) -> str:
    """DerivationDescription of a reconstruction from data simulated with `spec`.

    Names tomolearn and its version, `method`, the ``spec.image_size`` square
    grid, the number of parallel-beam angles, the relative Gaussian noise level
    (in %) and the noise seed; at most 1024 characters (the DICOM limit of ST).
    """
    n = spec.image_size
    return (f"tomolearn {__version__}: {method} reconstruction on a {n}x{n} grid from "
            f"simulated {spec.n_angles}-angle parallel-beam data "
            f"({100 * spec.noise.level:g} % Gaussian noise, seed {spec.seed})")[:1024]
