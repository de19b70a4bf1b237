"""Measured sinograms for ``tomolearn reconstruct``: ``.npy``, ``.npz`` and HDF5 files.

NumPy files are never unpickled (:func:`tomolearn.data.io.load_npy`); a damaged
or truncated HDF5 file is a ``ValueError`` naming it, whatever part of it is broken.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import h5py
import numpy as np
import torch

from ...data.io import file_type, load_npy, load_npz, npz_keys
from .reconstruct_common import (InputOptionError, ReconstructionInput, check_index,
                                 squeeze_leading)
from .task import SimulationSpec

__all__ = ["read_sinogram_input"]

_SINOGRAM_KEYS = ("sinogram", "measurement")


def _sinogram_spec(angles: Optional[int], image_size: Optional[int], n_angles: int,
                   n_detectors: int) -> SimulationSpec:
    """Parallel-beam geometry of an (A, D) sinogram on an N x N grid (default 128)."""
    if angles is not None and angles != n_angles:
        raise InputOptionError(["angles"], angles, f" does not match the sinogram, which has "
                                                   f"{n_angles} angles (rows)")
    size = image_size if image_size is not None else 128
    return SimulationSpec(image_size=size, n_angles=n_angles, n_detectors=n_detectors)


def _hdf5_content(f: h5py.File, path: Path, index: int):
    """``(sinogram, ground truth or None, spec or None, note)`` of sample `index` of `f`."""
    if "complete" in f.attrs and not bool(f.attrs["complete"]):
        raise ValueError(f"{path}: an incomplete dataset file (its writer was interrupted); "
                         "finish it by running the same `tomolearn data generate` again")
    key = next((k for k in ("measurement", "sinogram") if k in f), None)
    if key is None:
        raise ValueError(f"{path}: no dataset 'measurement' or 'sinogram' in the HDF5 file "
                         f"(it holds: {', '.join(f.keys()) or 'nothing'})")
    data = f[key]
    gt, note = None, ""
    if data.ndim == 4:
        check_index(index, data.shape[0], path, "sample(s)")
        arr = np.asarray(data[index])
        if "ground_truth" in f and f["ground_truth"].ndim == 4:
            gt = np.asarray(f["ground_truth"][index], dtype=np.float32)
        note = f" sample {index} of {data.shape[0]},"
    else:
        if index != 0:
            raise InputOptionError(["index"], index, f": {path} holds one sinogram")
        arr = np.asarray(data)
        if "ground_truth" in f:
            gt = np.asarray(f["ground_truth"], dtype=np.float32)
    spec = None
    if "spec" in f.attrs:
        try:
            spec = SimulationSpec.from_dict(json.loads(f.attrs["spec"])["simulation"])
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"{path}: unreadable 'spec' attribute ({e})") from None
    return arr, gt, spec, note


def _read_hdf5(path: Path, index: int):
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise ValueError(f"{path}: not a readable HDF5 file ({e})") from None
    try:
        with f:
            return _hdf5_content(f, path, index)
    except (OSError, RuntimeError, KeyError, TypeError) as e:  # h5py on damaged content
        detail = str(e.args[0]) if isinstance(e, KeyError) and e.args else str(e)
        raise ValueError(f"{path}: damaged or truncated HDF5 file ({detail})") from None


def _read_numpy(path: Path, suffix: str, index: int):
    gt = None
    if suffix == ".npy":
        arr = load_npy(path)
    else:
        keys = npz_keys(path)
        key = next((k for k in _SINOGRAM_KEYS if k in keys), None)
        if key is None and len(keys) == 1:
            key = keys[0]
        if key is None:
            raise ValueError(f"{path}: .npz file holds {len(keys)} arrays "
                             f"({', '.join(keys) or 'none'}); expected one array or one "
                             "named 'sinogram' (or 'measurement')")
        arrays = load_npz(path, [key, "ground_truth"])
        arr = arrays[key]
        if "ground_truth" in arrays:
            gt = np.asarray(arrays["ground_truth"], dtype=np.float32)
    if index != 0:
        raise InputOptionError(["index"], None, " applies to HDF5 files with several samples, "
                                                f"and to NIfTI/TIFF volumes, not to {path}")
    return arr, gt


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
        For an unreadable, damaged or truncated file (a NumPy file is never
        unpickled), missing keys, a non-numeric dtype, a wrong shape or
        non-finite values.
    """
    if noise is not None or seed is not None:
        raise InputOptionError(["noise", "seed"], None, " apply only when the input is an image "
                               f"to simulate data from; {path} holds measured data")
    suffix = file_type(path)
    spec, index_note = None, ""
    if suffix in (".h5", ".hdf5"):
        arr, gt, spec, index_note = _read_hdf5(path, index)
        fmt = "hdf5"
    elif suffix in (".npy", ".npz"):
        arr, gt = _read_numpy(path, suffix, index)
        fmt = suffix[1:]
    else:
        raise ValueError(f"{path}: unknown sinogram file type {suffix or 'no suffix'!r}; "
                         "expected .npy, .npz, .h5 or .hdf5")
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{path}: array dtype {arr.dtype} is not real numeric")
    arr = squeeze_leading(np.asarray(arr, dtype=np.float32), str(path))
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
        gt = squeeze_leading(gt, f"{path} ground_truth")
        if gt.shape != (n, n):
            raise ValueError(f"{path}: ground_truth has shape {gt.shape}, expected ({n}, {n})")
        gt = torch.from_numpy(np.ascontiguousarray(gt))[None, None]
    y = torch.from_numpy(np.ascontiguousarray(arr))[None, None]
    return ReconstructionInput(kind="sinogram", y=y, spec=spec, gt=gt, note=note, format=fmt)
