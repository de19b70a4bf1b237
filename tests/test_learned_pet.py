"""Learned PET: FBSEM-Net's fused EM + prior step, its limits, and the post-processing U-Net's
start (the PET projector's first guess is the scanner's clinical OSEM)."""

import pytest
import torch

import tomolearn as tl
from tomolearn.learned import FBPConvNet, FBSEMNet
from tomolearn.learned.fbsem import fused_em_prior_step
from tomolearn.registry import build_method
from tomolearn.solvers import em
from tomolearn.solvers.fidelities import PoissonLikelihood

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def pet():
    t = tl.task("pet").tiny()
    ds = tl.data.SimulatedDataset("pet-torso", "test", t, size=2)
    y, x = ds.batch([0, 1])
    return t, ds.operator(), y.double(), x.double()


def test_fused_step_is_the_minimiser_of_em_surrogate_plus_quadratic_prior():
    gen = torch.Generator().manual_seed(0)
    shape = (2, 1, 8, 8)
    x_em = torch.rand(shape, generator=gen, dtype=torch.float64) * 5
    x_r = torch.randn(shape, generator=gen, dtype=torch.float64) * 5  # both signs of a
    scale = torch.tensor([2.0, 0.5], dtype=torch.float64).view(2, 1, 1, 1)
    covered = torch.ones(shape, dtype=torch.bool)
    for g in (1e-3, 0.3, 30.0):
        u = fused_em_prior_step(x_em, x_r, torch.tensor(g, dtype=torch.float64), scale, covered)
        assert (u >= 0).all()
        # stationarity of s (u - x_em log u) + (g s / c) / 2 (u - x_r)^2, divided by s
        grad = (1 - x_em / u) + g * (u - x_r) / scale
        torch.testing.assert_close(grad * u, torch.zeros_like(u), atol=1e-9, rtol=0)
    # g -> 0: the EM step; g -> inf: the prior's image where it is positive
    tiny = fused_em_prior_step(x_em, x_r, torch.tensor(1e-9, dtype=torch.float64), scale, covered)
    torch.testing.assert_close(tiny, x_em, atol=1e-6, rtol=1e-6)
    huge = fused_em_prior_step(x_em, x_r, torch.tensor(1e9, dtype=torch.float64), scale, covered)
    torch.testing.assert_close(huge, x_r.clamp_min(0), atol=1e-6, rtol=1e-6)
    none = fused_em_prior_step(x_em, x_r, torch.tensor(0.3), scale, torch.zeros_like(covered))
    assert float(none.abs().max()) == 0.0


def test_fbsem_without_prior_is_mlem_from_the_clinical_osem(pet):
    t, op, y, x = pet
    model = FBSEMNet(op, n_iter=4, channels=4, layers=2, g0=1e-12).double()
    with torch.no_grad():
        model.denoiser[-1].weight.zero_()
        model.denoiser[-1].bias.zero_()
        out = model(y)
    start = op.initial_reconstruction(y)
    mlem = em(op, y, PoissonLikelihood(op.background_of(y)), n_iter=4, x0=start).x
    torch.testing.assert_close(out, mlem, rtol=1e-6, atol=1e-9 * float(mlem.max()))


def test_pet_first_guess_is_the_scanners_clinical_osem(pet):
    t, op, y, x = pet
    assert op.initial_osem == (3, 21 if op.range_shape[0] % 21 == 0 else op.initial_osem[1])
    osem = build_method("osem", t, op=op)(y)
    torch.testing.assert_close(op.initial_reconstruction(y), osem, rtol=1e-6, atol=1e-9)
    # and it is a reconstruction: far better than the scaled adjoint of the base class
    base = op.adjoint(y) / op.norm() ** 2
    assert float(tl.metrics.psnr(osem, x).min()) > float(tl.metrics.psnr(base, x).max()) + 5


def test_fbsem_trains_end_to_end_and_is_scale_invariant(pet):
    t, op, y, x = pet
    model = FBSEMNet(op, n_iter=2, channels=4, layers=2).double()
    out = model(y)
    assert out.shape == x.shape and (out >= 0).all() and out.dtype == y.dtype
    ((out - x) ** 2).mean().backward()
    assert model.g_raw.grad is not None and float(model.g_raw.grad.abs().sum()) > 0
    assert all(p.grad is not None for p in model.denoiser.parameters())
    # uniform start: the field of view holds the net true counts
    uniform = FBSEMNet(op, n_iter=1, init="uniform").double()
    assert uniform(y).shape == x.shape


def test_fbsem_and_normalised_unet_refuse_what_they_cannot_do(pet):
    t, op, y, x = pet
    with pytest.raises(ValueError, match="real, non-negative"):
        FBSEMNet(tl.task("mri").tiny().operator())
    with pytest.raises(ValueError, match="init must be"):
        FBSEMNet(op, init="zeros")
    with pytest.raises(ValueError, match="g0"):
        FBSEMNet(op, g0=0.0)
    # the normalised U-Net's correction scales with the image: c unet(x / c)
    unet = FBPConvNet(op, channels=4, depth=2, normalise=True).double().eval()
    with torch.no_grad():
        first = op.initial_reconstruction(y)
        out = unet(y)
        c = first.abs().mean(dim=(1, 2, 3), keepdim=True)
        torch.testing.assert_close(out, first + c * unet.unet(first / c))


@pytest.mark.parametrize("name", ["fbsem-pet-1e6", "fbsem-pet-1e5", "osem-unet-pet-1e6",
                                  "osem-unet-pet-1e5"])
def test_pet_training_configurations_validate_and_build(name):
    from pathlib import Path

    from tomolearn.train.config import load_config
    from tomolearn.weights import build_model

    config = load_config(Path(__file__).resolve().parents[1] / "configs" / f"{name}.yaml")
    t = tl.task({**config["data"]["simulation"], "task": "pet"})
    assert config["data"]["task"] == "pet" and t.counts == float(name.split("-")[-1])
    model = build_model(config["model"]["name"], t.operator(), **config["model"]["params"])
    assert model.image_shape == t.image_shape


def test_shipped_fbsem_beats_filtered_osem_on_held_out_torsos():
    model = tl.load("fbsem-pet-1e6")
    assert model.card["task"]["counts"] == 1e6 and model.card["training"]["steps_done"] > 0
    t = tl.task("pet")
    ds = tl.data.SimulatedDataset("pet-torso", "test", t, size=2)
    y, x = ds.batch([0, 1])
    op = ds.operator()
    with torch.no_grad():
        fbsem = build_method("fbsem", t, op=op)(y)
        filtered = build_method("osem-filtered", t, op=op)(y)
    gain = tl.metrics.psnr(fbsem, x) - tl.metrics.psnr(filtered, x)
    assert float(gain.min()) > 3.0  # 5.2 and 6.4 dB when shipped
