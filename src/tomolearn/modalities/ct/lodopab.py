"""LoDoPaB-CT: a reader for the public files and the matching tomolearn operator.

LoDoPaB-CT [1]_ (Zenodo record 3384092) is a low-dose CT benchmark of 42 895
pairs of simulated post-log sinograms and 362 x 362 ground-truth images cut
from LIDC-IDRI scans.  Nothing is downloaded here: :class:`LoDoPaBDataset`
reads the unzipped files from a directory the user already has.

Layout of the files (verified against the dataset's reference code, see the
notes below)::

    ground_truth_{part}_{NNN}.hdf5   dataset "data", float32, (n, 362, 362)
    observation_{part}_{NNN}.hdf5    dataset "data", float32, (n, 1000, 513)

with ``part`` in train / validation / test, ``NNN`` the file number from 000
written with ``{:03d}``, ``n = 128`` samples per file except the last file of
each part, which holds the remainder.  Part sizes 35 820 / 3 522 / 3 553
(280 / 28 / 28 files).

Sources checked (with the ``search`` tools of this project, public code):

* DIVal ``dival/datasets/lodopab_dataset.py`` (jleuschn/dival):
  ``NUM_SAMPLES_PER_FILE = 128``, file names
  ``'observation_{}_{:03d}.hdf5'.format(part, i)`` and
  ``'ground_truth_{}_{:03d}.hdf5'``, HDF5 dataset ``file['data']``, sample
  ``index`` is row ``index % 128`` of file ``index // 128``; shapes
  ``(1000, 513)`` / ``(362, 362)``; ``train_len = 35820``,
  ``validation_len = 3522``, ``test_len = 3553``; domain
  ``MIN_PT = [-0.13, -0.13]``, ``MAX_PT = [0.13, 0.13]`` (metres); geometry
  ``odl.tomo.parallel_beam_geometry(domain, num_angles=1000,
  det_shape=(513,))``; observation space
  ``uniform_discr([0., -0.1838], [3.1416, 0.1838], (1000, 513))``.
* LoDoPaB's generation script ``create_dataset.py`` (jleuschn/lodopab_tech_ref):
  files created with ``create_dataset('data', shape=(128,) + shape,
  dtype=np.float32)``, the last file of a part resized along axis 0 to the
  remainder; ground truth ``array = pixel_array[75:-75, 75:-75].T`` (a
  transposed DICOM slice) used directly as an ODL element; observations
  ``-log(max(Poisson(4096 exp(-A(x mu_max))), 0.1) / 4096) / mu_max``
  simulated from the image upsampled to 1000 x 1000.
* ODL ``parallel_beam_geometry`` (odlgroup/odl,
  ``odl/tomo/geometry/parallel.py``): angles ``uniform_partition(0, pi,
  num_angles)`` (cell midpoints), detector ``uniform_partition(-rho, rho,
  det_shape)`` with ``rho`` the largest distance of a domain corner from the
  origin (here ``0.13 sqrt 2 = 0.18385`` m: the detector spans the image
  diagonal).  ``Parallel2dGeometry`` starts with the detector axis ``(1, 0)``
  and rotates counter-clockwise, so a point ``p`` projects to detector
  coordinate ``p . (cos theta, sin theta)``, the convention of
  :mod:`tomolearn.ct`.

Orientation
-----------
ODL indexes an image array as ``a[x_index, y_index]`` (``y`` increasing
with the second index) while tomolearn uses ``(row, col)`` with row 0 at the
top (``y`` up).  The same physical image is therefore ``np.rot90(a)`` in
tomolearn's layout.  By default (``orientation="tomolearn"``) ground truths
are returned that way, so that ``lodopab_operator()(x)`` reproduces the
observations (up to noise and the finer simulation grid); observations need
no change (angle along axis 0, detector coordinate increasing along axis 1
in both).  In this frame the anatomy appears upside down relative to the
DICOM display (the files hold the transposed DICOM slice and ODL puts its
first row at ``y = -0.13``).  ``orientation="file"`` returns the arrays
exactly as stored (DIVal's convention).

References
----------
.. [1] J. Leuschner, M. Schmidt, D. O. Baguer and P. Maass, "LoDoPaB-CT, a
       benchmark dataset for low-dose computed tomography reconstruction",
       Sci. Data 8, 109, 2021. :DOI:`10.1038/s41597-021-00893-z`;
       data: :DOI:`10.5281/zenodo.3384092`.
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import h5py
import numpy as np
import torch
from torch.utils.data import Dataset

from .geometry import ParallelBeam2D
from .ray_transform import RayTransform

__all__ = [
    "PARTS",
    "PART_SIZES",
    "NUM_SAMPLES_PER_FILE",
    "OBSERVATION_SHAPE",
    "GROUND_TRUTH_SHAPE",
    "IMAGE_SHAPE",
    "PIXEL_SIZE",
    "DETECTOR_SPACING",
    "LoDoPaBFileError",
    "LoDoPaBDataset",
    "lodopab_geometry",
    "lodopab_operator",
]

#: Dataset parts, in DIVal's naming.
PARTS = ("train", "validation", "test")
#: Number of samples of each part in the published dataset.
PART_SIZES = {"train": 35820, "validation": 3522, "test": 3553}
#: Samples per file in the published dataset (the last file of a part holds fewer).
NUM_SAMPLES_PER_FILE = 128
#: Name of the HDF5 dataset in every file.
DATASET_NAME = "data"
#: Per-sample shapes: ``(n_angles, n_detectors)`` and ``(H, W)``.
OBSERVATION_SHAPE = (1000, 513)
GROUND_TRUTH_SHAPE = (362, 362)
IMAGE_SHAPE = GROUND_TRUTH_SHAPE
#: Half side of the square image domain, metres: the image covers [-0.13, 0.13]^2.
HALF_WIDTH = 0.13
#: Pixel side in metres (0.26 m / 362).
PIXEL_SIZE = 2 * HALF_WIDTH / IMAGE_SHAPE[0]
#: Detector bin width in metres: 513 bins spanning the image diagonal [-0.13 sqrt 2, 0.13 sqrt 2].
DETECTOR_SPACING = 2 * HALF_WIDTH * math.sqrt(2) / OBSERVATION_SHAPE[1]

_KINDS = ("observation", "ground_truth")
_ORIENTATIONS = ("tomolearn", "file")


class LoDoPaBFileError(ValueError):
    """The LoDoPaB-CT files are incomplete, inconsistent or not what they should be."""


def lodopab_geometry() -> ParallelBeam2D:
    """The LoDoPaB-CT parallel-beam geometry, in metres.

    1000 angles at the midpoints ``(i + 0.5) pi / 1000`` of [0, pi) and 513
    detector bins of width ``0.26 sqrt 2 / 513`` m spanning the diagonal of
    the image domain [-0.13, 0.13]^2 m, centred: ODL's
    ``parallel_beam_geometry`` for that domain with ``num_angles=1000,
    det_shape=513``, as used by LoDoPaB-CT and DIVal.  The image grid is
    :data:`IMAGE_SHAPE` = 362 x 362 with :data:`PIXEL_SIZE` = 0.26 / 362 m.
    """
    return ParallelBeam2D(n_angles=OBSERVATION_SHAPE[0], n_detectors=OBSERVATION_SHAPE[1],
                          detector_spacing=DETECTOR_SPACING)


def lodopab_operator(**kwargs) -> RayTransform:
    """The LoDoPaB-CT ray transform: 362 x 362 images -> 1000 x 513 sinograms.

    ``RayTransform(lodopab_geometry(), IMAGE_SHAPE, pixel_size=PIXEL_SIZE)``;
    line integrals in metres, the units of the (post-log, ``mu_max``
    normalised) observations, applied to ground truths in tomolearn's
    orientation (see the module docstring).  Keyword arguments
    (``backend``, ``cache_dir``) are passed on to
    :class:`tomolearn.ct.RayTransform`.
    """
    return RayTransform(lodopab_geometry(), IMAGE_SHAPE, pixel_size=PIXEL_SIZE, **kwargs)


def _scan(root: Path, kind: str, part: str) -> Dict[int, Path]:
    """``{file number: path}`` of the files ``{kind}_{part}_NNN.hdf5`` in ``root``."""
    pattern = re.compile(rf"^{kind}_{part}_(\d+)\.hdf5$")
    found: Dict[int, Path] = {}
    for entry in os.scandir(root):
        match = pattern.match(entry.name)
        if match and entry.is_file():
            number = int(match.group(1))
            if number in found:
                raise LoDoPaBFileError(
                    f"two files with number {number} for {kind} {part!r} in {root}: "
                    f"{found[number].name} and {entry.name}")
            found[number] = Path(entry.path)
    return found


def _file_name(kind: str, part: str, number: int) -> str:
    return f"{kind}_{part}_{number:03d}.hdf5"


def _number_list(numbers) -> str:
    numbers = sorted(numbers)
    shown = ", ".join(f"{n:03d}" for n in numbers[:8])
    return shown + (f", ... ({len(numbers)} in all)" if len(numbers) > 8 else "")


def _count_samples(path: Path, sample_shape: Tuple[int, int]) -> int:
    """Number of samples in ``path``, checking the dataset's name, rank, shape and dtype."""
    try:
        with h5py.File(path, "r") as f:
            if DATASET_NAME not in f:
                names = sorted(f.keys())
                raise LoDoPaBFileError(
                    f"{path}: no dataset named {DATASET_NAME!r} (found {names or 'nothing'}); "
                    f"expected a LoDoPaB-CT file with dataset {DATASET_NAME!r} of shape "
                    f"(n, {sample_shape[0]}, {sample_shape[1]})")
            data = f[DATASET_NAME]
            if not isinstance(data, h5py.Dataset):
                raise LoDoPaBFileError(f"{path}: {DATASET_NAME!r} is a group, expected a dataset")
            shape = tuple(data.shape)
            if len(shape) != 3 or shape[1:] != tuple(sample_shape):
                raise LoDoPaBFileError(
                    f"{path}: dataset {DATASET_NAME!r} has shape {shape}, expected "
                    f"(n, {sample_shape[0]}, {sample_shape[1]})")
            if data.dtype.kind != "f":
                raise LoDoPaBFileError(
                    f"{path}: dataset {DATASET_NAME!r} has dtype {data.dtype}, expected float32")
            return int(shape[0])
    except OSError as err:
        raise LoDoPaBFileError(f"{path}: cannot be read as HDF5 ({err})") from err


class LoDoPaBDataset(Dataset):
    """The LoDoPaB-CT files of one part: ``ds[i] -> (observation, ground_truth)``.

    Parameters
    ----------
    root : str or Path
        Directory holding the unzipped files ``observation_{part}_NNN.hdf5``
        and ``ground_truth_{part}_NNN.hdf5`` (Zenodo record 3384092).
    part : {"train", "validation", "test"}
    with_ground_truth : bool
        If False, ``ds[i]`` is the observation alone and ground-truth files
        are neither needed nor read.
    orientation : {"tomolearn", "file"}
        Layout of the ground truth: ``"tomolearn"`` (default) rotates the
        stored ODL ``[x, y]`` array to tomolearn's ``(row, col)``, row 0 at
        the top, consistent with :func:`lodopab_operator`; ``"file"`` returns
        it as stored.  Observations are never changed.

    Items
    -----
    observation : torch.Tensor, (1, 1000, 513), float32
        Post-log data divided by ``mu_max`` (line integrals in metres of the
        normalised image), as stored.
    ground_truth : torch.Tensor, (1, 362, 362), float32
        Values in [0, 1].

    Sample ``i`` is the ``i``-th sample of the files in the order of their
    numbers (000, 001, ...), i.e. DIVal's ``get_sample(i, part)``.  The number
    of samples of every file is read from its dataset shape (files are opened
    briefly in ``__init__`` to check them, then closed), so partial copies
    with fewer files work as long as the numbers run from 000 without gaps;
    :attr:`complete` says whether the part has its published size.

    Files are opened lazily, once per file and process, on first access; the
    handles are dropped when the dataset is pickled and reopened after a
    fork, so DataLoader workers (fork, spawn or forkserver) each hold their
    own.

    Raises
    ------
    FileNotFoundError
        ``root`` is not a directory, or holds no file of ``part``.
    LoDoPaBFileError
        Gaps in the file numbers, observation and ground-truth files that do
        not pair up, a file without the dataset ``"data"``, with the wrong
        per-sample shape or dtype, unreadable, or a pair of files with
        different numbers of samples (each message names the file).
    """

    def __init__(self, root, part: str, *, with_ground_truth: bool = True,
                 orientation: str = "tomolearn"):
        if part not in PARTS:
            raise ValueError(f"part must be one of {PARTS}, got {part!r}")
        if orientation not in _ORIENTATIONS:
            raise ValueError(f"orientation must be one of {_ORIENTATIONS}, got {orientation!r}")
        root = Path(root)
        if not root.is_dir():
            raise FileNotFoundError(
                f"LoDoPaB-CT directory {str(root)!r} does not exist or is not a directory; "
                "expected the unzipped files of Zenodo record 3384092 "
                "(observation_{part}_NNN.hdf5, ground_truth_{part}_NNN.hdf5)")
        self.root, self.part = root, part
        self.with_ground_truth = bool(with_ground_truth)
        self.orientation = orientation

        observations = _scan(root, "observation", part)
        truths = _scan(root, "ground_truth", part) if self.with_ground_truth else {}
        if not observations and not truths:
            raise FileNotFoundError(
                f"no LoDoPaB-CT files of part {part!r} in {root}: expected "
                f"{_file_name('observation', part, 0)}, ... "
                + (f"and {_file_name('ground_truth', part, 0)}, ..." if self.with_ground_truth
                   else ""))
        if self.with_ground_truth and set(observations) != set(truths):
            only_obs = set(observations) - set(truths)
            only_gt = set(truths) - set(observations)
            details = []
            if only_obs:
                details.append(f"observation files without ground truth: numbers {_number_list(only_obs)}")
            if only_gt:
                details.append(f"ground-truth files without observation: numbers {_number_list(only_gt)}")
            raise LoDoPaBFileError(
                f"observation and ground-truth files of part {part!r} in {root} do not pair up; "
                + "; ".join(details))
        if not observations:
            raise FileNotFoundError(
                f"no observation files of part {part!r} in {root}: expected "
                f"{_file_name('observation', part, 0)}, ...")
        numbers = sorted(observations)
        missing = sorted(set(range(numbers[-1] + 1)) - set(numbers))
        if missing:
            raise LoDoPaBFileError(
                f"files of part {part!r} in {root} must be numbered from 000 without gaps "
                f"(sample indices depend on it); missing numbers {_number_list(missing)}")

        self.files: List[Tuple[Path, Optional[Path]]] = []
        counts: List[int] = []
        for number in numbers:
            obs_path = observations[number]
            n_obs = _count_samples(obs_path, OBSERVATION_SHAPE)
            gt_path = truths.get(number)
            if gt_path is not None:
                n_gt = _count_samples(gt_path, GROUND_TRUTH_SHAPE)
                if n_gt != n_obs:
                    raise LoDoPaBFileError(
                        f"{obs_path.name} holds {n_obs} samples but {gt_path.name} holds "
                        f"{n_gt}; both files of a pair must hold the same samples")
            self.files.append((obs_path, gt_path))
            counts.append(n_obs)
        #: Samples per file, in file order.
        self.sample_counts: Tuple[int, ...] = tuple(counts)
        self._offsets = np.concatenate(([0], np.cumsum(counts))).astype(np.int64)
        self._length = int(self._offsets[-1])
        self._handles: Dict[Path, h5py.File] = {}
        self._pid: Optional[int] = None

    # -- size ------------------------------------------------------------------
    def __len__(self) -> int:
        return self._length

    @property
    def complete(self) -> bool:
        """Whether the part has its published number of samples."""
        return self._length == PART_SIZES[self.part]

    def locate(self, index: int) -> Tuple[int, int]:
        """``(file position, row in file)`` of sample ``index`` (negative counts from the end)."""
        if isinstance(index, torch.Tensor) and index.dim() == 0 and not index.is_floating_point():
            index = int(index)
        if isinstance(index, (bool, np.bool_)) or not isinstance(index, (int, np.integer)):
            raise TypeError(f"sample index must be an int, got {type(index).__name__}")
        n = self._length
        if not -n <= index < n:
            raise IndexError(f"sample index {index} out of range for LoDoPaB-CT part "
                             f"{self.part!r} in {self.root} ({n} samples)")
        index = int(index) % n
        position = int(np.searchsorted(self._offsets, index, side="right")) - 1
        return position, index - int(self._offsets[position])

    # -- reading -----------------------------------------------------------------
    def _handle(self, path: Path) -> h5py.File:
        if self._pid != os.getpid():
            # New process (a forked worker inherits the parent's handles: never use them).
            self._handles = {}
            self._pid = os.getpid()
        handle = self._handles.get(path)
        if handle is None:
            try:
                handle = h5py.File(path, "r")
            except OSError as err:
                raise LoDoPaBFileError(f"{path}: cannot be opened ({err})") from err
            self._handles[path] = handle
        return handle

    def _read(self, path: Path, row: int) -> np.ndarray:
        return np.asarray(self._handle(path)[DATASET_NAME][row], dtype=np.float32)

    def __getitem__(self, index):
        position, row = self.locate(index)
        obs_path, gt_path = self.files[position]
        observation = torch.from_numpy(self._read(obs_path, row))[None]
        if not self.with_ground_truth:
            return observation
        truth = self._read(gt_path, row)
        if self.orientation == "tomolearn":
            truth = np.ascontiguousarray(np.rot90(truth))
        return observation, torch.from_numpy(truth)[None]

    def close(self) -> None:
        """Close the files this process opened (they reopen on the next access)."""
        if self._pid == os.getpid():
            for handle in self._handles.values():
                handle.close()
        self._handles = {}

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_handles"] = {}  # h5py handles do not cross processes
        state["_pid"] = None
        return state

    def __repr__(self) -> str:
        return (f"LoDoPaBDataset(root={str(self.root)!r}, part={self.part!r}, "
                f"samples={self._length}, files={len(self.files)}, "
                f"with_ground_truth={self.with_ground_truth}, orientation={self.orientation!r})")
