"""Tests for the image families of tomolearn.data.families.

The contract tests loop over the registry, so a newly registered family is
tested without new code here.
"""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tomolearn.data.families import (FAMILIES, add_lesions, polygon_mask, polygons_image,
                                     random_polygon_parameters, random_rectangle_parameters,
                                     rectangles_image)
from tomolearn.phantoms import ellipses_image, normalize_foreground, random_ellipse_parameters

#: Families that ignore the generator by design.
DETERMINISTIC = {"shepp-logan", "nema-iq"}  # nema-iq: the fixed NEMA NU 2 phantom (PET)
OOD = ["rectangles", "polygons", "textured-ellipses", "lesions"]


def _rng(seed):
    return np.random.default_rng(seed)


def _pixel_centres(n):
    x = (2.0 * np.arange(n) + 1.0) / n - 1.0
    y = 1.0 - (2.0 * np.arange(n) + 1.0) / n
    return x, y


# --------------------------------------------------------------------------------
# contract of every registered family
# --------------------------------------------------------------------------------


def test_out_of_distribution_families_registered():
    assert set(OOD) <= set(FAMILIES)
    for name in FAMILIES:
        assert FAMILIES[name].__doc__, f"family {name!r} has no docstring"


@pytest.mark.parametrize("size", [64, 128])
@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_family_contract(name, size):
    family = FAMILIES[name]
    x = family(_rng(3), size)
    assert isinstance(x, torch.Tensor)
    assert x.shape == (size, size) and x.dtype == torch.float64
    assert bool(torch.isfinite(x).all())
    assert float(x.min()) == 0.0 and float(x.max()) <= 1.0
    assert float(x.max()) > 0.0
    # same generator state, same image
    assert torch.equal(family(_rng(3), size), x)
    if name not in DETERMINISTIC:
        assert not torch.equal(family(_rng(4), size), x)


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_family_draws_only_from_its_generator(name):
    np.random.seed(0)
    torch.manual_seed(0)
    np_state, torch_state = np.random.get_state()[1].copy(), torch.get_rng_state().clone()
    rng = _rng(5)
    FAMILIES[name](rng, 64)
    assert np.array_equal(np.random.get_state()[1], np_state)
    assert torch.equal(torch.get_rng_state(), torch_state)
    # the generator is advanced exactly as a fresh one with the same seed
    rng2 = _rng(5)
    FAMILIES[name](rng2, 64)
    assert rng.bit_generator.state == rng2.bit_generator.state


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), name=st.sampled_from(OOD))
def test_ood_families_in_unit_interval(seed, name):
    x = FAMILIES[name](_rng(seed), 64)
    assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0


# --------------------------------------------------------------------------------
# rectangles
# --------------------------------------------------------------------------------


def test_rectangle_rasterises_exactly():
    # half widths 0.5 (x) and 0.25 (y) at 128 px: 64 columns x 32 rows
    img = rectangles_image([[1.0, 0.5, 0.25, 0.0, 0.0, 0.0]], 128)
    expected = np.zeros((128, 128))
    expected[48:80, 32:96] = 1.0
    np.testing.assert_array_equal(img, expected)
    # a quarter turn swaps the sides
    turned = rectangles_image([[1.0, 0.5, 0.25, 0.0, 0.0, np.pi / 2]], 128)
    np.testing.assert_array_equal(turned, expected.T)
    # rotated by 45 degrees: same area within 2 %
    diamond = rectangles_image([[1.0, 0.5, 0.25, 0.0, 0.0, np.pi / 4]], 128)
    assert diamond.sum() == pytest.approx(2048, rel=0.02)


@pytest.mark.parametrize("seed", range(5))
def test_axis_aligned_rectangles_have_straight_edges(seed):
    rects = random_rectangle_parameters(_rng(seed), rotate=False)
    n = len(rects)
    img = normalize_foreground(rectangles_image(rects, 128))
    # piecewise constant on the tensor grid of the edges: values change between
    # consecutive rows (columns) only at the 2 n horizontal (vertical) edges
    assert np.count_nonzero(np.any(np.diff(img, axis=0) != 0, axis=1)) <= 2 * n
    assert np.count_nonzero(np.any(np.diff(img, axis=1) != 0, axis=0)) <= 2 * n
    # the raw sum of indicators has mixed second differences only at the 4 n corners
    raw = rectangles_image(rects, 128)
    # (up to the rounding of sums taken in different orders)
    def corners(image):
        return np.count_nonzero(np.abs(np.diff(np.diff(image, axis=0), axis=1)) > 1e-9)

    assert corners(raw) <= 4 * n
    # the same draws rotated break this (so the check above is not vacuous)
    assert corners(rectangles_image(random_rectangle_parameters(_rng(seed)), 128)) > 4 * n
    # forcing rotation 0 does not change the other draws
    np.testing.assert_array_equal(rects[:, :5], random_ellipse_parameters(_rng(seed))[:, :5])


def test_rectangles_family_is_the_rasterised_parameters():
    expected = normalize_foreground(rectangles_image(random_rectangle_parameters(_rng(9)), 128))
    np.testing.assert_array_equal(FAMILIES["rectangles"](_rng(9), 128).numpy(), expected)


# --------------------------------------------------------------------------------
# polygons
# --------------------------------------------------------------------------------


@pytest.mark.parametrize("vertices, area", [
    ([(-0.5, -0.5), (0.5, -0.5), (0.5, 0.5), (-0.5, 0.5)], 1.0),          # square
    ([(-0.8, -0.8), (0.8, -0.8), (0.0, 0.8)], 1.28),                      # triangle
    ([(0.0, 0.8), (0.8, -0.8), (-0.8, -0.8)], 1.28),                      # clockwise
    ([(-0.7, -0.7), (0.7, -0.7), (0.7, 0.0), (0.0, 0.0), (0.0, 0.7), (-0.7, 0.7)],
     1.47),                                                               # L shape
])
@pytest.mark.parametrize("size", [64, 128, 256])
def test_known_polygons_have_expected_area(vertices, area, size):
    mask = polygon_mask(vertices, size)
    assert mask.dtype == bool and mask.shape == (size, size)
    pixels = area / 4.0 * size * size  # the image covers [-1, 1]^2 (area 4)
    if size >= 128:
        assert mask.sum() == pytest.approx(pixels, rel=0.02)
    # at any size: off by at most half a pixel along the boundary
    v = np.asarray(vertices)
    perimeter_px = np.linalg.norm(np.roll(v, -1, axis=0) - v, axis=1).sum() * size / 2
    assert abs(mask.sum() - pixels) <= 0.5 * perimeter_px


def test_square_mask_exact_and_in_place():
    mask = polygon_mask([(0.0, 0.0), (0.5, 0.0), (0.5, 0.5), (0.0, 0.5)], 8)
    expected = np.zeros((8, 8), dtype=bool)
    expected[2:4, 4:6] = True  # x in (0, 0.5): columns 4, 5; y in (0, 0.5): rows 2, 3
    np.testing.assert_array_equal(mask, expected)


def test_polygon_mask_matches_skimage_points_in_poly():
    measure = pytest.importorskip("skimage.measure")
    n = 96
    x, y = _pixel_centres(n)
    points = np.stack(np.broadcast_arrays(x[None, :], y[:, None]), -1).reshape(-1, 2)
    for value, verts in random_polygon_parameters(_rng(11)):
        ours = polygon_mask(verts, n).ravel()
        ref = measure.points_in_poly(points, verts)
        assert np.mean(ours != ref) < 1e-3


def _signed_area(v):
    return 0.5 * np.sum(v[:, 0] * np.roll(v[:, 1], -1) - np.roll(v[:, 0], -1) * v[:, 1])


def _is_convex(v):
    e = np.roll(v, -1, axis=0) - v
    cross = e[:, 0] * np.roll(e[:, 1], -1) - e[:, 1] * np.roll(e[:, 0], -1)
    return bool(np.all(cross > 0))


def test_random_polygons_are_simple_convex_or_star_shaped():
    polys = [p for seed in range(5) for p in random_polygon_parameters(_rng(100 + seed))]
    assert len(polys) > 50
    n = 256
    for value, v in polys:
        assert 3 <= len(v) <= 8 and -0.4 <= value <= 1.0
        assert _signed_area(v) > 0  # counter-clockwise
        # simple (not self-intersecting): the rasterised area is the shoelace area
        inside = np.all(np.abs(v) < 1.0)
        if inside and _signed_area(v) > 0.05:
            perimeter_px = np.linalg.norm(np.roll(v, -1, axis=0) - v, axis=1).sum() * n / 2
            assert abs(polygon_mask(v, n).sum() - _signed_area(v) / 4 * n * n) <= 0.5 * perimeter_px
    convex = np.mean([_is_convex(v) for _, v in polys])
    assert 0.4 < convex < 0.9  # half are drawn convex, a few stars are convex by chance


def test_polygons_family_is_the_rasterised_parameters():
    expected = normalize_foreground(polygons_image(random_polygon_parameters(_rng(13)), 128))
    np.testing.assert_array_equal(FAMILIES["polygons"](_rng(13), 128).numpy(), expected)


# --------------------------------------------------------------------------------
# textured ellipses
# --------------------------------------------------------------------------------


def _constant_interior(img):
    """Foreground pixels whose four neighbours all have the same value."""
    c = img[1:-1, 1:-1]
    same = ((img[:-2, 1:-1] == c) & (img[2:, 1:-1] == c)
            & (img[1:-1, :-2] == c) & (img[1:-1, 2:] == c) & (c > 0))
    out = np.zeros_like(img, dtype=bool)
    out[1:-1, 1:-1] = same
    return out


@pytest.mark.parametrize("seed", range(4))
def test_textured_ellipses_have_non_constant_interiors(seed):
    plain = FAMILIES["ellipses"](_rng(seed), 128).numpy()
    textured = FAMILIES["textured-ellipses"](_rng(seed), 128).numpy()
    interior = _constant_interior(plain)
    # plain ellipses are piecewise constant: most of the foreground is interior
    assert interior.sum() > 0.5 * np.count_nonzero(plain)
    # same ellipses (same draws first), same support
    np.testing.assert_array_equal(textured > 0, plain > 0)
    # textured: the neighbours differ almost everywhere in those interiors
    assert _constant_interior(textured)[interior].mean() < 0.01
    # and the modulation is substantial: textured / plain varies by > 10 % (std)
    ratio = textured[interior] / plain[interior]
    assert ratio.std() / ratio.mean() > 0.1


# --------------------------------------------------------------------------------
# lesions
# --------------------------------------------------------------------------------


def _base(seed, size):
    return normalize_foreground(ellipses_image(random_ellipse_parameters(_rng(seed)), size))


@pytest.mark.parametrize("size", [64, 128])
@pytest.mark.parametrize("seed", range(6))
def test_lesions_are_small_bright_blobs(seed, size):
    rng = _rng(seed)
    base = normalize_foreground(ellipses_image(random_ellipse_parameters(rng), size))
    img, lesions = add_lesions(base, rng)
    # the family is exactly this composition
    np.testing.assert_array_equal(FAMILIES["lesions"](_rng(seed), size).numpy(), img)

    assert 1 <= len(lesions) <= 5
    x, y = _pixel_centres(size)
    cx, cy, radius, value = lesions.T
    radius_px = radius * size / 2
    assert np.all((radius_px >= 1.5 * size / 128) & (radius_px <= 4.0 * size / 128))
    dist2 = (x[None, None, :] - cx[:, None, None]) ** 2 + (y[None, :, None] - cy[:, None, None]) ** 2
    in_lesion = np.any(dist2 <= radius[:, None, None] ** 2, axis=0)
    assert 0 < in_lesion.sum() <= len(lesions) * np.pi * (4.0 * size / 128 + 1) ** 2
    # centres in the foreground (within half a pixel of a foreground pixel centre)
    col = np.clip(np.round((cx + 1) * size / 2 - 0.5).astype(int), 0, size - 1)
    row = np.clip(np.round((1 - cy) * size / 2 - 0.5).astype(int), 0, size - 1)
    assert np.all(base[row, col] > 0)
    # outside the lesions: the ellipses, uniformly rescaled by 1 / max(value)
    np.testing.assert_allclose(img[~in_lesion], base[~in_lesion] / value.max(), rtol=1e-12)
    # every lesion pixel is brighter than every other pixel, the maximum is at a lesion
    assert img[in_lesion].min() > img[~in_lesion].max()
    i, j = np.unravel_index(np.argmax(img), img.shape)
    assert in_lesion[i, j] and img[i, j] == 1.0
    # values above the image maximum by the stated contrast U(0.2, 0.6)
    assert np.all((value - base.max() >= 0.2) & (value - base.max() <= 0.6))


def test_lesions_scale_with_resolution():
    # same draws at two resolutions: same lesions in normalised coordinates except the
    # centre, which is drawn among the pixels of each grid
    _, small = add_lesions(_base(7, 128), _rng(1))
    _, large = add_lesions(_base(7, 256), _rng(1))
    assert len(small) == len(large)
    np.testing.assert_allclose(small[:, 2], large[:, 2])  # radius in normalised units
    np.testing.assert_allclose(small[:, 3], large[:, 3])
