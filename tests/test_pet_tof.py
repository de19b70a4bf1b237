"""Time-of-flight: the kernel, TOF bins adding up to the non-TOF sinogram, the TOF task and
MLEM / OSEM unchanged on TOF data."""

import math

import pytest
import torch

import tomolearn as tl
from tomolearn.data import SimulatedDataset
from tomolearn.modalities import pet
from tomolearn.modalities.pet.tof import (MCT_TIMING_RESOLUTION_PS, TOFProjector, tof_fwhm_mm,
                                          tof_kernels)
from tomolearn.registry import build_method

torch.set_num_threads(1)


def test_tof_kernel_fwhm_and_partition_of_unity():
    assert abs(tof_fwhm_mm(MCT_TIMING_RESOLUTION_PS) - 80.94) < 0.01  # c * 540 ps / 2
    s = torch.linspace(-150, 150, 101, dtype=torch.float64)  # inside the 609 mm of 13 bins
    h = tof_kernels(s, 13, 46.84, 80.94)
    assert h.shape == (13, 101) and (h >= 0).all()
    torch.testing.assert_close(h.sum(0), torch.ones_like(s), atol=1e-5, rtol=0)
    assert float(tof_kernels(torch.tensor([290.0], dtype=torch.float64), 13, 46.84, 80.94).sum()) < 0.9
    # a point at s = 0 is seen mostly by the central bin, symmetrically by its neighbours
    mid = tof_kernels(torch.zeros(1, dtype=torch.float64), 13, 46.84, 80.94)[:, 0]
    assert int(mid.argmax()) == 6 and abs(float(mid[5] - mid[7])) < 1e-15
    # a narrow kernel puts a point at the centre of bin 8 into bin 8 only
    one = tof_kernels(torch.tensor([2 * 46.84], dtype=torch.float64), 13, 46.84, 1.0)[:, 0]
    assert float(one[8]) > 1 - 1e-12


def test_tof_sinogram_sums_to_the_non_tof_one_and_locates_the_source():
    t = pet.PETTask(image_size=16, view_mash=8, bin_mash=8, psf_fwhm_mm=0.0, body="none",
                    fine_factor=1)
    tt = t.replace(tof_bins=13)
    op, tof = t.operator(), tt.operator()
    assert isinstance(tof, TOFProjector) and tof.range_shape == (21, 13, 50)
    x = torch.zeros(1, 1, 16, 16, dtype=torch.float64)
    x[0, 0, 3, 12] = 1.0  # a point up and to the right
    y, yt = op(x), tof(x)
    torch.testing.assert_close(yt.sum(3), y, rtol=1e-4, atol=1e-9)  # |s| < 160 mm: 4 sigma in
    # the point is at s = -x sin(theta) + y cos(theta) along the LOR; the TOF profile peaks there
    px = t.voxel_mm
    xs, ys = (12 - 7.5) * px, (7.5 - 3) * px
    for v in (0, 5, 10, 15):
        theta = float(tof.ray.geometry.angles[v])
        s = -xs * math.sin(theta) + ys * math.cos(theta)
        profile = yt[0, 0, v].sum(-1)  # (tof,)
        expected = round(s / tof.tof_bin_mm + 6)
        assert int(profile.argmax()) == expected


def test_tof_task_simulates_and_mlem_osem_run_unchanged():
    t = pet.PETTask.tiny().replace(counts=2e5, tof_bins=13)
    assert t.data_shape == (21, 13, 50) and t.data_axes[1] == "TOF bin"
    assert tl.task(t.spec()) == t  # the TOF fields round-trip
    assert "tof_bins" not in pet.PETTask.tiny().to_dict()  # non-TOF specs are unchanged
    y, x = SimulatedDataset("pet-torso", "test", t, size=2, dtype=torch.float64).batch([0, 1])
    assert y.shape == (2, 1, 21, 13, 50)
    acq = t.acquire(x)
    torch.testing.assert_close(acq["randoms"].sum((2, 3, 4)),
                               torch.full((2, 1), t.totals()["randoms"], dtype=torch.float64))
    # the same images without TOF: TOF prompts summed over TOF have the non-TOF expectation
    nt = pet.PETTask.tiny().replace(counts=2e5)
    torch.testing.assert_close(acq["expected"].sum(3), nt.acquire(x)["expected"], rtol=1e-3,
                               atol=1e-6)
    op = t.operator()
    bg = op.background_of(y)
    assert bg.shape == y.shape and (bg > 0).all()
    mlem = build_method("mlem", t, params={"n_iter": 10})
    dev = mlem.solve(y).objective[:, :, 0]
    assert (dev[1:] <= dev[:-1] * (1 + 1e-12)).all()
    out = mlem(y)
    osem = build_method("osem", t)(y)
    for img in (out, osem):
        assert img.shape == x.shape and (img >= 0).all() and torch.isfinite(img).all()
        assert float(tl.metrics.psnr(img, x).mean()) > 15
    with pytest.raises(ValueError, match="tof_bins"):
        pet.PETTask.tiny().replace(tof_bins=-1)
    with pytest.raises(ValueError, match="timing_resolution_ps"):
        pet.PETTask.tiny().replace(tof_bins=3, timing_resolution_ps=0.0)


def test_tof_improves_mlem_at_equal_counts():
    """At equal iterations TOF converges faster and is less noisy (the TOF gain)."""
    base = pet.PETTask(image_size=24, view_mash=8, bin_mash=8, counts=1e5, body="cylinder",
                       fine_factor=1, psf_fwhm_mm=0.0, scatter_fraction=0.0)
    scores = []
    for t in (base, base.replace(tof_bins=13)):
        y, x = SimulatedDataset("pet-torso", "test", t, size=2, dtype=torch.float64).batch([0, 1])
        out = build_method("mlem", t, params={"n_iter": 10})(y)
        scores.append(float(tl.metrics.psnr(out, x).mean()))
    assert scores[1] > scores[0]
