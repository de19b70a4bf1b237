"""FBPConvNet (Jin et al. 2017): a filtered back-projection corrected by a residual U-Net."""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from .base import FBP_DEFAULTS, _Reconstructor
from .unet import UNet


class FBPConvNet(_Reconstructor):
    """FBP followed by a residual U-Net (FBPConvNet, Jin et al. 2017).

    ``x = fbp(op, y); return x + unet(x)``.

    Parameters
    ----------
    op : tomolearn.ct.RayTransform
        Forward operator, images ``(B, 1, H, W)`` to data ``(B, 1, A, D)``.
    unet : UNet, optional
        Image-to-image network with one input and one output channel; by
        default ``UNet(1, 1, channels=32, depth=4, norm="batch")``.
    filter, frequency_scaling
        FBP settings, passed to :func:`tomolearn.ct.fbp`; the defaults are the
        ellipses benchmark's FBP baseline (``"hamming"``, 0.7).

    Notes
    -----
    Shapes: ``forward(y)`` maps ``(B, 1, A, D)`` to ``(B, 1, H, W)``, same
    dtype and device as ``y`` (the U-Net weights must match them).
    """

    _needs_ray_transform = True

    def __init__(self, op, unet: Optional[nn.Module] = None,
                 filter: str = FBP_DEFAULTS["filter"],
                 frequency_scaling: float = FBP_DEFAULTS["frequency_scaling"]):
        super().__init__()
        self._bind(op)
        self.unet = unet if unet is not None else UNet(1, 1, channels=32, depth=4, norm="batch")
        self.filter = filter
        self.frequency_scaling = frequency_scaling

    def initial(self, y: torch.Tensor) -> torch.Tensor:
        """The FBP of ``y``: ``(B, 1, A, D)`` -> ``(B, 1, H, W)``."""
        self._check_y(y)
        return self._fbp(y, filter=self.filter, frequency_scaling=self.frequency_scaling)

    def _reconstruct(self, y: torch.Tensor) -> torch.Tensor:
        x = self.initial(y)
        return x + self.unet(x)
