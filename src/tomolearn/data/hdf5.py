"""On-disk datasets in HDF5: generation with resume, validated opening.

File layout (format version 1)::

    /measurement    (n, 1, n_angles, n_detectors) float32, chunked, gzip + shuffle
    /ground_truth   (n, 1, N, N) float32, chunked, gzip + shuffle
    attrs: format="tomolearn-dataset", format_version=1, spec=<JSON of the dataset spec>,
           sha256=<hash of both arrays in sample order>, complete=True

Generation writes ``FILE.partial`` and renames it to ``FILE`` only when it is
complete, so ``FILE`` is never half-written.  Progress is recorded in
``FILE.partial.json`` (written atomically after each flushed batch); a run
that is interrupted and started again continues from the last recorded
sample, and since every sample is a pure function of its index the result
equals an uninterrupted run bit for bit.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path
from typing import Callable, Optional

import h5py
import numpy as np
import torch
from torch.utils.data import Dataset

from ..files import atomic_write_bytes, exclusive_lock
from .datasets import SimulatedDataset, SpecMismatchError, _cast, spec_differences

__all__ = ["generate_hdf5", "open_hdf5", "H5Dataset", "DatasetFileError"]

FORMAT = "tomolearn-dataset"
FORMAT_VERSION = 1


class DatasetFileError(ValueError):
    """A dataset file is missing, truncated, corrupt or not a tomolearn dataset."""


def _json_bytes(payload: dict) -> bytes:
    return json.dumps(payload).encode()


def _content_hash(f: h5py.File, chunk: int = 512) -> str:
    h = hashlib.sha256()
    for name in ("measurement", "ground_truth"):
        d = f[name]
        for start in range(0, d.shape[0], chunk):
            h.update(np.ascontiguousarray(d[start:start + chunk]).tobytes())
    return h.hexdigest()


def generate_hdf5(dataset: SimulatedDataset, path, *, overwrite: bool = False, batch_size: int = 64,
                  progress: Optional[Callable[[int, int], None]] = None) -> Path:
    """Write ``dataset`` to ``path`` (HDF5), resuming an interrupted run.

    Parameters
    ----------
    dataset : SimulatedDataset
    path : str or Path
        Target file; refused if it exists unless ``overwrite``.
    overwrite : bool
        Replace an existing file (and discard a partial run of another spec).
    batch_size : int
        Samples simulated and flushed together.
    progress : callable, optional
        ``progress(n_done, n_total)`` after every flushed batch.

    Returns
    -------
    Path of the complete file.
    """
    path = Path(path)
    if path.is_dir():
        raise DatasetFileError(f"{path}: is a directory")
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    path.parent.mkdir(parents=True, exist_ok=True)
    # one writer per output: a second h5py.File(partial, 'w') would truncate the first's file
    with exclusive_lock(path.with_name(path.name + ".lock"), f"the dataset {path}"):
        if path.exists() and not overwrite:
            raise FileExistsError(f"{path} exists; pass overwrite=True (--overwrite) to replace it")
        return _generate_locked(dataset, path, overwrite, batch_size, progress)


#: How samples are stored: float32, or complex64 for complex tasks (MRI) -- never a silent
#: loss of the imaginary part.
_STORED = {"float32": torch.float32, "complex64": torch.complex64}


def _stored_dtype(t: torch.Tensor) -> str:
    return "complex64" if t.is_complex() else "float32"


def _generate_locked(dataset, path: Path, overwrite: bool, batch_size: int, progress) -> Path:
    partial = path.with_name(path.name + ".partial")
    state_file = path.with_name(path.name + ".partial.json")
    spec_json = json.dumps(dataset.spec, sort_keys=True)
    n = len(dataset)
    y0, x0 = dataset[0]

    n_done = 0
    if partial.exists() and state_file.exists():
        state = json.loads(state_file.read_text())
        if state.get("spec") != spec_json:
            diffs = spec_differences(dataset.spec, json.loads(state.get("spec") or "{}"))
            if not overwrite:
                raise SpecMismatchError(
                    f"{partial} is a partial run of a different spec (differing fields: "
                    f"{', '.join(diffs)}); pass --overwrite (overwrite=True) to discard it")
        else:
            n_done = int(state["n_done"])
    f = None
    if n_done:
        try:
            f = h5py.File(partial, "r+")
            if f["measurement"].shape[0] != n:
                raise OSError("unexpected array shape")
        except (OSError, KeyError) as e:
            if f is not None:
                f.close()
                f = None
            warnings.warn(f"cannot resume from {partial} ({e}); starting again")
            n_done = 0
    if f is None:
        f = h5py.File(partial, "w")
        f.attrs["format"] = FORMAT
        f.attrs["format_version"] = FORMAT_VERSION
        f.attrs["spec"] = spec_json
        f.attrs["complete"] = False
        for name, sample in (("measurement", y0), ("ground_truth", x0)):
            f.create_dataset(name, shape=(n,) + tuple(sample.shape), dtype=_stored_dtype(sample),
                             chunks=(min(16, n),) + tuple(sample.shape), compression="gzip",
                             compression_opts=4, shuffle=True)
        f.flush()
        atomic_write_bytes(state_file, _json_bytes({"spec": spec_json, "n_done": 0}))
    try:
        for start in range(n_done, n, batch_size):
            stop = min(start + batch_size, n)
            y, x = dataset.batch(range(start, stop))
            f["measurement"][start:stop] = y.to(_STORED[_stored_dtype(y)]).numpy()
            f["ground_truth"][start:stop] = x.to(_STORED[_stored_dtype(x)]).numpy()
            f.flush()
            atomic_write_bytes(state_file, _json_bytes({"spec": spec_json, "n_done": stop}))
            if progress is not None:
                progress(stop, n)
        f.attrs["sha256"] = _content_hash(f)
        f.attrs["complete"] = True
        f.flush()
    finally:
        f.close()
    fd = os.open(partial, os.O_RDONLY)
    os.fsync(fd)
    os.close(fd)
    os.replace(partial, path)
    state_file.unlink()
    return path


class H5Dataset(Dataset):
    """A dataset file written by :func:`generate_hdf5`: ``ds[i] -> (measurement, ground_truth)``.

    The file is opened lazily in each process (safe with DataLoader workers).
    ``spec`` holds the stored dataset spec.
    """

    def __init__(self, path, spec: dict, length: int, dtype=torch.float32):
        self.path, self.spec, self.length, self.dtype = Path(path), spec, length, dtype
        self._file = None
        self._pid = None

    def __len__(self):
        return self.length

    def _handle(self) -> h5py.File:
        if self._file is None or self._pid != os.getpid():
            self._file = h5py.File(self.path, "r")
            self._pid = os.getpid()
        return self._file

    def __getitem__(self, i):
        if isinstance(i, torch.Tensor) and i.dim() == 0:
            i = int(i)
        if not isinstance(i, (int, np.integer)) or not -self.length <= i < self.length:
            raise IndexError(f"sample {i!r} out of range for {self.path} ({self.length} samples)")
        f = self._handle()
        y = _cast(torch.from_numpy(f["measurement"][int(i) % self.length]), self.dtype)
        x = _cast(torch.from_numpy(f["ground_truth"][int(i) % self.length]), self.dtype)
        return y, x

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_file"] = None  # h5py handles do not cross processes
        return state


def open_hdf5(path, expected=None, *, verify: bool = False, dtype=torch.float32) -> H5Dataset:
    """Open a dataset file, checking that it is complete and (optionally) what it holds.

    Parameters
    ----------
    path : str or Path
    expected : SimulatedDataset or dict, optional
        The dataset (or its ``spec``) the caller wants; any differing field
        raises :class:`SpecMismatchError` naming the fields.
    verify : bool
        Recompute the content hash and compare (reads the whole file).

    Raises
    ------
    FileNotFoundError, DatasetFileError, SpecMismatchError
    """
    path = Path(path)
    if not path.exists():
        partial = path.with_name(path.name + ".partial")
        hint = f" (an interrupted run left {partial}: run the generation again to resume)" \
            if partial.exists() else ""
        raise FileNotFoundError(f"{path}: no such dataset file{hint}")
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise DatasetFileError(f"{path}: not a readable HDF5 file (truncated or corrupt?): {e}") from None
    with f:
        if f.attrs.get("format") != FORMAT:
            raise DatasetFileError(f"{path}: not a tomolearn dataset file (no format attribute)")
        if f.attrs.get("format_version") != FORMAT_VERSION:
            raise DatasetFileError(f"{path}: format version {f.attrs.get('format_version')} is not "
                                   f"supported (expected {FORMAT_VERSION})")
        if not f.attrs.get("complete", False) or "sha256" not in f.attrs:
            raise DatasetFileError(f"{path}: incomplete dataset file")
        try:
            spec = json.loads(f.attrs["spec"])
            n = f["measurement"].shape[0]
            if f["ground_truth"].shape[0] != n or n != spec["size"]:
                raise DatasetFileError(f"{path}: array lengths disagree with the stored spec")
        except (KeyError, ValueError, TypeError) as e:
            if isinstance(e, DatasetFileError):
                raise
            raise DatasetFileError(f"{path}: damaged dataset metadata ({e})") from None
        if verify:
            try:
                digest = _content_hash(f)
            except OSError as e:
                raise DatasetFileError(f"{path}: unreadable data ({e})") from None
            if digest != f.attrs["sha256"]:
                raise DatasetFileError(f"{path}: content hash mismatch (corrupt data)")
    if expected is not None:
        want = expected.spec if isinstance(expected, SimulatedDataset) else expected
        diffs = spec_differences(want, spec)
        if diffs:
            raise SpecMismatchError(f"{path} holds a different dataset; differing fields: "
                                    + ", ".join(diffs))
    return H5Dataset(path, spec, n, dtype)
