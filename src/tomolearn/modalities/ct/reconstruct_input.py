"""One file to reconstruct: a measured sinogram, or an image to simulate measurements from.

:func:`read_reconstruction_input` reads what ``tomolearn reconstruct --input``
accepts and returns a :class:`ReconstructionInput`: measurements, their
geometry (a :class:`~tomolearn.data.SimulationSpec`), the ground truth when
known, and how to write results back in the input's units.

Sinograms (``.npy``, ``.npz``, ``.h5``) are used as stored, on a parallel-beam
geometry (or the spec of a tomolearn data file).  Images (``.png``, a 2-D
``.npy``, DICOM) are resampled to the reconstruction grid (area average) and
measurements are simulated on a finer grid (no inverse crime).

Errors: ``FileNotFoundError`` / ``IsADirectoryError`` for the path itself,
:class:`InputOptionError` (a ValueError) for an option that does not fit the
file, ``ValueError`` (naming the file) for unreadable or unusable content.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

import h5py
import numpy as np
import torch

from ... import __version__
from ...data.io import (check_dicom_writable, looks_like_dicom, read_dicom_series, read_grey_png,
                        resample)
from ...noise import MU_MAX
from .task import NoiseSpec, SimulationSpec, simulate

__all__ = ["InputOptionError", "ReconstructionInput", "default_detectors", "read_image_input",
           "read_reconstruction_input", "read_sinogram_input", "reconstruction_input_kind",
           "derivation_description"]

_SINOGRAM_KEYS = ("sinogram", "measurement")
_IMAGE_SUFFIXES = (".png",)


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
    kind : {"sinogram", "image", "dicom"}
        What the file held.
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


def default_detectors(image_size: int) -> int:
    """Detector count spanning the image diagonal at about unit (pixel) spacing.

    ``2 * ceil(N / sqrt(2)) + 1`` for an N x N image: 183 for 128 (DIVal's).
    """
    return 2 * math.ceil(image_size / math.sqrt(2)) + 1


def _squeeze_leading(arr, where: str, ndim: int = 2):
    """Drop leading singleton axes down to ``ndim`` axes; refuse anything else."""
    shape = tuple(arr.shape)
    while arr.ndim > ndim and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != ndim:
        raise ValueError(f"{where}: expected a 2-D array (A, D) or (1, A, D), got shape {shape}")
    return arr


def _sinogram_spec(angles: Optional[int], image_size: Optional[int], n_angles: int,
                   n_detectors: int) -> SimulationSpec:
    """Parallel-beam geometry of an (A, D) sinogram on an N x N grid (default 128)."""
    if angles is not None and angles != n_angles:
        raise InputOptionError(["angles"], angles, f" does not match the sinogram, which has "
                                                   f"{n_angles} angles (rows)")
    size = image_size if image_size is not None else 128
    return SimulationSpec(image_size=size, n_angles=n_angles, n_detectors=n_detectors)


def read_sinogram_input(path: Path, *, index: int = 0, image_size: Optional[int] = None,
                        angles: Optional[int] = None, noise: Optional[float] = None,
                        seed: Optional[int] = None) -> ReconstructionInput:
    """Measured data from a sinogram file.

    Parameters
    ----------
    path : pathlib.Path
        ``.npy`` (A, D) or (1, A, D); ``.npz`` with one array or key
        ``sinogram`` (``measurement``), optional ``ground_truth``; ``.h5`` /
        ``.hdf5`` with dataset ``measurement`` or ``sinogram`` (one (A, D)
        sinogram or (n, 1, A, D) samples), optional ``ground_truth`` and
        tomolearn's ``spec`` attribute (then the geometry is the file's).
    index : int
        Sample of an HDF5 file holding several; must be 0 otherwise.
    image_size : int, optional
        Reconstruction grid N (default 128, or the file's spec, which it must match).
    angles : int, optional
        If given, must equal the sinogram's number of rows A.
    noise, seed : optional
        Must be None (they apply to images only).

    Returns
    -------
    ReconstructionInput
        ``kind="sinogram"``; without a spec, a parallel-beam geometry with A
        angles at the midpoints of [0, pi) and D detectors spanning the image
        diagonal.

    Raises
    ------
    InputOptionError
        For an option that does not fit the file.
    ValueError
        For an unreadable file, missing keys, a non-numeric dtype, a wrong
        shape or non-finite values.
    """
    if noise is not None or seed is not None:
        raise InputOptionError(["noise", "seed"], None, " apply only when the input is an image "
                               f"to simulate data from; {path} holds measured data")
    suffix = path.suffix.lower()
    gt = None
    spec = None
    index_note = ""
    if suffix in (".h5", ".hdf5"):
        try:
            f = h5py.File(path, "r")
        except OSError as e:
            raise ValueError(f"{path}: not a readable HDF5 file ({e})") from None
        with f:
            key = next((k for k in ("measurement", "sinogram") if k in f), None)
            if key is None:
                raise ValueError(f"{path}: no dataset 'measurement' or 'sinogram' in the HDF5 file "
                                 f"(it holds: {', '.join(f.keys()) or 'nothing'})")
            data = f[key]
            if data.ndim == 4:
                n = data.shape[0]
                if not 0 <= index < n:
                    raise InputOptionError(["index"], index, f" is out of range: {path} holds {n} "
                                                             f"sample(s)")
                arr = np.asarray(data[index])
                if "ground_truth" in f and f["ground_truth"].ndim == 4:
                    gt = np.asarray(f["ground_truth"][index], dtype=np.float32)
                index_note = f" sample {index} of {n},"
            else:
                if index != 0:
                    raise InputOptionError(["index"], index, f": {path} holds one sinogram")
                arr = np.asarray(data)
                if "ground_truth" in f:
                    gt = np.asarray(f["ground_truth"], dtype=np.float32)
            if "spec" in f.attrs:
                try:
                    sim = json.loads(f.attrs["spec"])["simulation"]
                    spec = SimulationSpec.from_dict(sim)
                except (KeyError, TypeError, ValueError) as e:
                    raise ValueError(f"{path}: unreadable 'spec' attribute ({e})") from None
    elif suffix in (".npy", ".npz"):
        try:
            loaded = np.load(path, allow_pickle=False)
        except Exception as e:
            raise ValueError(f"{path}: unreadable NumPy file ({type(e).__name__}: {e})") from None
        if isinstance(loaded, np.ndarray):
            arr = loaded
        else:
            with loaded:
                keys = list(loaded.files)
                key = next((k for k in _SINOGRAM_KEYS if k in keys), None)
                if key is None and len(keys) == 1:
                    key = keys[0]
                if key is None:
                    raise ValueError(f"{path}: .npz file holds {len(keys)} arrays "
                                     f"({', '.join(keys) or 'none'}); expected one array or one "
                                     "named 'sinogram' (or 'measurement')")
                arr = loaded[key]
                if "ground_truth" in keys:
                    gt = np.asarray(loaded["ground_truth"], dtype=np.float32)
        if index != 0:
            raise InputOptionError(["index"], None, " applies to HDF5 files with several samples, "
                                                    f"not to {path}")
    else:
        raise ValueError(f"{path}: unknown sinogram file type {path.suffix!r}; expected .npy, "
                         ".npz, .h5 or .hdf5")
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{path}: array dtype {arr.dtype} is not real numeric")
    arr = _squeeze_leading(np.asarray(arr, dtype=np.float32), str(path))
    if not np.isfinite(arr).all():
        raise ValueError(f"{path}: the sinogram contains non-finite values (nan or inf)")
    n_angles, n_det = arr.shape
    if spec is not None:
        if (spec.n_angles, spec.n_detectors) != (n_angles, n_det):
            raise ValueError(f"{path}: sinogram shape {arr.shape} does not match the file's spec "
                             f"({spec.n_angles} angles x {spec.n_detectors} detectors)")
        if image_size is not None and image_size != spec.image_size:
            raise InputOptionError(["image_size"], image_size, f" does not match {path}, whose "
                                   f"spec has image size {spec.image_size}")
        if angles is not None and angles != n_angles:
            raise InputOptionError(["angles"], angles, " does not match the sinogram, which has "
                                                       f"{n_angles} angles")
        note = f"{path.name}:{index_note} geometry from the file's spec"
    else:
        spec = _sinogram_spec(angles, image_size, n_angles, n_det)
        note = (f"{path.name}:{index_note} parallel beam, {n_angles} angles on [0, pi), "
                f"{n_det} detectors spanning the {spec.image_size}x{spec.image_size} image's "
                "diagonal")
    n = spec.image_size
    if gt is not None:
        gt = _squeeze_leading(gt, f"{path} ground_truth")
        if gt.shape != (n, n):
            raise ValueError(f"{path}: ground_truth has shape {gt.shape}, expected ({n}, {n})")
        gt = torch.from_numpy(np.ascontiguousarray(gt))[None, None]
    y = torch.from_numpy(np.ascontiguousarray(arr))[None, None]
    return ReconstructionInput(kind="sinogram", y=y, spec=spec, gt=gt, note=note)


def read_image_input(path: Path, *, index: int = 0, image_size: Optional[int] = None,
                     angles: Optional[int] = None, noise: Optional[float] = None,
                     seed: Optional[int] = None) -> ReconstructionInput:
    """Measurements simulated from an image file.

    Parameters
    ----------
    path : pathlib.Path
        A DICOM file (by content or suffix; CT in HU is read as attenuation in
        1/m and divided by :data:`~tomolearn.noise.MU_MAX`, clipped to [0, 1];
        other modalities' rescaled values are divided by their largest
        magnitude), a ``.png`` (grey values in [0, 1]) or a 2-D ``.npy``
        (values as stored).
    index : int
        Must be 0 (HDF5 sinogram files only).
    image_size : int, optional
        Reconstruction grid N (default 128): the image is resampled (area
        average) to N x N over its square field of view (DICOM PixelSpacing in mm).
    angles : int, optional
        Parallel-beam angles to simulate (default 30), D = :func:`default_detectors`.
    noise : float, optional
        Relative Gaussian noise level (default 0.025).
    seed : int, optional
        Noise seed (default 0).

    Returns
    -------
    ReconstructionInput
        ``kind`` "dicom" or "image"; ``y`` simulated on a
        ``max(400, 3N // 2)`` grid (no inverse crime); ``gt`` the resampled
        image; for DICOM the dataset, its grid and the unit scale.

    Raises
    ------
    InputOptionError
        If `index` is not 0.
    ValueError
        For an unreadable or unsupported file, a non-2-D or non-finite image.
    """
    size = image_size if image_size is not None else 128
    angles = angles if angles is not None else 30
    level = noise if noise is not None else 0.025
    seed = seed if seed is not None else 0
    if index != 0:
        raise InputOptionError(["index"], None, f" applies to HDF5 sinogram files, not to {path}")
    spacing, dicom, geometry, unit_scale, units = None, None, None, 1.0, "as stored"
    if looks_like_dicom(path):
        import pydicom  # imported on first use (start-up time)

        try:
            header = pydicom.dcmread(path, stop_before_pixels=True)
        except pydicom.errors.InvalidDicomError:
            raise ValueError(f"{path}: not a DICOM file (no 'DICM' prefix after the 128-byte "
                             "preamble, or no file meta information)") from None
        except Exception as e:
            raise ValueError(f"{path}: not a readable DICOM file ({type(e).__name__}: {e})") from None
        modality = str(header.get("Modality", "") or "") or None
        ct = modality in (None, "CT")
        vol = read_dicom_series(path, units="mu_per_m" if ct else "rescaled")
        dicom = vol.datasets[0]
        check_dicom_writable(dicom, path)
        raw = vol.image[0].double().numpy()
        if ct:
            unit_scale, units = MU_MAX, "1/m (linear attenuation; DICOM output in HU)"
        else:
            top = float(np.abs(raw).max())
            unit_scale, units = (top if top > 0 else 1.0), f"{modality} rescaled values"
        img = np.clip(raw / unit_scale, 0.0, 1.0) if ct else raw / unit_scale
        spacing = vol.pixel_spacing
        kind, what = "dicom", f"{modality or 'CT'} DICOM"
    elif path.suffix.lower() in _IMAGE_SUFFIXES:
        img, kind, what = read_grey_png(path), "image", "PNG, grey values in [0, 1]"
    elif path.suffix.lower() == ".npy":
        try:
            arr = np.load(path, allow_pickle=False)
        except Exception as e:
            raise ValueError(f"{path}: unreadable NumPy file ({type(e).__name__}: {e})") from None
        if arr.dtype.kind not in "biuf":
            raise ValueError(f"{path}: array dtype {arr.dtype} is not real numeric")
        while arr.ndim > 2 and arr.shape[0] == 1:
            arr = arr[0]
        if arr.ndim != 2:
            raise ValueError(f"{path}: expected a 2-D image (H, W), got shape {arr.shape}")
        img, kind, what = arr.astype(np.float64), "image", "NumPy image, values as stored"
    else:
        raise ValueError(f"{path}: unknown image file type {path.suffix!r}; expected .png, .npy "
                         "or a DICOM file")
    if not np.isfinite(img).all():
        raise ValueError(f"{path}: the image contains non-finite values (nan or inf)")
    H, W = img.shape
    if spacing is None:
        spacing = (1.0, 1.0)
    fov = max(H * spacing[0], W * spacing[1])          # square field of view, input length unit
    gt = resample(torch.from_numpy(np.ascontiguousarray(img)), (size, size), spacing=spacing,
                  target_spacing=fov / size, fill=0.0)  # (size, size) float64, area average
    # Data are simulated on a finer grid (DIVal's 400 for 128; 1.5x for large images).
    spec = SimulationSpec(image_size=size, n_angles=angles, n_detectors=default_detectors(size),
                          fine_size=max(400, (3 * size) // 2),
                          noise=NoiseSpec(kind="gaussian", level=float(level)), seed=seed)
    y = simulate(gt[None, None], spec, torch.Generator().manual_seed(seed)).to(torch.float32)
    if dicom is not None:
        geometry = {"shape": (H, W), "spacing": spacing, "fov": fov}
    note = (f"{path.name} ({what}, {H}x{W}) resampled to {size}x{size}; simulated {angles} "
            f"parallel-beam angles x {spec.n_detectors} detectors on a {spec.fine_size}x"
            f"{spec.fine_size} grid, {100 * level:g} % Gaussian noise, seed {seed}")
    return ReconstructionInput(kind=kind, y=y, spec=spec, gt=gt[None, None].to(torch.float32),
                               unit_scale=unit_scale, units=units, dicom=dicom,
                               dicom_geometry=geometry, note=note)


def reconstruction_input_kind(path: Path, kind: str = "auto") -> str:
    """``"sinogram"`` or ``"image"``: what `path` holds.

    `kind` "sinogram" or "image" is returned as given; "auto" decides by the
    file: ``.h5``, ``.hdf5`` and ``.npz`` are sinograms, a ``.npy`` is an image
    if it is a square 2-D array and a sinogram otherwise, anything else
    (``.png``, DICOM) an image.

    Raises
    ------
    ValueError
        If a ``.npy`` file's header cannot be read.
    """
    if kind != "auto":
        return kind
    suffix = path.suffix.lower()
    if suffix in (".h5", ".hdf5", ".npz"):
        return "sinogram"
    if suffix == ".npy":
        try:
            shape = np.load(path, mmap_mode="r", allow_pickle=False).shape
        except Exception as e:
            raise ValueError(f"{path}: unreadable NumPy file ({type(e).__name__}: {e})") from None
        # A square 2-D array is an image, anything else (A, D) / (1, A, D) a sinogram.
        return "image" if len(shape) == 2 and shape[0] == shape[1] else "sinogram"
    return "image"


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
        What `path` holds (see :func:`reconstruction_input_kind`).
    index, image_size, angles, noise, seed
        Passed to the reader; see there.

    Returns
    -------
    ReconstructionInput

    Raises
    ------
    FileNotFoundError, IsADirectoryError
        If `path` does not exist or is a directory.
    InputOptionError, ValueError
        From the readers.
    """
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    if path.is_dir():
        raise IsADirectoryError(f"{path}: is a directory; expected one file (a sinogram, an "
                                "image or a DICOM file)")
    options = dict(index=index, image_size=image_size, angles=angles, noise=noise, seed=seed)
    if reconstruction_input_kind(path, kind) == "sinogram":
        return read_sinogram_input(path, **options)
    return read_image_input(path, **options)


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
