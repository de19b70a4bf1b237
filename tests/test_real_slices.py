"""The families of real scans (tomolearn.data.real_slices): the slices pydicom ships."""

import numpy as np
import pydicom
import pytest
import torch

from tomolearn.data import FAMILIES
from tomolearn.data.real_slices import pydicom_test_file


class _FixedDraws:
    """A stand-in generator whose uniforms are given: rotation angle, then the flip draw."""

    def __init__(self, angle, flip_draw):
        self.values = [angle, flip_draw]

    def uniform(self, *args):
        return self.values.pop(0)


def _mr_source():
    ds = pydicom.dcmread(pydicom_test_file("examples_overlay.dcm"))
    assert ds.Modality == "MR"
    pixels = ds.pixel_array.astype(np.float64)
    pixels = pixels * float(getattr(ds, "RescaleSlope", 1)) + float(getattr(ds, "RescaleIntercept", 0))
    return pixels / pixels.max()


def test_mr_slice_without_motion_is_the_real_mr_image():
    source = _mr_source()
    h, w = source.shape
    out = FAMILIES["mr-slice"](_FixedDraws(0.0, 0.9), w).numpy()
    top = (w - h) // 2
    np.testing.assert_allclose(out[top:top + h], source, atol=1e-6)
    assert np.abs(out[:top]).max() < 1e-12 and np.abs(out[top + h:]).max() < 1e-12


def test_mr_slice_mirror_and_rotation():
    source = _mr_source()
    h, w = source.shape
    top = (w - h) // 2
    mirrored = FAMILIES["mr-slice"](_FixedDraws(0.0, 0.1), w).numpy()
    np.testing.assert_allclose(mirrored[top:top + h], source[:, ::-1], atol=1e-6)
    half_turn = FAMILIES["mr-slice"](_FixedDraws(np.pi, 0.9), w).numpy()
    np.testing.assert_allclose(half_turn[top:top + h][::-1, ::-1], source, atol=1e-6)


def test_mr_slice_is_antialiased_when_shrunk():
    # area averaging first: the shrunk image's mean equals the source's (up to the rotation's
    # clipping of corners, none at angle 0), where plain bilinear sampling would not
    source = _mr_source()
    h, w = source.shape
    out = FAMILIES["mr-slice"](_FixedDraws(0.0, 0.9), 121).numpy()  # 484 / 4
    assert out.mean() == pytest.approx(source.sum() / (w * w), rel=1e-6)


def test_missing_pydicom_file_is_named():
    with pytest.raises(FileNotFoundError, match="no-such-file.dcm"):
        pydicom_test_file("no-such-file.dcm")


def test_ct_slice_unchanged_by_the_move():
    # the first release's ct-slice values (mean at 64 and 128 pixels, seed 0)
    for size, mean in ((64, 0.188939), (128, 0.188908)):
        x = FAMILIES["ct-slice"](np.random.default_rng(0), size)
        assert float(x.mean()) == pytest.approx(mean, abs=2e-6)
        assert torch.isfinite(x).all()
