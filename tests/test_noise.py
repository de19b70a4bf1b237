"""Tests for tomolearn.noise."""

import math

import numpy as np
import pytest
import torch

from tomolearn.noise import MU_MAX, gaussian, poisson_counts, poisson_log

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def _gen(seed, device="cpu"):
    return torch.Generator(device=device).manual_seed(seed)


def test_mu_max_value():
    # LoDoPaB-CT / DIVal: 3071 * (MU_WATER - MU_AIR) / 1000 + MU_WATER
    assert MU_MAX == pytest.approx(81.35858, abs=1e-12)


# --------------------------------------------------------------------------
# gaussian
# --------------------------------------------------------------------------


def test_gaussian_absolute_std():
    y = torch.linspace(-1.0, 3.0, 4 * 160 * 250, dtype=torch.float64).reshape(4, 1, 160, 250)
    noisy = gaussian(y, std=0.3, generator=_gen(0))
    diff = noisy - y
    assert diff.std().item() == pytest.approx(0.3, rel=0.02)
    assert abs(diff.mean().item()) < 0.003
    # Each sample gets the same absolute std, independent of its scale.
    for b in range(4):
        assert diff[b].std().item() == pytest.approx(0.3, rel=0.03)


def test_gaussian_relative_std_per_sample_as_dival():
    g = torch.Generator().manual_seed(1)
    base = torch.rand(3, 2, 100, 120, generator=g, dtype=torch.float64) - 0.3
    scales = torch.tensor([0.5, 2.0, 10.0], dtype=torch.float64).reshape(3, 1, 1, 1)
    y = base * scales
    noisy = gaussian(y, relative=0.05, generator=_gen(2))
    for b in range(3):
        # DIVal: stddev = relative_stddev * np.mean(np.abs(x)) per observation.
        expected = 0.05 * np.mean(np.abs(y[b].numpy()))
        assert (noisy[b] - y[b]).std().item() == pytest.approx(expected, rel=0.03)


def test_gaussian_per_sample_std_tensor():
    y = torch.zeros(2, 1, 200, 200)
    noisy = gaussian(y, std=torch.tensor([0.1, 1.0]), generator=_gen(3))
    assert noisy[0].std().item() == pytest.approx(0.1, rel=0.03)
    assert noisy[1].std().item() == pytest.approx(1.0, rel=0.03)
    rel = gaussian(y + 2.0, relative=torch.tensor([0.0, 0.5]), generator=_gen(3))
    assert torch.equal(rel[0], y[0] + 2.0)
    assert rel[1].std().item() == pytest.approx(1.0, rel=0.03)


def test_gaussian_determinism():
    y = torch.rand(2, 1, 30, 40)
    a = gaussian(y, std=0.1, generator=_gen(5))
    b = gaussian(y, std=0.1, generator=_gen(5))
    c = gaussian(y, std=0.1, generator=_gen(6))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    # generator=None uses the global RNG and still returns valid noise.
    assert gaussian(y, std=0.1).shape == y.shape


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_noise_keeps_dtype_device_shape(device, dtype):
    y = torch.rand(2, 3, 8, 9, dtype=dtype, device=device) * 0.02
    g = _gen(0, device)
    for out in (
        gaussian(y, std=0.1, generator=g),
        gaussian(y, relative=0.1, generator=g),
        poisson_log(y, generator=g),
        poisson_counts(y * 100, generator=g),
    ):
        assert out.dtype == dtype
        assert out.device == y.device
        assert out.shape == y.shape
    assert not y.requires_grad  # input untouched


def test_gaussian_bad_input():
    y = torch.zeros(2, 1, 4, 4)
    with pytest.raises(ValueError, match="exactly one"):
        gaussian(y)
    with pytest.raises(ValueError, match="exactly one"):
        gaussian(y, std=0.1, relative=0.1)
    with pytest.raises(ValueError, match=">= 0"):
        gaussian(y, std=-0.1)
    with pytest.raises(ValueError, match=">= 0"):
        gaussian(y, relative=-0.05)
    with pytest.raises(ValueError):
        gaussian(y, std=float("nan"))
    with pytest.raises(ValueError, match="shape"):
        gaussian(y, std=torch.tensor([0.1, 0.2, 0.3]))
    with pytest.raises(TypeError):
        gaussian(y, std="0.1")
    bad = y.clone()
    bad[0, 0, 1, 1] = float("nan")
    with pytest.raises(ValueError, match="non-finite"):
        gaussian(bad, std=0.1)
    bad[0, 0, 1, 1] = float("inf")
    with pytest.raises(ValueError, match="non-finite"):
        gaussian(bad, std=0.1)
    with pytest.raises(TypeError):
        gaussian(np.zeros((2, 1, 4, 4)), std=0.1)
    with pytest.raises(TypeError):
        gaussian(torch.zeros(2, 1, 4, 4, dtype=torch.int64), std=0.1)
    with pytest.raises(ValueError, match="batched"):
        gaussian(torch.zeros(16), std=0.1)
    with pytest.raises(TypeError):
        gaussian(y, std=0.1, generator=np.random.default_rng(0))


# --------------------------------------------------------------------------
# poisson_counts / poisson_log
# --------------------------------------------------------------------------


def test_poisson_counts_moments_and_integers():
    lam = torch.full((4, 1, 100, 250), 3.5, dtype=torch.float64)
    counts = poisson_counts(lam, generator=_gen(0))
    assert torch.equal(counts, counts.round())
    assert counts.min().item() >= 0
    assert counts.mean().item() == pytest.approx(3.5, abs=0.03)
    assert counts.var().item() == pytest.approx(3.5, rel=0.03)
    again = poisson_counts(lam, generator=_gen(0))
    assert torch.equal(counts, again)
    with pytest.raises(ValueError, match=">= 0"):
        poisson_counts(-lam)
    with pytest.raises(ValueError, match="non-finite"):
        poisson_counts(lam * float("inf"))


def test_poisson_log_matches_lodopab_formula():
    """Same counts through LoDoPaB's numpy steps (lodopab_tech_ref)."""
    g = torch.Generator().manual_seed(0)
    y = torch.rand(2, 1, 50, 60, generator=g, dtype=torch.float64) * 0.12
    n0 = 4096
    noisy = poisson_log(y, photons_per_pixel=n0, generator=_gen(11))
    counts = poisson_counts(n0 * torch.exp(-MU_MAX * y), generator=_gen(11)).numpy()
    data = counts / n0
    np.maximum(0.1 / n0, data, out=data)
    np.log(data, out=data)
    data /= -MU_MAX
    np.testing.assert_allclose(noisy.numpy(), data, rtol=1e-12, atol=1e-15)
    assert (counts == 0).any()  # the clamp branch is exercised near y = 0.12


def test_poisson_log_unbiased_at_high_counts():
    y0 = 0.01  # mu_max * y = 0.81
    y = torch.full((10, 1, 100, 100), y0, dtype=torch.float64)
    n0 = 1e6
    noisy = poisson_log(y, photons_per_pixel=n0, generator=_gen(4))
    lam = n0 * math.exp(-MU_MAX * y0)
    sd = 1.0 / (MU_MAX * math.sqrt(lam))  # delta method, 1.85e-5
    assert abs(noisy.mean().item() - y0) < 5 * sd / math.sqrt(y.numel()) + 1e-7
    assert noisy.std().item() == pytest.approx(sd, rel=0.02)


def test_poisson_log_default_lodopab_dose_statistics():
    y0 = 0.02  # expected counts 4096 * exp(-1.627) = 805
    y = torch.full((10, 1, 100, 100), y0, dtype=torch.float64)
    noisy = poisson_log(y, generator=_gen(5))
    lam = 4096 * math.exp(-MU_MAX * y0)
    sd = 1.0 / (MU_MAX * math.sqrt(lam))
    bias = 1.0 / (2.0 * lam * MU_MAX)  # second-order bias of -log, 7.6e-6
    assert abs(noisy.mean().item() - (y0 + bias)) < 6 * sd / math.sqrt(y.numel())
    assert noisy.std().item() == pytest.approx(sd, rel=0.03)


def test_poisson_log_zero_count_replacement():
    n0 = 1.0
    y0 = 0.05  # expected count exp(-4.07) = 0.017
    y = torch.full((4, 1, 100, 250), y0, dtype=torch.float64)
    noisy = poisson_log(y, photons_per_pixel=n0, generator=_gen(6))
    cap = math.log(n0 / 0.1) / MU_MAX
    is_cap = torch.isclose(noisy, torch.tensor(cap, dtype=torch.float64), rtol=1e-12, atol=0)
    frac_zero = is_cap.double().mean().item()
    lam = n0 * math.exp(-MU_MAX * y0)
    assert frac_zero == pytest.approx(math.exp(-lam), abs=0.003)
    assert noisy.max().item() == pytest.approx(cap, rel=1e-14)
    # The other values are -log(k)/mu for counts k >= 1.
    others = noisy[~is_cap]
    k = torch.exp(-MU_MAX * others)
    assert others.numel() > 0
    assert torch.allclose(k, k.round(), atol=1e-9) and (k.round() >= 1).all()

    # LoDoPaB default: total absorption -> all counts 0 -> log(4096 / 0.1) / mu_max.
    dark = poisson_log(torch.full((1, 1, 4, 4), 1.0), generator=_gen(0))
    assert torch.allclose(dark, torch.full_like(dark, math.log(40960.0) / MU_MAX))
    assert dark[0, 0, 0, 0].item() == pytest.approx(0.1305376, abs=1e-6)
    # Another replacement value.
    dark = poisson_log(torch.full((1, 1, 2, 2), 1.0), min_photon_count=0.5, generator=_gen(0))
    assert torch.allclose(dark, torch.full_like(dark, math.log(8192.0) / MU_MAX))


def test_poisson_log_determinism():
    y = torch.rand(2, 1, 20, 30) * 0.05
    a = poisson_log(y, generator=_gen(9))
    b = poisson_log(y, generator=_gen(9))
    c = poisson_log(y, generator=_gen(10))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


@pytest.mark.parametrize(
    "kwargs, exc",
    [
        (dict(photons_per_pixel=0), ValueError),
        (dict(photons_per_pixel=-10.0), ValueError),
        (dict(photons_per_pixel=float("inf")), ValueError),
        (dict(photons_per_pixel="4096"), TypeError),
        (dict(photons_per_pixel=True), TypeError),
        (dict(mu_max=0.0), ValueError),
        (dict(mu_max=float("nan")), ValueError),
        (dict(min_photon_count=0.0), ValueError),
        (dict(min_photon_count=2.0), ValueError),
    ],
)
def test_poisson_log_bad_parameters(kwargs, exc):
    with pytest.raises(exc):
        poisson_log(torch.zeros(1, 1, 3, 3), **kwargs)


def test_poisson_log_bad_data():
    y = torch.zeros(1, 1, 3, 3)
    y[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="non-finite"):
        poisson_log(y)
    with pytest.raises(TypeError):
        poisson_log(torch.zeros(1, 1, 3, 3, dtype=torch.int32))
    with pytest.raises(ValueError, match="batched"):
        poisson_log(torch.zeros(3))
