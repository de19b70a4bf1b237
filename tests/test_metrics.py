"""Tests for tomolearn.metrics."""

import math

import numpy as np
import pytest
import torch

from tomolearn.metrics import psnr, ssim
from tomolearn.phantoms import shepp_logan

skmetrics = pytest.importorskip("skimage.metrics")
structural_similarity = skmetrics.structural_similarity

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def _sk_ssim(x, gt, data_range=None, channel_axis=None):
    if data_range is None:
        data_range = float(gt.max() - gt.min())
    return structural_similarity(x, gt, data_range=data_range, channel_axis=channel_axis)


def _np_psnr(x, gt, data_range=None):
    """DIVal's PSNRMeasure.apply, transcribed."""
    mse = np.mean((np.asarray(x, dtype=np.float64) - gt) ** 2)
    if mse == 0.0:
        return float("inf")
    dr = data_range or (np.max(gt) - np.min(gt))
    return 20 * np.log10(dr) - 10 * np.log10(mse)


def _pairs():
    rng = np.random.default_rng(0)
    rand_gt = rng.random((45, 53))
    rand_x = rand_gt + 0.2 * rng.standard_normal(rand_gt.shape)
    sl = shepp_logan(64).numpy()
    blurred = 0.25 * (np.roll(sl, 1, 0) + np.roll(sl, -1, 0) + np.roll(sl, 1, 1) + np.roll(sl, -1, 1))
    noisy = blurred + 0.03 * rng.standard_normal(sl.shape)
    signed_gt = rng.standard_normal((32, 40)) * 3.0 - 1.0  # negative values, range ~ 20
    signed_x = 0.7 * signed_gt + 0.5
    return [(rand_x, rand_gt), (noisy, sl), (blurred, sl), (signed_x, signed_gt)]


@pytest.mark.parametrize("case", range(4))
def test_ssim_matches_skimage_float64(case):
    x, gt = _pairs()[case]
    ours = ssim(torch.from_numpy(x), torch.from_numpy(gt))
    assert ours.ndim == 0 and ours.dtype == torch.float64
    assert ours.item() == pytest.approx(_sk_ssim(x, gt), abs=1e-10)


@pytest.mark.parametrize("case", range(4))
def test_ssim_matches_skimage_float32(case):
    x, gt = (a.astype(np.float32) for a in _pairs()[case])
    ours = ssim(torch.from_numpy(x), torch.from_numpy(gt)).item()
    assert ours == pytest.approx(_sk_ssim(x, gt), abs=1e-4)
    # and the float32 inputs agree with the float64 reference as well
    assert ours == pytest.approx(_sk_ssim(x.astype(np.float64), gt.astype(np.float64)), abs=1e-4)


def test_ssim_explicit_data_range():
    x, gt = _pairs()[0]
    ours = ssim(torch.from_numpy(x), torch.from_numpy(gt), data_range=2.0).item()
    assert ours == pytest.approx(_sk_ssim(x, gt, data_range=2.0), abs=1e-10)
    # a larger data range means larger C1, C2, hence higher SSIM here
    assert ours > ssim(torch.from_numpy(x), torch.from_numpy(gt)).item()


def test_ssim_batched_equals_loop_and_multichannel_skimage():
    rng = np.random.default_rng(1)
    gt = rng.random((3, 2, 20, 24))
    gt[1] *= 4.0  # per-image data range differs
    x = gt + 0.1 * rng.standard_normal(gt.shape)
    batch = ssim(torch.from_numpy(x), torch.from_numpy(gt))
    assert batch.shape == (3,)
    for b in range(3):
        single = ssim(torch.from_numpy(x[b]), torch.from_numpy(gt[b]))
        assert single.ndim == 0
        assert batch[b].item() == pytest.approx(single.item(), abs=1e-14)
        # (C, H, W): mean of per-channel SSIM with one data range, as skimage.
        assert single.item() == pytest.approx(_sk_ssim(x[b], gt[b], channel_axis=0), abs=1e-10)
    # per-sample data range tensor
    dr = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    batch_dr = ssim(torch.from_numpy(x), torch.from_numpy(gt), data_range=dr)
    for b in range(3):
        ref = _sk_ssim(x[b], gt[b], data_range=float(dr[b]), channel_axis=0)
        assert batch_dr[b].item() == pytest.approx(ref, abs=1e-10)


def test_ssim_identical_and_negated():
    gt = shepp_logan(32)
    assert ssim(gt, gt).item() == pytest.approx(1.0, abs=1e-12)
    rng = np.random.default_rng(2)
    a = torch.from_numpy(rng.random((16, 16)))
    # Anti-correlated structure drives SSIM negative.
    assert ssim(1.0 - a, a).item() < 0.0


def test_ssim_gradient():
    rng = np.random.default_rng(3)
    gt = torch.from_numpy(rng.random((1, 1, 9, 10)))
    x = (gt + 0.1 * torch.from_numpy(rng.standard_normal((1, 1, 9, 10)))).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda t: ssim(t, gt), (x,))


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_metrics_devices_and_dtypes(device, dtype):
    x, gt = _pairs()[1]
    xt = torch.from_numpy(x).to(device=device, dtype=dtype)
    gtt = torch.from_numpy(gt).to(device=device, dtype=dtype)
    s = ssim(xt, gtt)
    p = psnr(xt, gtt)
    assert s.device == xt.device and p.device == xt.device
    assert s.dtype == torch.float64 and p.dtype == torch.float64
    assert s.item() == pytest.approx(_sk_ssim(x, gt), abs=1e-4)
    assert p.item() == pytest.approx(_np_psnr(x, gt), abs=1e-4)


def test_psnr_known_value():
    gt = torch.tensor([[0.0, 1.0], [0.0, 1.0]])
    x = gt + 0.1  # mse = 0.01, data range 1 -> 20 dB
    assert psnr(x, gt).item() == pytest.approx(20.0, abs=1e-5)
    assert psnr(x, gt, data_range=10.0).item() == pytest.approx(40.0, abs=1e-5)


@pytest.mark.parametrize("case", range(4))
def test_psnr_matches_numpy_reference(case):
    x, gt = _pairs()[case]
    ours = psnr(torch.from_numpy(x), torch.from_numpy(gt))
    assert ours.ndim == 0
    assert ours.item() == pytest.approx(_np_psnr(x, gt), abs=1e-10)
    ours_dr = psnr(torch.from_numpy(x), torch.from_numpy(gt), data_range=3.0).item()
    assert ours_dr == pytest.approx(_np_psnr(x, gt, data_range=3.0), abs=1e-10)


def test_psnr_batched_equals_loop():
    rng = np.random.default_rng(4)
    gt = rng.random((4, 1, 16, 18)) * np.array([1.0, 2.0, 0.5, 7.0]).reshape(4, 1, 1, 1)
    x = gt + 0.05 * rng.standard_normal(gt.shape)
    x[2] = gt[2]  # identical image in the batch -> inf for that entry only
    batch = psnr(torch.from_numpy(x), torch.from_numpy(gt))
    assert batch.shape == (4,)
    for b in range(4):
        assert batch[b].item() == pytest.approx(_np_psnr(x[b], gt[b]), abs=1e-10)
        assert batch[b].item() == psnr(torch.from_numpy(x[b]), torch.from_numpy(gt[b])).item()
    assert math.isinf(batch[2].item()) and batch[2].item() > 0
    assert torch.isfinite(batch[[0, 1, 3]]).all()


def test_identical_images():
    gt = torch.rand(2, 1, 12, 12, dtype=torch.float32)
    p = psnr(gt, gt.clone())
    s = ssim(gt, gt.clone())
    assert torch.isinf(p).all() and (p > 0).all()
    assert torch.allclose(s, torch.ones(2, dtype=torch.float64), atol=1e-6)


def test_shape_and_type_errors():
    a = torch.rand(16, 16)
    with pytest.raises(ValueError, match="same shape"):
        psnr(a, torch.rand(16, 17))
    with pytest.raises(ValueError, match="same shape"):
        ssim(a, torch.rand(1, 16, 16))
    with pytest.raises(ValueError, match="shape"):
        psnr(torch.rand(16), torch.rand(16))
    with pytest.raises(ValueError, match="shape"):
        ssim(torch.rand(1, 1, 1, 16, 16), torch.rand(1, 1, 1, 16, 16))
    with pytest.raises(ValueError, match="at least 7"):
        ssim(torch.rand(6, 16), torch.rand(6, 16))
    with pytest.raises(TypeError):
        psnr(a.numpy(), a.numpy())
    with pytest.raises(TypeError):
        ssim(torch.ones(8, 8, dtype=torch.int64), torch.ones(8, 8, dtype=torch.int64))
    with pytest.raises(ValueError, match="data_range"):
        psnr(a, a + 0.1, data_range=0.0)
    with pytest.raises(ValueError, match="data_range"):
        ssim(a, a + 0.1, data_range=-1.0)
    with pytest.raises(ValueError, match="data_range"):
        psnr(torch.rand(2, 1, 8, 8), torch.rand(2, 1, 8, 8), data_range=torch.ones(3))
    with pytest.raises(TypeError):
        psnr(a, a, data_range="1")


# -- complex images (MRI): magnitudes, fastMRI's data range -------------------------------------
def _complex_pair(seed=0, shape=(2, 1, 24, 20)):
    g = torch.Generator().manual_seed(seed)
    mag = torch.rand(shape, generator=g, dtype=torch.float64)
    mag[..., :3, :] = 0.0  # a zero background, as the image families have
    phase = torch.rand(shape, generator=g, dtype=torch.float64) * 2 * math.pi
    gt = torch.polar(mag, phase)
    noise = torch.complex(torch.randn(shape, generator=g, dtype=torch.float64),
                          torch.randn(shape, generator=g, dtype=torch.float64))
    return gt + 0.05 * noise, gt


def test_complex_images_are_scored_on_magnitudes_like_fastmri():
    x, gt = _complex_pair()
    sk_psnr = skmetrics.peak_signal_noise_ratio
    for b in range(x.shape[0]):
        mx, mg = x[b, 0].abs().numpy(), gt[b, 0].abs().numpy()
        # fastmri.evaluate.psnr / ssim: maxval = gt.max() of the magnitude target
        assert float(psnr(x, gt)[b]) == pytest.approx(sk_psnr(mg, mx, data_range=mg.max()),
                                                      abs=1e-10)
        assert float(ssim(x, gt)[b]) == pytest.approx(
            structural_similarity(mg, mx, data_range=mg.max()), abs=1e-7)
    # the same as scoring the magnitudes with that data range, and phase-blind
    dr = gt.abs().reshape(2, -1).amax(1)
    torch.testing.assert_close(psnr(x, gt), psnr(x.abs(), gt.abs(), data_range=dr))
    torch.testing.assert_close(ssim(x, gt), ssim(x.abs(), gt.abs(), data_range=dr))
    rot = torch.polar(torch.ones(()), torch.tensor(1.3)).to(torch.complex128)
    torch.testing.assert_close(psnr(x * rot, gt), psnr(x, gt))
    # a real magnitude target (fastMRI's RSS targets) or complex64 input works too
    torch.testing.assert_close(psnr(x, gt.abs()), psnr(x, gt))
    torch.testing.assert_close(psnr(x.to(torch.complex64), gt.to(torch.complex64)), psnr(x, gt),
                               rtol=1e-5, atol=1e-4)
    assert psnr(x, gt).dtype == torch.float64 and psnr(x[0, 0], gt[0, 0]).dim() == 0
    # with a zero background DIVal's max - min of the magnitudes is the same range; without one
    # (magnitudes bounded away from 0) max - min is smaller, so the PSNR would be lower
    torch.testing.assert_close(psnr(x.abs(), gt.abs()), psnr(x, gt))
    lifted = gt + 0.5 * torch.polar(torch.ones_like(gt.real), gt.angle())
    assert (psnr(x.abs(), lifted.abs()) < psnr(x, lifted)).all()
    assert float(psnr(gt, gt)[0]) == math.inf


def test_complex_input_keeps_the_real_checks():
    x, gt = _complex_pair()
    with pytest.raises(ValueError, match="same shape"):
        psnr(x, gt[:, :, :-1])
    with pytest.raises(ValueError, match="data_range"):
        ssim(x, gt, data_range=0.0)
    with pytest.raises(TypeError):
        psnr(torch.ones(8, 8, dtype=torch.int64), gt[0, 0, :8, :8])
