"""The classical MRI baselines: zero-filled, SENSE, CS-TV, CS-wavelet, GRAPPA; their complex
building blocks (CGLS on complex data, complex TV prox, orthogonal wavelets, complex
soft-thresholding) against closed forms and references; root-sum-of-squares."""

import math
import warnings

import numpy as np
import pytest
import torch

import tomolearn as tl
from tomolearn import solvers
from tomolearn.data import SimulatedDataset
from tomolearn.modalities.mri import (MRITask, MultiCoilSENSE, acs_columns, birdcage_maps,
                                      coil_combine, equispaced_mask, fft2c, grappa, grappa_plan,
                                      poisson_disc_mask, random_mask, rss)
from tomolearn.phantoms import shepp_logan
from tomolearn.registry import build_method, methods
from tomolearn.solvers import Wavelet2D, WaveletSparsity, soft_threshold, tv_prox

torch.set_num_threads(1)

MRI_METHODS = ["zero-filled", "grappa", "sense", "cs-tv", "cs-wavelet"]


def _crandn(shape, seed=0, dtype=torch.complex128):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def _phantom(n, dtype=torch.complex128):
    """Shepp-Logan times a smooth phase, (1, 1, n, n)."""
    t = torch.linspace(-1, 1, n, dtype=torch.float64)
    phase = 0.8 * t[None, :] - 0.5 * t[:, None] ** 2
    return torch.polar(shepp_logan(n).double(), phase.expand(n, n))[None, None].to(dtype)


def test_the_five_baselines_are_registered_for_mri():
    assert MRI_METHODS == [m for m in methods("mri") if m in MRI_METHODS]
    assert set(MRI_METHODS) <= set(methods(MRITask.tiny()))
    assert not set(MRI_METHODS) & set(methods("ct"))  # real-image tasks do not get them
    for name in MRI_METHODS:
        assert "mri" in tl.registry.method(name).tuned or name == "zero-filled"


# -- every method on a small noisy problem -------------------------------------------------------
def test_every_method_beats_zero_filled_on_a_tiny_noisy_problem():
    # 32 x 32, 8 coils, 2x with an 8-line centre: small enough to be fast, wide enough an ACS
    # for GRAPPA's kernels; 30 dB SNR
    t = MRITask(image_size=32, n_coils=8, acceleration=2.0, center_fraction=0.25)
    y, x = SimulatedDataset("ellipses", "test", t, size=3).batch(range(3))
    scores = {}
    for name in MRI_METHODS:
        out = build_method(name, t)(y)
        assert out.shape == x.shape and out.dtype == x.dtype == torch.complex64
        scores[name] = float(tl.metrics.psnr(out, x).mean())
    torch.testing.assert_close(build_method("zero-filled", t)(y), t.operator().adjoint(y))
    # measured (tuned parameters): zero-filled 22.55, grappa 25.84, sense 32.67, cs-tv 38.10,
    # cs-wavelet 35.49 dB
    for name in MRI_METHODS[1:]:
        assert scores[name] > scores["zero-filled"] + 2.0, scores


# -- SENSE: conjugate gradients on complex normal equations --------------------------------------
def test_sense_recovers_fully_sampled_noiseless_data():
    x = _phantom(24)
    op = MultiCoilSENSE(birdcage_maps(4, 24), torch.ones(24, 24, dtype=torch.bool))
    t = MRITask(image_size=24, n_coils=4)
    out = build_method("sense", t, op=op, params={"n_iter": 3, "damping": 0.0})(op(x))
    assert out.dtype == torch.complex128
    assert float((out - x).norm() / x.norm()) < 1e-4


def test_sense_cg_converges_to_the_least_squares_solution():
    maps, mask = birdcage_maps(4, (8, 8)), equispaced_mask((8, 8), 2.0, 0.25, seed=0)
    op = MultiCoilSENSE(maps, mask)
    y = op(_crandn((1, 1, 8, 8), 1)) + 0.1 * _crandn((1, 1, 4, 8, 8), 2) * mask
    a = op.to_dense(torch.complex128)
    x_ls = torch.linalg.lstsq(a, y.reshape(-1, 1)).solution.reshape(1, 1, 8, 8)
    t = MRITask(image_size=8, n_coils=4)
    result = build_method("sense", t, op=op, params={"n_iter": 60, "damping": 0.0}).solve(y)
    assert float((result.x - x_ls).norm() / x_ls.norm()) < 1e-4
    # CGLS decreases 1/2 ||A x - y||^2 monotonically on complex data
    assert (result.objective.diff(dim=0) <= 1e-12).all()
    # damping: (A^H A + d I) x = A^H y
    d = 0.3
    x_d = torch.linalg.solve(a.mH @ a + d * torch.eye(64, dtype=a.dtype),
                             a.mH @ y.reshape(-1, 1)).reshape(1, 1, 8, 8)
    x_cg = build_method("sense", t, op=op, params={"n_iter": 60, "damping": d})(y)
    assert float((x_cg - x_d).norm() / x_d.norm()) < 1e-6


# -- complex TV --------------------------------------------------------------------------------------
def test_complex_tv_prox_matches_the_two_pixel_closed_form():
    # min 1/2 |x1 - a|^2 + 1/2 |x2 - b|^2 + g |x2 - x1|: the mean stays, the difference d = b - a
    # is soft-thresholded by 2 g as a complex number (modulus shrunk, phase kept)
    a, b, g = complex(0.3, -0.2), complex(-0.4, 0.9), 0.15
    v = torch.tensor([[[[a, b]]]], dtype=torch.complex128)
    d = torch.tensor(b - a, dtype=torch.complex128)
    t = d * max(0.0, 1 - 2 * g / abs(b - a))
    s = torch.tensor(a + b, dtype=torch.complex128)
    expected = torch.stack([(s - t) / 2, (s + t) / 2]).reshape(1, 1, 1, 2)
    torch.testing.assert_close(tv_prox(v, g, n_iter=500), expected, rtol=0, atol=1e-9)
    # a large weight merges the two pixels into their mean
    torch.testing.assert_close(tv_prox(v, 10.0, n_iter=500), (s / 2).expand(1, 1, 1, 2),
                               rtol=0, atol=1e-9)


def test_complex_tv_is_isotropic_over_complex_differences_and_phase_equivariant():
    v = _crandn((2, 1, 9, 7), 3)
    dx = v[..., 1:, :] - v[..., :-1, :]
    dy = v[..., :, 1:] - v[..., :, :-1]
    mag2 = torch.zeros(2, 1, 9, 7, dtype=torch.float64)
    mag2[..., :-1, :] += dx.abs() ** 2
    mag2[..., :, :-1] += dy.abs() ** 2
    torch.testing.assert_close(solvers.total_variation(v).reshape(2), mag2.sqrt().sum((1, 2, 3)))
    # the prox commutes with a global phase, and on real input equals the real prox
    rot = torch.polar(torch.tensor(1.0, dtype=torch.float64), torch.tensor(0.7, dtype=torch.float64))
    torch.testing.assert_close(tv_prox(v * rot, 0.3, n_iter=50), tv_prox(v, 0.3, n_iter=50) * rot)
    real = v.real.contiguous()
    torch.testing.assert_close(tv_prox(real.to(torch.complex128), 0.3, n_iter=50),
                               tv_prox(real, 0.3, n_iter=50).to(torch.complex128))
    # and it solves the prox problem: no worse than nearby points
    x = tv_prox(v, 0.3, n_iter=2000)

    def objective(z):
        return float(0.5 * (z - v).abs().pow(2).sum() + 0.3 * solvers.total_variation(z).sum())

    best = objective(x)
    for seed in range(5):
        assert objective(x + 1e-3 * _crandn(v.shape, 10 + seed)) >= best - 1e-9


def test_tv_refuses_a_box_on_complex_images():
    y = torch.zeros(1, 1, 4, 8, 8, dtype=torch.complex64)
    op = MultiCoilSENSE(birdcage_maps(4, 8), equispaced_mask((8, 8), 2.0, 0.25))
    with pytest.raises(TypeError, match="box bounds need real images"):
        solvers.fista(op, y, None, solvers.TotalVariation(0.1, lower=0.0))


@pytest.mark.parametrize("reg,tol", [(solvers.TotalVariation(0.2, inner_iter=20), 5e-3),
                                     (WaveletSparsity(0.2, "haar", 2), 1e-3)])
def test_schemes_agree_on_a_complex_multicoil_problem(reg, tol):
    # FISTA (prox), PDHG (TV's conjugate prox / the wavelet prox) and ADMM (complex CG x-step)
    # reach the same minimiser of 1/2 ||A x - y||^2 + R(x) on k-space of higher rank than the
    # images
    op = MultiCoilSENSE(birdcage_maps(4, (12, 12)), equispaced_mask((12, 12), 2.0, 0.25, seed=0))
    y = op(_crandn((1, 1, 12, 12), 8)) + 0.3 * _crandn((1, 1, 4, 12, 12), 9) * op.mask
    a = solvers.fista(op, y, None, reg, n_iter=300).x
    b = solvers.pdhg(op, y, None, reg, n_iter=300).x
    c = solvers.admm(op, y, None, reg, n_iter=100, cg_iter=10).x
    assert float((a - b).norm() / a.norm()) < tol and float((a - c).norm() / a.norm()) < tol
    assert float((a - op.adjoint(y)).norm() / a.norm()) > 0.3  # and it is not the start


# -- wavelets ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["haar", "db2", "db4", "db8"])
def test_wavelet_transform_is_orthogonal(name):
    w = Wavelet2D(name, levels=2)
    basis = torch.eye(16 * 8, dtype=torch.float64).reshape(-1, 16, 8)
    m = w.forward(basis).reshape(16 * 8, -1)
    eye = torch.eye(16 * 8, dtype=torch.float64)
    torch.testing.assert_close(m @ m.T, eye, rtol=0, atol=1e-12)  # W W^T = W^T W = I
    x = _crandn((3, 1, 32, 24), 4)
    torch.testing.assert_close(w.adjoint(w.forward(x)), x, rtol=0, atol=1e-12)
    torch.testing.assert_close(w.forward(x).norm(), x.norm(), rtol=1e-13, atol=0)
    # real transform applied to real and imaginary parts; float32 stays float32
    torch.testing.assert_close(w.forward(x), torch.complex(w.forward(x.real.contiguous()),
                                                          w.forward(x.imag.contiguous())))
    x32 = x.to(torch.complex64)
    assert w.forward(x32).dtype == torch.complex64
    torch.testing.assert_close(w.adjoint(w.forward(x32)), x32, rtol=0, atol=1e-5)


@pytest.mark.parametrize("name,shape,levels", [("db4", (160, 160), 4), ("db4", (32, 48), 3),
                                               ("haar", (24, 24), 3), ("db2", (20, 12), 2)])
def test_wavelet_coefficients_equal_pywavelets(name, shape, levels):
    pywt = pytest.importorskip("pywt")
    x = torch.randn((2,) + shape, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    w = Wavelet2D(name, levels)
    assert w.levels_for(shape) == levels
    assert np.allclose(pywt.Wavelet(name).rec_lo, tl.solvers.wavelets.FILTERS[name], atol=1e-15)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pywt warns that short signals wrap around
        coeffs = pywt.wavedec2(x.numpy(), name, mode="periodization", level=levels)
    expected, _ = pywt.coeffs_to_array(coeffs, axes=(-2, -1))
    np.testing.assert_allclose(w.forward(x).numpy(), expected, rtol=0, atol=1e-12)
    assert w.approximation_mask(shape).sum() == (shape[0] >> levels) * (shape[1] >> levels)


def test_wavelet_levels_and_errors():
    w = Wavelet2D("db4", levels=4)
    assert w.levels_for((24, 24)) == 3 and w.levels_for((160, 160)) == 4
    with pytest.raises(ValueError, match="even image shape"):
        w.forward(torch.zeros(7, 8))
    with pytest.raises(ValueError, match="unknown wavelet 'db3'"):
        Wavelet2D("db3")
    with pytest.raises(NotImplementedError, match="no box"):
        WaveletSparsity(0.1).with_bounds(0.0, None)


def test_complex_soft_threshold_closed_form():
    c = torch.tensor([3 + 4j, -0.3 + 0.4j, 0j, 1j], dtype=torch.complex128)
    out = soft_threshold(c, 1.0)  # moduli 5, 0.5, 0, 1 -> 4, 0, 0, 0; phases kept
    torch.testing.assert_close(out, torch.tensor([2.4 + 3.2j, 0, 0, 0], dtype=torch.complex128))
    r = torch.tensor([-2.0, -0.5, 0.0, 0.7, 3.0], dtype=torch.float64)
    torch.testing.assert_close(soft_threshold(r, 0.6), torch.sign(r) * (r.abs() - 0.6).clamp_min(0))


def test_wavelet_sparsity_prox_is_threshold_in_the_wavelet_domain():
    reg = WaveletSparsity(0.2, "db4", levels=2)
    v = _crandn((2, 1, 16, 16), 6)
    w = reg.transform
    c = w.forward(v)
    free = w.approximation_mask(v.shape)
    expected = w.adjoint(torch.where(free, c, soft_threshold(c, 0.5 * 0.2)))
    torch.testing.assert_close(reg.prox(v, 0.5), expected, rtol=0, atol=1e-12)
    torch.testing.assert_close(reg.value(v), 0.2 * (c.abs() * ~free).sum((1, 2, 3))[:, None])
    # the prox minimises 1/2 ||x - v||^2 + gamma r(x): no worse than nearby points
    x = reg.prox(v, 0.5)
    best = float(0.5 * (x - v).abs().pow(2).sum() + 0.5 * reg.value(x).sum())
    for seed in range(5):
        z = x + 1e-3 * _crandn(v.shape, 20 + seed)
        assert float(0.5 * (z - v).abs().pow(2).sum() + 0.5 * reg.value(z).sum()) >= best - 1e-12
    # the unpenalised approximation passes unchanged: a constant image is a fixed point
    const = torch.full((1, 1, 16, 16), 0.3 - 0.2j, dtype=torch.complex128)
    torch.testing.assert_close(reg.prox(const, 10.0), const, rtol=0, atol=1e-12)
    penal = WaveletSparsity(0.2, "db4", levels=2, penalise_approximation=True)
    assert float(penal.prox(const, 10.0).abs().max()) < 1e-12


# -- GRAPPA ------------------------------------------------------------------------------------------
def _regular_mask(n, r, acs):
    cols = torch.zeros(n, dtype=torch.bool)
    cols[::r] = True
    cols[n // 2 - acs // 2:n // 2 - acs // 2 + acs] = True
    return cols.expand(n, n)


def test_grappa_far_below_zero_filled_on_noiseless_equispaced_data():
    # 64 x 64, 8 coils, every 4th phase-encoding line plus 16 centre lines, no noise
    n, x = 64, _phantom(64)
    maps, mask = birdcage_maps(8, n), _regular_mask(n, 4, 16)
    full = fft2c(x.unsqueeze(2) * maps)
    y = full * mask
    plan = grappa_plan(mask, 2)
    assert [o for o, _, _ in plan.kernels] == [(-3, 1), (-2, 2), (-1, 3)] and not plan.unfilled
    k = grappa(y, plan, kernel_readout=5, reg=1e-6)  # 2 source lines x 5 readout points
    assert torch.equal(k[..., mask], y[..., mask])  # acquired data kept
    missing = ~mask
    k_err = float((k - full)[..., missing].norm() / full[..., missing].norm())
    img, zf = coil_combine(k, maps), coil_combine(y, maps)
    err = float((img - x).norm() / x.norm())
    zf_err = float((zf - x).norm() / x.norm())
    # measured: relative k-space error 0.011 on the missing lines; image error 0.0047 against
    # 0.456 zero-filled (about 100 times smaller)
    assert k_err < 0.05
    assert err < 0.01 and err < zf_err / 50, (err, zf_err)
    # Griswold's 2 x 3 kernel: 0.068 (the birdcage maps spread wider than 3 k-space rows)
    err3 = float((coil_combine(grappa(y, plan, 3, 1e-6), maps) - x).norm() / x.norm())
    assert err3 < zf_err / 5, (err3, zf_err)
    # through the registry on the same data
    op = MultiCoilSENSE(maps, mask)
    t = MRITask(image_size=n, n_coils=8)
    out = build_method("grappa", t, op=op, params={"kernel_readout": 5, "reg": 1e-6})(y)
    torch.testing.assert_close(out, img)


def test_grappa_plans_fastmri_masks_and_refuses_2d_masks():
    mask = equispaced_mask((160, 160), 4.0, 0.08, seed=0)  # spacing 5 or 6 (adjusted 5.44)
    plan = grappa_plan(mask)
    start, stop = acs_columns(mask)
    assert plan.acs == (start, stop) and stop - start >= 13 and mask[0, start:stop].all()
    assert not plan.unfilled
    covered = torch.cat([targets for _, targets, _ in plan.kernels])
    assert sorted(covered.tolist()) == torch.nonzero(~mask[0]).reshape(-1).tolist()
    for offsets, targets, positions in plan.kernels:
        assert len(offsets) == 2 and offsets[0] < 0 < offsets[1] and len(positions) > 0
        for j in targets.tolist():  # the nearest sampled column on each side
            assert mask[0, (j + offsets[0]) % 160] and mask[0, (j + offsets[1]) % 160]
            assert not mask[0, j + offsets[0] + 1:j].any() and not mask[0, j + 1:j + offsets[1]].any()
    with pytest.raises(ValueError, match="1-D"):
        grappa_plan(poisson_disc_mask((32, 32), 3.0, 6, seed=0))
    with pytest.raises(ValueError, match="even int"):
        grappa_plan(mask, kernel_lines=3)
    off_centre = torch.ones(16, dtype=torch.bool)
    off_centre[8] = False
    with pytest.raises(ValueError, match="centre column 8"):
        acs_columns(off_centre)


def test_grappa_with_a_narrow_acs_or_random_gaps_fills_what_it_can():
    # random mask: wide gaps get smaller kernels or stay zero-filled, with a warning
    mask = random_mask((32, 32), 4.0, 0.1, seed=3)
    with pytest.warns(UserWarning, match="stay zero-filled"):
        plan = grappa_plan(mask)
    assert plan.unfilled
    maps = birdcage_maps(4, 32)
    y = fft2c(_phantom(32).unsqueeze(2) * maps) * mask
    k = grappa(y, plan)
    assert torch.isfinite(k).all()
    assert (k[..., list(plan.unfilled)] == 0).all()
    filled = [j for _, targets, _ in plan.kernels for j in targets.tolist()]
    assert (k[..., filled].abs().sum(-2) > 0).all()
    # a fully sampled mask: nothing to fill, the data come back unchanged
    full = torch.ones(32, 32, dtype=torch.bool)
    assert grappa_plan(full).kernels == []
    torch.testing.assert_close(grappa(y, grappa_plan(full)), y)
    with pytest.raises(ValueError, match="shape"):
        grappa(y[..., :-1], plan)


def test_rss_and_coil_combination():
    x = _phantom(16)
    maps = birdcage_maps(6, 16)
    coil_images = x.unsqueeze(2) * maps  # (1, 1, 6, 16, 16)
    # normalised maps: RSS of the coil images is the magnitude, the weighted sum the image
    torch.testing.assert_close(rss(coil_images), x.abs())
    torch.testing.assert_close(coil_combine(fft2c(coil_images), maps), x)
    # fastMRI's rss over dim 0 of (coils, H, W), real and complex
    c = _crandn((4, 5, 6), 7)
    torch.testing.assert_close(rss(c, dim=0), torch.sqrt((c.abs() ** 2).sum(0)))
    torch.testing.assert_close(rss(c.real, dim=0), torch.sqrt((c.real ** 2).sum(0)))
    assert rss(c).shape == (5, 6)
    with pytest.raises(ValueError, match="dim=3"):
        rss(c, dim=3)
    with pytest.raises(ValueError, match="shape"):
        coil_combine(fft2c(coil_images)[:, :, :5], maps)


def test_methods_refuse_wrong_data_clearly():
    t = MRITask.tiny()
    y = torch.zeros((1, 1) + t.data_shape, dtype=torch.complex64)
    for name in MRI_METHODS:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            recon = build_method(name, t)
        with pytest.raises(ValueError, match="shape"):
            recon(y[:, :, :-1])
    with pytest.raises(TypeError, match="complex"):
        build_method("zero-filled", t)(y.real.contiguous())
    with pytest.raises(ValueError, match="does not support task 'ct'"):
        build_method("cs-wavelet", "ct")
    for name, params in (("sense", {"damping": -1.0}), ("cs-tv", {"lam": math.nan})):
        with pytest.raises(ValueError, match="non-negative"):
            build_method(name, t, params=params)
