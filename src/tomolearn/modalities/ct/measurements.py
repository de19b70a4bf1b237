"""Real slices -> simulated measurements on a finer grid (no inverse crime)."""

from __future__ import annotations

import numpy as np
import torch

from ...data.io import resample
from .task import SimulationSpec, simulate

__all__ = ["real_measurement_pair"]


def real_measurement_pair(image, spec: SimulationSpec, generator=None):
    """A simulated measurement of one real slice, for a :class:`SimulationSpec`.

    The slice is resampled (:func:`resample`, area average when shrinking)
    to the ``spec.image_size`` square grid covering its field of view; a
    non-square slice is padded with 0 (air) to a centred square first, so
    pixels stay square.  That is the ground truth; the data are
    ``simulate(gt[None, None], spec, generator)``, which upsamples it
    bilinearly to ``spec.fine_size`` and projects with the fine operator
    (no inverse crime), then adds the spec's noise.

    Parameters
    ----------
    image : torch.Tensor or numpy.ndarray, shape (H, W) or (1, H, W)
        One slice with values in ``[0, 1]`` (e.g. :func:`slice_to_unit_range`
        of attenuation), any size.
    spec : SimulationSpec
    generator : torch.Generator or int, optional
        Noise generator (CPU), or a seed for one.

    Returns
    -------
    y : torch.Tensor, shape (1, n_angles, n_detectors), float32
        Measurements (line integrals in units of the reconstruction grid's
        pixel, plus noise).
    x : torch.Tensor, shape (1, image_size, image_size), float32
        Ground truth on the reconstruction grid.

    Raises
    ------
    TypeError, ValueError
        For a wrong type, shape, non-finite values or values outside
        ``[0, 1]`` (convert with :func:`slice_to_unit_range` first).
    """
    if not isinstance(spec, SimulationSpec):
        raise TypeError(f"spec must be a SimulationSpec, got {type(spec).__name__}")
    if isinstance(image, np.ndarray):
        image = torch.from_numpy(np.ascontiguousarray(image))
    if not isinstance(image, torch.Tensor):
        raise TypeError(f"image must be a torch.Tensor or numpy array, got {type(image).__name__}")
    if image.dim() == 3 and image.shape[0] == 1:
        image = image[0]
    if image.dim() != 2:
        raise ValueError(f"image must be one slice of shape (H, W) or (1, H, W), got "
                         f"{tuple(image.shape)}")
    img = image.detach().to(device="cpu", dtype=torch.float64)
    if not bool(torch.isfinite(img).all()):
        raise ValueError("image contains non-finite values (nan or inf)")
    lo, hi = float(img.min()), float(img.max())
    if lo < -1e-6 or hi > 1 + 1e-6:
        raise ValueError(f"image values must lie in [0, 1], got [{lo:.4g}, {hi:.4g}]; map "
                         "attenuation with slice_to_unit_range first")
    if isinstance(generator, (int, np.integer)) and not isinstance(generator, bool):
        generator = torch.Generator().manual_seed(int(generator))
    elif generator is not None and not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator, an int seed or None, got "
                        f"{type(generator).__name__}")
    n = spec.image_size
    H, W = img.shape
    side = max(H, W)
    gt = resample(img, (n, n), spacing=1.0, target_spacing=side / n, fill=0.0)
    y = simulate(gt[None, None], spec, generator)
    return y[0].to(torch.float32), gt[None].to(torch.float32)
