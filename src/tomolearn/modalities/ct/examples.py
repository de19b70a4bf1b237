"""Small CT operators registered for the shared operator battery (tiny sizes)."""

from __future__ import annotations

import numpy as np

from ...operators import register_example
from .geometry import FanBeam2D, ParallelBeam2D
from .ray_transform import RayTransform


@register_example("ct.parallel.sparse")
def _example_parallel_sparse():
    g = ParallelBeam2D(n_angles=5, n_detectors=9, detector_spacing=0.9)
    return RayTransform(g, image_shape=(6, 7), backend="sparse")


@register_example("ct.parallel.matrix_free")
def _example_parallel_matrix_free():
    g = ParallelBeam2D(n_angles=5, n_detectors=9, detector_spacing=0.9)
    return RayTransform(g, image_shape=(6, 7), backend="matrix_free")


@register_example("ct.fan.sparse")
def _example_fan_sparse():
    g = FanBeam2D(n_angles=6, n_detectors=11, source_radius=12.0, detector_radius=8.0,
                  detector_spacing=1.3, detector_offset=0.4)
    return RayTransform(g, image_shape=(7, 6), pixel_size=1.1, backend="sparse")


@register_example("ct.fan.matrix_free")
def _example_fan_matrix_free():
    g = FanBeam2D(n_angles=6, n_detectors=11, source_radius=12.0, detector_radius=8.0,
                  detector_spacing=1.3, detector_offset=0.4)
    return RayTransform(g, image_shape=(7, 6), pixel_size=1.1, backend="matrix_free")


@register_example("ct.parallel.limited-angle-composed")
def _example_composed():
    g = ParallelBeam2D(angles=np.linspace(0.1, 2.0, 4), n_detectors=8)
    a = RayTransform(g, image_shape=(5, 5), backend="sparse")
    return a.T @ a - 0.3 * a.T @ a


@register_example("ct.parallel.sparse.quarter-turn-symmetric")
def _example_parallel_symmetric():
    g = ParallelBeam2D(n_angles=6, n_detectors=10, detector_spacing=0.95, detector_offset=0.2)
    return RayTransform(g, image_shape=(6, 6), backend="sparse")
