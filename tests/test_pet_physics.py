"""PET physics: the mCT geometry, PSF, projector, attenuation, counts and the "pet" task."""

import math

import numpy as np
import pytest
import torch

import tomolearn as tl
from tomolearn.data import SimulatedDataset
from tomolearn.modalities import pet
from tomolearn.registry import shifted, shifts

torch.set_num_threads(1)


def test_mct_sinogram_figures():
    s = pet.scanner("mct")
    assert (s.n_views, s.n_bins, s.bin_size_mm, s.ring_radius_mm) == (168, 400, 2.005, 421.0)
    assert s.crystals_per_ring == 672 and (s.osem_iterations, s.osem_subsets) == (3, 21)
    g = s.geometry()
    assert g.n_angles == 168 and g.n_detectors == 400 and g.detector_spacing == 2.005
    assert g.angles[0] == 0.0 and g.angles[84] == pytest.approx(math.pi / 2)
    mashed = s.geometry(view_mash=8, bin_mash=8)
    assert mashed.n_angles == 21 and mashed.detector_spacing == pytest.approx(16.04)
    assert mashed.angles[0] == pytest.approx(3.5 * math.pi / 168)  # mean of views 0..7
    with pytest.raises(ValueError, match="view_mash must be a positive int dividing 168"):
        s.geometry(view_mash=5)
    with pytest.raises(ValueError, match="unknown scanner 'hrrt'"):
        pet.scanner("hrrt")


def test_crystal_pairs_of_central_lors_are_opposite():
    s = pet.scanner("mct")
    pairs = s.crystal_pairs(s.geometry())
    assert pairs.shape == (168, 400, 2) and pairs.min() >= 0 and pairs.max() < 672
    # bins 199 and 200 straddle the centre: their LOR ends are (nearly) diametrically opposite
    diff = np.abs(pairs[:, 199, 0] - pairs[:, 199, 1])
    assert np.all(np.abs(diff - 336) <= 1)


def test_psf_has_the_stated_fwhm_and_keeps_counts():
    psf = pet.GaussianPSF((41, 41), fwhm_mm=6.0, voxel_mm=0.5)
    x = torch.zeros(1, 1, 41, 41, dtype=torch.float64)
    x[0, 0, 20, 20] = 1.0
    out = psf(x)[0, 0]
    assert float(out.sum()) == pytest.approx(1.0, abs=1e-12)
    profile = out[20] / out[20].max()
    above = (profile >= 0.5).nonzero().flatten()
    width = (int(above[-1]) - int(above[0]) + 1) * 0.5  # samples >= half max, in mm
    assert 5.0 <= width <= 6.5
    assert torch.equal(pet.GaussianPSF((5, 5), 0.0, 1.0)(x[..., :5, :5]), x[..., :5, :5])


def test_attenuation_of_a_water_cylinder_is_exp_of_its_chord():
    t = pet.PETTask(image_size=64, body="cylinder", view_mash=8, bin_mash=4, fine_factor=1)
    a = t.attenuation()
    centre = a[:, a.shape[1] // 2 - 1: a.shape[1] // 2 + 1].mean(1)  # two bins around the axis
    diameter = 2 * 0.45 * 400.0
    expected = math.exp(-pet.MU_WATER * diameter)
    assert torch.allclose(centre, torch.full_like(centre, expected), rtol=0.05)
    assert float(a[:, 0].min()) == 1.0  # the outermost bins miss the body


def test_projector_is_n_a_ray_psf():
    t = pet.PETTask.tiny()
    op = t.operator()
    x = torch.rand(1, 1, 32, 32, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    manual = op.ray(op.psf(x)) * t.normalisation() * t.attenuation(shifted=True)
    torch.testing.assert_close(op(x), manual, rtol=1e-12, atol=1e-12)
    sub = op.subset([1, 4])
    torch.testing.assert_close(sub(x), op(x)[:, :, [1, 4]], rtol=1e-12, atol=1e-12)
    n = t.normalisation()
    assert n.shape == (21, 50) and 0.25 <= float(n.min()) and float(n.max()) <= 2.25
    assert 0.01 < float(n.std()) < 0.3


def test_ground_truth_has_the_counts_and_simulation_the_fractions():
    t = pet.PETTask.tiny().replace(counts=2e5, randoms_fraction=0.25, scatter_fraction=0.4)
    ds = SimulatedDataset("pet-torso", "test", t, size=2, dtype=torch.float64)
    x = ds.ground_truth(0)[None]
    acq = t.acquire(x, torch.Generator().manual_seed(1))
    trues, scatter, randoms = (float(acq[k].sum()) for k in ("trues", "scatter", "randoms"))
    assert trues == pytest.approx(2e5, rel=1e-9)
    assert scatter / (scatter + trues) == pytest.approx(0.4, rel=1e-9)
    assert randoms / (trues + scatter + randoms) == pytest.approx(0.25, rel=1e-9)
    assert torch.equal(acq["randoms"], torch.full_like(acq["randoms"], t.randoms_per_bin))  # flat
    prompts = acq["prompts"]
    assert torch.equal(prompts, prompts.round()) and float(prompts.min()) >= 0
    total = float(acq["expected"].sum())
    assert abs(float(prompts.sum()) - total) < 5 * math.sqrt(total)
    # the scatter estimate from the prompts is close to the true scatter (smooth, right total)
    est = acq["scatter_estimate"]
    assert float(est.sum()) == pytest.approx(scatter, rel=0.05)
    assert float((est - acq["scatter"]).norm() / acq["scatter"].norm()) < 0.3


def test_samples_are_deterministic_by_index_and_batch_equals_loop():
    t = pet.PETTask.tiny()
    ds = SimulatedDataset("ellipses", "train", t, size=5)
    y, x = ds.batch([3, 1])
    y3, x3 = ds[3]
    torch.testing.assert_close(y[0], y3, rtol=0, atol=0)
    torch.testing.assert_close(x[0], x3, rtol=0, atol=0)
    assert not torch.equal(y[0], y[1])
    ds2 = SimulatedDataset("ellipses", "train", t.replace(seed=5), size=5)
    assert not torch.equal(ds2[3][0], y3)


def test_ground_truth_lives_in_the_body():
    t = pet.PETTask.tiny().replace(body="head")
    ones = torch.ones(1, 1, 32, 32, dtype=torch.float64)
    gt = t.ground_truth(ones)
    assert float(gt[0, 0, 0, 0]) == 0.0 and float(gt[0, 0, 16, 16]) > 0
    assert t.ground_truth(torch.zeros_like(ones)).abs().sum() == 0


def test_shifts_change_what_they_say():
    t = pet.PETTask.tiny()
    assert {"counts-low", "mismatched-attenuation", "no-scatter-correction"} <= set(shifts(t))
    assert shifted(t, "counts-low").counts == t.counts / 10
    moved = shifted(t, "mismatched-attenuation")
    assert moved.mu_shift_mm == 10.0
    assert not torch.allclose(moved.operator().factors, t.operator().factors)
    torch.testing.assert_close(moved.simulation_operator().factors, t.simulation_operator().factors)
    y = t.simulate(t.ground_truth(torch.ones(1, 1, 32, 32, dtype=torch.float64)),
                   torch.Generator().manual_seed(0))
    no_sc = shifted(t, "no-scatter-correction").operator().background_of(y)
    assert torch.allclose(no_sc, torch.full_like(y, t.randoms_per_bin))
    assert float(t.operator().background_of(y).sum()) > float(no_sc.sum()) * 1.5


@pytest.mark.parametrize("spec, message", [
    ({"counts": 0}, "counts must be a number"),
    ({"scatter_fraction": 1.0}, "scatter_fraction must be a number in"),
    ({"body": "pumpkin"}, "body must be one of torso, nema"),
    ({"view_mash": 5}, "view_mash must be a positive int dividing 168"),
    ({"fov_mm": 700.0}, "must lie inside the ring"),
])
def test_bad_pet_specs_are_named(spec, message):
    with pytest.raises(ValueError, match=message):
        tl.task({"task": "pet", **spec})


def test_the_default_task_is_the_mct_sinogram():
    t = tl.task("pet")
    assert t.data_shape == (168, 400) and t.image_shape == (128, 128)
    assert t.voxel_mm == pytest.approx(3.125) and t.likelihood == "poisson"
    assert t.setting() == {"counts": 1e6, "scanner": "mct", "body": "torso"}
