"""FBPConvNet (Jin et al. 2017): a classical reconstruction corrected by a residual U-Net."""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from .base import _Reconstructor
from .unet import UNet


class FBPConvNet(_Reconstructor):
    """FBP followed by a residual U-Net (FBPConvNet, Jin et al. 2017).

    ``x = op.initial_reconstruction(y); return x + unet(x)``: for the ray transform
    the first guess is the FBP of the ellipses benchmark's baseline (Hamming window,
    frequency scaling 0.7), as in the paper; other operators bring their own (a PET
    projector: the scanner's clinical OSEM, so this is the post-processing U-Net on OSEM).

    Parameters
    ----------
    op : LinearOperator
        Forward operator, images ``(B, 1, H, W)`` to data ``(B, 1, A, D)``.
    unet : UNet, optional
        Image-to-image network with ``image_channels`` input and output channels (1, or 2
        for complex images); by default ``UNet(c, c, channels, depth, norm)``.
    channels, depth, norm
        Of the default U-Net (32, 4, "batch").
    normalise : bool
        Divide each first guess by its mean absolute value ``c`` before the U-Net and
        multiply the correction by ``c`` (``x + c unet(x / c)``): for data whose images have
        no fixed unit or scale (PET activity); off for CT, as in the paper.

    Notes
    -----
    Shapes: ``forward(y)`` maps ``(B, 1, A, D)`` to ``(B, 1, H, W)``, same
    dtype and device as ``y`` (the U-Net weights must match them).
    """

    def __init__(self, op, unet: Optional[nn.Module] = None, channels: int = 32, depth: int = 4,
                 norm: str = "batch", normalise: bool = False):
        super().__init__()
        self._bind(op)
        self.normalise = bool(normalise)
        c = self.image_channels  # 2 (real, imaginary) for a complex operator
        self.unet = unet if unet is not None else UNet(c, c, channels=channels, depth=depth,
                                                       norm=norm)

    def _reconstruct(self, y: torch.Tensor) -> torch.Tensor:
        h = self.image_to_channels(self.initial(y))
        if not self.normalise:
            return self.channels_to_image(h + self.unet(h))
        c = h.abs().mean(dim=(1, 2, 3), keepdim=True).clamp_min(1e-12)
        return self.channels_to_image(h + c * self.unet(h / c))
