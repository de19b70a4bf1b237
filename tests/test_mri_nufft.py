"""Non-Cartesian MRI through FINUFFT: agreement with the exact non-uniform DFT, exact adjoint,
radial density compensation and gridding, clear errors.  (The shared operator battery runs the
registered ``mri.nufft-*`` examples too.)"""

import math

import pytest
import torch

from tomolearn.modalities.mri.coils import birdcage_maps
from tomolearn.operators.fourier import fft2c
from tomolearn.modalities.mri.nufft import NonCartesianSENSE, density_compensation
from tomolearn.modalities.mri.operators import MultiCoilSENSE
from tomolearn.modalities.mri.trajectories import radial_trajectory, spiral_trajectory


def _crandn(shape, dtype=torch.complex128, seed=0):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def _ndft(trajectory, shape) -> torch.Tensor:
    """The exact NDFT matrix (M, H W): exp(-i k . (n - N // 2)) / sqrt(H W)."""
    h, w = shape
    n = torch.stack(torch.meshgrid(torch.arange(h, dtype=torch.float64) - h // 2,
                                   torch.arange(w, dtype=torch.float64) - w // 2,
                                   indexing="ij"), -1).reshape(-1, 2)
    k = trajectory.reshape(-1, 2).to(torch.float64)
    return torch.exp(-1j * (k @ n.T)) / math.sqrt(h * w)


def _grid(shape) -> torch.Tensor:
    h, w = shape
    kr = 2 * math.pi * (torch.arange(h, dtype=torch.float64) - h // 2) / h
    kc = 2 * math.pi * (torch.arange(w, dtype=torch.float64) - w // 2) / w
    return torch.stack(torch.meshgrid(kr, kc, indexing="ij"), -1)


def _disc(n, radius, dtype=torch.complex128):
    yy, xx = torch.meshgrid(torch.arange(n) - n // 2, torch.arange(n) - n // 2, indexing="ij")
    return ((yy ** 2 + xx ** 2) < radius ** 2).to(dtype)[None, None]


def _rel(a, b):
    return float((a - b).norm() / b.norm())


# -- agreement with the exact NDFT -----------------------------------------------------------------
@pytest.mark.parametrize("eps", [1e-6, 1e-9])
@pytest.mark.parametrize("coils", [None, 3])
def test_forward_and_adjoint_agree_with_the_exact_ndft(eps, coils):
    shape = (12, 10)  # non-square: rows and columns cannot be swapped unnoticed
    traj = torch.cat([radial_trajectory(9, 14).reshape(-1, 2),
                      spiral_trajectory(2, 30, 3.0).reshape(-1, 2)])
    maps = None if coils is None else birdcage_maps(coils, shape)
    op = NonCartesianSENSE(maps, traj, image_shape=shape, eps=eps)
    e = _ndft(traj, shape)
    s = torch.ones((1,) + shape, dtype=torch.complex128) if maps is None else maps
    x = _crandn((2, 1) + shape, seed=1)
    exact = torch.einsum("mn,bcsn->bcsm", e, (x.unsqueeze(2) * s).reshape(2, 1, len(s), -1))
    exact = exact.reshape((2, 1) + op.range_shape)
    # FINUFFT's eps is the relative l2 accuracy it aims at (achieved to a small factor)
    assert _rel(op(x), exact) < 5 * eps
    y = _crandn((2, 1) + op.range_shape, seed=2)
    coil_images = torch.einsum("mn,bcsm->bcsn", e.conj(), y.reshape(2, 1, len(s), -1))
    exact_adj = (coil_images.reshape((2, 1, len(s)) + shape) * s.conj()).sum(2)
    assert _rel(op.adjoint(y), exact_adj) < 5 * eps


def test_complex64_is_computed_in_single_precision_to_about_1e_6():
    shape = (16, 16)
    traj = radial_trajectory(12, 24)
    op = NonCartesianSENSE(birdcage_maps(2, shape), traj, eps=1e-12)  # raised to 1e-6
    x = _crandn((1, 1) + shape, seed=3)
    y64 = op(x.to(torch.complex64))
    assert y64.dtype == torch.complex64
    assert _rel(y64.to(torch.complex128), op(x)) < 1e-5


def test_on_the_cartesian_grid_it_is_the_centred_unitary_dft_and_cartesian_sense():
    shape = (8, 6)
    maps = birdcage_maps(3, shape)
    op = NonCartesianSENSE(maps, _grid(shape), eps=1e-12)
    x = _crandn((2, 1) + shape, seed=4)
    cart = MultiCoilSENSE(maps, torch.ones(shape, dtype=torch.bool))
    torch.testing.assert_close(op(x), cart(x), rtol=0, atol=1e-10)
    single = NonCartesianSENSE(None, _grid(shape), image_shape=shape, eps=1e-12)
    torch.testing.assert_close(single(x), fft2c(x), rtol=0, atol=1e-10)


# -- adjointness -----------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype,tol", [(torch.complex128, 1e-12), (torch.complex64, 1e-5)])
@pytest.mark.parametrize("eps", [1e-3, 1e-6])
def test_adjoint_is_exact_to_rounding_not_only_to_eps(dtype, tol, eps):
    shape = (40, 36)
    op = NonCartesianSENSE(birdcage_maps(4, shape), radial_trajectory(30, 64), eps=eps)
    x = _crandn((2, 1) + shape, dtype, seed=5)
    y = _crandn((2, 1) + op.range_shape, dtype, seed=6)
    ax = op(x)
    lhs = torch.vdot(ax.reshape(-1), y.reshape(-1))
    rhs = torch.vdot(x.reshape(-1), op.adjoint(y).reshape(-1))
    assert abs(lhs - rhs) / (ax.norm() * y.norm()) < tol


def test_single_coil_is_sense_with_one_unit_map():
    shape = (10, 12)
    traj = radial_trajectory(6, 12)
    single = NonCartesianSENSE(None, traj, image_shape=shape)
    one = NonCartesianSENSE(torch.ones((1,) + shape, dtype=torch.complex128), traj)
    assert single.range_shape == (6, 12) and one.range_shape == (1, 6, 12)
    x = _crandn((3, 2) + shape, seed=7)
    torch.testing.assert_close(single(x), one(x)[:, :, 0], rtol=1e-12, atol=1e-12)
    y = single(x)
    torch.testing.assert_close(single.adjoint(y), one.adjoint(y.unsqueeze(2)), rtol=1e-12,
                               atol=1e-12)


# -- density compensation and gridding -------------------------------------------------------------
@pytest.mark.parametrize("n_readout", [64, 63])  # even: a centre sample; odd: rings at half steps
def test_radial_weights_are_the_polar_voronoi_areas(n_readout):
    shape = (32, 32)
    traj = radial_trajectory(21, n_readout)
    w = density_compensation(traj, shape)
    assert w.shape == (21, n_readout) and w.dtype == torch.float64 and bool((w > 0).all())
    dk = 2 * math.pi / n_readout
    r_max = float(traj.norm(dim=-1).max())
    # the annuli tile the disc of radius r_max + dk / 2 (scaled by H W / (2 pi)^2)
    total = math.pi * (r_max + dk / 2) ** 2 * 32 * 32 / (2 * math.pi) ** 2
    assert float(w.sum()) == pytest.approx(total, rel=1e-12)
    # the ramp: away from the centre, a ring's mean weight grows like |k|
    r = traj.norm(dim=-1)
    ring = torch.round(r / (dk / 2))
    means = {int(m): float(w[ring == m].mean() / r[ring == m].mean())
             for m in ((10, 20, 40) if n_readout % 2 == 0 else (11, 21, 41))}
    assert max(means.values()) == pytest.approx(min(means.values()), rel=1e-9)
    if n_readout % 2 == 0:  # the centre: pi dk^2 / 4 shared by the spokes, not zero
        centre = w[:, n_readout // 2]
        expected = math.pi * dk ** 2 / 4 / 21 * 32 * 32 / (2 * math.pi) ** 2
        torch.testing.assert_close(centre, torch.full_like(centre, expected))


def test_gridding_reproduces_a_smooth_image_with_its_values():
    # the identity scaling: A^H diag(w) A ~ I, so a smooth image comes back with its values
    n = 48
    op = NonCartesianSENSE(None, radial_trajectory(80, 96), image_shape=(n, n))
    yy, xx = torch.meshgrid(torch.arange(n) - n // 2, torch.arange(n) - n // 2, indexing="ij")
    blob = torch.exp(-(yy ** 2 + xx ** 2) / (2 * (n / 8) ** 2)).to(torch.complex128)[None, None]
    rec = op.initial_reconstruction(op(blob))
    assert _rel(rec, blob) < 0.05
    assert abs(complex(rec[0, 0, n // 2, n // 2]) - 1) < 0.02


def test_gridding_reproduces_a_constant_image_approximately():
    n = 48
    op = NonCartesianSENSE(birdcage_maps(4, (n, n)), radial_trajectory(80, 96))
    rec = op.initial_reconstruction(op(torch.ones((1, 1, n, n), dtype=torch.complex128)))
    assert abs(complex(rec[0, 0, n // 2, n // 2]) - 1) < 0.05
    centre = rec[0, 0, n // 4:3 * n // 4, n // 4:3 * n // 4]
    # the image's hard edges at the field of view ring into the centre a little
    assert float(centre.real.mean()) == pytest.approx(1.0, abs=0.1)
    assert float(centre.imag.abs().max()) < 0.1


@pytest.mark.parametrize("spokes", [48, 24])
def test_density_compensated_gridding_of_a_disc_beats_the_plain_adjoint(spokes):
    n = 32
    op = NonCartesianSENSE(birdcage_maps(4, (n, n)), radial_trajectory(spokes, 64))
    disc = _disc(n, n / 4)
    y = op(disc)
    gridded = op.initial_reconstruction(y)
    adj = op.adjoint(y)
    best = torch.vdot(adj.reshape(-1), disc.reshape(-1)) / torch.vdot(adj.reshape(-1),
                                                                      adj.reshape(-1))
    err_grid, err_adj = _rel(gridded, disc), _rel(best * adj, disc)  # adjoint at its best scale
    assert err_grid < 0.8 * err_adj, (err_grid, err_adj)


def test_initial_reconstruction_is_differentiable_and_batched():
    n = 12
    op = NonCartesianSENSE(birdcage_maps(2, (n, n)), radial_trajectory(8, 16))
    y = _crandn((3, 2) + op.range_shape, seed=8).requires_grad_()
    rec = op.initial_reconstruction(y)
    assert rec.shape == (3, 2, n, n)
    loop = torch.stack([op.initial_reconstruction(y[b:b + 1])[0] for b in range(3)])
    torch.testing.assert_close(rec, loop, rtol=1e-12, atol=1e-12)
    rec.abs().sum().backward()
    assert y.grad is not None and bool(torch.isfinite(y.grad.abs()).all())


def test_non_radial_trajectories_need_their_own_weights():
    traj = spiral_trajectory(4, 40, 4.0)
    with pytest.raises(ValueError, match="not radial"):
        density_compensation(traj, (16, 16))
    op = NonCartesianSENSE(None, traj, image_shape=(16, 16))
    assert op.density is None
    y = op(_crandn((1, 1, 16, 16), seed=9))
    # without weights: the protocol's one gradient step A^H y / ||A||^2
    torch.testing.assert_close(op.initial_reconstruction(y), op.adjoint(y) / op.norm() ** 2)
    given = NonCartesianSENSE(None, traj, image_shape=(16, 16), density=torch.ones(4, 40))
    torch.testing.assert_close(given.initial_reconstruction(y), given.adjoint(y))
    off = NonCartesianSENSE(None, radial_trajectory(4, 8), image_shape=(8, 8), density=False)
    assert off.density is None


def test_norm_matches_the_largest_singular_value():
    op = NonCartesianSENSE(birdcage_maps(2, (10, 8)), radial_trajectory(6, 12))
    sigma = torch.linalg.matrix_norm(op.to_dense(dtype=torch.complex128), ord=2).item()
    assert op.norm() == pytest.approx(sigma, rel=1e-6)


# -- errors ----------------------------------------------------------------------------------------
def test_trajectory_out_of_range_is_refused_with_the_units():
    traj = radial_trajectory(4, 8)
    with pytest.raises(ValueError, match=r"radians per pixel.*\[-pi, pi\).*2 pi / N"):
        NonCartesianSENSE(None, traj * 8 / math.pi, image_shape=(16, 16))  # sigpy's units
    with pytest.raises(ValueError, match="radians per pixel"):
        density_compensation(traj * 1.5, (8, 8))
    bad = traj.clone()
    bad[0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        NonCartesianSENSE(None, bad, image_shape=(8, 8))


@pytest.mark.parametrize("traj,err,match", [
    (torch.zeros(10, 3), ValueError, r"shape \(\.\.\., 2\)"),
    (torch.zeros(10), ValueError, r"shape \(\.\.\., 2\)"),
    (torch.zeros(0, 2), ValueError, "at least one sample"),
    (torch.zeros(4, 2, dtype=torch.complex64), TypeError, "real floating point"),
    (torch.zeros(4, 2, dtype=torch.int64), TypeError, "real floating point"),
    ([[0.0, 0.0]], TypeError, "torch.Tensor or numpy array"),
])
def test_misshapen_trajectories_are_refused(traj, err, match):
    with pytest.raises(err, match=match):
        NonCartesianSENSE(None, traj, image_shape=(8, 8))


def test_other_arguments_are_checked():
    traj = radial_trajectory(4, 8)
    with pytest.raises(ValueError, match="image_shape"):
        NonCartesianSENSE(None, traj)
    with pytest.raises(ValueError, match="do not match the image shape"):
        NonCartesianSENSE(birdcage_maps(2, (8, 8)), traj, image_shape=(8, 6))
    with pytest.raises(ValueError, match="eps"):
        NonCartesianSENSE(None, traj, image_shape=(8, 8), eps=0.0)
    with pytest.raises(ValueError, match=r"sample shape \(4, 8\)"):
        NonCartesianSENSE(None, traj, image_shape=(8, 8), density=torch.ones(32))
    with pytest.raises(ValueError, match="non-negative"):
        NonCartesianSENSE(None, traj, image_shape=(8, 8), density=-torch.ones(4, 8))
    with pytest.raises(ValueError, match="sum_c"):
        NonCartesianSENSE(2 * birdcage_maps(2, (8, 8)), traj)
    NonCartesianSENSE(2 * birdcage_maps(2, (8, 8)), traj, normalized=False)
    # numpy inputs are accepted
    op = NonCartesianSENSE(birdcage_maps(2, (8, 8)).numpy(), traj.numpy())
    assert op.range_shape == (2, 4, 8) and op.n_coils == 2 and op.n_samples == 32


def test_real_input_is_refused():
    op = NonCartesianSENSE(birdcage_maps(2, (8, 8)), radial_trajectory(4, 8))
    for dtype in (torch.float32, torch.float64):
        with pytest.raises(TypeError, match="expects complex input"):
            op(torch.zeros((1, 1, 8, 8), dtype=dtype))
        with pytest.raises(TypeError, match="adjoint expects complex input"):
            op.adjoint(torch.zeros((1, 1) + op.range_shape, dtype=dtype))
        with pytest.raises(TypeError, match="expects complex input"):
            op.initial_reconstruction(torch.zeros((1, 1) + op.range_shape, dtype=dtype))
    with pytest.raises(ValueError, match=r"expects shape \(B, C, 2, 4, 8\)"):
        op.adjoint(torch.zeros((1, 1, 2, 32), dtype=torch.complex64))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    op = NonCartesianSENSE(birdcage_maps(3, (24, 20)), radial_trajectory(16, 32))
    x = _crandn((2, 1, 24, 20), torch.complex64, seed=10)
    y = op(x)
    gpu = op.to("cuda")
    yc = gpu(x.cuda())
    assert yc.device.type == "cuda" and yc.dtype == torch.complex64
    assert _rel(yc.cpu(), y) < 1e-5
    assert _rel(gpu.adjoint(yc).cpu(), op.to("cpu").adjoint(y)) < 1e-5
