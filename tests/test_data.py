"""The simulated datasets: DIVal's ellipses spec, determinism by index, workers, ranks, HDF5."""

import json
import math
import os
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, DistributedSampler, Subset

import tomolearn as tl
from tomolearn.ct import SHIFTS, NoiseSpec, SimulationSpec, shifted_spec
from tomolearn.data import (SimulatedDataset, SpecMismatchError, ellipses_benchmark, generate_hdf5,
                            open_hdf5)
from tomolearn.data.hdf5 import DatasetFileError


def test_ellipses_benchmark_is_divals_spec():
    assert [len(ellipses_benchmark(s)) for s in ("train", "validation", "test")] == [32000, 3200, 3200]
    ds = ellipses_benchmark("test")
    y, x = ds[0]
    assert y.shape == (1, 30, 183) and x.shape == (1, 128, 128) and y.dtype == torch.float32
    g = ds.simulation.geometry()
    np.testing.assert_allclose(g.angles, (np.arange(30) + 0.5) * np.pi / 30)
    assert g.detector_spacing == pytest.approx(2 * 64 * math.sqrt(2) / 183)
    assert ds.simulation.fine_size == 400 and ds.simulation.noise == NoiseSpec("gaussian", 0.025)
    assert 0.0 <= float(x.min()) and float(x.max()) == pytest.approx(1.0)
    assert ds.operator().domain_shape == (128, 128)


def test_samples_are_pure_functions_of_the_index():
    ds = ellipses_benchmark("train")
    later_first = ds[7]
    _ = ds[3]
    again = SimulatedDataset("ellipses", "train")[7]
    for a, b in zip(later_first, again):
        assert torch.equal(a, b)
    assert torch.equal(ds[-1][1], ds[31999][1])
    assert not torch.equal(ds[7][1], ds[8][1])
    assert not torch.equal(ellipses_benchmark("test")[7][1], ds[7][1])  # splits are disjoint streams
    y, x = ds.batch([7, 3])
    assert torch.equal(y[0], ds[7][0]) and torch.equal(x[1], ds[3][1])
    with pytest.raises(IndexError, match="out of range"):
        ds[32000]


def test_noise_is_relative_gaussian_and_there_is_no_inverse_crime():
    spec = SimulationSpec()
    noisy = SimulatedDataset("ellipses", "validation", spec, size=40, dtype=torch.float64)
    clean = SimulatedDataset("ellipses", "validation", spec.replace(noise=NoiseSpec("none")), size=40,
                             dtype=torch.float64)
    ratios = []
    for i in range(40):
        (y, x), (y0, x0) = noisy[i], clean[i]
        assert torch.equal(x, x0)
        ratios.append(float((y - y0).std() / y0.abs().mean()))
    assert np.mean(ratios) == pytest.approx(0.025, rel=0.03)
    # Data come from the 400x400 grid: close to, but not equal to, the 128x128 operator's.
    op = spec.operator()
    y0, x0 = clean[0]
    crime = op(x0[None])[0]
    rel = float((crime - y0).norm() / y0.norm())
    assert 1e-3 < rel < 0.03


def test_spec_is_carried_and_checked():
    ds = ellipses_benchmark("test", size=10)
    spec = json.loads(json.dumps(ds.spec))
    assert spec["simulation"]["n_angles"] == 30 and spec["family"] == "ellipses"
    ds.check_spec(spec)
    other = SimulatedDataset("ellipses", "test", shifted_spec(SimulationSpec(), "noise-5%"), size=10)
    with pytest.raises(SpecMismatchError, match="simulation.noise.level"):
        ds.check_spec(other.spec)
    with pytest.raises(ValueError, match="unknown ct task spec field"):
        SimulationSpec.from_dict({**SimulationSpec().to_dict(), "n_angels": 3})
    assert SimulationSpec.from_dict(SimulationSpec().to_dict()) == SimulationSpec()


@pytest.mark.slow
def test_shifts_change_what_they_say():
    base = SimulationSpec()
    assert shifted_spec(base, "angles-20").n_angles == 20
    assert shifted_spec(base, "angles-60").n_angles == 60
    assert shifted_spec(base, "limited-angle").angle_stop == pytest.approx(2 * math.pi / 3)
    assert shifted_spec(base, "noise-10%").noise.level == 0.10
    low = shifted_spec(base, "low-dose")
    assert low.noise.kind == "poisson" and low.noise.photons == 4096
    for name in SHIFTS:
        y, x = SimulatedDataset("ellipses", "test", shifted_spec(base, name), size=2)[1]
        assert torch.isfinite(y).all() and y.shape[1] == shifted_spec(base, name).n_angles
    with pytest.raises(ValueError, match="unknown measurement shift"):
        shifted_spec(base, "angles-7")


def test_bad_dataset_arguments():
    with pytest.raises(ValueError, match="unknown image family"):
        SimulatedDataset("cats")
    with pytest.raises(ValueError, match="split must be one of"):
        SimulatedDataset("ellipses", "training")
    with pytest.raises(ValueError, match="size must be a positive int"):
        SimulatedDataset("ellipses", "test", size=0)
    with pytest.raises(ValueError, match="noise kind"):
        NoiseSpec("speckle")
    with pytest.raises(ValueError, match="n_angles must be a positive int"):
        SimulationSpec(n_angles=0)


def _collect(loader):
    ys, xs = zip(*[(y, x) for y, x in loader])
    return torch.cat(ys), torch.cat(xs)


def test_dataloader_workers_match_a_single_process_pass():
    ds = ellipses_benchmark("validation", size=12)
    single = _collect(DataLoader(ds, batch_size=3))
    multi = _collect(DataLoader(ds, batch_size=3, num_workers=2))
    assert torch.equal(single[0], multi[0]) and torch.equal(single[1], multi[1])


def test_distributed_ranks_are_disjoint_complete_and_identical():
    ds = ellipses_benchmark("validation", size=10)
    seen = {}
    for rank in range(2):
        sampler = DistributedSampler(ds, num_replicas=2, rank=rank, shuffle=True, seed=5,
                                     drop_last=False)
        sampler.set_epoch(3)
        indices = list(sampler)
        for i, (y, x) in zip(indices, DataLoader(Subset(ds, indices), batch_size=1)):
            assert torch.equal(y[0], ds[i][0]) and torch.equal(x[0], ds[i][1])
            seen.setdefault(i, []).append(rank)
    assert sorted(seen) == list(range(10))
    assert all(len(r) == 1 for r in seen.values())


# -- HDF5 ------------------------------------------------------------------------------
def test_hdf5_roundtrip_attributes_and_hash(tmp_path):
    ds = ellipses_benchmark("test", size=20)
    path = generate_hdf5(ds, tmp_path / "test.h5", batch_size=8)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["test.h5"]  # no partial left
    h5 = open_hdf5(path, expected=ds, verify=True)
    assert len(h5) == 20 and h5.spec == json.loads(json.dumps(ds.spec))
    for i in (0, 7, 19):
        assert torch.equal(h5[i][0], ds[i][0]) and torch.equal(h5[i][1], ds[i][1])
    with h5py.File(path) as f:
        assert f["measurement"].chunks[0] <= 16 and f["measurement"].compression == "gzip"
        assert len(f.attrs["sha256"]) == 64
    multi = _collect(DataLoader(h5, batch_size=4, num_workers=2))
    assert torch.equal(multi[1], torch.stack([ds[i][1] for i in range(20)]))


def test_hdf5_keeps_a_complex_task_complex(tmp_path):
    ds = SimulatedDataset("ellipses", "test", tl.task("mri").tiny(), size=3)
    y, x = ds[1]
    assert y.dtype == x.dtype == torch.complex64 and x.imag.abs().max() > 0
    h5 = open_hdf5(generate_hdf5(ds, tmp_path / "mri.h5"), expected=ds, verify=True)
    assert torch.equal(h5[1][0], y) and torch.equal(h5[1][1], x)


def test_hdf5_refuses_to_overwrite_and_names_spec_differences(tmp_path):
    ds = ellipses_benchmark("test", size=4)
    path = generate_hdf5(ds, tmp_path / "a.h5")
    before = path.read_bytes()
    with pytest.raises(FileExistsError, match="overwrite"):
        generate_hdf5(ds, path)
    assert path.read_bytes() == before
    other = SimulatedDataset("ellipses", "test", SimulationSpec(n_angles=20), size=4)
    with pytest.raises(SpecMismatchError, match="simulation.n_angles"):
        open_hdf5(path, expected=other)
    with pytest.raises(SpecMismatchError, match="size"):
        open_hdf5(path, expected=ellipses_benchmark("test", size=5))
    generate_hdf5(other, path, overwrite=True)
    assert open_hdf5(path, expected=other).spec["simulation"]["n_angles"] == 20


def test_hdf5_truncated_corrupt_and_foreign_files_are_named(tmp_path):
    ds = ellipses_benchmark("test", size=16)
    path = generate_hdf5(ds, tmp_path / "t.h5")
    data = path.read_bytes()
    truncated = tmp_path / "truncated.h5"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(DatasetFileError, match="truncated.h5"):
        open_hdf5(truncated, verify=True)
    garbage = tmp_path / "garbage.h5"
    garbage.write_bytes(b"\x89HDF\r\n" + os.urandom(2000))
    with pytest.raises(DatasetFileError, match="garbage.h5.*not a readable HDF5"):
        open_hdf5(garbage)
    foreign = tmp_path / "foreign.h5"
    with h5py.File(foreign, "w") as f:
        f["data"] = np.zeros(3)
    with pytest.raises(DatasetFileError, match="foreign.h5: not a tomolearn dataset"):
        open_hdf5(foreign)
    flipped = tmp_path / "flipped.h5"
    flipped.write_bytes(data)
    with h5py.File(flipped, "r+") as f:
        f["ground_truth"][3, 0, 60, 60] += 1
    open_hdf5(flipped)  # cheap checks pass ...
    with pytest.raises(DatasetFileError, match="flipped.h5: content hash mismatch"):
        open_hdf5(flipped, verify=True)  # ... the hash does not
    with pytest.raises(FileNotFoundError, match="missing.h5"):
        open_hdf5(tmp_path / "missing.h5")


def test_hdf5_resume_after_interruption_is_bit_identical(tmp_path):
    ds = ellipses_benchmark("train", size=40)
    whole = generate_hdf5(ds, tmp_path / "whole.h5", batch_size=8)

    def interrupt(done, total):
        if done >= 16:
            raise KeyboardInterrupt

    target = tmp_path / "resumed.h5"
    with pytest.raises(KeyboardInterrupt):
        generate_hdf5(ds, target, batch_size=8, progress=interrupt)
    assert not target.exists() and (tmp_path / "resumed.h5.partial").exists()
    with pytest.raises(FileNotFoundError, match="resume"):
        open_hdf5(target)
    calls = []
    generate_hdf5(ds, target, batch_size=8, progress=lambda d, t: calls.append(d))
    assert calls[0] == 24  # continued after the 16 samples already written
    with h5py.File(whole) as a, h5py.File(target) as b:
        assert a.attrs["sha256"] == b.attrs["sha256"]
        for name in ("measurement", "ground_truth"):
            assert np.array_equal(a[name][:], b[name][:])


@pytest.mark.slow
def test_cli_generate_killed_and_rerun_equals_uninterrupted(tmp_path):
    cmd = [sys.executable, "-m", "tomolearn.cli", "data", "generate", "ellipses", "--split", "test",
           "--n", "96", "--batch-size", "4", "--quiet"]
    subprocess.run(cmd + ["--out", str(tmp_path / "whole.h5")], check=True, capture_output=True)
    target = tmp_path / "killed.h5"
    state = tmp_path / "killed.h5.partial.json"
    proc = subprocess.Popen(cmd + ["--out", str(target)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline:
        if state.exists() and json.loads(state.read_text() or "{}").get("n_done", 0) >= 8:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    if target.exists():
        pytest.skip("the run finished before it could be killed")
    done_before = json.loads(state.read_text())["n_done"]
    assert 8 <= done_before < 96
    rerun = subprocess.run(cmd + ["--out", str(target)], capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    with h5py.File(tmp_path / "whole.h5") as a, h5py.File(target) as b:
        assert a.attrs["sha256"] == b.attrs["sha256"]
        assert np.array_equal(a["measurement"][:], b["measurement"][:])
    refused = subprocess.run(cmd + ["--out", str(target)], capture_output=True, text=True)
    assert refused.returncode == 2 and "--overwrite" in refused.stderr
