"""Image denoisers with a noise-level input, the priors of plug-and-play and RED.

A denoiser maps a noisy image and its noise level to a clean image: ``denoiser(x, sigma)``
(:meth:`ImageDenoiser.denoise`), the protocol of :class:`tomolearn.solvers.DenoiserPrior` and
:class:`tomolearn.solvers.REDPrior`.  The network sees the noise level as an extra input
channel, a constant map of ``sigma`` (FFDNet's and DRUNet's convention), so one network
serves a range of levels; complex images are two channels (real, imaginary) and ``sigma`` is
the standard deviation of each.  ``sigma`` is in the units of the images (the task's image
family: attenuation for CT, magnitude for MRI, activity for PET).

Training (``tomolearn train``) uses the reconstructor machinery unchanged: the "measurement"
of a denoising sample is the stacked input ``(c + 1, H, W)`` (noisy channels, noise-level map;
:class:`~tomolearn.data.DenoisingDataset`) and the target the clean image; ``forward`` takes
that stacked input.  A denoiser is built for a task's operator only to know its image shape
and whether images are complex; its convolutions work on any image size (training uses
patches).

Networks
--------
:class:`DnCNN`
    Residual convolutional denoiser (Zhang, Zuo, Chen, Meng & Zhang 2017), here non-blind
    with the noise-level map as input.
:class:`DRUNet`
    A small DRUNet (Zhang, Li, Zuo, Zhang, Van Gool & Timofte 2022, the denoiser of DPIR):
    a bias-free U-Net of residual blocks with strided-convolution down-sampling,
    transposed-convolution up-sampling and additive skips.

References
----------
.. [1] K. Zhang, W. Zuo, Y. Chen, D. Meng and L. Zhang, "Beyond a Gaussian denoiser: residual
       learning of deep CNN for image denoising", IEEE Trans. Image Process. 26(7), 2017.
.. [2] K. Zhang, Y. Li, W. Zuo, L. Zhang, L. Van Gool and R. Timofte, "Plug-and-play image
       restoration with deep denoiser prior", IEEE TPAMI 44(10), 6360-6376, 2022.
"""

from __future__ import annotations

import math
import warnings
from typing import Sequence

import torch
from torch import nn

from ..data.denoising import stack_noise_level
from ..operators import LinearOperator
from .blocks import _ShapedModule

__all__ = ["ImageDenoiser", "DnCNN", "DRUNet"]


class ImageDenoiser(_ShapedModule):
    """Base class: the image domain of a task's operator, the trained noise range, the
    stacked input and :meth:`denoise`.

    Parameters
    ----------
    op : LinearOperator
        The task's operator (only its image shape and complexness are used).
    sigma_range : (float, float)
        The noise levels the network is trained for (image units); :meth:`denoise` warns
        outside it, once per denoiser.
    """

    def __init__(self, op, sigma_range: Sequence[float]):
        super().__init__()
        if not isinstance(op, LinearOperator) or len(op.domain_shape) != 2:
            raise TypeError(f"{type(self).__name__} needs a LinearOperator with 2-D images, got "
                            f"{type(op).__name__}")
        lo, hi = (float(s) for s in sigma_range)
        if not (math.isfinite(lo) and math.isfinite(hi) and 0 <= lo < hi):
            raise ValueError(f"sigma_range must be two finite levels 0 <= low < high, got "
                             f"{tuple(sigma_range)!r}")
        self.sigma_range = (lo, hi)
        self.is_complex = bool(op.requires_complex)
        self.image_channels = 2 if self.is_complex else 1
        self.geometry_spec = {"operator": "ImageDenoiser", "domain_shape": list(op.domain_shape),
                              "range_shape": [self.image_channels + 1] + list(op.domain_shape)}
        self._warned = False

    def with_operator(self, op) -> "ImageDenoiser":
        """``self`` for an operator with images of the same kind (real or complex)."""
        if bool(op.requires_complex) != self.is_complex:
            kind = "complex" if self.is_complex else "real"
            raise ValueError(f"this denoiser was trained on {kind}"
                             f" images; the operator's are not")
        return self

    def stacked(self, x: torch.Tensor, sigma) -> torch.Tensor:
        """The network's input ``(B, c + 1, H, W)``, real: the image's channels (real and
        imaginary parts of a complex image) and the noise-level map
        (:func:`~tomolearn.data.denoising.stack_noise_level`); warns once when ``sigma`` is
        outside the trained range."""
        if x.is_complex() != self.is_complex:
            raise TypeError(f"this denoiser takes {'complex' if self.is_complex else 'real'} "
                            f"images, got {x.dtype}")
        s = torch.as_tensor(sigma).detach().reshape(-1).cpu().double()
        if not bool(torch.isfinite(s).all()) or bool((s < 0).any()):
            raise ValueError(f"sigma must be finite and >= 0, got {s.tolist()}")
        lo, hi = self.sigma_range
        if not self._warned and (bool((s < lo).any()) or bool((s > hi * (1 + 1e-6)).any())):
            self._warned = True
            warnings.warn(f"{type(self).__name__}: noise level(s) {s.min().item():.4g}.."
                          f"{s.max().item():.4g} outside the trained range [{lo:g}, {hi:g}]; "
                          "the result is an extrapolation", stacklevel=3)
        return stack_noise_level(x, sigma)

    def denoise(self, x: torch.Tensor, sigma) -> torch.Tensor:
        """Denoise ``x`` ``(B, 1, H, W)`` (real or complex) at noise level ``sigma`` (a float
        or ``(B,)``, image units; per real component for complex images): same shape and
        dtype."""
        return self(self.stacked(x, sigma)).to(x.dtype)

    def forward(self, inp: torch.Tensor) -> torch.Tensor:
        """``(B, c + 1, H, W)`` stacked input -> ``(B, 1, H, W)`` image (complex when the
        task's images are)."""
        if inp.dim() != 4 or inp.shape[1] != self.image_channels + 1:
            raise ValueError(f"{type(self).__name__} expects the stacked input (B, "
                             f"{self.image_channels + 1}, H, W), got {tuple(inp.shape)}")
        h = self._clean(inp)
        return torch.complex(h[:, 0], h[:, 1])[:, None] if self.is_complex else h

    def _clean(self, inp: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class DnCNN(ImageDenoiser):
    """DnCNN [1]_ with a noise-level map: ``layers`` 3x3 convolutions of ``channels`` (batch
    norm and ReLU between; none after the first), predicting the noise, subtracted from the
    noisy image (residual learning).

    Parameters
    ----------
    op, sigma_range
        See :class:`ImageDenoiser`.
    channels, layers : int
        64 and 17 in [1]_.
    """

    def __init__(self, op, sigma_range=(0.0, 0.2), channels: int = 64, layers: int = 17):
        super().__init__(op, sigma_range)
        if layers < 3 or channels < 1:
            raise ValueError(f"need layers >= 3 and channels >= 1, got {layers}, {channels}")
        c = self.image_channels
        mods = [nn.Conv2d(c + 1, channels, 3, padding=1), nn.ReLU(inplace=True)]
        for _ in range(layers - 2):
            mods += [nn.Conv2d(channels, channels, 3, padding=1, bias=False),
                     nn.BatchNorm2d(channels), nn.ReLU(inplace=True)]
        mods.append(nn.Conv2d(channels, c, 3, padding=1))
        self.body = nn.Sequential(*mods)

    def _clean(self, inp):
        c = self.image_channels
        return inp[:, :c] - self.body(inp)


class _ResBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1, bias=False),
                                  nn.ReLU(inplace=True),
                                  nn.Conv2d(channels, channels, 3, padding=1, bias=False))

    def forward(self, x):
        return x + self.body(x)


class DRUNet(ImageDenoiser):
    """A small DRUNet [2]_: bias-free, no normalisation; per scale ``blocks`` residual blocks
    (3x3 conv, ReLU, 3x3 conv, identity skip), down-sampling by 2x2 convolutions of stride 2,
    up-sampling by 2x2 transposed convolutions; each up-sampling block and the last
    convolution take the sum (not the concatenation) of the decoder's features and the
    encoder's of that scale; output the image.  DPIR's has ``channels = (64, 128, 256,
    512)`` and 4 blocks (32 M parameters); the default here is sized for a CPU.

    Inputs whose sides are not multiples of ``2**(len(channels) - 1)`` are padded by
    replication and cropped back.
    """

    def __init__(self, op, sigma_range=(0.0, 0.2), channels: Sequence[int] = (16, 32, 64, 128),
                 blocks: int = 2):
        super().__init__(op, sigma_range)
        channels = [int(c) for c in channels]
        if len(channels) < 1 or min(channels) < 1 or blocks < 1:
            raise ValueError(f"need channels of positive ints and blocks >= 1, got {channels}, "
                             f"{blocks}")
        c = self.image_channels
        self.levels = len(channels) - 1
        self.head = nn.Conv2d(c + 1, channels[0], 3, padding=1, bias=False)
        self.down = nn.ModuleList(
            nn.Sequential(*[_ResBlock(channels[i]) for _ in range(blocks)],
                          nn.Conv2d(channels[i], channels[i + 1], 2, stride=2, bias=False))
            for i in range(self.levels))
        self.body = nn.Sequential(*[_ResBlock(channels[-1]) for _ in range(blocks)])
        self.up = nn.ModuleList(
            nn.Sequential(nn.ConvTranspose2d(channels[i + 1], channels[i], 2, stride=2,
                                             bias=False),
                          *[_ResBlock(channels[i]) for _ in range(blocks)])
            for i in reversed(range(self.levels)))
        self.tail = nn.Conv2d(channels[0], c, 3, padding=1, bias=False)

    def _clean(self, inp):
        H, W = inp.shape[-2:]
        m = 2 ** self.levels
        ph, pw = (-H) % m, (-W) % m
        if ph or pw:
            inp = nn.functional.pad(inp, (0, pw, 0, ph), mode="replicate")
        h = self.head(inp)
        features = [h]
        for down in self.down:
            h = down(h)
            features.append(h)
        h = self.body(h)
        for up in self.up:  # DPIR: x = up(x + encoder feature of that scale)
            h = up(h + features.pop())
        return self.tail(h + features.pop())[..., :H, :W]
