"""Image families: in-distribution ellipses and out-of-distribution phantoms.

A family is a function ``family(rng, size) -> torch.Tensor`` of shape
``(size, size)``, float64, values in [0, 1], drawn with the
``numpy.random.Generator`` it is given (same generator state, same image).
Families are registered by name in :data:`FAMILIES`; datasets and the
generalisation study refer to them by that name.
"""

from __future__ import annotations

from typing import Callable, Dict

import numpy as np
import torch

from .. import phantoms

__all__ = ["FAMILIES", "register_family"]

Family = Callable[[np.random.Generator, int], torch.Tensor]

#: Registered image families, by name.
FAMILIES: Dict[str, Family] = {}


def register_family(name: str):
    """Decorator registering an image family under ``name``."""

    def decorator(fn: Family) -> Family:
        if name in FAMILIES:
            raise ValueError(f"an image family named {name!r} is already registered")
        FAMILIES[name] = fn
        return fn

    return decorator


@register_family("ellipses")
def ellipses(rng: np.random.Generator, size: int) -> torch.Tensor:
    """DIVal's random ellipses (:func:`tomolearn.phantoms.random_ellipses`)."""
    return phantoms.random_ellipses(size, rng, dtype=torch.float64)


@register_family("shepp-logan")
def shepp_logan(rng: np.random.Generator, size: int) -> torch.Tensor:
    """The modified Shepp-Logan phantom (deterministic; ``rng`` is unused)."""
    return phantoms.shepp_logan(size, dtype=torch.float64)


# =============================================================================
# Out-of-distribution families of the generalisation study
# =============================================================================
#
# A model trained on DIVal's random ellipses meets these at test time.  Each is
# a well-defined distribution over images on the normalised square [-1, 1]^2
# (the conventions of :mod:`tomolearn.phantoms`: arrays ``(H, W)``, row 0 at
# the top, pixel ``(i, j)`` centred at ``x_j = (2 j + 1) / W - 1``,
# ``y_i = 1 - (2 i + 1) / H``), sampled at pixel centres, so the same draws
# describe the same continuous object at every resolution.  Every random
# number comes from the ``numpy.random.Generator`` passed in, in a fixed order.

__all__ += [
    "rectangles_image",
    "random_rectangle_parameters",
    "polygon_mask",
    "polygons_image",
    "random_polygon_parameters",
    "smooth_texture",
    "add_lesions",
]

#: Polygons: count ``min(Poisson(_POLY_MEAN_COUNT), _POLY_MAX_COUNT)``.
_POLY_MEAN_COUNT = 20
_POLY_MAX_COUNT = 40
_POLY_VERTICES = (3, 8)
_POLY_RADIUS = (0.05, 0.5)
_POLY_STAR_FACTOR = (0.3, 1.0)
_POLY_ANGLE_JITTER = 0.25  # fraction of the sector 2 pi / m

#: Textured ellipses: plane-wave texture and modulation amplitude.
_TEXTURE_WAVES = 32
_TEXTURE_FREQUENCY = (0.5, 4.0)  # cycles per unit of normalised length
_TEXTURE_AMPLITUDE = 0.3  # std of the log of the modulation factor

#: Lesions: count, radius (pixels at size 128), contrast above the image maximum.
_LESION_COUNT = (1, 5)
_LESION_RADIUS_PX128 = (1.5, 4.0)
_LESION_CONTRAST = (0.2, 0.6)


def _square_size(size) -> int:
    if isinstance(size, (bool, np.bool_)) or not isinstance(size, (int, np.integer)) or size < 1:
        raise ValueError(f"size must be a positive int, got {size!r}")
    return int(size)


def _as_torch(image: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(np.clip(image, 0.0, 1.0), dtype=np.float64))


# -- rectangles -----------------------------------------------------------------


def rectangles_image(rectangles, size) -> np.ndarray:
    """Rasterise a sum of rotated rectangles at the pixel centres of a square image.

    Parameters
    ----------
    rectangles : array_like, shape (n, 6)
        Rows ``(value, half_width_x, half_width_y, centre_x, centre_y,
        rotation)`` in normalised coordinates, rotation in radians
        counter-clockwise: the layout of the ellipse rows of
        :func:`tomolearn.phantoms.ellipses_image`, with half side lengths in
        place of semi-axes.  A pixel centre ``p`` is inside when
        ``|u| <= half_width_x`` and ``|v| <= half_width_y`` with ``(u, v)``
        the offset ``p - centre`` rotated by ``-rotation``.
    size : int

    Returns
    -------
    numpy.ndarray, shape (size, size), float64
        Sum over the rectangles of ``value`` times their indicator.
    """
    size = _square_size(size)
    rects = np.asarray(rectangles, dtype=np.float64)
    if rects.ndim == 1 and rects.size == 0:
        rects = rects.reshape(0, 6)
    if rects.ndim != 2 or rects.shape[1] != 6:
        raise ValueError("rectangles must have shape (n, 6) with rows (value, half_width_x, "
                         f"half_width_y, centre_x, centre_y, rotation), got shape {rects.shape}")
    if not np.all(np.isfinite(rects)) or np.any(rects[:, 1:3] <= 0):
        raise ValueError("rectangles must be finite with positive half widths")
    shape = (size, size)
    xs, ys = phantoms.pixel_centres(shape)
    image = np.zeros(shape, dtype=np.float64)
    for value, a, b, x0, y0, theta in rects:
        if value == 0.0:
            continue
        c, s = np.cos(theta), np.sin(theta)
        half_x = a * abs(c) + b * abs(s)
        half_y = a * abs(s) + b * abs(c)
        i0, i1, j0, j1 = phantoms.bounding_box(x0 - half_x, x0 + half_x, y0 - half_y, y0 + half_y, shape)
        if i0 >= i1 or j0 >= j1:
            continue
        dx = xs[j0:j1][None, :] - x0
        dy = ys[i0:i1][:, None] - y0
        u = dx * c + dy * s
        v = -dx * s + dy * c
        image[i0:i1, j0:j1][(np.abs(u) <= a) & (np.abs(v) <= b)] += value
    return image


def random_rectangle_parameters(rng: np.random.Generator, *, rotate: bool = True) -> np.ndarray:
    """Rectangles of one "rectangles" phantom: DIVal's ellipse draws, read as rectangles.

    The parameters are exactly those of
    :func:`tomolearn.phantoms.random_ellipse_parameters` (same draws, same
    order): ``n = min(Poisson(40), 70)``, value ``U(-0.4, 1.0)``, half widths
    ``0.2 * Exponential(1)`` each, centres ``U(-0.9, 0.9)`` each, rotation
    ``U(0, 2 pi)``.  With ``rotate=False`` the rotations are set to 0 after
    drawing (the generator advances identically), giving axis-aligned
    rectangles.

    Returns
    -------
    numpy.ndarray, shape (n, 6)
        Rows for :func:`rectangles_image`.
    """
    rects = phantoms.random_ellipse_parameters(rng)
    if not rotate:
        rects[:, 5] = 0.0
    return rects


@register_family("rectangles")
def rectangles(rng: np.random.Generator, size: int) -> torch.Tensor:
    """Random rotated rectangles, DIVal-style.

    Distribution: the ellipse parameters of DIVal's benchmark
    (:func:`random_rectangle_parameters`: ``n = min(Poisson(40), 70)``,
    value ``U(-0.4, 1.0)``, half widths ``0.2 * Exponential(1)``, centres
    ``U(-0.9, 0.9)^2``, rotation ``U(0, 2 pi)``) used as rectangles (half
    side lengths instead of semi-axes), rasterised at pixel centres
    (:func:`rectangles_image`), overlapping rectangles add, then
    :func:`tomolearn.phantoms.normalize_foreground` (foreground shifted by the
    minimum and divided by the maximum, background 0).  Piecewise constant
    with straight edges and corners, which ellipses never have.
    """
    size = _square_size(size)
    return _as_torch(phantoms.normalize_foreground(
        rectangles_image(random_rectangle_parameters(rng), size)))


# -- polygons -------------------------------------------------------------------


def polygon_mask(vertices, size) -> np.ndarray:
    """Pixel centres inside a polygon (even-odd rule), square image.

    Parameters
    ----------
    vertices : array_like, shape (m, 2)
        Vertices ``(x, y)`` in normalised coordinates, in order around the
        polygon (either orientation); the polygon is closed implicitly.
        ``m >= 3``.
    size : int

    Returns
    -------
    numpy.ndarray of bool, shape (size, size)
        True where the pixel centre lies inside.  A point is inside when a
        ray from it towards ``+x`` crosses the boundary an odd number of
        times (edges are half-open in ``y``, so a vertex on the ray counts
        once).  For simple polygons this is the usual interior.  Evaluated
        for all pixels of the bounding box and all edges at once.
    """
    size = _square_size(size)
    v = np.asarray(vertices, dtype=np.float64)
    if v.ndim != 2 or v.shape[1] != 2 or v.shape[0] < 3:
        raise ValueError(f"vertices must have shape (m, 2) with m >= 3, got shape {v.shape}")
    if not np.all(np.isfinite(v)):
        raise ValueError("vertices must be finite")
    shape = (size, size)
    mask = np.zeros(shape, dtype=bool)
    i0, i1, j0, j1 = phantoms.bounding_box(v[:, 0].min(), v[:, 0].max(), v[:, 1].min(), v[:, 1].max(), shape)
    if i0 >= i1 or j0 >= j1:
        return mask
    xs, ys = phantoms.pixel_centres(shape)
    px = xs[j0:j1][None, None, :]                      # (1, 1, w)
    py = ys[i0:i1][None, :, None]                      # (1, h, 1)
    x1, y1 = v[:, 0][:, None, None], v[:, 1][:, None, None]  # (m, 1, 1)
    w2 = np.roll(v, -1, axis=0)
    x2, y2 = w2[:, 0][:, None, None], w2[:, 1][:, None, None]
    straddles = (y1 > py) != (y2 > py)                 # (m, h, 1); False for horizontal edges
    dy = np.where(y2 != y1, y2 - y1, 1.0)
    x_cross = x1 + (py - y1) * (x2 - x1) / dy          # (m, h, 1)
    crossings = np.count_nonzero(straddles & (px < x_cross), axis=0)  # (h, w)
    mask[i0:i1, j0:j1] = crossings % 2 == 1
    return mask


def random_polygon_parameters(rng: np.random.Generator):
    """Polygons of one "polygons" phantom.

    Draws, in this order (``n`` polygons, vectorised)::

        n         = min(Poisson(20), 40)
        value     ~ U(-0.4, 1.0)                (n)
        centre    ~ U(-0.9, 0.9)^2              (n, 2)
        radius R  ~ U(0.05, 0.5)                (n)    circumradius, normalised units
        m         ~ uniform on {3, ..., 8}      (n)    number of vertices
        star      ~ Bernoulli(1/2)              (n)    convex if False
        phase     ~ U(0, 2 pi)                  (n)
        jitter    ~ U(-0.25, 0.25)              (n, 8) (first m used)
        factor    ~ U(0.3, 1.0)                 (n, 8) (first m used, star only)

    Vertex ``k`` of a polygon is at angle ``phase + 2 pi (k + jitter_k) / m``
    around its centre, at distance ``R`` (convex: the vertices lie on a
    circle in angular order) or ``R * factor_k`` (star-shaped with respect to
    the centre: consecutive angles differ by less than ``pi``).

    Returns
    -------
    list of (float, numpy.ndarray of shape (m, 2))
        ``(value, vertices)`` per polygon, vertices counter-clockwise.
    """
    n = min(int(rng.poisson(_POLY_MEAN_COUNT)), _POLY_MAX_COUNT)
    m_max = _POLY_VERTICES[1]
    value = rng.uniform(-0.4, 1.0, n)
    centre = rng.uniform(-0.9, 0.9, (n, 2))
    radius = rng.uniform(_POLY_RADIUS[0], _POLY_RADIUS[1], n)
    n_vertices = rng.integers(_POLY_VERTICES[0], m_max + 1, n)
    star = rng.random(n) < 0.5
    phase = rng.uniform(0.0, 2.0 * np.pi, n)
    jitter = rng.uniform(-_POLY_ANGLE_JITTER, _POLY_ANGLE_JITTER, (n, m_max))
    factor = rng.uniform(_POLY_STAR_FACTOR[0], _POLY_STAR_FACTOR[1], (n, m_max))
    polygons = []
    for k in range(n):
        m = int(n_vertices[k])
        t = phase[k] + 2.0 * np.pi * (np.arange(m) + jitter[k, :m]) / m
        r = radius[k] * (factor[k, :m] if star[k] else np.ones(m))
        verts = centre[k] + np.stack((r * np.cos(t), r * np.sin(t)), axis=1)
        polygons.append((float(value[k]), verts))
    return polygons


def polygons_image(polygons, size) -> np.ndarray:
    """Sum of ``value * polygon_mask(vertices, size)`` over ``(value, vertices)`` pairs."""
    size = _square_size(size)
    image = np.zeros((size, size), dtype=np.float64)
    for value, verts in polygons:
        if value != 0.0:
            image += value * polygon_mask(verts, size)
    return image


@register_family("polygons")
def polygons(rng: np.random.Generator, size: int) -> torch.Tensor:
    """Random convex and star-shaped polygons with 3-8 vertices.

    Distribution: :func:`random_polygon_parameters` (``min(Poisson(20), 40)``
    polygons, value ``U(-0.4, 1.0)``, centre ``U(-0.9, 0.9)^2``, circumradius
    ``U(0.05, 0.5)``, ``m`` uniform on 3..8 vertices, convex or star-shaped
    with probability 1/2 each), rasterised by the even-odd point-in-polygon
    test at pixel centres (:func:`polygon_mask`), overlapping polygons add,
    then :func:`tomolearn.phantoms.normalize_foreground` (background 0,
    values in [0, 1]).  Piecewise constant with straight edges, sharp convex
    and (star) reflex corners.
    """
    size = _square_size(size)
    return _as_torch(phantoms.normalize_foreground(
        polygons_image(random_polygon_parameters(rng), size)))


# -- textured ellipses ------------------------------------------------------------


def smooth_texture(rng: np.random.Generator, size: int, n_waves: int = _TEXTURE_WAVES,
                   frequency_range=_TEXTURE_FREQUENCY) -> np.ndarray:
    """Band-limited random field: a normalised sum of random plane waves.

    ``T(p) = sqrt(2 / J) * sum_j cos(2 pi f_j . p + phi_j)`` at the pixel
    centres ``p`` (normalised coordinates), with ``J = n_waves`` waves drawn
    in this order: ``|f_j| ~ U(frequency_range)`` cycles per unit length
    (default 0.5-4, i.e. wavelengths 0.25-2, a quarter of the image width to
    the whole width), direction ``U(0, 2 pi)``, phase ``phi_j ~ U(0, 2 pi)``.
    Pointwise mean 0 and variance 1 over the draws; the same draws give the
    same continuous field at every ``size``.

    Returns
    -------
    numpy.ndarray, shape (size, size), float64
    """
    size = _square_size(size)
    lo, hi = frequency_range
    rho = rng.uniform(lo, hi, n_waves)
    direction = rng.uniform(0.0, 2.0 * np.pi, n_waves)
    phi = rng.uniform(0.0, 2.0 * np.pi, n_waves)
    xs, ys = phantoms.pixel_centres((size, size))
    # cos(ax + ay) = cos ax cos ay - sin ax sin ay, as two (H, J) @ (J, W) products.
    ax = 2.0 * np.pi * (rho * np.cos(direction))[:, None] * xs[None, :] + phi[:, None]  # (J, W)
    ay = 2.0 * np.pi * (rho * np.sin(direction))[:, None] * ys[None, :]                 # (J, H)
    field = np.cos(ay).T @ np.cos(ax) - np.sin(ay).T @ np.sin(ax)
    return np.sqrt(2.0 / n_waves) * field


@register_family("textured-ellipses")
def textured_ellipses(rng: np.random.Generator, size: int) -> torch.Tensor:
    """DIVal ellipses whose interiors carry a smooth multiplicative texture.

    Distribution: ``x`` = the DIVal ellipses phantom (same draws as the
    "ellipses" family, so the same generator state gives the same
    ellipses), then a texture ``T`` = :func:`smooth_texture` (32 random
    plane waves, 0.5-4 cycles per unit length, pointwise mean 0 and variance
    1), and::

        y = x * exp(0.3 * T)     # log-normal modulation: about +-30 % (one std) of the value
        y = y / max(y)           # back to [0, 1] (max 1); background and support unchanged

    Not piecewise constant: every ellipse interior varies smoothly.  The
    factor ``exp(0.3 T)`` (rather than ``1 + 0.3 T``) stays positive, so the
    texture never punches holes into the foreground.
    """
    size = _square_size(size)
    base = phantoms.normalize_foreground(
        phantoms.ellipses_image(phantoms.random_ellipse_parameters(rng), size))
    texture = smooth_texture(rng, size)
    image = base * np.exp(_TEXTURE_AMPLITUDE * texture)
    peak = image.max()
    if peak > 0:
        image = image / peak
    return _as_torch(image)


# -- lesions ------------------------------------------------------------------------


def add_lesions(image, rng: np.random.Generator):
    """Add 1-5 small discs brighter than everything in ``image`` and renormalise.

    Draws, in this order (``m`` lesions, vectorised)::

        m        ~ uniform on {1, ..., 5}
        pixel    ~ uniform among the foreground pixels (image > 0), row-major order;
                   among all pixels if there is no foreground                 (m)
        jitter   ~ U(-0.5, 0.5)^2 pixels, added to that pixel's centre          (m, 2)
        radius   ~ U(1.5, 4.0) * W / 128 pixels, i.e. U(1.5, 4) / 64 in
                   normalised units (same physical size at every resolution)  (m)
        contrast ~ U(0.2, 0.6)                                                  (m)

    Lesion ``k`` is the closed disc of that radius around that centre
    (rasterised at pixel centres, always at least one pixel) with value
    ``max(image) + contrast_k``: above the largest value of the image, hence
    above the local maximum around it.  Lesion pixels take the largest
    lesion value covering them; then the whole image is divided by its
    maximum, so the brightest lesion is 1 and the background stays 0.

    Parameters
    ----------
    image : numpy.ndarray, shape (H, W)
        Values in [0, 1] (e.g. an ellipses phantom).
    rng : numpy.random.Generator

    Returns
    -------
    image : numpy.ndarray, shape (H, W), float64
        With lesions, values in [0, 1].
    lesions : numpy.ndarray, shape (m, 4)
        Rows ``(centre_x, centre_y, radius, value)``: normalised coordinates
        and the value before the final division.
    """
    base = np.asarray(image, dtype=np.float64)
    if base.ndim != 2 or not np.all(np.isfinite(base)):
        raise ValueError(f"image must be a finite 2-D array, got shape {base.shape}")
    h, w = base.shape
    m = int(rng.integers(_LESION_COUNT[0], _LESION_COUNT[1] + 1))
    candidates = np.flatnonzero(base > 0)
    if candidates.size == 0:
        candidates = np.arange(h * w)
    pixel = candidates[rng.integers(0, candidates.size, m)]
    jitter = rng.uniform(-0.5, 0.5, (m, 2))
    radius_px = rng.uniform(_LESION_RADIUS_PX128[0], _LESION_RADIUS_PX128[1], m) * (w / 128.0)
    contrast = rng.uniform(_LESION_CONTRAST[0], _LESION_CONTRAST[1], m)

    rows, cols = np.divmod(pixel, w)
    xs, ys = phantoms.pixel_centres((h, w))
    cx = xs[cols] + 2.0 * jitter[:, 0] / w
    cy = ys[rows] - 2.0 * jitter[:, 1] / h
    radius = 2.0 * radius_px / w
    value = base.max() + contrast

    out = base.copy()
    for k in range(m):
        disc = phantoms.ellipses_image([[1.0, radius[k], radius[k] * w / h, cx[k], cy[k], 0.0]],
                                       (h, w)) > 0
        out[disc] = np.maximum(out[disc], value[k])
    out /= out.max()
    return out, np.stack((cx, cy, radius, value), axis=1)


@register_family("lesions")
def lesions(rng: np.random.Generator, size: int) -> torch.Tensor:
    """DIVal ellipses plus 1-5 small high-contrast discs inside the foreground.

    Distribution: the DIVal ellipses phantom (same draws as the "ellipses"
    family), then :func:`add_lesions`: ``m`` uniform on 1..5 discs of radius
    ``U(1.5, 4)`` pixels at size 128 (scaled with ``size``), centred at a
    uniformly chosen foreground pixel plus ``U(-0.5, 0.5)^2`` pixels, value
    ``1 + U(0.2, 0.6)`` (above the image maximum 1, hence above every local
    maximum), then divided by the maximum: the brightest lesion is 1, the
    ellipses lie in ``[0, 1 / 1.2]``, the background stays 0.
    """
    size = _square_size(size)
    base = phantoms.normalize_foreground(
        phantoms.ellipses_image(phantoms.random_ellipse_parameters(rng), size))
    image, _ = add_lesions(base, rng)
    return _as_torch(image)
