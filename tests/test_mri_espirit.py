"""ESPIRiT coil maps: the image-space matrices, agreement with sigpy's EspiritCalib (test-only
peer) through the phase-invariant projections S S^H, SENSE with estimated maps, and input
checks."""

import numpy as np
import pytest
import torch

import tomolearn as tl
from tomolearn.modalities.mri import (MultiCoilSENSE, acs_columns, birdcage_maps,
                                      equispaced_mask, fft2c, ifft2c)
from tomolearn.modalities.mri.espirit import (_centre_crop, _image_space_gram, espirit_kernels,
                                              espirit_maps)
from tomolearn.modalities.mri.task import smooth_phase


def _image(n, seed=0):
    """Shepp-Logan magnitude with a smooth phase, (n, n) complex128 (zero outside the head)."""
    x = torch.as_tensor(tl.phantoms.shepp_logan(n), dtype=torch.float64).reshape(n, n)
    return x * torch.exp(1j * smooth_phase(n, torch.Generator().manual_seed(seed)))


def _kspace(n, n_coils, seed=0):
    x = _image(n, seed)
    maps = birdcage_maps(n_coils, n)
    return fft2c(maps * x), maps, x


def _projections(maps):
    """Per-pixel S S^H, (H, W, C, C): invariant to the per-pixel phase of the maps."""
    s = maps.permute(1, 2, 0)
    return s[..., :, None] * s[..., None, :].conj()


def _distance(a, b):
    return (_projections(a) - _projections(b)).flatten(2).norm(dim=2)


@pytest.mark.parametrize("shape", [(32, 32), (33, 30)])
def test_image_space_matrices_equal_the_kernel_by_kernel_sum(shape):
    """G(p) from the kernels' cross-correlations equals sigpy's loop: (N / w^2) sum_k g g^H with
    g the centred inverse DFT of each kernel zero-padded as sigpy.resize pads it."""
    gen = torch.Generator().manual_seed(1)
    kernels = torch.randn(7, 3, 6, 6, dtype=torch.complex128, generator=gen)
    h, w = shape
    direct = torch.zeros(h, w, 3, 3, dtype=torch.complex128)
    for kern in kernels:
        pad = torch.zeros(3, h, w, dtype=torch.complex128)
        pad[:, h // 2 - 3:h // 2 + 3, w // 2 - 3:w // 2 + 3] = kern
        g = ifft2c(pad).permute(1, 2, 0)
        direct += g[..., :, None] * g[..., None, :].conj()
    direct *= h * w / 36
    ours = _image_space_gram(kernels, shape, torch.complex128)
    lower = torch.tril(torch.ones(3, 3, dtype=torch.bool))
    torch.testing.assert_close(ours[..., lower], direct[..., lower], rtol=0, atol=1e-12)
    assert bool((ours[..., ~lower] == 0).all())  # eigh reads the lower triangle only


@pytest.mark.parametrize("n, n_coils, calib", [(64, 8, 24), (45, 5, 20)])
def test_maps_agree_with_sigpy_espiritcalib(n, n_coils, calib):
    """Same k-space into both: the supports are equal, the top eigenvalues agree to 1e-9 and
    the projections S S^H to 1e-6 (Frobenius, per pixel) over the whole support once sigpy's
    power iteration has converged (1000 steps; measured 4e-8); with its default 100 steps
    they agree to 1e-5 inside the object (measured 1e-8 to 3e-7: the pixels that differ lie
    in the background, where the eigen-gap is small and 100 steps are not enough)."""
    mri = pytest.importorskip("sigpy.mri")
    k, _, x = _kspace(n, n_coils)
    maps, eig = espirit_maps(k, calib, return_eigenvalues=True)
    assert maps.shape == (n_coils, n, n) and maps.dtype == torch.complex128
    peer, peer_eig = mri.app.EspiritCalib(k.numpy(), calib, max_iter=1000, show_pbar=False,
                                          output_eigenvalue=True).run()
    peer = torch.from_numpy(peer)
    peer_eig = torch.from_numpy(np.asarray(peer_eig)).reshape(n, n)
    support = eig > 0.95
    assert torch.equal(support, peer_eig > 0.95)
    assert float((eig - peer_eig).abs().max()) < 1e-9
    obj = x.abs() > 0
    assert bool((obj <= support).all())  # the maps cover the object
    assert float(_distance(maps, peer)[support].max()) < 1e-6
    quick = torch.from_numpy(mri.app.EspiritCalib(k.numpy(), calib, show_pbar=False).run())
    assert float(_distance(maps, quick)[obj].max()) < 1e-5


def test_maps_are_normalised_phase_referenced_and_near_the_truth():
    k, truth, x = _kspace(64, 8)
    maps, eig = espirit_maps(k, 24, return_eigenvalues=True)
    support = eig > 0.95
    power = (maps.abs() ** 2).sum(0)
    torch.testing.assert_close(power[support], torch.ones_like(power[support]), rtol=0,
                               atol=1e-12)
    assert bool((maps[:, ~support] == 0).all())
    assert float(maps[0].imag.abs().max()) == 0 and float(maps[0].real.min()) >= 0
    obj = x.abs() > 0  # the truth up to the per-pixel phase (measured: at most 0.019)
    assert float(_distance(maps, truth)[obj].max()) < 0.05


def test_sense_with_estimated_maps_reconstructs_nearly_as_well_as_with_true_maps():
    """Fully sampled noiseless data: the least-squares SENSE image (A^H y, since S^H S = 1 on
    the support) with the true maps is exact (1e-16); with ESPIRiT maps its magnitude is off
    by 1.4e-5 relative inside the object and the complex image, after removing the phase of
    the true first coil that ESPIRiT's phase reference moves into it, by 2.6e-3 (sigpy's maps:
    the same).  At 2x (equispaced, 26 ACS columns, 100 CGLS steps) the estimated maps, zero
    outside the object, do better than the true ones (5.0e-2 against 1.1e-1)."""
    k, truth, x = _kspace(64, 8)
    obj = x.abs() > 0
    full = torch.ones(64, 64, dtype=torch.bool)
    y = MultiCoilSENSE(truth, full)(x[None, None])
    maps = espirit_maps(y[0, 0], 24)
    exact = MultiCoilSENSE(truth, full).adjoint(y)[0, 0]
    est = MultiCoilSENSE(maps, full, normalized=False).adjoint(y)[0, 0]
    rel = lambda a: float((a - x)[obj].norm() / x[obj].norm())
    assert rel(exact) < 1e-12
    assert float((est.abs() - x.abs())[obj].norm() / x[obj].norm()) < 1e-4
    assert rel(est * (truth[0] / truth[0].abs()).conj()) < 1e-2

    mask = equispaced_mask((64, 64), 2.0, 24 / 64, seed=0)
    start, stop = acs_columns(mask)
    y = MultiCoilSENSE(truth, mask)(x[None, None])
    maps = espirit_maps(y[0, 0], stop - start)
    torch.testing.assert_close(maps, espirit_maps(k, stop - start), rtol=0, atol=0)
    x_true = tl.solvers.cgls(MultiCoilSENSE(truth, mask), y, n_iter=100).x[0, 0]
    x_est = tl.solvers.cgls(MultiCoilSENSE(maps, mask, normalized=False), y, n_iter=100).x[0, 0]
    assert rel(x_est * (truth[0] / truth[0].abs()).conj()) <= rel(x_true) + 0.01


def test_batches_acs_blocks_and_single_precision():
    k0, _, _ = _kspace(48, 6, seed=0)
    k1, _, _ = _kspace(48, 6, seed=1)
    batch = espirit_maps(torch.stack([k0, k1]), 20)
    assert batch.shape == (2, 6, 48, 48)
    torch.testing.assert_close(batch[1], espirit_maps(k1, 20), rtol=0, atol=0)
    block = _centre_crop(k0, (20, 20)).clone()  # only the calibration region, plus the shape
    torch.testing.assert_close(espirit_maps(block, 20, image_shape=48), batch[0], rtol=0,
                               atol=1e-13)
    single, eig = espirit_maps(k0.to(torch.complex64), 20, return_eigenvalues=True)
    assert single.dtype == torch.complex64 and eig.dtype == torch.float32
    clear = (eig - 0.95).abs() > 1e-3  # away from the crop threshold
    assert float(_distance(single.to(torch.complex128), batch[0])[clear].max()) < 1e-4
    numpy_in = espirit_maps(k0.numpy(), 20)
    torch.testing.assert_close(numpy_in, batch[0], rtol=0, atol=0)


def test_kernels_keep_the_signal_subspace():
    k, _, _ = _kspace(48, 4)
    calib = _centre_crop(k, (20, 20))
    loose, tight = espirit_kernels(calib, 6, 0.001), espirit_kernels(calib, 6, 0.1)
    assert loose.shape[1:] == (4, 6, 6) and tight.shape[0] < loose.shape[0] < 4 * 36
    flat = loose.reshape(len(loose), -1)  # orthonormal rows
    torch.testing.assert_close(flat @ flat.conj().T, torch.eye(len(loose), dtype=flat.dtype),
                               rtol=0, atol=1e-12)


def test_clear_errors():
    k, _, _ = _kspace(32, 4)
    with pytest.raises(TypeError, match="complex"):
        espirit_maps(k.real, 16)
    with pytest.raises(ValueError, match="shape"):
        espirit_maps(k[0], 16)
    with pytest.raises(ValueError, match="larger than the k-space"):
        espirit_maps(k, 40)
    with pytest.raises(ValueError, match="larger than calib_width"):
        espirit_maps(k, 8, kernel_width=10)
    with pytest.raises(ValueError, match="thresh"):
        espirit_maps(k, 16, thresh=1.5)
    with pytest.raises(ValueError, match="crop"):
        espirit_maps(k, 16, crop=1.0)
    with pytest.raises(ValueError, match="at least 2 \\* kernel_width - 1"):
        espirit_maps(_centre_crop(k, (16, 16)), 16, image_shape=8)
    mask = equispaced_mask((32, 32), 4.0, 0.2, seed=0)  # 6 ACS columns
    with pytest.raises(ValueError, match="not fully sampled.*acs_columns"):
        espirit_maps(k * mask, 16)
    with pytest.raises(ValueError, match="all zeros"):
        espirit_maps(torch.zeros_like(k), 16)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_runs_on_the_device_of_the_data():
    k, _, _ = _kspace(48, 6)
    maps = espirit_maps(k.cuda().to(torch.complex64), 20)
    assert maps.device.type == "cuda"
    ref = espirit_maps(k, 20)
    support = ref.abs().sum(0) > 0
    assert float(_distance(maps.cpu().to(torch.complex128), ref)[support].max()) < 1e-3
