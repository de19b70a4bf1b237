"""MRI physics: centred FFT, fastMRI masks, Poisson disc, trajectories, coil maps, the SENSE
operators (exact adjoints, sigpy agreement), complex noise at an SNR, and the "mri" task with
complex ground truths in simulated datasets."""

import math

import numpy as np
import pytest
import torch

import tomolearn as tl
from tomolearn.data import SimulatedDataset
from tomolearn.modalities import mri
from tomolearn.modalities.mri import (GOLDEN_ANGLE, MRITask, MultiCoilSENSE, SingleCoilCartesian,
                                      achieved_acceleration, birdcage_maps, center_lines,
                                      complex_gaussian_noise, equispaced_mask, fft2c, ifft2c,
                                      poisson_disc_mask, radial_trajectory, random_mask,
                                      spiral_trajectory, validate_maps)
from tomolearn.registry import shifted, shifts


def _crandn(shape, dtype=torch.complex128, seed=0):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


# -- centred FFT -----------------------------------------------------------------------------------
def _dft_reference(x: np.ndarray) -> np.ndarray:
    """Centred orthonormal DFT written out: K[u, v] = sum x[m, n] e^{-2 pi i ((u-cH)(m-cH)/H +
    (v-cW)(n-cW)/W)} / sqrt(H W), c = N // 2."""
    h, w = x.shape[-2:]
    fh = np.exp(-2j * np.pi * np.outer(np.arange(h) - h // 2, np.arange(h) - h // 2) / h)
    fw = np.exp(-2j * np.pi * np.outer(np.arange(w) - w // 2, np.arange(w) - w // 2) / w)
    return fh @ x @ fw.T / np.sqrt(h * w)


@pytest.mark.parametrize("shape", [(8, 6), (7, 5), (2, 3, 6, 9)])
def test_fft2c_is_fastmris_centred_orthonormal_dft(shape):
    x = _crandn(shape, seed=1)
    k = fft2c(x)
    xn = x.numpy()
    chain = np.fft.fftshift(np.fft.fftn(np.fft.ifftshift(xn, axes=(-2, -1)), axes=(-2, -1),
                                        norm="ortho"), axes=(-2, -1))
    np.testing.assert_allclose(k.numpy(), chain, rtol=0, atol=1e-12)
    np.testing.assert_allclose(k.numpy(), _dft_reference(xn), rtol=0, atol=1e-12)
    torch.testing.assert_close(ifft2c(k), x, rtol=0, atol=1e-13)  # inverse
    torch.testing.assert_close(k.norm(), x.norm(), rtol=1e-13, atol=0)  # Parseval
    y = _crandn(shape, seed=2)  # adjoint: <F x, y> = <x, F^H y>
    assert abs(torch.vdot(k.reshape(-1), y.reshape(-1))
               - torch.vdot(x.reshape(-1), ifft2c(y).reshape(-1))) < 1e-12 * x.norm() * y.norm()
    # the zero frequency sits at (H // 2, W // 2): a constant image has only that entry
    ones = torch.ones(shape[-2:], dtype=torch.complex128)
    assert fft2c(ones)[shape[-2] // 2, shape[-1] // 2] == pytest.approx(math.sqrt(ones.numel()))


def test_fft2c_keeps_precision_and_matches_sigpy_and_refuses_real():
    sp = pytest.importorskip("sigpy")
    x = _crandn((6, 10), torch.complex64, 3)
    assert fft2c(x).dtype == torch.complex64 and ifft2c(x).dtype == torch.complex64
    np.testing.assert_allclose(fft2c(x.to(torch.complex128)).numpy(),
                               sp.fft(x.numpy().astype(np.complex128), axes=(-2, -1)), atol=1e-12)
    with pytest.raises(TypeError, match="complex tensor"):
        fft2c(torch.zeros(4, 4))
    with pytest.raises(ValueError, match=r"at least 2 dimensions"):
        ifft2c(torch.zeros(4, dtype=torch.complex64))


# -- masks -----------------------------------------------------------------------------------------
def test_random_mask_has_fastmris_centre_and_expected_acceleration():
    w, acc, cf = 368, 4.0, 0.08  # fastMRI knee width
    m = random_mask((5, w), acc, cf, seed=7)
    assert m.shape == (5, w) and m.dtype == torch.bool
    assert (m == m[0]).all()  # whole phase-encoding lines
    num_low = round(w * cf)
    pad = (w - num_low + 1) // 2
    assert num_low == 29 and m[0, pad:pad + num_low].all() and m[0, w // 2]
    columns = torch.arange(w)
    assert torch.equal(center_lines(w, cf), (columns >= pad) & (columns < pad + num_low))
    assert torch.equal(m, random_mask((5, w), acc, cf, seed=7))
    assert not torch.equal(m, random_mask((5, w), acc, cf, seed=8))
    # fastMRI's draws: RandomState(seed), one randint (choice among one acceleration), uniform
    rs = np.random.RandomState(7)
    rs.randint(0, 1)
    expected = rs.uniform(size=w) < (w / acc - num_low) / (w - num_low)
    expected[pad:pad + num_low] = True
    assert np.array_equal(m[0].numpy(), expected)
    mean_lines = np.mean([float(random_mask((1, w), acc, cf, seed=s).sum()) for s in range(200)])
    assert mean_lines == pytest.approx(w / acc, rel=0.02)


@pytest.mark.parametrize("w, acc, cf", [(368, 4, 0.08), (368, 8, 0.04), (320, 4, 0.08),
                                       (24, 4, 0.08)])
def test_equispaced_mask_uses_the_adjusted_acceleration(w, acc, cf):
    m = equispaced_mask((3, w), acc, cf, seed=5)
    assert (m == m[0]).all()
    num_low = round(w * cf)
    adjusted = acc * (num_low - w) / (num_low * acc - w)
    centre = center_lines(w, cf)
    assert m[0][centre].all()
    # the other lines are round(offset + j * adjusted), j = 0, 1, ..., for one offset in
    # [0, round(adjusted)): spaced by the adjusted, not the nominal, acceleration
    candidates = []
    for offset in range(round(adjusted)):
        lines = centre.clone()
        lines[np.around(np.arange(offset, w - 1, adjusted)).astype(np.int64)] = True
        candidates.append(torch.equal(m[0], lines))
    assert sum(candidates) == 1
    assert adjusted > acc
    assert achieved_acceleration(m) == pytest.approx(acc, rel=0.1)
    assert torch.equal(m, equispaced_mask((3, w), acc, cf, seed=5))
    fixed = equispaced_mask((1, w), acc, cf, offset=0)
    assert fixed[0, 0]


@pytest.mark.parametrize("kwargs, message", [
    (dict(acceleration=0), "acceleration must be a finite number >= 1"),
    (dict(acceleration=-4), "acceleration must be"),
    (dict(acceleration=float("nan")), "acceleration must be"),
    (dict(acceleration="4"), "acceleration must be"),
    (dict(center_fraction=0), r"center_fraction must be a number in \(0, 1\)"),
    (dict(center_fraction=1.0), "center_fraction must be"),
    (dict(center_fraction=0.5), r"need center_fraction \* acceleration < 1"),
    (dict(shape=(8,)), r"mask shape must be two positive ints \(H, W\), got \(8,\)"),
    (dict(shape=(0, 8)), "mask shape must be"),
    (dict(shape=(4.5, 8)), "mask shape must be"),
    (dict(seed=-1), "seed must be an int"),
])
def test_bad_mask_arguments_are_named(kwargs, message):
    args = dict(shape=(8, 32), acceleration=4, center_fraction=0.08, seed=0)
    args.update(kwargs)
    for fn in (random_mask, equispaced_mask):
        with pytest.raises(ValueError, match=message):
            fn(**args)


def test_poisson_disc_mask_reaches_its_acceleration_with_variable_density():
    for acc in (4, 8):
        m = poisson_disc_mask((64, 64), acc, calib=8, seed=1)
        assert m.shape == (64, 64) and m.dtype == torch.bool
        assert achieved_acceleration(m) == pytest.approx(acc, rel=0.1)
        assert m[28:36, 28:36].all()  # calibration box centred on (32, 32)
        ii, jj = np.mgrid[:64, :64]
        r = np.hypot(ii - 32, jj - 32)
        inner, outer = m.numpy()[(r > 6) & (r < 14)].mean(), m.numpy()[r > 24].mean()
        assert inner > 1.5 * outer  # denser near the centre
    assert torch.equal(poisson_disc_mask((32, 40), 4, (4, 6), seed=3),
                       poisson_disc_mask((32, 40), 4, (4, 6), seed=3))
    assert not torch.equal(poisson_disc_mask((32, 32), 4, 4, seed=3),
                           poisson_disc_mask((32, 32), 4, 4, seed=4))
    with pytest.raises(ValueError, match="calibration region 30x30 alone exceeds"):
        poisson_disc_mask((32, 32), 4, 30)
    with pytest.raises(ValueError, match="calib must be"):
        poisson_disc_mask((32, 32), 4, (40, 4))


def test_poisson_disc_acceleration_is_comparable_to_sigpys():
    sp_mri = pytest.importorskip("sigpy.mri")
    ours = achieved_acceleration(poisson_disc_mask((48, 48), 5, calib=(6, 6), seed=0))
    theirs = achieved_acceleration(torch.from_numpy(
        np.abs(sp_mri.poisson((48, 48), 5, calib=(6, 6), seed=0)) > 0))
    assert ours == pytest.approx(5, rel=0.1) and theirs == pytest.approx(ours, rel=0.1)


# -- trajectories ----------------------------------------------------------------------------------
def test_golden_angle_radial_trajectory():
    assert math.degrees(GOLDEN_ANGLE) == pytest.approx(111.246, abs=1e-3)
    k = radial_trajectory(13, 32)
    assert k.shape == (13, 32, 2) and k.dtype == torch.float64
    assert (k >= -math.pi).all() and (k < math.pi).all()
    assert torch.equal(k[:, 16], torch.zeros(13, 2))  # every spoke through the centre
    theta = torch.atan2(k[:, -1, 0], k[:, -1, 1])  # angle of each spoke's positive end
    steps = torch.remainder(torch.diff(theta), math.pi)
    torch.testing.assert_close(steps, torch.full((12,), GOLDEN_ANGLE, dtype=torch.float64))
    radii = k.norm(dim=-1)
    torch.testing.assert_close(radii[0], (math.pi * (2 * torch.arange(32) / 32 - 1)).abs().double())
    with pytest.raises(ValueError, match="n_spokes must be a positive int"):
        radial_trajectory(0, 32)


def test_spiral_trajectory():
    k = spiral_trajectory(4, 200, n_turns=8)
    assert k.shape == (4, 200, 2)
    assert (k >= -math.pi).all() and (k < math.pi).all()
    r = k.norm(dim=-1)
    assert torch.equal(k[:, 0], torch.zeros(4, 2)) and (torch.diff(r, dim=1) > 0).all()
    assert float(r.max()) < math.pi
    start = torch.atan2(k[:, 1, 0], k[:, 1, 1])  # interleaves rotated by 2 pi / 4
    torch.testing.assert_close(torch.remainder(torch.diff(start), 2 * math.pi),
                               torch.full((3,), math.pi / 2, dtype=torch.float64))
    g = spiral_trajectory(3, 50, 2.5, golden=True, k_max=2.0)
    assert float(g.norm(dim=-1).max()) < 2.0
    with pytest.raises(ValueError, match=r"k_max must be in \(0, pi\]"):
        spiral_trajectory(2, 10, 1, k_max=4.0)


# -- coils -----------------------------------------------------------------------------------------
def test_birdcage_maps_are_normalised_smooth_and_match_sigpy():
    maps = birdcage_maps(8, (20, 24))
    assert maps.shape == (8, 20, 24) and maps.dtype == torch.complex128
    torch.testing.assert_close((maps.abs() ** 2).sum(0), torch.ones(20, 24, dtype=torch.float64))
    fine = birdcage_maps(8, 64)  # smooth: neighbouring pixels differ by a fraction of 1
    assert float((fine[:, 1:] - fine[:, :-1]).abs().max()) < 0.25
    assert float((fine[:, :, 1:] - fine[:, :, :-1]).abs().max()) < 0.25
    assert len({round(float(maps[c, 2, 3].angle()), 3) for c in range(8)}) == 8  # distinct coils
    assert birdcage_maps(12, 16, dtype=torch.complex64).dtype == torch.complex64
    sp_mri = pytest.importorskip("sigpy.mri")
    np.testing.assert_allclose(maps.numpy(), sp_mri.birdcage_maps((8, 20, 24)), atol=1e-12)


def test_user_maps_are_validated():
    maps = birdcage_maps(4, 8)
    assert validate_maps(maps.numpy(), (8, 8)).shape == (4, 8, 8)
    with pytest.raises(ValueError, match=r"shape \(n_coils, H, W\)"):
        validate_maps(maps[0])
    with pytest.raises(ValueError, match=r"do not match the image shape \(8, 9\)"):
        validate_maps(maps, (8, 9))
    bad = maps.clone()
    bad[1, 2, 3] = float("nan")
    with pytest.raises(ValueError, match="NaN or infinite"):
        validate_maps(bad)
    with pytest.raises(ValueError, match=r"sum_c \|S_c\|\^2 = 1 at every pixel .* normalize_maps"):
        validate_maps(2 * maps)
    assert validate_maps(2 * maps, normalized=False).shape == (4, 8, 8)
    with pytest.raises(TypeError, match="torch.Tensor or numpy array"):
        validate_maps([[1.0]])
    torch.testing.assert_close(mri.normalize_maps(3 * maps), maps)


# -- operators -------------------------------------------------------------------------------------
def _sense(n_coils=8, shape=(24, 20), acc=3.0, seed=0):
    return MultiCoilSENSE(birdcage_maps(n_coils, shape), random_mask(shape, acc, 0.1, seed))


@pytest.mark.parametrize("dtype, tol", [(torch.complex64, 1e-5), (torch.complex128, 1e-12)])
def test_sense_adjoint_identity(dtype, tol):
    op = _sense()
    x, y = _crandn((3, 2, 24, 20), dtype, 1), _crandn((3, 2, 8, 24, 20), dtype, 2)
    ax, aty = op(x), op.adjoint(y)
    assert ax.dtype == dtype and aty.dtype == dtype and ax.shape == (3, 2, 8, 24, 20)
    lhs = torch.vdot(ax.reshape(-1), y.reshape(-1))
    rhs = torch.vdot(x.reshape(-1), aty.reshape(-1))
    assert abs(lhs - rhs) / (ax.norm() * y.norm()) < tol


def test_sense_matches_sigpy_sense_operator():
    """sigpy's Sense is M^(1/2) F_c S with F_c its centred orthonormal fft (ifftshift, fftn
    ortho, fftshift: the same as fastMRI's fft2c), so with a 0/1 mask it is our operator."""
    sp_mri = pytest.importorskip("sigpy.mri")
    op = _sense(n_coils=6, shape=(16, 18), acc=2.5)
    maps, mask = op.maps.numpy(), op.mask.numpy().astype(np.float64)
    theirs = sp_mri.linop.Sense(maps, weights=mask)
    x = _crandn((1, 1, 16, 18), seed=4)
    np.testing.assert_allclose(op(x)[0, 0].numpy(), theirs(x[0, 0].numpy()), atol=1e-12)
    y = op(_crandn((1, 1, 16, 18), seed=5))
    np.testing.assert_allclose(op.adjoint(y)[0, 0].numpy(), theirs.H(y[0, 0].numpy()), atol=1e-12)


def test_single_coil_is_masked_fft2c_with_zeros_elsewhere():
    mask = equispaced_mask((12, 16), 4, 0.125, seed=0)
    op = SingleCoilCartesian(mask)
    x = _crandn((2, 1, 12, 16), torch.complex64, 6)
    y = op(x)
    torch.testing.assert_close(y, fft2c(x) * mask)
    assert (y[..., ~mask] == 0).all() and y.dtype == torch.complex64
    torch.testing.assert_close(op.initial_reconstruction(y), ifft2c(y))
    assert op.norm() == 1.0
    column = SingleCoilCartesian(mask[0], image_shape=(12, 16))  # a (W,) column mask
    torch.testing.assert_close(column(x), y)


def test_fully_sampled_sense_is_an_isometry_and_its_adjoint_recovers_the_image():
    op = MultiCoilSENSE(birdcage_maps(8, (16, 16)), torch.ones(16, 16, dtype=torch.bool))
    x = _crandn((2, 1, 16, 16), seed=7)
    torch.testing.assert_close(op(x).norm(), x.norm(), rtol=1e-12, atol=0)
    torch.testing.assert_close(op.initial_reconstruction(op(x)), x, rtol=0, atol=1e-12)
    assert op.norm() == pytest.approx(1.0, abs=1e-9)


def test_operators_refuse_real_input_and_wrong_mask_or_maps():
    op = _sense(n_coils=4, shape=(8, 10))
    with pytest.raises(TypeError, match=r"expects complex input \(complex64 or complex128\), got "
                                        r"torch.float32; convert real images with torch.complex"):
        op(torch.zeros(1, 1, 8, 10))
    with pytest.raises(TypeError, match="adjoint expects complex input"):
        op.adjoint(torch.zeros(1, 1, 4, 8, 10, dtype=torch.float64))
    with pytest.raises(TypeError, match="expects complex input"):
        SingleCoilCartesian(torch.ones(8, 10))(torch.zeros(1, 1, 8, 10))
    maps = birdcage_maps(4, (8, 10))
    with pytest.raises(ValueError, match=r"mask of shape \(8, 9\) does not match the image shape "
                                         r"\(8, 10\): expected \(8, 10\) or \(10,\)"):
        MultiCoilSENSE(maps, torch.ones(8, 9))
    with pytest.raises(ValueError, match=r"mask of shape \(9,\) does not match"):
        MultiCoilSENSE(maps, torch.ones(9))
    with pytest.raises(ValueError, match=r"coil maps must have shape \(n_coils, H, W\)"):
        MultiCoilSENSE(maps[0], torch.ones(8, 10))
    with pytest.raises(ValueError, match="only 0 and 1"):
        MultiCoilSENSE(maps, torch.full((8, 10), 0.5))
    with pytest.raises(ValueError, match="samples nothing"):
        SingleCoilCartesian(torch.zeros(8, 10, dtype=torch.bool))
    with pytest.raises(ValueError, match="sum_c"):
        MultiCoilSENSE(maps * 1.1, torch.ones(8, 10))
    with pytest.raises(ValueError, match=r"expects shape \(B, C, 8, 10\)"):
        op(torch.zeros(1, 1, 10, 8, dtype=torch.complex64))


def test_buffers_follow_the_module_and_keep_the_maps_complex():
    op = _sense(n_coils=3, shape=(8, 8))
    x = _crandn((1, 1, 8, 8), torch.complex64, 8)
    reference = op(x)
    single = op.float()  # casts real buffers only: the maps are stored as a real view
    assert single.maps.dtype == torch.complex64 and single.mask.dtype == torch.bool
    torch.testing.assert_close(single(x), reference)
    assert {name for name, _ in op.named_buffers()} == {"maps_real", "mask"}


# -- noise -----------------------------------------------------------------------------------------
def test_complex_noise_meets_its_snr_only_where_sampled():
    op = _sense(n_coils=8, shape=(32, 32), acc=4)
    y0 = op(_crandn((2, 1, 32, 32), seed=9))
    gens = [torch.Generator().manual_seed(i) for i in range(2)]
    y = complex_gaussian_noise(y0, snr_db=20.0, mask=op.mask, generator=gens)
    n = y - y0
    assert (n[..., ~op.mask] == 0).all() and y.dtype == y0.dtype
    for b in range(2):
        snr = 20 * math.log10(float(y0[b].norm() / n[b].norm()))
        assert snr == pytest.approx(20.0, abs=0.2)
    alone = complex_gaussian_noise(y0[1:], snr_db=20.0, mask=op.mask,
                                   generator=[torch.Generator().manual_seed(1)])
    torch.testing.assert_close(alone, y[1:], rtol=0, atol=0)  # batch equals loop
    sampled = n[..., op.mask]
    assert float(sampled.real.var() / sampled.imag.var()) == pytest.approx(1.0, abs=0.1)


def test_coil_correlated_noise_has_the_given_covariance():
    cov = torch.tensor([[2.0, 0.8 + 0.5j, 0.0], [0.8 - 0.5j, 1.0, 0.3j], [0.0, -0.3j, 0.5]],
                       dtype=torch.complex128)
    y0 = torch.zeros(1, 1, 3, 256, 256, dtype=torch.complex128)
    n = complex_gaussian_noise(y0, sigma=2.0, covariance=cov,
                               generator=torch.Generator().manual_seed(0))
    v = n[0, 0].reshape(3, -1)
    empirical = v @ v.conj().T / v.shape[1] / 4.0  # sigma^2 = 4 times the normalised covariance
    torch.testing.assert_close(empirical, cov / cov.diagonal().real.mean(), rtol=0, atol=0.03)
    with pytest.raises(ValueError, match="Hermitian"):
        complex_gaussian_noise(y0, sigma=1.0, covariance=[[1, 0.5, 0], [0, 1, 0], [0, 0, 1]])
    with pytest.raises(ValueError, match="positive definite"):
        complex_gaussian_noise(y0, sigma=1.0, covariance=[[1, 2, 0], [2, 1, 0], [0, 0, 1]])
    with pytest.raises(ValueError, match=r"\(3, 3\) for 3 coils"):
        complex_gaussian_noise(y0, sigma=1.0, covariance=torch.eye(2))
    with pytest.raises(ValueError, match="exactly one of snr_db"):
        complex_gaussian_noise(y0, snr_db=10.0, sigma=1.0)
    with pytest.raises(TypeError, match="complex data"):
        complex_gaussian_noise(y0.real, sigma=1.0)


# -- the task --------------------------------------------------------------------------------------
def test_the_mri_task_is_registered_and_deterministic():
    assert "mri" in tl.tasks()
    t = tl.task("mri")
    assert (t.image_shape, t.data_shape) == ((160, 160), (8, 160, 160))
    assert t.likelihood == "complex-gaussian" and t.image_dtype == torch.complex64
    assert tl.task(t.spec()) == t and tl.task({"task": "mri", "acceleration": 4}) == t
    tiny = MRITask.tiny()
    assert torch.equal(tiny.operator().mask, MRITask(image_size=24, n_coils=4).sampling_mask())
    other = tiny.replace(mask="random")
    assert not torch.equal(other.sampling_mask(), other.replace(seed=1).sampling_mask())
    assert isinstance(tiny.operator(), MultiCoilSENSE)
    assert tiny.estimated_bytes(2) > tiny.estimated_bytes(1)
    assert {"acceleration-8", "random-mask", "poisson-mask", "fewer-coils", "low-snr"} \
        <= set(shifts("mri"))
    assert shifted(tiny, "acceleration-8").acceleration == 8.0
    assert shifted(tiny, "fewer-coils").data_shape == (2, 24, 24)
    assert shifted(tiny, "low-snr").snr == tiny.snr - 10
    poisson = shifted(tiny, "poisson-mask").operator().mask
    assert achieved_acceleration(poisson) == pytest.approx(4, rel=0.1)
    for spec, message in [({"mask": "spiral"}, "mask must be one of equispaced, random, poisson"),
                          ({"acceleration": 0}, "acceleration must be"),
                          ({"center_fraction": 0.3}, r"center_fraction \* acceleration < 1"),
                          ({"n_coils": 0}, "n_coils must be a positive int"),
                          ({"snr": float("inf")}, "snr must be a finite number")]:
        with pytest.raises(ValueError, match=message):
            tl.task({"task": "mri", **spec})


def test_mri_datasets_have_complex_ground_truths_and_consistent_noise():
    t = MRITask.tiny()
    ds = SimulatedDataset("ellipses", "test", t, size=4)
    y, x = ds.batch(range(4))
    assert y.shape == (4, 1, 4, 24, 24) and x.shape == (4, 1, 24, 24)
    assert y.dtype == torch.complex64 and x.dtype == torch.complex64
    y64, x64 = SimulatedDataset("ellipses", "test", t, size=4, dtype=torch.float64).batch(range(4))
    assert y64.dtype == torch.complex128 and x64.dtype == torch.complex128
    assert torch.equal(y64.to(torch.complex64), y)
    torch.testing.assert_close(ds.ground_truth(2), x64[2], rtol=0, atol=0)
    assert torch.equal(ds[3][1], x[3]) and torch.equal(ds[3][0], y[3])  # batch equals loop
    real = SimulatedDataset("ellipses", "test", tl.task("ct").replace(image_size=24, seed=t.seed),
                            size=1)
    magnitude = real.ground_truth(0)  # same family image: only the phase is added
    torch.testing.assert_close(x64[0].abs(), magnitude, rtol=0, atol=1e-12)
    phase = torch.angle(x64[0, 0])[magnitude[0] > 0.05]
    assert float(phase.std()) > 0.05  # a real phase, not a constant
    assert float((x64[:, :, :, 1:] / x64[:, :, :, :-1]).angle().abs()
                 [(x64[:, :, :, 1:].abs() > 0.05) & (x64[:, :, :, :-1].abs() > 0.05)].max()) < 0.5
    # noise_std is the per-entry rms noise: with the inverse crime the residual of the truth is
    # about sigma sqrt(m); data from the finer grid leave a model mismatch on top of it
    op = t.operator()
    fine = t.replace(fine_factor=2)
    yf = SimulatedDataset("ellipses", "test", fine, size=4, dtype=torch.float64).batch(range(4))[0]
    for data, low, high in ((y64, 0.9, 1.1), (yf, 1.5, 20.0)):
        r = (op(x64) - data).reshape(4, -1)
        ratio = r.norm(dim=1) / (t.noise_std(data) * math.sqrt(r.shape[1]))
        assert ((ratio > low) & (ratio < high)).all(), ratio
    assert t.initial_reconstruction(y).shape == x.shape


def test_the_ground_truth_hook_leaves_real_tasks_bit_identical():
    from tomolearn.data.datasets import sample_rngs
    from tomolearn.data.families import FAMILIES

    t = tl.task("ct").replace(image_size=24, n_angles=6, n_detectors=35, fine_size=48)
    ds = SimulatedDataset("ellipses", "validation", t, size=3)
    y, x = ds.batch([0, 2])
    rngs = [sample_rngs(t.seed, "validation", i) for i in (0, 2)]
    images = torch.stack([FAMILIES["ellipses"](rng, 24) for rng, _ in rngs])[:, None]
    direct = t.simulate(images, [g for _, g in rngs])
    assert torch.equal(y, direct.float()) and torch.equal(x, images.float())
    assert x.dtype == torch.float32 and torch.equal(ds.ground_truth(2), images[1])


def test_data_of_a_finer_object_when_asked():
    t = tl.task("mri").tiny().replace(snr=300.0)
    x = tl.data.SimulatedDataset("brain", "test", t, size=2, dtype=torch.float64).batch([0, 1])[1]
    gens = [torch.Generator().manual_seed(i) for i in range(2)]
    ax = t.operator()(x)
    crime = t.simulate(x, gens)
    assert float((crime - ax).norm() / ax.norm()) < 1e-10
    honest = t.replace(fine_factor=2).simulate(x, [torch.Generator().manual_seed(i) for i in range(2)])
    gap = float((honest - ax).norm() / ax.norm())
    assert 0.005 < gap < 0.15, gap  # a model mismatch, not a different object
    assert torch.equal(honest == 0, ax == 0)  # the same samples
    with pytest.raises(ValueError, match="fine_factor"):
        t.replace(fine_factor=0)
