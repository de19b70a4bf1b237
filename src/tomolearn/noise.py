"""
noise.py - Measurement noise models for tomographic data.

All functions take batched torch tensors of shape ``(B, C, ...)`` (e.g.
sinograms ``(B, C, n_angles, n_detectors)``), return a new tensor of the same
shape, dtype and device, and draw their randomness from an optional
``torch.Generator`` (which must live on the data's device). The same
generator state gives the same bits.

Models
------
* :func:`gaussian` - additive white Gaussian noise with an absolute standard
  deviation, or one relative to the mean absolute value of each sample
  (DIVal's ``noise_type='white'`` with ``relative_stddev=True``).
* :func:`poisson_counts` - Poisson photon counts for given expected counts.
* :func:`poisson_log` - post-log data of a Beer-Lambert transmission
  measurement with Poisson counts, the LoDoPaB-CT protocol.

References
----------
.. [1] J. Leuschner, M. Schmidt, D. O. Baguer and P. Maass, "LoDoPaB-CT, a
       benchmark dataset for low-dose computed tomography reconstruction",
       Sci. Data 8, 109, 2021. :DOI:`10.1038/s41597-021-00893-z`;
       generation scripts in https://github.com/jleuschn/lodopab_tech_ref
       (``resimulate_observations.py``, ``create_dataset.py``).
.. [2] DIVal, ``dival/util/odl_utility.py`` (``apply_noise``) and
       ``dival/util/constants.py``, https://github.com/jleuschn/dival
"""

from __future__ import annotations

import math
import numbers

import torch

__all__ = [
    "MU_WATER",
    "MU_AIR",
    "MU_MAX",
    "gaussian",
    "poisson_counts",
    "poisson_log",
]

#: Linear attenuation coefficient of water used by LoDoPaB-CT, in 1/m.
MU_WATER = 20.0
#: Linear attenuation coefficient of air used by LoDoPaB-CT, in 1/m.
MU_AIR = 0.02
#: Attenuation of 3071 HU, in 1/m: ``3071 * (MU_WATER - MU_AIR) / 1000 + MU_WATER``
#: = 81.35858. LoDoPaB-CT images are attenuation maps divided by this value.
MU_MAX = 3071 * (MU_WATER - MU_AIR) / 1000 + MU_WATER


def _check_data(y, name="y"):
    if not isinstance(y, torch.Tensor):
        raise TypeError(f"`{name}` must be a torch.Tensor, got {type(y).__name__}")
    if not y.dtype.is_floating_point:
        raise TypeError(f"`{name}` must have a real floating dtype, got {y.dtype}")
    if y.ndim < 2:
        raise ValueError(
            f"`{name}` must be batched with shape (B, C, ...), got shape {tuple(y.shape)}"
        )
    if not bool(torch.isfinite(y).all()):
        raise ValueError(f"`{name}` contains non-finite values (nan or inf)")


def _check_generator(generator, y):
    if generator is None:
        return
    if not isinstance(generator, torch.Generator):
        raise TypeError(
            f"`generator` must be a torch.Generator or None, got {type(generator).__name__}"
        )
    if generator.device.type != y.device.type:
        raise ValueError(
            f"`generator` is on device {generator.device} but the data is on {y.device}; "
            "create the generator on the data's device"
        )


def _per_sample(param, name, y):
    """Validate a non-negative scalar or per-sample (B,) parameter.

    Returns a tensor broadcastable against ``y`` (shape ``(B, 1, ..., 1)``)
    or a Python float.
    """
    if isinstance(param, torch.Tensor):
        if param.ndim == 0:
            param = float(param)
        else:
            if param.shape != (y.shape[0],):
                raise ValueError(
                    f"`{name}` must be a scalar or a tensor of shape (B,) = ({y.shape[0]},), "
                    f"got shape {tuple(param.shape)}"
                )
            if not bool(torch.isfinite(param).all()) or bool((param < 0).any()):
                raise ValueError(f"`{name}` must be finite and >= 0, got {param}")
            return param.to(device=y.device, dtype=y.dtype).reshape(
                (-1,) + (1,) * (y.ndim - 1)
            )
    if isinstance(param, bool) or not isinstance(param, numbers.Real):
        raise TypeError(
            f"`{name}` must be a real number or a tensor of shape (B,), got {type(param).__name__}"
        )
    param = float(param)
    if not math.isfinite(param) or param < 0:
        raise ValueError(f"`{name}` must be finite and >= 0, got {param}")
    return param


def _positive_scalar(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"`{name}` must be a real number, got {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"`{name}` must be finite and > 0, got {value}")
    return value


def gaussian(y, std=None, relative=None, generator=None):
    """Add white Gaussian noise.

    ``y_noisy = y + sigma * n`` with ``n`` i.i.d. standard normal, where
    ``sigma = std`` or, with `relative`, ``sigma = relative * mean(|y_b|)``
    computed separately for every batch entry ``y_b`` over all of its other
    dimensions (DIVal: ``stddev *= np.mean(np.abs(x))`` applied to each
    observation, ``dival/util/odl_utility.py``, ``apply_noise``).

    Parameters
    ----------
    y : torch.Tensor, shape (B, C, ...)
        Clean data (real floating dtype, finite).
    std : float or torch.Tensor of shape (B,), optional
        Absolute noise standard deviation, in the units of `y`.
    relative : float or torch.Tensor of shape (B,), optional
        Noise standard deviation relative to the per-sample mean absolute
        value of `y` (e.g. 0.05 for DIVal's "5 % Gaussian noise").
        Exactly one of `std` and `relative` must be given.
    generator : torch.Generator, optional
        Generator on `y`'s device; None uses the global default generator.

    Returns
    -------
    y_noisy : torch.Tensor
        Same shape, dtype and device as `y`.

    Raises
    ------
    TypeError
        If `y` is not a floating tensor, or the parameters have wrong types.
    ValueError
        If `y` is not batched or not finite, both or neither of `std` and
        `relative` are given, they are negative / non-finite, or the
        generator lives on another device.
    """
    _check_data(y)
    _check_generator(generator, y)
    if (std is None) == (relative is None):
        raise ValueError(
            "exactly one of `std` (absolute) and `relative` must be given, got "
            f"std={std!r}, relative={relative!r}"
        )
    if std is not None:
        sigma = _per_sample(std, "std", y)
    else:
        rel = _per_sample(relative, "relative", y)
        dims = tuple(range(1, y.ndim))
        sigma = rel * y.abs().mean(dim=dims, keepdim=True)
    noise = torch.randn(y.shape, generator=generator, dtype=y.dtype, device=y.device)
    return y + sigma * noise


def poisson_counts(expected, generator=None):
    """Draw Poisson photon counts.

    Parameters
    ----------
    expected : torch.Tensor, shape (B, C, ...)
        Expected counts (Poisson rates), finite and >= 0; real floating
        dtype.
    generator : torch.Generator, optional
        Generator on `expected`'s device.

    Returns
    -------
    counts : torch.Tensor
        Integer-valued counts with the dtype, shape and device of
        `expected`.

    Raises
    ------
    TypeError, ValueError
        For a non-floating, unbatched, non-finite or negative input, or a
        generator on another device.
    """
    _check_data(expected, "expected")
    _check_generator(generator, expected)
    if bool((expected < 0).any()):
        raise ValueError(
            f"`expected` counts must be >= 0, got minimum {float(expected.min())}"
        )
    return torch.poisson(expected, generator=generator)


def poisson_log(
    y,
    photons_per_pixel=4096,
    mu_max=MU_MAX,
    generator=None,
    min_photon_count=0.1,
):
    """Post-log transmission data with Poisson noise (LoDoPaB-CT protocol).

    `y` are line integrals of an image normalised to ``[0, 1]`` whose
    physical attenuation (1/m) is ``mu_max`` times the image; line integrals
    are taken with lengths in metres, so ``mu_max * y`` is dimensionless.
    Following LoDoPaB-CT (``lodopab_tech_ref/resimulate_observations.py``)::

        expected = N0 * exp(-mu_max * y)          # Beer-Lambert, N0 photons
        counts   ~ Poisson(expected)
        counts   = max(counts, 0.1)               # zero counts -> 0.1
        y_noisy  = -log(counts / N0) / mu_max

    (LoDoPaB writes the clamp as ``max(counts / N0, 0.1 / N0)``.)

    Parameters
    ----------
    y : torch.Tensor, shape (B, C, ...)
        Noise-free normalised line integrals (finite, real floating dtype).
    photons_per_pixel : float, optional
        Mean photon count ``N0`` per detector pixel without attenuation.
        LoDoPaB-CT uses 4096 (default).
    mu_max : float, optional
        Attenuation (1/m) that corresponds to image value 1. Default
        :data:`MU_MAX` = 81.35858 (3071 HU), as in LoDoPaB-CT.
    generator : torch.Generator, optional
        Generator on `y`'s device.
    min_photon_count : float, optional
        Replacement for a count of zero, in ``(0, 1]``. LoDoPaB-CT uses 0.1
        (default), which caps the data at ``log(N0 / 0.1) / mu_max``
        (0.13054 for N0 = 4096).

    Returns
    -------
    y_noisy : torch.Tensor
        Noisy post-log data, same shape, dtype and device as `y`.

    Raises
    ------
    TypeError, ValueError
        For a non-floating, unbatched or non-finite `y`, non-positive or
        non-finite `photons_per_pixel` / `mu_max`, `min_photon_count` outside
        ``(0, 1]``, or a generator on another device.

    Notes
    -----
    At high counts ``y_noisy`` is approximately Gaussian with mean ``y`` and
    standard deviation ``1 / (mu_max * sqrt(N0 * exp(-mu_max * y)))``.
    """
    _check_data(y)
    _check_generator(generator, y)
    n0 = _positive_scalar(photons_per_pixel, "photons_per_pixel")
    mu = _positive_scalar(mu_max, "mu_max")
    floor = _positive_scalar(min_photon_count, "min_photon_count")
    if floor > 1.0:
        raise ValueError(
            "`min_photon_count` must be in (0, 1] so that only zero counts are "
            f"replaced, got {floor}"
        )
    expected = n0 * torch.exp(-mu * y)
    counts = torch.poisson(expected, generator=generator)
    counts = counts.clamp_min(floor)
    return torch.log(counts / n0) / (-mu)
