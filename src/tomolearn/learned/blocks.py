"""Building blocks shared by the learned reconstructors.

:func:`_n_parameters` counts a module's weights (every model reports it);
:func:`_conv_block` is the three-convolution update network of the unrolled
methods (:mod:`.lgd`, :mod:`.lpd`), initialised like the authors' TensorFlow
code (:func:`_xavier_`); :class:`ResidualDenoiser` the CNN of the methods that alternate a
learned denoiser with a data step (:mod:`.modl`, :mod:`.fbsem`).
"""

from __future__ import annotations

import torch
from torch import nn


def _n_parameters(module: nn.Module) -> int:
    """Number of scalar parameters of ``module``."""
    return sum(p.numel() for p in module.parameters())


def _xavier_(module: nn.Module) -> None:
    """Glorot-uniform kernels and zero biases (TensorFlow's defaults in the reference code)."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def _conv_block(c_in: int, c_out: int, channels: int) -> nn.Sequential:
    """3x3 conv (``channels``) -> PReLU -> 3x3 conv (``channels``) -> PReLU -> 3x3 conv (``c_out``).

    PReLU slopes are per channel and start at 0 (the reference ``prelu``).
    """
    block = nn.Sequential(
        nn.Conv2d(c_in, channels, 3, padding=1), nn.PReLU(channels, init=0.0),
        nn.Conv2d(channels, channels, 3, padding=1), nn.PReLU(channels, init=0.0),
        nn.Conv2d(channels, c_out, 3, padding=1),
    )
    _xavier_(block)
    return block


class ResidualDenoiser(nn.Sequential):
    """The residual denoiser body of MoDL and FBSEM-Net: ``layers`` 3x3 convolutions,
    ``channels`` wide, each but the last followed by (batch norm and) ReLU; ``c -> channels
    -> ... -> c`` real channels."""

    def __init__(self, c: int, channels: int, layers: int, norm: str):
        mods = []
        bias = norm == "none"
        for i in range(layers - 1):
            mods.append(nn.Conv2d(c if i == 0 else channels, channels, 3, padding=1, bias=bias))
            if norm == "batch":
                mods.append(nn.BatchNorm2d(channels))
            mods.append(nn.ReLU(inplace=True))
        mods.append(nn.Conv2d(channels, c, 3, padding=1))
        super().__init__(*mods)
        with torch.no_grad():  # an untrained denoiser changes little (see MoDL's docstring)
            mods[-1].weight.mul_(0.01)
            mods[-1].bias.mul_(0.01)


class _ShapedModule(nn.Module):
    """A network built for a task's images: ``geometry_spec`` (set by the subclass) gives
    :attr:`image_shape`; :attr:`n_parameters` counts its weights."""

    @property
    def image_shape(self):
        """``(H, W)`` of the task's images (the operator's domain shape)."""
        return tuple(self.geometry_spec["domain_shape"])

    @property
    def n_parameters(self) -> int:
        """Number of scalar parameters (learned weights)."""
        return _n_parameters(self)
