"""Images for ``tomolearn reconstruct`` to simulate CT data from: PNG, TIFF, NIfTI, NumPy, DICOM.

The image (one slice of a TIFF or NIfTI volume, chosen by ``index``) is
resampled to the reconstruction grid (area average) over its square field of
view, and measurements are simulated on a finer grid (no inverse crime).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from ...data.io import (check_dicom_writable, file_type, load_npy, looks_like_dicom,
                        read_dicom_series, read_grey_png, read_nifti_volume, read_tiff, resample)
from ...noise import MU_MAX
from .reconstruct_common import (InputOptionError, ReconstructionInput, check_index,
                                 default_detectors)
from .task import NoiseSpec, SimulationSpec, simulate

__all__ = ["IMAGE_TYPES", "read_image_input"]

#: Image file types by name (DICOM files are also recognised by content).
IMAGE_TYPES = (".png", ".tif", ".tiff", ".nii", ".nii.gz", ".npy")


def _dicom(path: Path) -> dict:
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
    return dict(img=img, spacing=vol.pixel_spacing, dicom=dicom, unit_scale=unit_scale,
                units=units, kind="dicom", format="dicom", what=f"{modality or 'CT'} DICOM")


def _slice(volume: torch.Tensor, index: int, path: Path, what: str) -> dict:
    """Slice `index` of a (D, H, W) volume, with the words for the summary."""
    depth = volume.shape[0]
    check_index(index, depth, path, "slice(s)")
    where = f"slice {index} of {depth}, " if depth > 1 else ""
    return dict(img=volume[index].double().numpy(), what=f"{what}, {where}values as stored")


def _nifti(path: Path, index: int) -> dict:
    vol = read_nifti_volume(path)  # ImportError naming tomolearn[nifti] without nibabel
    spacing = tuple(float(s) for s in vol.spacing[1:])
    if not all(math.isfinite(s) and s > 0 for s in spacing):
        raise ValueError(f"{path}: the NIfTI affine gives pixel spacing {spacing}; expected "
                         "positive numbers")
    return dict(_slice(vol.image, index, path, "NIfTI"), spacing=spacing, nifti=vol,
                kind="nifti", format="nifti")


def _npy(path: Path) -> dict:
    arr = load_npy(path)
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{path}: array dtype {arr.dtype} is not real numeric")
    while arr.ndim > 2 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 2:
        raise ValueError(f"{path}: expected a 2-D image (H, W), got shape {arr.shape}")
    return dict(img=arr.astype(np.float64), what="NumPy image, values as stored", format="npy")


def _read(path: Path, index: int) -> dict:
    """The image of `path` and how to describe and write it back."""
    suffix = file_type(path)
    volume = suffix in (".nii", ".nii.gz", ".tif", ".tiff")
    if not volume and index != 0:
        raise InputOptionError(["index"], None, " applies to HDF5 sinogram files and NIfTI/TIFF "
                                                f"volumes, not to {path}")
    if suffix in (".nii", ".nii.gz"):
        return _nifti(path, index)
    if suffix in (".tif", ".tiff"):
        return dict(_slice(read_tiff(path), index, path, "TIFF"), format="tiff")
    if looks_like_dicom(path):
        return _dicom(path)
    if suffix == ".png":
        return dict(img=read_grey_png(path), what="PNG, grey values in [0, 1]", format="png")
    if suffix == ".npy":
        return _npy(path)
    raise ValueError(f"{path}: unknown image file type {suffix or 'no suffix'!r}; expected "
                     ".png, .tif, .tiff, .nii, .nii.gz, .npy or a DICOM file")


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
        magnitude), a ``.png`` (grey values in [0, 1]), a 2-D ``.npy``, a
        ``.tif`` / ``.tiff`` image or stack, or a ``.nii`` / ``.nii.gz`` slice
        or volume (NumPy, TIFF and NIfTI values as stored; NIfTI in the display
        orientation of :func:`~tomolearn.data.io.read_nifti_volume`, with its
        voxel spacing).
    index : int
        The slice of a TIFF stack or NIfTI volume (default 0); must be 0 otherwise.
    image_size : int, optional
        Reconstruction grid N (default 128): the image is resampled (area
        average) to N x N over its square field of view (DICOM PixelSpacing
        and NIfTI voxel sizes in mm; TIFF and NumPy pixels are square).
    angles : int, optional
        Parallel-beam angles to simulate (default 30), D = :func:`default_detectors`.
    noise : float, optional
        Relative Gaussian noise level (default 0.025).
    seed : int, optional
        Noise seed (default 0).

    Returns
    -------
    ReconstructionInput
        ``kind`` "dicom", "nifti" or "image"; ``y`` simulated on a
        ``max(400, 3N // 2)`` grid (no inverse crime); ``gt`` the resampled
        image; for DICOM the dataset and the unit scale, for NIfTI the volume
        and slice; for both the source grid.

    Raises
    ------
    InputOptionError
        If `index` is out of range, or not 0 for a single image.
    ValueError
        For an unreadable or unsupported file, a non-2-D or non-finite image.
    ImportError
        For NIfTI input without nibabel (``pip install tomolearn[nifti]``).
    """
    size = image_size if image_size is not None else 128
    angles = angles if angles is not None else 30
    level = noise if noise is not None else 0.025
    seed = seed if seed is not None else 0
    got = _read(path, index)
    img = got["img"]
    if not np.isfinite(img).all():
        raise ValueError(f"{path}: the image contains non-finite values (nan or inf)")
    H, W = img.shape
    spacing = got.get("spacing") or (1.0, 1.0)
    fov = max(H * spacing[0], W * spacing[1])          # square field of view, input length unit
    gt = resample(torch.from_numpy(np.ascontiguousarray(img)), (size, size), spacing=spacing,
                  target_spacing=fov / size, fill=0.0)  # (size, size) float64, area average
    # Data are simulated on a finer grid (DIVal's 400 for 128; 1.5x for large images).
    spec = SimulationSpec(image_size=size, n_angles=angles, n_detectors=default_detectors(size),
                          fine_size=max(400, (3 * size) // 2),
                          noise=NoiseSpec(kind="gaussian", level=float(level)), seed=seed)
    y = simulate(gt[None, None], spec, torch.Generator().manual_seed(seed)).to(torch.float32)
    dicom, nifti = got.get("dicom"), got.get("nifti")
    grid = ({"shape": (H, W), "spacing": spacing, "fov": fov}
            if dicom is not None or nifti is not None else None)
    note = (f"{path.name} ({got['what']}, {H}x{W}) resampled to {size}x{size}; simulated "
            f"{angles} parallel-beam angles x {spec.n_detectors} detectors on a "
            f"{spec.fine_size}x{spec.fine_size} grid, {100 * level:g} % Gaussian noise, "
            f"seed {seed}")
    return ReconstructionInput(kind=got.get("kind", "image"), y=y, spec=spec,
                               gt=gt[None, None].to(torch.float32),
                               unit_scale=got.get("unit_scale", 1.0),
                               units=got.get("units", "as stored"), dicom=dicom,
                               dicom_geometry=grid if dicom is not None else None, note=note,
                               format=got["format"], nifti=nifti,
                               nifti_index=index if nifti is not None else 0, grid=grid)
