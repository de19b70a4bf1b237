"""What the readers of ``tomolearn reconstruct`` inputs share: the result and the option error.

See :mod:`tomolearn.modalities.ct.reconstruct_input` for the readers themselves.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import torch

from .task import SimulationSpec

__all__ = ["InputOptionError", "ReconstructionInput", "default_detectors", "squeeze_leading"]


class InputOptionError(ValueError):
    """A reading option that does not fit the input file (e.g. an index out of range).

    Attributes
    ----------
    options : tuple of str
        The keyword arguments at fault (``"index"``, ``"angles"``,
        ``"image_size"``, ``"noise"``, ``"seed"``).
    value
        The value given, or None when the message is about giving the option at all.
    detail : str
        The rest of the message, starting with its separator (" is out of range: ...").

    ``str(e)`` reads ``"index=5 is out of range: t.h5 holds 2 sample(s)"``; a
    command line spells the options its own way with :meth:`describe`.
    """

    def __init__(self, options: Sequence[str], value, detail: str):
        self.options, self.value, self.detail = tuple(options), value, detail
        super().__init__(self.describe())

    def describe(self, spell: Callable[[str], str] = str, separator: str = "=") -> str:
        """The message with each option written as ``spell(name)`` and the value after `separator`."""
        names = " and ".join(spell(o) for o in self.options)
        value = "" if self.value is None else f"{separator}{self.value}"
        return f"{names}{value}{self.detail}"


@dataclass
class ReconstructionInput:
    """Data to reconstruct, read from one file, and how to write results back.

    Attributes
    ----------
    kind : {"sinogram", "image", "dicom", "nifti"}
        What the file held ("image": PNG, TIFF or NumPy).
    y : torch.Tensor, shape (1, 1, A, D), float32
        Measurements (line integrals in pixel units of the reconstruction grid).
    spec : SimulationSpec
        The geometry (and, for simulated data, noise and seed).
    gt : torch.Tensor, shape (1, 1, N, N), float32, or None
        Ground truth on the reconstruction grid (in the same unit range as the
        reconstruction), when known.
    unit_scale : float
        Multiply the reconstruction by this to get the units of what the reader
        returned (1/m attenuation for CT DICOM, rescaled values for other DICOM,
        as stored otherwise).
    units : str
        Name of those units, for a summary.
    dicom : pydicom.Dataset or None
        The input dataset (for a derived DICOM output).
    dicom_geometry : dict or None
        Input pixel grid for the derived DICOM's geometry: ``"shape"`` (H, W),
        ``"spacing"`` (row, column) in mm, ``"fov"`` the square field of view
        in mm (see :func:`~tomolearn.data.io.derived_dicom_bytes`).
    note : str
        How the input was read, for a summary.
    format : str
        The file format: "npy", "npz", "hdf5", "png", "tiff", "nifti" or "dicom".
    nifti : NiftiVolume or None
        The input volume (for a derived NIfTI output, with `nifti_index` and `grid`).
    nifti_index : int
        The slice of `nifti` that was read.
    grid : dict or None
        The input slice's pixel grid, as `dicom_geometry` (DICOM and NIfTI input).
    kind_note : str
        With ``kind="auto"``: what the file was taken for, and why
        (``"sino.npy: (30, 183) array, not square: read as a sinogram"``).
    """

    kind: str
    y: torch.Tensor
    spec: SimulationSpec
    gt: Optional[torch.Tensor] = None
    unit_scale: float = 1.0
    units: str = "as stored"
    dicom: object = None
    dicom_geometry: Optional[dict] = None
    note: str = ""
    format: str = ""
    nifti: object = None
    nifti_index: int = 0
    grid: Optional[dict] = None
    kind_note: str = ""


def default_detectors(image_size: int) -> int:
    """Detector count spanning the image diagonal at about unit (pixel) spacing.

    ``2 * ceil(N / sqrt(2)) + 1`` for an N x N image: 183 for 128 (DIVal's).
    """
    return 2 * math.ceil(image_size / math.sqrt(2)) + 1


def squeeze_leading(arr, where: str, ndim: int = 2):
    """Drop leading singleton axes down to ``ndim`` axes; refuse anything else."""
    shape = tuple(arr.shape)
    while arr.ndim > ndim and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != ndim:
        raise ValueError(f"{where}: expected a 2-D array (A, D) or (1, A, D), got shape {shape}")
    return arr


def check_index(index: int, n: int, path, what: str) -> None:
    """Refuse an `index` outside ``[0, n)`` of a file holding `n` `what` (samples, slices)."""
    if not 0 <= index < n:
        raise InputOptionError(["index"], index, f" is out of range: {path} holds {n} {what}")
