"""Property tests over random CT geometries: exact adjoint and agreeing backends."""

import math

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from tomolearn.ct import FanBeam2D, ParallelBeam2D, RayTransform


@st.composite
def geometries(draw):
    h, w = draw(st.integers(2, 12)), draw(st.integers(2, 12))
    pixel_size = draw(st.sampled_from([0.5, 1.0, 1.7]))
    n_angles = draw(st.integers(1, 9))
    angles = draw(st.lists(st.floats(-7, 7, allow_nan=False), min_size=n_angles, max_size=n_angles))
    n_det = draw(st.integers(1, 20))
    spacing = draw(st.floats(0.2, 3.0))
    offset = draw(st.floats(-3.0, 3.0))
    if draw(st.booleans()):
        g = ParallelBeam2D(angles=angles, n_detectors=n_det, detector_spacing=spacing,
                           detector_offset=offset)
    else:
        r = pixel_size * math.hypot(h, w) / 2
        g = FanBeam2D(angles=angles, n_detectors=n_det, detector_spacing=spacing,
                      detector_offset=offset, source_radius=r * draw(st.floats(1.05, 4.0)),
                      detector_radius=draw(st.floats(0.5, 30.0)))
    return g, (h, w), pixel_size


@settings(max_examples=60, deadline=None)
@given(geometries(), st.integers(0, 2**31 - 1))
def test_adjoint_exact_and_backends_agree(case, seed):
    g, shape, pixel_size = case
    sparse = RayTransform(g, shape, pixel_size=pixel_size, backend="sparse")
    free = RayTransform(g, shape, pixel_size=pixel_size, backend="matrix_free")
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn((2, 1) + shape, generator=gen, dtype=torch.float64)
    y = torch.randn((2, 1, g.n_angles, g.n_detectors), generator=gen, dtype=torch.float64)
    for op in (sparse, free):
        lhs = torch.dot(op(x).reshape(-1), y.reshape(-1))
        rhs = torch.dot(x.reshape(-1), op.adjoint(y).reshape(-1))
        assert abs(lhs - rhs) <= 1e-10 * (op(x).norm() * y.norm() + 1e-300)
    torch.testing.assert_close(sparse(x), free(x), rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(sparse.adjoint(y), free.adjoint(y), rtol=1e-10, atol=1e-10)
    # Non-negative weights: a non-negative image has non-negative line integrals.
    assert (sparse(x.abs()) >= 0).all()
