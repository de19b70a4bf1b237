"""Image families of real scans: the CT and MR slices that ship inside the pydicom package.

A package can ship only what its dependencies install, so these families vary one real image
by random rigid motion; they test how methods trained on synthetic families (ellipses, brains)
generalise to real anatomy.  Real series of your own are read with
:func:`tomolearn.data.io.read_dicom` (CT) or :func:`tomolearn.modalities.mri.read_mr_dicom`
(MR).
"""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path

import numpy as np
import pydicom
import torch
import torch.nn.functional as F

from .families import register_family
from .io import read_dicom, slice_to_unit_range

__all__ = ["pydicom_test_file"]


def pydicom_test_file(name: str) -> Path:
    """The path of a DICOM file installed with pydicom (``pydicom/data/test_files/NAME``).

    Raises
    ------
    FileNotFoundError
        If this pydicom installation lacks the file (the message names it).
    """
    path = Path(pydicom.__file__).parent / "data" / "test_files" / name
    if not path.exists():
        raise FileNotFoundError(f"pydicom's bundled test file {name} is missing ({path}); "
                                "reinstall pydicom")
    return path


@lru_cache(maxsize=None)
def _real_slice(kind: str) -> torch.Tensor:
    """The bundled real slice of ``kind`` ("ct" or "mr") in [0, 1], zero-padded to a square."""
    if kind == "ct":
        image = slice_to_unit_range(read_dicom(pydicom_test_file("CT_small.dcm"))[0])
    else:
        image = read_dicom(pydicom_test_file("examples_overlay.dcm"), units="rescaled")[0]
        image = image.clamp(min=0.0) / image.max()
    h, w = image.shape
    n = max(h, w)
    top, left = (n - h) // 2, (n - w) // 2
    image = F.pad(image.to(torch.float64), (left, n - w - left, top, n - h - top))
    return image


def _rigid_motion(image: torch.Tensor, rng: np.random.Generator, size: int,
                  antialias: bool) -> torch.Tensor:
    """Rotate ``image`` by U(0, 2 pi) about its centre, mirror it left-right with probability
    1/2 and resample it to ``size`` x ``size`` (bilinear, zero outside; with ``antialias`` an
    area average to ``size`` first when that shrinks the image)."""
    angle = rng.uniform(0.0, 2 * np.pi)
    flip = rng.uniform() < 0.5
    if flip:
        image = image.flip(-1)
    c, s = math.cos(angle), math.sin(angle)
    theta = torch.tensor([[[c, -s, 0.0], [s, c, 0.0]]], dtype=torch.float64)
    if antialias and size < image.shape[-1]:  # bilinear sampling alone would alias
        image = F.interpolate(image[None, None], size=(size, size), mode="area")[0, 0]
    grid = F.affine_grid(theta, (1, 1, size, size), align_corners=False)
    out = F.grid_sample(image[None, None], grid, mode="bilinear", padding_mode="zeros",
                        align_corners=False)[0, 0]
    return out.clamp(0.0, 1.0)


@register_family("ct-slice")
def ct_slice(rng: np.random.Generator, size: int) -> torch.Tensor:
    """A real CT slice under a random rigid motion.

    The source is the one real CT image installed with pydicom
    (``CT_small.dcm``: a vertebra, 128 x 128 pixels of 0.66 mm), converted to
    LoDoPaB's unit range (attenuation / mu_max, see
    :func:`tomolearn.data.io.slice_to_unit_range`; values about 0.03 to 0.53).
    Each draw rotates it by U(0, 2 pi) about the centre (bilinear, zero
    outside the rotated square), mirrors it left-right with probability 1/2
    and resamples it to ``size`` x ``size`` (bilinear only, as in the first release, so
    that the family's images stay as they were).  Variation is limited to these
    motions: one slice is all a package ships; real series can be read with
    :func:`tomolearn.data.io.read_dicom` and simulated with
    :func:`tomolearn.ct.real_measurement_pair`.
    """
    return _rigid_motion(_real_slice("ct"), rng, size, antialias=False)


@register_family("mr-slice")
def mr_slice(rng: np.random.Generator, size: int) -> torch.Tensor:
    """A real MR slice under a random rigid motion.

    The source is the largest real MR image installed with pydicom
    (``examples_overlay.dcm``: an axial T1-weighted gradient-echo slice of the abdomen,
    TR / TE 5.53 / 2.81 ms, 300 x 484 pixels of 0.72 mm; its overlay plane is not drawn),
    magnitude divided by its maximum and zero-padded to 484 x 484 (the body lies inside the
    original 300 rows).  Each draw rotates it by U(0, 2 pi) about the centre, mirrors it
    left-right with probability 1/2 and resamples it to ``size`` x ``size`` (area average,
    then bilinear).  For MRI models trained on the synthetic "brain" family this is real
    anatomy, another body part and another contrast: a strong shift.
    """
    return _rigid_motion(_real_slice("mr"), rng, size, antialias=True)
