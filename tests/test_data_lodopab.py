"""Tests for tomolearn.modalities.ct.lodopab on small synthetic files in LoDoPaB-CT's layout.

The files keep the real per-sample shapes ((1000, 513) and (362, 362),
float32, dataset "data") but hold only a few samples each.
"""

import math
import pickle
import shutil

import h5py
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from tomolearn.ct import ParallelBeam2D, RayTransform
from tomolearn.modalities.ct.lodopab import (DETECTOR_SPACING, GROUND_TRUTH_SHAPE, IMAGE_SHAPE,
                                    OBSERVATION_SHAPE, PART_SIZES, PIXEL_SIZE, LoDoPaBDataset,
                                    LoDoPaBFileError, lodopab_geometry, lodopab_operator)

TRAIN_COUNTS = (3, 2)
PART_IDS = {"train": 0, "validation": 1, "test": 2}
VALIDATION_COUNTS = (2,)


def _observation(part, k):
    """Distinct, recognisable content of sample k of a part."""
    rng = np.random.default_rng((PART_IDS[part], k))
    return (100.0 * k + rng.random(OBSERVATION_SHAPE)).astype(np.float32)


def _ground_truth(part, k):
    rng = np.random.default_rng((PART_IDS[part], k, 1))
    arr = rng.random(GROUND_TRUTH_SHAPE).astype(np.float32)
    arr[0, :] = k  # an asymmetric marker row, so the orientation is visible
    return arr


def _write(path, array, name="data"):
    with h5py.File(path, "w") as f:
        f.create_dataset(name, data=array)


def _write_part(root, part, counts, kinds=("observation", "ground_truth")):
    k = 0
    for number, n in enumerate(counts):
        idx = range(k, k + n)
        if "observation" in kinds:
            _write(root / f"observation_{part}_{number:03d}.hdf5",
                   np.stack([_observation(part, i) for i in idx]))
        if "ground_truth" in kinds:
            _write(root / f"ground_truth_{part}_{number:03d}.hdf5",
                   np.stack([_ground_truth(part, i) for i in idx]))
        k += n


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    d = tmp_path_factory.mktemp("lodopab")
    _write_part(d, "train", TRAIN_COUNTS)
    _write_part(d, "validation", VALIDATION_COUNTS)
    return d


def _copy(root, tmp_path, names):
    for name in names:
        shutil.copy(root / name, tmp_path / name)
    return tmp_path


# --------------------------------------------------------------------------------
# reading
# --------------------------------------------------------------------------------


def test_lengths_and_file_counts(root):
    train = LoDoPaBDataset(root, "train")
    assert len(train) == sum(TRAIN_COUNTS)
    assert train.sample_counts == TRAIN_COUNTS
    assert not train.complete
    validation = LoDoPaBDataset(root, "validation")
    assert len(validation) == sum(VALIDATION_COUNTS)
    with pytest.raises(FileNotFoundError, match="test"):
        LoDoPaBDataset(root, "test")


def test_samples_in_order_across_files(root):
    ds = LoDoPaBDataset(root, "train")
    for i in range(len(ds)):
        obs, gt = ds[i]
        assert obs.shape == (1,) + OBSERVATION_SHAPE and obs.dtype == torch.float32
        assert gt.shape == (1,) + GROUND_TRUTH_SHAPE and gt.dtype == torch.float32
        np.testing.assert_array_equal(obs[0].numpy(), _observation("train", i))
        np.testing.assert_array_equal(gt[0].numpy(), np.rot90(_ground_truth("train", i)))
    # one handle per file (observation and ground truth) in this process
    assert len(ds._handles) == 2 * len(TRAIN_COUNTS)
    assert [ds.locate(i) for i in range(5)] == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1)]


def test_file_orientation_returns_arrays_as_stored(root):
    ds = LoDoPaBDataset(root, "train", orientation="file")
    np.testing.assert_array_equal(ds[4][1][0].numpy(), _ground_truth("train", 4))
    # tomolearn orientation: ODL's first row (x = -0.13) becomes the left column
    gt = LoDoPaBDataset(root, "train")[4][1][0].numpy()
    np.testing.assert_array_equal(gt[:, 0], np.full(362, 4, dtype=np.float32))


def test_parts_are_separate(root):
    obs, _ = LoDoPaBDataset(root, "validation")[1]
    np.testing.assert_array_equal(obs[0].numpy(), _observation("validation", 1))


def test_negative_and_bad_indices(root):
    ds = LoDoPaBDataset(root, "train")
    np.testing.assert_array_equal(ds[-1][0].numpy(), ds[4][0].numpy())
    np.testing.assert_array_equal(ds[torch.tensor(2)][0].numpy(), ds[2][0].numpy())
    for bad in (5, -6, 10**6):
        with pytest.raises(IndexError, match="out of range"):
            ds[bad]
    with pytest.raises(TypeError):
        ds[1.0]


def test_without_ground_truth(root, tmp_path):
    d = _copy(root, tmp_path, ["observation_train_000.hdf5", "observation_train_001.hdf5"])
    ds = LoDoPaBDataset(d, "train", with_ground_truth=False)
    assert len(ds) == 5
    obs = ds[3]
    assert isinstance(obs, torch.Tensor) and obs.shape == (1,) + OBSERVATION_SHAPE
    np.testing.assert_array_equal(obs[0].numpy(), _observation("train", 3))
    with pytest.raises(LoDoPaBFileError, match="do not pair up"):
        LoDoPaBDataset(d, "train")


def test_pickle_drops_handles(root):
    ds = LoDoPaBDataset(root, "train")
    first = ds[0][0]
    clone = pickle.loads(pickle.dumps(ds))
    assert clone._handles == {}
    torch.testing.assert_close(clone[0][0], first, rtol=0, atol=0)
    ds.close()
    torch.testing.assert_close(ds[0][0], first, rtol=0, atol=0)  # reopens


@pytest.mark.parametrize("context", [None, "fork"])  # pickling (spawn) is tested above
def test_dataloader_workers_match_single_process(root, context):
    ds = LoDoPaBDataset(root, "train")
    ds[0]  # the parent holds open handles before the workers start (fork inherits them)
    single = list(DataLoader(ds, batch_size=2, shuffle=False, num_workers=0))
    multi = list(DataLoader(ds, batch_size=2, shuffle=False, num_workers=2,
                            multiprocessing_context=context))
    assert len(single) == len(multi) == 3
    for (y0, x0), (y1, x1) in zip(single, multi):
        assert torch.equal(y0, y1) and torch.equal(x0, x1)


# --------------------------------------------------------------------------------
# errors
# --------------------------------------------------------------------------------


def test_missing_root(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        LoDoPaBDataset(tmp_path / "nowhere", "train")


def test_empty_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="observation_train_000.hdf5"):
        LoDoPaBDataset(tmp_path, "train")


def test_bad_part_and_orientation(root):
    with pytest.raises(ValueError, match="part"):
        LoDoPaBDataset(root, "training")
    with pytest.raises(ValueError, match="orientation"):
        LoDoPaBDataset(root, "train", orientation="odl")


def test_mismatched_file_sets(root, tmp_path):
    d = _copy(root, tmp_path, ["observation_train_000.hdf5", "observation_train_001.hdf5",
                               "ground_truth_train_000.hdf5"])
    with pytest.raises(LoDoPaBFileError, match="without ground truth: numbers 001"):
        LoDoPaBDataset(d, "train")


def test_gap_in_file_numbers(root, tmp_path):
    for kind in ("observation", "ground_truth"):
        shutil.copy(root / f"{kind}_train_001.hdf5", tmp_path / f"{kind}_train_002.hdf5")
    with pytest.raises(LoDoPaBFileError, match="missing numbers 000, 001"):
        LoDoPaBDataset(tmp_path, "train")


def test_wrong_dataset_name_is_named(tmp_path):
    _write(tmp_path / "observation_test_000.hdf5", np.zeros((1,) + OBSERVATION_SHAPE, np.float32),
           name="obs")
    _write(tmp_path / "ground_truth_test_000.hdf5", np.zeros((1,) + GROUND_TRUTH_SHAPE, np.float32))
    with pytest.raises(LoDoPaBFileError, match=r"observation_test_000\.hdf5.*no dataset named 'data'"):
        LoDoPaBDataset(tmp_path, "test")


def test_wrong_shape_is_named(tmp_path):
    _write(tmp_path / "observation_test_000.hdf5", np.zeros((1,) + OBSERVATION_SHAPE, np.float32))
    _write(tmp_path / "ground_truth_test_000.hdf5", np.zeros((1, 128, 128), np.float32))
    with pytest.raises(LoDoPaBFileError, match=r"ground_truth_test_000\.hdf5.*\(1, 128, 128\)"):
        LoDoPaBDataset(tmp_path, "test")


def test_sample_count_mismatch(tmp_path):
    _write(tmp_path / "observation_test_000.hdf5", np.zeros((2,) + OBSERVATION_SHAPE, np.float32))
    _write(tmp_path / "ground_truth_test_000.hdf5", np.zeros((1,) + GROUND_TRUTH_SHAPE, np.float32))
    with pytest.raises(LoDoPaBFileError, match="holds 2 samples but ground_truth_test_000.hdf5 holds 1"):
        LoDoPaBDataset(tmp_path, "test")


def test_not_hdf5_is_named(tmp_path):
    (tmp_path / "observation_test_000.hdf5").write_bytes(b"not an hdf5 file")
    _write(tmp_path / "ground_truth_test_000.hdf5", np.zeros((1,) + GROUND_TRUTH_SHAPE, np.float32))
    with pytest.raises(LoDoPaBFileError, match=r"observation_test_000\.hdf5"):
        LoDoPaBDataset(tmp_path, "test")


# --------------------------------------------------------------------------------
# geometry and operator
# --------------------------------------------------------------------------------


def test_published_sizes():
    assert PART_SIZES == {"train": 35820, "validation": 3522, "test": 3553}


def test_geometry_is_odl_parallel_beam_geometry():
    g = lodopab_geometry()
    assert isinstance(g, ParallelBeam2D)
    assert g.n_angles == 1000 and g.n_detectors == 513
    np.testing.assert_allclose(g.angles, (np.arange(1000) + 0.5) * np.pi / 1000, rtol=0, atol=1e-15)
    # 513 bins spanning [-0.13 sqrt 2, 0.13 sqrt 2] m (the image diagonal), centred
    rho = 0.13 * math.sqrt(2)
    assert g.detector_spacing == pytest.approx(2 * rho / 513, rel=1e-14)
    pos = g.detector_positions()
    assert pos[0] - g.detector_spacing / 2 == pytest.approx(-rho, rel=1e-12)
    assert pos[-1] + g.detector_spacing / 2 == pytest.approx(rho, rel=1e-12)
    assert PIXEL_SIZE == pytest.approx(0.26 / 362, rel=1e-15)
    assert DETECTOR_SPACING == g.detector_spacing


def test_operator_shapes_and_units():
    A = lodopab_operator(backend="matrix_free")
    assert isinstance(A, RayTransform)
    assert A.domain_shape == IMAGE_SHAPE == (362, 362)
    assert A.range_shape == OBSERVATION_SHAPE
    assert A.pixel_size == pytest.approx(0.26 / 362)


def test_orientation_matches_odl_convention():
    """A disc stored in ODL's [x, y] layout projects where ODL's geometry puts it.

    ODL's Parallel2dGeometry projects a point p onto p . (cos t, sin t); the
    exact sinogram of a disc of radius r at c is 2 sqrt(r^2 - (s - c . u)^2).
    The ground truth as the loader returns it (orientation "tomolearn"),
    projected with the LoDoPaB operator's geometry, must match that; the
    array as stored must not.
    """
    g = lodopab_geometry()
    idx = np.arange(0, 1000, 125)
    angles = np.asarray(g.angles)[idx]
    sub = RayTransform(ParallelBeam2D(angles=angles, n_detectors=g.n_detectors,
                                      detector_spacing=g.detector_spacing),
                       IMAGE_SHAPE, pixel_size=PIXEL_SIZE)
    centres = -0.13 + (np.arange(362) + 0.5) * PIXEL_SIZE
    x0, y0, r = 0.05, -0.03, 0.02
    stored = ((centres[:, None] - x0) ** 2 + (centres[None, :] - y0) ** 2 <= r * r)  # a[x_i, y_j]
    s = g.detector_positions()[None, :]
    s0 = x0 * np.cos(angles)[:, None] + y0 * np.sin(angles)[:, None]
    exact = 2 * np.sqrt(np.clip(r * r - (s - s0) ** 2, 0, None))

    def rel_err(image):
        y = sub(torch.from_numpy(np.ascontiguousarray(image, dtype=np.float64))[None, None])[0, 0]
        return np.linalg.norm(y.numpy() - exact) / np.linalg.norm(exact)

    assert rel_err(np.rot90(stored)) < 0.03
    assert rel_err(stored) > 0.5
