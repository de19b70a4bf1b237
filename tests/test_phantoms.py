"""Tests for tomolearn.phantoms."""

import numpy as np
import pytest
import torch

from tomolearn.phantoms import (
    ellipses_image,
    normalize_foreground,
    random_ellipse_parameters,
    random_ellipses,
    shepp_logan,
    shepp_logan_ellipses,
)


def _pixel_centres(n):
    """x of column j and y of row i for an n x n image covering [-1, 1]^2."""
    x = (2.0 * np.arange(n) + 1.0) / n - 1.0
    y = 1.0 - (2.0 * np.arange(n) + 1.0) / n
    return x, y


# --------------------------------------------------------------------------
# ellipses_image
# --------------------------------------------------------------------------


def test_centred_axis_aligned_ellipse_pixels():
    # 8 x 8: centres at +-0.125, +-0.375, ... ; a = 0.5 in x, b = 0.25 in y.
    img = ellipses_image([[1.0, 0.5, 0.25, 0.0, 0.0, 0.0]], 8)
    expected = np.zeros((8, 8))
    expected[3:5, 2:6] = 1.0
    np.testing.assert_array_equal(img, expected)
    assert img.dtype == np.float64


def test_offset_ellipse_lands_top_right():
    # Circle of radius 0.2 at (x, y) = (0.5, 0.5): the pixel centres
    # (0.375 | 0.625, 0.375 | 0.625) lie within 0.177 < 0.2, in rows 1-2
    # (y up, row 0 at the top) and columns 5-6 (x to the right).
    img = ellipses_image([[2.5, 0.2, 0.2, 0.5, 0.5, 0.0]], 8)
    assert sorted(map(tuple, np.argwhere(img))) == [(1, 5), (1, 6), (2, 5), (2, 6)]
    assert np.all(img[img != 0] == 2.5)


def test_pixel_centre_inclusion_matches_brute_force():
    rng = np.random.default_rng(3)
    ell = np.column_stack(
        [
            rng.uniform(-1, 1, 12),
            rng.uniform(0.05, 0.7, 12),
            rng.uniform(0.05, 0.7, 12),
            rng.uniform(-1, 1, 12),
            rng.uniform(-1, 1, 12),
            rng.uniform(0, 2 * np.pi, 12),
        ]
    )
    h, w = 37, 53  # non-square: x spans the width, y the height
    img = ellipses_image(ell, (h, w))
    ref = np.zeros((h, w))
    xs = (2.0 * np.arange(w) + 1.0) / w - 1.0
    ys = 1.0 - (2.0 * np.arange(h) + 1.0) / h
    for value, a, b, x0, y0, t in ell:
        for i in range(h):
            for j in range(w):
                dx, dy = xs[j] - x0, ys[i] - y0
                u = dx * np.cos(t) + dy * np.sin(t)
                v = -dx * np.sin(t) + dy * np.cos(t)
                if (u / a) ** 2 + (v / b) ** 2 <= 1.0:
                    ref[i, j] += value
    np.testing.assert_allclose(img, ref, rtol=0, atol=1e-12)


def test_area_of_rotated_ellipse():
    a, b = 0.6, 0.3
    img = ellipses_image([[1.0, a, b, 0.1, -0.05, 0.7]], 512)
    pixel_area = (2.0 / 512) ** 2
    area = img.sum() * pixel_area
    assert area == pytest.approx(np.pi * a * b, rel=0.01)


def test_rotation_by_half_pi_swaps_axes():
    for n in (64, 101):
        rotated = ellipses_image([[1.0, 0.5, 0.2, 0.1, -0.2, np.pi / 2 + 0.3]], n)
        swapped = ellipses_image([[1.0, 0.2, 0.5, 0.1, -0.2, 0.3]], n)
        np.testing.assert_array_equal(rotated, swapped)
        assert swapped.sum() > 100


def test_rotation_is_counter_clockwise():
    # A long thin ellipse rotated by +45 degrees lies along y = x
    # (top-right / bottom-left), not along y = -x.
    n = 64
    img = ellipses_image([[1.0, 0.8, 0.05, 0.0, 0.0, np.pi / 4]], n)
    x, y = _pixel_centres(n)
    j_pos, j_neg = np.argmin(np.abs(x - 0.4)), np.argmin(np.abs(x + 0.4))
    i_pos, i_neg = np.argmin(np.abs(y - 0.4)), np.argmin(np.abs(y + 0.4))
    assert img[i_pos, j_pos] == 1.0  # (0.4, 0.4): top-right
    assert img[i_neg, j_neg] == 1.0  # (-0.4, -0.4): bottom-left
    assert img[i_pos, j_neg] == 0.0  # (-0.4, 0.4): top-left
    assert img[i_neg, j_pos] == 0.0  # (0.4, -0.4): bottom-right


def test_overlapping_ellipses_add():
    ell = [[1.0, 0.5, 0.5, -0.2, 0.0, 0.0], [2.0, 0.5, 0.5, 0.2, 0.0, 0.0]]
    img = ellipses_image(ell, 64)
    one = ellipses_image(ell[:1], 64)
    two = ellipses_image(ell[1:], 64)
    np.testing.assert_array_equal(img, one + two)
    assert img.max() == 3.0
    assert set(np.unique(img)) == {0.0, 1.0, 2.0, 3.0}


def test_empty_and_outside_ellipses():
    np.testing.assert_array_equal(ellipses_image(np.zeros((0, 6)), (3, 4)), np.zeros((3, 4)))
    np.testing.assert_array_equal(ellipses_image([], 5), np.zeros((5, 5)))
    # Entirely outside the image.
    np.testing.assert_array_equal(
        ellipses_image([[1.0, 0.1, 0.1, 3.0, -2.0, 0.4]], 16), np.zeros((16, 16))
    )


@pytest.mark.parametrize(
    "ellipses, shape, exc",
    [
        ([[1.0, 0.5, 0.5, 0.0, 0.0]], 8, ValueError),  # 5 columns
        ([[1.0, 0.0, 0.5, 0.0, 0.0, 0.0]], 8, ValueError),  # zero semi-axis
        ([[1.0, -0.2, 0.5, 0.0, 0.0, 0.0]], 8, ValueError),  # negative semi-axis
        ([[np.nan, 0.2, 0.5, 0.0, 0.0, 0.0]], 8, ValueError),
        ([[1.0, 0.2, 0.5, np.inf, 0.0, 0.0]], 8, ValueError),
        ([["a", 0.2, 0.5, 0.0, 0.0, 0.0]], 8, TypeError),
        ([[1.0, 0.2, 0.5, 0.0, 0.0, 0.0]], 0, ValueError),
        ([[1.0, 0.2, 0.5, 0.0, 0.0, 0.0]], (8, -1), ValueError),
        ([[1.0, 0.2, 0.5, 0.0, 0.0, 0.0]], (8, 8, 8), TypeError),
        ([[1.0, 0.2, 0.5, 0.0, 0.0, 0.0]], 8.0, TypeError),
        ([[1.0, 0.2, 0.5, 0.0, 0.0, 0.0]], "8", TypeError),
    ],
)
def test_ellipses_image_bad_input(ellipses, shape, exc):
    with pytest.raises(exc):
        ellipses_image(ellipses, shape)


# --------------------------------------------------------------------------
# Shepp-Logan
# --------------------------------------------------------------------------


def test_shepp_logan_matches_skimage_phantom_exactly_up_to_quantisation():
    """skimage's 400x400 phantom.png uses ODL's normalisation (first/last pixel
    centres at -1/+1). Rescaling our table by (N-1)/N must reproduce it up to
    its 8-bit quantisation: this pins the ellipse table, the orientation, the
    rotation sign of the +-18 degree ellipses and pixel-centre inclusion."""
    skimage_data = pytest.importorskip("skimage.data")
    ref = skimage_data.shepp_logan_phantom()
    n = ref.shape[0]
    ell = shepp_logan_ellipses(modified=True)
    ell[:, 1:5] *= (n - 1) / n
    img = ellipses_image(ell, n)
    assert np.abs(img - ref).max() < 0.0025  # 8-bit quantisation (0.098 vs 0.1)


def test_shepp_logan_orientation_vs_skimage_resized():
    skimage_data = pytest.importorskip("skimage.data")
    transform = pytest.importorskip("skimage.transform")
    ref = transform.resize(skimage_data.shepp_logan_phantom(), (128, 128), anti_aliasing=True)
    ours = shepp_logan(128).numpy()
    corr = np.corrcoef(ours.ravel(), ref.ravel())[0, 1]
    corr_flipped = np.corrcoef(np.flipud(ours).ravel(), ref.ravel())[0, 1]
    assert corr > 0.9
    assert corr_flipped < corr - 0.1


def test_shepp_logan_values_and_types():
    p = shepp_logan(128)
    assert isinstance(p, torch.Tensor)
    assert p.shape == (128, 128) and p.dtype == torch.float64
    assert float(p.min()) == 0.0 and float(p.max()) == 1.0
    # Pixel centre (x, y) = (-0.0078, 0.3516) is inside the skull (1), the
    # brain (-0.8) and the ellipse at (0, 0.35) (+0.1): value 0.3.
    assert float(p[41, 63]) == pytest.approx(0.3, abs=1e-12)
    # The three small ellipses are near the bottom (y = -0.605 -> row ~102).
    rows = np.nonzero(np.isclose(p[:, 60:70].numpy(), 0.3))[0]
    assert rows.max() > 95
    p32 = shepp_logan((64, 80), dtype=torch.float32)
    assert p32.shape == (64, 80) and p32.dtype == torch.float32
    orig = shepp_logan(128, modified=False)
    assert float(orig.max()) == pytest.approx(2.0)
    assert float(orig[64, 64]) == pytest.approx(1.02, abs=1e-12)
    with pytest.raises(TypeError):
        shepp_logan(64, dtype=torch.int32)


# --------------------------------------------------------------------------
# DIVal random ellipses
# --------------------------------------------------------------------------


def test_random_parameters_reproduce_dival_draw_sequence():
    """Literal transcription of dival/datasets/ellipses_dataset.py's draws."""
    r = np.random.RandomState(42)
    params = []
    for _ in range(3):
        v = r.uniform(-0.4, 1.0, (70,))
        a1 = 0.2 * r.exponential(1.0, (70,))
        a2 = 0.2 * r.exponential(1.0, (70,))
        x = r.uniform(-0.9, 0.9, (70,))
        y = r.uniform(-0.9, 0.9, (70,))
        rot = r.uniform(0.0, 2 * np.pi, (70,))
        n_ellipse = min(r.poisson(40), 70)
        v[n_ellipse:] = 0.0
        params.append((np.stack((v, a1, a2, x, y, rot), axis=1), n_ellipse))
    ours_rng = np.random.RandomState(42)
    for ref, n in params:
        ours = random_ellipse_parameters(ours_rng)
        assert ours.shape == (n, 6)
        np.testing.assert_array_equal(ours, ref[:n])
        # DIVal's zero-valued extra ellipses change nothing in the image.
        np.testing.assert_array_equal(ellipses_image(ours, 32), ellipses_image(ref, 32))


def test_random_parameters_determinism():
    a = random_ellipse_parameters(123)
    b = random_ellipse_parameters(123)
    c = random_ellipse_parameters(np.random.default_rng(123))
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, c)
    assert not np.array_equal(a, random_ellipse_parameters(124))


def test_random_parameters_distribution():
    rng = np.random.default_rng(2024)
    draws = [random_ellipse_parameters(rng) for _ in range(2000)]
    counts = np.array([d.shape[0] for d in draws])
    # n = min(Poisson(40), 70): mean 40, variance 40 (cap practically inactive).
    assert abs(counts.mean() - 40.0) < 0.6  # ~4 standard errors
    assert abs(counts.var() - 40.0) < 5.0
    assert counts.max() <= 70
    allp = np.concatenate(draws)
    assert allp.shape[1] == 6
    value, a1, a2, x, y, rot = allp.T
    assert value.min() >= -0.4 and value.max() < 1.0
    assert abs(value.mean() - 0.3) < 0.01  # U(-0.4, 1.0)
    assert abs(a1.mean() - 0.2) < 0.005 and abs(a2.mean() - 0.2) < 0.005  # 0.2 * Exp(1)
    assert abs(a1.std() - 0.2) < 0.005
    assert x.min() >= -0.9 and x.max() <= 0.9 and abs(x.mean()) < 0.01
    assert y.min() >= -0.9 and y.max() <= 0.9 and abs(y.mean()) < 0.01
    assert rot.min() >= 0.0 and rot.max() < 2 * np.pi and abs(rot.mean() - np.pi) < 0.03


def test_random_parameters_cap_at_70():
    class _ManyEllipses(np.random.RandomState):
        def poisson(self, lam=1.0, size=None):
            return 500

    params = random_ellipse_parameters(_ManyEllipses(0))
    assert params.shape == (70, 6)


def test_random_ellipses_determinism_range_background():
    img = random_ellipses(128, 7)
    again = random_ellipses(128, np.random.default_rng(7))
    assert img.dtype == torch.float32 and img.shape == (128, 128)
    assert torch.equal(img, again)
    assert not torch.equal(img, random_ellipses(128, 8))
    assert float(img.min()) == 0.0 and float(img.max()) == 1.0

    # Background (covered by no ellipse) is exactly 0; the foreground is the
    # raw sum shifted by the image minimum and divided by the shifted maximum.
    params = random_ellipse_parameters(7)
    raw = ellipses_image(params, 128)
    ones = params.copy()
    ones[:, 0] = 1.0
    covered = ellipses_image(ones, 128) > 0
    assert (~covered).sum() > 0
    assert torch.all(img[torch.from_numpy(~covered)] == 0)
    expected = np.where(raw != 0, raw - raw.min(), 0.0)
    expected /= expected.max()
    np.testing.assert_allclose(img.numpy(), expected, rtol=0, atol=1e-6)

    img64 = random_ellipses((40, 48), 7, dtype=torch.float64)
    assert img64.dtype == torch.float64 and img64.shape == (40, 48)


def test_random_ellipses_many_seeds_in_unit_range():
    for seed in range(20):
        img = random_ellipses(64, seed)
        assert float(img.min()) == 0.0
        assert float(img.max()) == pytest.approx(1.0)
        assert bool(torch.isfinite(img).all())


def test_same_ellipses_at_two_resolutions():
    params = random_ellipse_parameters(5)
    lo = ellipses_image(params, 128)
    hi = ellipses_image(params, 400)
    # Same object at both resolutions: block-average-free check via the mean
    # value (integral over the square / 4) agreeing to within 1 %.
    assert lo.mean() == pytest.approx(hi.mean(), rel=0.01)
    hi_n = normalize_foreground(hi, reference=lo)
    lo_n = normalize_foreground(lo)
    assert hi_n.mean() == pytest.approx(lo_n.mean(), rel=0.02)


def test_normalize_foreground_small_example():
    raw = np.array([[0.0, -0.5, 1.0], [0.25, 0.0, 0.0]])
    np.testing.assert_allclose(
        normalize_foreground(raw), [[0.0, 0.0, 1.0], [0.5, 0.0, 0.0]], atol=1e-15
    )
    # Reference supplies shift (-0.5) and scale (1.5).
    other = np.array([[0.0, 0.25], [-0.5, 2.5]])
    np.testing.assert_allclose(
        normalize_foreground(other, reference=raw), [[0.0, 0.5], [0.0, 2.0]], atol=1e-15
    )
    # All-negative foreground: the background (0) stays 0.
    neg = np.array([[0.0, -0.2], [-0.4, 0.0]])
    np.testing.assert_allclose(normalize_foreground(neg), [[0.0, 1.0], [0.0, 0.0]], atol=1e-15)
    np.testing.assert_array_equal(normalize_foreground(np.zeros((3, 3))), np.zeros((3, 3)))
    with pytest.raises(ValueError):
        normalize_foreground(np.zeros(4))
    with pytest.raises(ValueError):
        normalize_foreground(np.array([[np.nan, 1.0]]))


@pytest.mark.parametrize(
    "kwargs, exc",
    [
        (dict(size=64, rng="seed"), TypeError),
        (dict(size=64, rng=-1), ValueError),
        (dict(size=64, rng=1.5), TypeError),
        (dict(size=0, rng=1), ValueError),
        (dict(size=64, rng=1, dtype=torch.int64), TypeError),
        (dict(size=64, rng=1, dtype=np.float32), TypeError),
    ],
)
def test_random_ellipses_bad_input(kwargs, exc):
    with pytest.raises(exc):
        random_ellipses(**kwargs)
