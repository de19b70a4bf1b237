"""The U-Net (Ronneberger et al. 2015): an image-to-image network for images of any size.

Used by :class:`~tomolearn.learned.FBPConvNet` as its residual correction; it
knows nothing of operators.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import _n_parameters


def _norm_layer(norm: str, channels: int) -> nn.Module:
    """The normalisation after a 3x3 convolution: batch, group (gcd(8, c) groups) or none."""
    if norm == "batch":
        return nn.BatchNorm2d(channels)
    if norm == "group":
        return nn.GroupNorm(math.gcd(8, channels), channels)
    return nn.Identity()


class _DoubleConv(nn.Sequential):
    """(3x3 conv -> norm -> ReLU) twice."""

    def __init__(self, c_in: int, c_out: int, norm: str):
        bias = norm == "none"
        super().__init__(
            nn.Conv2d(c_in, c_out, 3, padding=1, bias=bias), _norm_layer(norm, c_out),
            nn.ReLU(inplace=True),
            nn.Conv2d(c_out, c_out, 3, padding=1, bias=bias), _norm_layer(norm, c_out),
            nn.ReLU(inplace=True),
        )


class UNet(nn.Module):
    """U-Net (Ronneberger et al. 2015) for images of any size.

    Each level has two 3x3 convolutions with normalisation and ReLU; going
    down is 2x2 max-pooling, going up is a 2x2 transposed convolution (or
    bilinear up-sampling followed by a 1x1 convolution) and concatenation
    with the skip connection; a final 1x1 convolution maps to
    ``out_channels``.  Level ``i`` has ``channels * 2**i`` feature maps.

    Parameters
    ----------
    in_channels, out_channels : int
    channels : int
        Feature maps at the finest level.
    depth : int
        Number of down-sampling steps (``depth + 1`` levels).
    norm : {"batch", "group", "none"}
        Normalisation after every 3x3 convolution.  ``"group"`` uses
        ``gcd(8, c)`` groups; with ``"none"`` the convolutions carry a bias.
    up : {"transpose", "bilinear"}
        Up-sampling method.

    Notes
    -----
    Inputs whose height or width is not a multiple of ``2**depth`` are
    zero-padded (symmetrically) up to the next multiple and the output is
    cropped back, so ``forward`` maps ``(B, in_channels, H, W)`` to
    ``(B, out_channels, H, W)`` for any ``H, W >= 1``.
    """

    def __init__(self, in_channels: int = 1, out_channels: int = 1, channels: int = 32,
                 depth: int = 4, norm: str = "batch", up: str = "transpose"):
        super().__init__()
        for name, v in (("in_channels", in_channels), ("out_channels", out_channels),
                        ("channels", channels)):
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        if not isinstance(depth, int) or depth < 0:
            raise ValueError(f"depth must be a non-negative int, got {depth!r}")
        if norm not in ("batch", "group", "none"):
            raise ValueError(f"norm must be 'batch', 'group' or 'none', got {norm!r}")
        if up not in ("transpose", "bilinear"):
            raise ValueError(f"up must be 'transpose' or 'bilinear', got {up!r}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.depth, self.norm, self.up = depth, norm, up
        chs = [channels * 2**i for i in range(depth + 1)]
        self.inc = _DoubleConv(in_channels, chs[0], norm)
        self.downs = nn.ModuleList(_DoubleConv(chs[i], chs[i + 1], norm) for i in range(depth))
        self.ups = nn.ModuleList()
        self.up_convs = nn.ModuleList()
        for i in reversed(range(depth)):
            if up == "transpose":
                self.ups.append(nn.ConvTranspose2d(chs[i + 1], chs[i], 2, stride=2))
            else:
                self.ups.append(nn.Sequential(
                    nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                    nn.Conv2d(chs[i + 1], chs[i], 1)))
            self.up_convs.append(_DoubleConv(2 * chs[i], chs[i], norm))
        self.outc = nn.Conv2d(chs[0], out_channels, 1)

    @property
    def n_parameters(self) -> int:
        """Number of scalar parameters."""
        return _n_parameters(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the U-Net.

        Parameters
        ----------
        x : torch.Tensor, shape (B, in_channels, H, W)

        Returns
        -------
        torch.Tensor, shape (B, out_channels, H, W)
        """
        if not isinstance(x, torch.Tensor) or x.dim() != 4 or x.shape[1] != self.in_channels:
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"UNet expects shape (B, {self.in_channels}, H, W), got {got}")
        H, W = x.shape[-2:]
        m = 2**self.depth
        ph, pw = (-H) % m, (-W) % m
        pad = (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2)
        if ph or pw:
            x = F.pad(x, pad)
        skips = [self.inc(x)]
        for down in self.downs:
            skips.append(down(F.max_pool2d(skips[-1], 2)))
        h = skips.pop()
        for up, conv in zip(self.ups, self.up_convs):
            h = conv(torch.cat([skips.pop(), up(h)], dim=1))
        out = self.outc(h)
        if ph or pw:
            out = out[..., pad[2]:pad[2] + H, pad[0]:pad[0] + W]
        return out
