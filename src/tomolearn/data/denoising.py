"""Denoising pairs of an image family: what plug-and-play denoisers train on.

``DenoisingDataset(family, split, task, sigma_range)[i]`` is ``(stacked, clean)``: ``clean``
the family's image ``i`` as the task draws it (``(1, N, N)``, complex for complex tasks, no
measurement simulated), ``stacked`` the denoiser's input ``(c + 1, P, P)`` float32 of
:func:`stack_noise_level`: the noisy image's real channels and a constant map of its noise
level ``sigma``, drawn uniformly from ``sigma_range`` per sample; with ``patch`` both are a
``P x P`` crop at a random position.  Gaussian noise of standard deviation ``sigma`` (per
real component of complex images).  A pure function of (family, task, split, index), like
:class:`~tomolearn.data.SimulatedDataset`.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from ..registry import Task
from .datasets import SPLIT_IDS, SimulatedDataset

__all__ = ["DenoisingDataset", "stack_noise_level"]


def stack_noise_level(x: torch.Tensor, sigma) -> torch.Tensor:
    """The denoiser's input: images ``x`` ``(B, 1, H, W)`` (real, or complex as real and
    imaginary channels) stacked with a constant map of ``sigma`` (a float or ``(B,)``):
    ``(B, c + 1, H, W)`` real."""
    if x.dim() != 4 or x.shape[1] != 1:
        raise ValueError(f"expected images of shape (B, 1, H, W), got {tuple(x.shape)}")
    h = torch.view_as_real(x[:, 0]).permute(0, 3, 1, 2) if x.is_complex() else x
    s = torch.as_tensor(sigma, dtype=h.dtype, device=h.device).reshape(-1)
    if s.numel() not in (1, x.shape[0]):
        raise ValueError(f"sigma must be one level or one per image ({x.shape[0]}), got "
                         f"{s.numel()}")
    level = s.expand(x.shape[0]).reshape(-1, 1, 1, 1).expand(-1, 1, *h.shape[-2:])
    return torch.cat([h, level], dim=1)


class DenoisingDataset(Dataset):
    """Noisy / clean pairs of ``family`` images drawn as ``spec`` draws them.

    Parameters
    ----------
    family, split, spec, size
        As :class:`~tomolearn.data.SimulatedDataset` (the images are its ground truths).
    sigma_range : (float, float)
        Noise levels, uniform per sample (image units).
    patch : int, optional
        Side of a random square crop (default: the whole image).
    """

    def __init__(self, family: str, split: str, spec: Task, size: Optional[int] = None,
                 sigma_range: Sequence[float] = (0.0, 0.2), patch: Optional[int] = None):
        self.images = SimulatedDataset(family, split, spec, size=size)
        lo, hi = (float(s) for s in sigma_range)
        if not (math.isfinite(lo) and math.isfinite(hi) and 0 <= lo <= hi):
            raise ValueError(f"sigma_range must be two finite levels 0 <= low <= high, got "
                             f"{tuple(sigma_range)!r}")
        n = spec.image_shape[-1]
        if patch is not None and (isinstance(patch, bool) or not isinstance(patch, int)
                                  or not 1 <= patch <= n):
            raise ValueError(f"patch must be an int in [1, {n}] (the image side), got {patch!r}")
        self.sigma_range, self.patch = (lo, hi), patch

    @property
    def spec(self) -> dict:
        """The images' dataset spec plus the noise range and patch size."""
        return {**self.images.spec, "denoising": {"sigma_range": list(self.sigma_range),
                                                  "patch": self.patch}}

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i):
        index = self.images._index(i)
        x = self.images.ground_truth(index)  # (1, N, N), float64 or complex128
        seq = np.random.SeedSequence((int(self.images.simulation.seed),
                                      SPLIT_IDS[self.images.split], index, 0xDE))
        rng = np.random.default_rng(seq)
        lo, hi = self.sigma_range
        sigma = float(rng.uniform(lo, hi))
        if self.patch is not None:
            n, p = x.shape[-1], self.patch
            r, c = (int(v) for v in rng.integers(0, n - p + 1, size=2))
            x = x[..., r:r + p, c:c + p]
        gen = torch.Generator().manual_seed(int(rng.integers(0, 2**62)))
        noise = torch.randn(x.shape + ((2,) if x.is_complex() else ()), generator=gen,
                            dtype=torch.float64)
        noisy = x + sigma * (torch.view_as_complex(noise) if x.is_complex() else noise)
        stacked = stack_noise_level(noisy[None], sigma)[0].float()
        return stacked, (x.to(torch.complex64) if x.is_complex() else x.float())
