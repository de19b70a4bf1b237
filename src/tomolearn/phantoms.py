"""
phantoms.py - Analytic ellipse phantoms on a pixel grid.

Ellipse phantoms for computed tomography: a rasteriser for sums of ellipses,
the (modified) Shepp-Logan head phantom, and the random-ellipses phantom of
the DIVal "ellipses" benchmark.

Image convention
----------------
Images are arrays of shape ``(H, W)`` = ``(rows, cols)``. Row 0 is the *top*
of the image, the column index increases with ``x``. The image covers the
normalised square ``[-1, 1] x [-1, 1]``: ``x = -1`` is the left edge of the
leftmost pixel column, ``x = +1`` the right edge of the rightmost one,
``y = +1`` the top edge of row 0 and ``y = -1`` the bottom edge of row
``H - 1``. The centre of pixel ``(i, j)`` is therefore at::

    x_j = (2 j + 1) / W - 1        y_i = 1 - (2 i + 1) / H

Ellipse parameters are rows ``(value, semi_axis_x, semi_axis_y, centre_x,
centre_y, rotation)`` in these normalised coordinates, with ``rotation`` in
radians, counter-clockwise in the x-y plane (``y`` pointing up), exactly as
in ODL's ``odl.phantom.ellipsoid_phantom``: a pixel centre ``p`` is inside
the ellipse when::

    u = (p_x - c_x) cos(t) + (p_y - c_y) sin(t)
    v = -(p_x - c_x) sin(t) + (p_y - c_y) cos(t)
    (u / a)**2 + (v / b)**2 <= 1

(ODL ``odl/phantom/geometric.py``, ``_ellipse_phantom_2d``: rotation matrix
``[[cos, sin], [-sin, cos]]`` applied to the offset of the grid point,
inclusion ``radius <= 1`` at grid points, i.e. at pixel centres, and
overlapping ellipses add.)

Differences from ODL worth knowing
----------------------------------
* ODL maps the *first and last pixel centres* (``space.grid.min_pt`` /
  ``max_pt``) to -1 and +1, so its ``[-1, 1]`` square is ``(N - 1) / N``
  times the image extent and slightly depends on the resolution. Here the
  pixel *edges* map to -1 and +1, so the same ellipse parameters describe
  the same physical object at every resolution (needed to rasterise one set
  of ellipses at, e.g., 128 x 128 and 400 x 400). For N = 128 the two
  conventions differ by a factor 127/128 in scale.
* ODL arrays are indexed ``[x_index, y_index]`` with ``y`` increasing with
  the second index; in the convention here ``image == np.rot90(odl_array)``
  (up to the scale difference above).

References
----------
.. [1] L. A. Shepp and B. F. Logan, "The Fourier reconstruction of a head
       section", IEEE Trans. Nucl. Sci. 21(3), 21-43, 1974.
       :DOI:`10.1109/TNS.1974.6499235`
.. [2] P. Toft, "The Radon Transform - Theory and Implementation", PhD
       thesis, Technical University of Denmark, 1996 (modified, higher
       contrast Shepp-Logan intensities).
.. [3] D. Otero Baguer, J. Leuschner and M. Schmidt, "Computed tomography
       reconstruction using deep image prior and learned reconstruction
       methods", Inverse Problems 36(9), 094004, 2020.
       :DOI:`10.1088/1361-6420/aba415` (DIVal "ellipses" benchmark; generator
       in DIVal's ``dival/datasets/ellipses_dataset.py``,
       https://github.com/jleuschn/dival).
.. [4] ODL, ``odl/phantom/geometric.py`` and ``odl/phantom/transmission.py``,
       https://github.com/odlgroup/odl
"""

from __future__ import annotations

import numbers

import numpy as np
import torch

__all__ = [
    "ellipses_image",
    "shepp_logan_ellipses",
    "shepp_logan",
    "random_ellipse_parameters",
    "normalize_foreground",
    "random_ellipses",
]

# Parameters of the DIVal ellipses generator (dival/datasets/ellipses_dataset.py,
# EllipsesDataset.generator, dival >= 0.5).
_DIVAL_MAX_N_ELLIPSES = 70
_DIVAL_POISSON_MEAN = 40
_DIVAL_VALUE_RANGE = (-0.4, 1.0)
_DIVAL_AXIS_SCALE = 0.2
_DIVAL_CENTRE_RANGE = (-0.9, 0.9)


def _parse_shape(shape, name="shape"):
    """Return ``(H, W)`` from an int or a pair of ints, validating it."""
    if isinstance(shape, (bool, np.bool_)):
        raise TypeError(f"`{name}` must be an int or a pair of ints (H, W), got {shape!r}")
    if isinstance(shape, numbers.Integral):
        shape = (int(shape), int(shape))
    try:
        dims = tuple(shape)
    except TypeError:
        raise TypeError(
            f"`{name}` must be an int or a pair of ints (H, W), got {type(shape).__name__}"
        ) from None
    if len(dims) != 2 or not all(
        isinstance(d, numbers.Integral) and not isinstance(d, (bool, np.bool_)) for d in dims
    ):
        raise TypeError(f"`{name}` must be an int or a pair of ints (H, W), got {shape!r}")
    h, w = int(dims[0]), int(dims[1])
    if h < 1 or w < 1:
        raise ValueError(f"`{name}` must be positive, got {(h, w)}")
    return h, w


def _check_ellipses(ellipses):
    """Return ``ellipses`` as a float64 (n, 6) array, validating it."""
    try:
        arr = np.asarray(ellipses, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(
            "`ellipses` must be array-like of shape (n, 6) with rows "
            "(value, semi_axis_x, semi_axis_y, centre_x, centre_y, rotation)"
        ) from None
    if arr.ndim == 1 and arr.size == 0:
        arr = arr.reshape(0, 6)
    if arr.ndim != 2 or arr.shape[1] != 6:
        raise ValueError(
            "`ellipses` must have shape (n, 6) with rows (value, semi_axis_x, "
            f"semi_axis_y, centre_x, centre_y, rotation), got shape {arr.shape}"
        )
    if not np.all(np.isfinite(arr)):
        raise ValueError("`ellipses` must contain only finite numbers")
    if np.any(arr[:, 1:3] <= 0):
        bad = np.argwhere(arr[:, 1:3] <= 0)[0, 0]
        raise ValueError(
            f"semi-axes must be > 0, got {tuple(arr[bad, 1:3])} in row {bad} of `ellipses`"
        )
    return arr


def pixel_centres(shape):
    """Normalised coordinates of the pixel centres: x of every column, y of every row (top = +1)."""
    h, w = shape
    xs = (2.0 * np.arange(w) + 1.0) / w - 1.0
    ys = 1.0 - (2.0 * np.arange(h) + 1.0) / h
    return xs, ys


def bounding_box(lo_x, hi_x, lo_y, hi_y, shape):
    """Row and column index ranges ``(i0, i1, j0, j1)`` covering [lo_x, hi_x] x [lo_y, hi_y].

    Normalised coordinates; a one-pixel safety margin, clipped to the image.
    """
    h, w = shape
    j0 = max(int(np.floor((lo_x + 1.0) * w / 2.0 - 0.5)) - 1, 0)
    j1 = min(int(np.ceil((hi_x + 1.0) * w / 2.0 - 0.5)) + 2, w)
    i0 = max(int(np.floor((1.0 - hi_y) * h / 2.0 - 0.5)) - 1, 0)
    i1 = min(int(np.ceil((1.0 - lo_y) * h / 2.0 - 0.5)) + 2, h)
    return i0, i1, j0, j1


def ellipses_image(ellipses, shape):
    """Rasterise a sum of ellipses at the pixel centres of an image.

    Parameters
    ----------
    ellipses : array_like, shape (n, 6)
        One row per ellipse: ``(value, semi_axis_x, semi_axis_y, centre_x,
        centre_y, rotation)``. Lengths and centres are in normalised image
        coordinates (the image covers ``[-1, 1]^2``, ``y`` points up), the
        rotation is in radians, counter-clockwise, as in ODL's
        ``ellipsoid_phantom``. ``n`` may be 0.
    shape : int or tuple of int
        Image shape ``(H, W)``; an int gives a square image.

    Returns
    -------
    image : numpy.ndarray, shape (H, W), float64
        Sum over the ellipses of ``value`` times the indicator of the pixel
        centre lying inside the (closed) ellipse. Row 0 is the top of the
        image.

    Raises
    ------
    TypeError
        If `ellipses` is not numeric or `shape` is not an int / pair of ints.
    ValueError
        If `ellipses` is not (n, 6), contains non-finite values or
        non-positive semi-axes, or `shape` is not positive.

    Notes
    -----
    A pixel belongs to an ellipse iff its centre satisfies
    ``(u / a)**2 + (v / b)**2 <= 1`` with ``(u, v)`` the centre's offset
    rotated by ``-rotation`` (see the module docstring); this is the
    inclusion rule of ODL's ``_ellipse_phantom_2d``. Non-square images map
    ``[-1, 1]`` to the width along ``x`` and to the height along ``y``.

    Only pixels in each ellipse's bounding box are evaluated, so the cost is
    proportional to the covered area.

    Examples
    --------
    >>> img = ellipses_image([[1.0, 0.5, 0.5, 0.0, 0.0, 0.0]], 4)
    >>> img
    array([[0., 0., 0., 0.],
           [0., 1., 1., 0.],
           [0., 1., 1., 0.],
           [0., 0., 0., 0.]])
    """
    h, w = _parse_shape(shape)
    ell = _check_ellipses(ellipses)
    image = np.zeros((h, w), dtype=np.float64)

    xs, ys = pixel_centres((h, w))

    for value, a, b, x0, y0, theta in ell:
        if value == 0.0:
            continue
        c, s = np.cos(theta), np.sin(theta)
        # Exact half-extents of the rotated ellipse's bounding box.
        half_x = np.sqrt((a * c) ** 2 + (b * s) ** 2)
        half_y = np.sqrt((a * s) ** 2 + (b * c) ** 2)
        # The inclusion test below is exact; the box only limits the work.
        i0, i1, j0, j1 = bounding_box(x0 - half_x, x0 + half_x, y0 - half_y, y0 + half_y, (h, w))
        if j0 >= j1 or i0 >= i1:
            continue
        dx = xs[j0:j1][None, :] - x0
        dy = ys[i0:i1][:, None] - y0
        u = dx * c + dy * s
        v = -dx * s + dy * c
        inside = u * u * (1.0 / (a * a)) + v * v * (1.0 / (b * b)) <= 1.0
        image[i0:i1, j0:j1][inside] += value
    return image


def shepp_logan_ellipses(modified=True):
    """Ellipse table of the 2-D Shepp-Logan phantom.

    Parameters
    ----------
    modified : bool, optional
        If True (default), return Toft's high-contrast intensities
        ``[1, -0.8, -0.2, -0.2, 0.1, ...]`` (phantom values in ``[0, 1]``);
        otherwise the original Shepp-Logan intensities
        ``[2, -0.98, -0.02, -0.02, 0.01, ...]``.

    Returns
    -------
    ellipses : numpy.ndarray, shape (10, 6), float64
        Rows ``(value, semi_axis_x, semi_axis_y, centre_x, centre_y,
        rotation)`` for :func:`ellipses_image`; the same table as ODL's
        ``shepp_logan_ellipsoids(2, modified)``.

    References
    ----------
    .. [1] Shepp and Logan (1974); Toft (1996); ODL
           ``odl/phantom/transmission.py``.
    """
    rad18 = np.deg2rad(18.0)
    table = np.array(
        [
            # value  a       b       x0      y0      rotation
            [2.00, 0.6900, 0.9200, 0.0000, 0.0000, 0.0],
            [-0.98, 0.6624, 0.8740, 0.0000, -0.0184, 0.0],
            [-0.02, 0.1100, 0.3100, 0.2200, 0.0000, -rad18],
            [-0.02, 0.1600, 0.4100, -0.2200, 0.0000, rad18],
            [0.01, 0.2100, 0.2500, 0.0000, 0.3500, 0.0],
            [0.01, 0.0460, 0.0460, 0.0000, 0.1000, 0.0],
            [0.01, 0.0460, 0.0460, 0.0000, -0.1000, 0.0],
            [0.01, 0.0460, 0.0230, -0.0800, -0.6050, 0.0],
            [0.01, 0.0230, 0.0230, 0.0000, -0.6060, 0.0],
            [0.01, 0.0230, 0.0460, 0.0600, -0.6050, 0.0],
        ],
        dtype=np.float64,
    )
    if modified:
        table[:, 0] = [1.0, -0.8, -0.2, -0.2, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1]
        # As in ODL: 1 - 0.8 - 0.2 is -5.6e-17 in floating point; nudge the
        # two ventricle intensities so the phantom is nowhere negative.
        table[2:4, 0] += 5e-17
    return table


def _check_torch_dtype(dtype):
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point or dtype.is_complex:
        raise TypeError(f"`dtype` must be a real floating torch.dtype, got {dtype!r}")


def shepp_logan(size, modified=True, dtype=torch.float64):
    """Shepp-Logan head phantom.

    Parameters
    ----------
    size : int or tuple of int
        Image shape ``(H, W)``; an int gives a square image.
    modified : bool, optional
        If True (default), Toft's modified, high-contrast phantom with values
        in ``[0, 1]`` (as ``odl.phantom.shepp_logan(space, modified=True)``
        and ``skimage.data.shepp_logan_phantom``). If False, the original
        Shepp-Logan intensities (values in ``[0, 2]``, brain tissue around
        1.02).
    dtype : torch.dtype, optional
        Floating dtype of the result. Default ``torch.float64``.

    Returns
    -------
    phantom : torch.Tensor, shape (H, W)
        The phantom on the CPU, upright: row 0 is the top of the head, the
        three small ellipses are near the bottom.

    See Also
    --------
    shepp_logan_ellipses : the ellipse table.
    ellipses_image : the rasteriser (pixel-centre sampling).
    """
    _check_torch_dtype(dtype)
    image = ellipses_image(shepp_logan_ellipses(modified=bool(modified)), size)
    return torch.from_numpy(image).to(dtype)


def _as_rng(rng):
    """Accept a Generator, a legacy RandomState, an int seed or None."""
    if isinstance(rng, (np.random.Generator, np.random.RandomState)):
        return rng
    if rng is None:
        return np.random.default_rng()
    if isinstance(rng, numbers.Integral) and not isinstance(rng, (bool, np.bool_)):
        if rng < 0:
            raise ValueError(f"an int seed for `rng` must be >= 0, got {rng}")
        return np.random.default_rng(int(rng))
    raise TypeError(
        "`rng` must be a numpy.random.Generator, a numpy.random.RandomState, "
        f"an int seed or None, got {type(rng).__name__}"
    )


def random_ellipse_parameters(rng=None):
    """Draw the ellipses of one DIVal "ellipses" benchmark phantom.

    Reproduces the draws of ``dival.datasets.EllipsesDataset.generator``
    (``dival/datasets/ellipses_dataset.py``), in the same order, for
    ``max_n_ellipse = 70``::

        value     ~ U(-0.4, 1.0)            (70 draws)
        axis_x    ~ 0.2 * Exponential(1)    (70 draws)
        axis_y    ~ 0.2 * Exponential(1)    (70 draws)
        centre_x  ~ U(-0.9, 0.9)            (70 draws)
        centre_y  ~ U(-0.9, 0.9)            (70 draws)
        rotation  ~ U(0, 2 pi)              (70 draws)
        n         = min(Poisson(40), 70)

    DIVal then zeroes the values of ellipses ``n..69`` (they contribute
    nothing); here the first ``n`` rows are returned. All 70 candidates are
    always drawn, so a `rng` stream stays aligned with DIVal's: passing
    ``numpy.random.RandomState(42)`` gives exactly the parameters of DIVal's
    ``fixed_seeds=True`` training sequence (DIVal uses
    ``RandomState(42 / 2 / 1)`` for train / validation / test).

    Parameters
    ----------
    rng : numpy.random.Generator, numpy.random.RandomState, int or None
        Source of randomness; an int is a seed for
        ``numpy.random.default_rng``; None draws fresh OS entropy.

    Returns
    -------
    ellipses : numpy.ndarray, shape (n, 6), float64
        Rows ``(value, semi_axis_x, semi_axis_y, centre_x, centre_y,
        rotation)`` in normalised coordinates, for :func:`ellipses_image`.
        ``0 <= n <= 70``.

    Notes
    -----
    The ellipse distribution is invariant under the axis swap / flip that
    relates ODL's ``[x, y]`` array layout to the ``(row, col)`` layout used
    here, so the phantoms are identically distributed to DIVal's (up to the
    ``(N - 1) / N`` scale of ODL's normalisation, see the module docstring).
    """
    r = _as_rng(rng)
    m = _DIVAL_MAX_N_ELLIPSES
    value = r.uniform(_DIVAL_VALUE_RANGE[0], _DIVAL_VALUE_RANGE[1], m)
    a1 = _DIVAL_AXIS_SCALE * r.exponential(1.0, m)
    a2 = _DIVAL_AXIS_SCALE * r.exponential(1.0, m)
    x = r.uniform(_DIVAL_CENTRE_RANGE[0], _DIVAL_CENTRE_RANGE[1], m)
    y = r.uniform(_DIVAL_CENTRE_RANGE[0], _DIVAL_CENTRE_RANGE[1], m)
    rot = r.uniform(0.0, 2.0 * np.pi, m)
    n = min(int(r.poisson(_DIVAL_POISSON_MEAN)), m)
    ellipses = np.stack((value, a1, a2, x, y, rot), axis=1)[:n]
    # An Exponential draw of exactly 0 (probability ~2**-53) would be a
    # degenerate ellipse that covers no area; drop it rather than fail.
    return ellipses[np.all(ellipses[:, 1:3] > 0, axis=1)]


def normalize_foreground(image, reference=None):
    """DIVal normalisation of an ellipse image to ``[0, 1]`` with zero background.

    DIVal (``EllipsesDataset.generator``) does, on the raw sum of ellipses::

        image[image != 0] -= min(image)   # shift the foreground only
        image /= max(image)

    so the background (pixels covered by no ellipse) stays exactly 0, the
    foreground is shifted so that the image minimum maps to 0, and the
    result is scaled so that its maximum is 1.

    Parameters
    ----------
    image : array_like, shape (H, W)
        Raw ellipse image (e.g. from :func:`ellipses_image`).
    reference : array_like, optional
        Image from which the shift and scale are computed (default:
        `image` itself, which is DIVal's behaviour). Passing the raw image
        of the *same ellipses* at another resolution applies one consistent
        intensity map to both; values of `image` may then leave ``[0, 1]``
        slightly.

    Returns
    -------
    normalized : numpy.ndarray, shape (H, W), float64

    Notes
    -----
    If the shifted reference is identically zero (e.g. no ellipse covers a
    pixel centre), DIVal would divide 0 by 0; here the result is all zeros.
    """
    img = np.array(image, dtype=np.float64)  # copy
    ref = img if reference is None else np.asarray(reference, dtype=np.float64)
    if img.ndim != 2 or ref.ndim != 2:
        raise ValueError(
            f"`image` and `reference` must be 2-D, got shapes {img.shape} and {ref.shape}"
        )
    if not (np.all(np.isfinite(img)) and np.all(np.isfinite(ref))):
        raise ValueError("`image` and `reference` must be finite")
    shift = ref.min()
    shifted_ref = np.where(ref != 0, ref - shift, 0.0)
    scale = shifted_ref.max()
    img[img != 0] -= shift
    if scale == 0.0:
        return np.zeros_like(img)
    img /= scale
    return img


def random_ellipses(size, rng=None, dtype=torch.float32):
    """Random-ellipses phantom of the DIVal "ellipses" benchmark.

    Draws the ellipses with :func:`random_ellipse_parameters`, rasterises
    them with :func:`ellipses_image` and normalises with
    :func:`normalize_foreground` (DIVal: foreground shifted by the image
    minimum, then everything divided by the maximum; background 0).

    Parameters
    ----------
    size : int or tuple of int
        Image shape ``(H, W)``; DIVal's benchmark uses 128.
    rng : numpy.random.Generator, numpy.random.RandomState, int or None
        Source of randomness (an int is a seed for
        ``numpy.random.default_rng``). The same seed gives the same bits.
    dtype : torch.dtype, optional
        Floating dtype of the result. Default ``torch.float32`` (DIVal's
        images are float32).

    Returns
    -------
    phantom : torch.Tensor, shape (H, W)
        CPU tensor with values in ``[0, 1]``, background exactly 0.

    Examples
    --------
    >>> x = random_ellipses(64, rng=0)
    >>> tuple(x.shape), float(x.min()) >= 0.0, float(x.max()) == 1.0
    ((64, 64), True, True)
    """
    _check_torch_dtype(dtype)
    shape = _parse_shape(size, "size")
    ellipses = random_ellipse_parameters(rng)
    image = normalize_foreground(ellipses_image(ellipses, shape))
    return torch.from_numpy(image).to(dtype)
