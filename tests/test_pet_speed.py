"""The PET operator speed case: registered for --task pet, rows of the common shape, ASTRA's A
on the same geometry when it is installed."""

import pytest
import torch

from tomolearn.modalities import pet
from tomolearn.modalities.pet import speed
from tomolearn.operators.speed import operator_speed

torch.set_num_threads(1)


def test_pet_speed_case_is_registered_and_times_a_tiny_projector(monkeypatch):
    entry = operator_speed("pet")
    assert entry.peer == "astra" and set(entry.cases) == {"mct", "mct-tof"}
    monkeypatch.setitem(speed.PET_CASES, "tiny", pet.PETTask.tiny())
    monkeypatch.setitem(speed.PET_CASES, "tiny-tof", pet.PETTask.tiny().replace(tof_bins=5))
    rows = speed.benchmark_pet(["tiny", "tiny-tof"], batches=(1, 2), repeats=1)
    assert [(r["geometry"], r["batch"]) for r in rows] == [("tiny", 1), ("tiny", 2),
                                                         ("tiny-tof", 1), ("tiny-tof", 2)]
    for r in rows:
        assert r["task"] == "pet" and r["forward_ms"] > 0 and r["ray_adjoint_ms"] > 0
        assert r["range_shape"] == ([21, 50] if r["geometry"] == "tiny" else [21, 5, 50])
    if rows[0]["peer"] is not None:
        assert rows[0]["peer"] == "astra" and rows[0]["forward_ratio"] > 0
    assert "tiny-tof" in speed.format_pet_table(rows)
    with pytest.raises(ValueError, match="unknown PET benchmark case"):
        speed.benchmark_pet(["nope"])


def test_astra_peer_computes_the_same_ray_transform_up_to_the_voxel_unit():
    astra = pytest.importorskip("astra")
    t = pet.PETTask.tiny()
    ray = t.operator().ray
    peer = speed._astra_case("tiny", t, ray)
    try:
        x = torch.rand(32, 32, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        astra.data2d.store(peer.vol, x.numpy().astype("float32"))
        peer.forward()
        ours = ray(x[None, None])[0, 0] / ray.pixel_size  # ASTRA integrates in voxel units
        theirs = torch.from_numpy(astra.data2d.get(peer.sino)).double()
        assert float((ours - theirs).norm() / theirs.norm()) < 0.05
    finally:
        peer.close()
