"""Deep image prior (Ulyanov, Vedaldi & Lempitsky 2018), DIP + TV (Baguer, Leuschner &
Schmidt 2020) and the educated warm start (Barbano et al. 2022): a network fitted to one
measurement.

Nothing is trained beforehand.  For each measurement ``y`` a fresh network ``f_theta`` maps a
fixed random input ``z`` to an image, and ``theta`` is fitted by Adam to

    L(theta) = mean |A c f_theta(z) - (y - b)|^2 + gamma TV(c f_theta(z))

where ``b`` is the operator's additive background (``op.background_of(y)``; zero for operators
without one), ``TV`` the isotropic total variation (summed over pixels, as DIVal's
``tv_loss`` sums its differences) and ``c`` the largest magnitude of the operator's first guess
``op.initial_reconstruction(y)``, so the network works on images of order one whatever the
unit.  The network's structure is the prior: it fits natural image content before noise.
Stopping rule: a fixed number of iterations ``n_iter`` (to be chosen on validation images),
returning the iterate of lowest loss over the run (as DIVal's ``DeepImagePriorCTReconstructor``).
With ``gamma = 0`` this is the plain DIP, whose quality depends on stopping early.

The network is the encoder-decoder with narrow skip connections of Ulyanov et al.'s
supplementary material (:class:`SkipNet`), with ``channels`` feature maps at every scale (DIVal
uses 128 on a GPU; the default 32 keeps an iteration on 128 x 128 images in tens of milliseconds
on a CPU).  Every measurement gets the same seed for ``z`` and the initial weights, so results
do not depend on the batch an image comes in.

The educated DIP replaces the random input and weights: the input is the operator's first guess
(FBP for CT) and the weights are pretrained, supervised, on simulated images
(:class:`EducatedDIPNet`); each measurement then fine-tunes a copy with the same loss
(:func:`educated_dip`), needing far fewer iterations than a DIP from scratch.

References
----------
.. [1] D. Ulyanov, A. Vedaldi and V. Lempitsky, "Deep image prior", CVPR 2018, 9446-9454.
.. [2] D. Otero Baguer, J. Leuschner and M. Schmidt, "Computed tomography reconstruction using
       deep image prior and learned reconstruction methods", Inverse Problems 36(9), 094004,
       2020.
"""

from __future__ import annotations

import copy
import math
from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch import nn

from ..registry import register_method
from ..solvers.regularisers import total_variation
from .base import _Reconstructor

__all__ = ["SkipNet", "deep_image_prior", "fit_network", "EducatedDIPNet", "educated_dip"]


def _conv(c_in: int, c_out: int, k: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, k, stride=stride, padding=k // 2),
                         nn.BatchNorm2d(c_out), nn.LeakyReLU(0.2, inplace=True))


class SkipNet(nn.Module):
    """Encoder-decoder with narrow skip connections (the deep image prior's network [1]_).

    Encoder scale ``i``: 3x3 convolution of stride 2, then a 3x3 convolution (each with batch
    norm and leaky ReLU, slope 0.2); skip branch: 1x1 convolution to ``skip_channels``;
    decoder: bilinear up-sampling, concatenation with the skip, batch norm, a 3x3 and a 1x1
    convolution; a final 1x1 convolution to ``out_channels``, linear.  ``(B, in, H, W) ->
    (B, out, H, W)`` for any ``H, W`` (padded to a multiple of ``2**scales`` and cropped).
    """

    def __init__(self, in_channels: int = 1, out_channels: int = 1, channels: int = 32,
                 scales: int = 4, skip_channels: int = 4):
        super().__init__()
        for name, v in (("in_channels", in_channels), ("out_channels", out_channels),
                        ("channels", channels), ("scales", scales)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        if isinstance(skip_channels, bool) or not isinstance(skip_channels, int) \
                or skip_channels < 0:
            raise ValueError(f"skip_channels must be a non-negative int, got {skip_channels!r}")
        self.scales = scales
        self.down = nn.ModuleList(
            nn.Sequential(_conv(in_channels if i == 0 else channels, channels, 3, 2),
                          _conv(channels, channels, 3)) for i in range(scales))
        self.skip = nn.ModuleList(
            _conv(in_channels if i == 0 else channels, skip_channels, 1) if skip_channels
            else None for i in range(scales))
        self.up = nn.ModuleList(
            nn.Sequential(nn.BatchNorm2d(channels + skip_channels),
                          _conv(channels + skip_channels, channels, 3),
                          _conv(channels, channels, 1))
            for _ in range(scales))
        self.out = nn.Conv2d(channels, out_channels, 1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        H, W = z.shape[-2:]
        m = 2 ** self.scales
        ph, pw = (-H) % m, (-W) % m
        pad = (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2)
        h = F.pad(z, pad, mode="reflect" if min(H, W) > max(ph, pw) else "replicate") \
            if ph or pw else z
        skips = []
        for down, skip in zip(self.down, self.skip):
            skips.append(skip(h) if skip is not None else None)
            h = down(h)
        for up, s in zip(reversed(self.up), reversed(skips)):
            h = F.interpolate(h, scale_factor=2, mode="bilinear", align_corners=False)
            h = up(torch.cat([h, s], dim=1) if s is not None else h)
        out = self.out(h)
        return out[..., pad[2]:pad[2] + H, pad[0]:pad[0] + W] if ph or pw else out


def _check_fit(n_iter, lr, gamma) -> None:
    if isinstance(n_iter, bool) or not isinstance(n_iter, int) or n_iter < 1:
        raise ValueError(f"n_iter must be an int >= 1, got {n_iter!r}")
    if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be a finite number > 0, got {lr!r}")
    if not (isinstance(gamma, (int, float)) and math.isfinite(gamma) and gamma >= 0):
        raise ValueError(f"gamma (the TV weight) must be a finite number >= 0, got {gamma!r}")


def _per_measurement(op, y, fit) -> torch.Tensor:
    """``fit(y_i, target_i)`` for every measurement (``target = y - background``), with
    autograd on also under ``no_grad`` or inference mode; concatenated ``(B, 1, H, W)``."""
    op._check(y, op.range_shape, "deep image prior data y")
    with torch.inference_mode(False), torch.enable_grad():
        y = y.clone()  # an ordinary tensor, not an inference tensor
        target = y - op.background_of(y)
        return torch.cat([fit(i, y[i:i + 1], target[i:i + 1]) for i in range(y.shape[0])])


def deep_image_prior(op, y: torch.Tensor, *, n_iter: int = 3000, lr: float = 1e-3,
                     gamma: float = 0.0, channels: int = 32, scales: int = 4,
                     skip_channels: int = 4, seed: int = 0,
                     callback: Optional[Callable] = None) -> torch.Tensor:
    """DIP (``gamma = 0``) or DIP + TV reconstructions of the measurements ``y``, one network
    per measurement (see the module docstring for the loss and stopping rule).

    Parameters
    ----------
    op : LinearOperator
        Images ``(B, 1, H, W)`` (real, or complex: the network then has two output channels)
        to data ``(B, 1, *range)``.
    y : torch.Tensor, shape (B, 1, *op.range_shape)
    n_iter : int
        Adam iterations per measurement.
    lr : float
        Adam's learning rate (gradients clipped to norm 1, as in DIVal).
    gamma : float
        TV weight (>= 0), in the units of the loss (mean squared data residual per TV of an
        image of order one).
    channels, scales, skip_channels : int
        Of the :class:`SkipNet`.
    seed : int
        Seed of the network's input and initial weights (the same for every measurement).
    callback : callable, optional
        ``callback(index, iteration, loss, x)`` after every iteration (``x`` the iterate
        whose loss it is, detached).

    Returns
    -------
    torch.Tensor, shape (B, 1, H, W), ``y``'s device; complex64 for complex operators.
    """
    _check_fit(n_iter, lr, gamma)
    parts = 2 if op.requires_complex else 1

    def fit(i, y_i, target_i):
        real = y_i.real.dtype if y_i.is_complex() else y_i.dtype
        gen = torch.Generator().manual_seed(seed)
        z = (0.1 * torch.randn((1, 1) + tuple(op.domain_shape), generator=gen,
                               dtype=torch.float64)).to(device=y_i.device, dtype=real)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            net = SkipNet(1, parts, channels, scales, skip_channels)
        with torch.no_grad():
            scale = float(op.initial_reconstruction(y_i).abs().max().clamp_min(1e-12))
        report = None if callback is None else (lambda k, loss, x: callback(i, k, loss, x))
        return fit_network(op, target_i, net, z, scale, n_iter, lr, gamma, report)

    return _per_measurement(op, y, fit)


def fit_network(op, target: torch.Tensor, net: nn.Module, z: torch.Tensor, scale: float,
                n_iter: int, lr: float, gamma: float = 0.0,
                callback: Optional[Callable] = None) -> torch.Tensor:
    """Fit ``net`` (in place, train mode) so that ``x = scale net(z)`` explains ``target``:
    Adam on ``mean |A x - target|^2 + gamma TV(x / scale)`` for ``n_iter`` iterations,
    gradients clipped to norm 1; returns the ``x`` of lowest loss, ``(1, 1, H, W)`` (complex
    when ``net`` has two output channels).  ``callback(iteration, loss, x)`` after each (``x``
    the iterate whose loss it is, detached)."""
    real = z.dtype
    net = net.to(device=z.device, dtype=real).train()
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    best, best_x = math.inf, None
    for k in range(n_iter):
        opt.zero_grad(set_to_none=True)
        h = net(z) * scale
        x = torch.complex(h[:, 0], h[:, 1])[:, None] if h.shape[1] == 2 else h
        residual = op(x) - target
        loss = (residual.real ** 2 + residual.imag ** 2).mean() if residual.is_complex() \
            else (residual ** 2).mean()
        if gamma > 0:
            loss = loss + gamma * total_variation(x / scale).sum()
        value = float(loss.detach())
        if not math.isfinite(value):
            break
        if value < best:
            best, best_x = value, x.detach().clone()
        if callback is not None:
            callback(k, value, x.detach())
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), max_norm=1.0)
        opt.step()
    if best_x is None:
        raise FloatingPointError("deep image prior: the first loss was not finite")
    return best_x


class EducatedDIPNet(_Reconstructor):
    """The educated warm start's network (Barbano et al. 2022 [3]_): a :class:`SkipNet` from
    the operator's first guess to the image, ``x = c net(x0 / c)`` with ``x0 =
    op.initial_reconstruction(y)`` (FBP for CT) and ``c = max |x0|`` per image.

    Trained supervised on simulated images (``tomolearn train``, ``model.name:
    educated-dip``); the method ``educated-dip`` then fine-tunes a copy per measurement with
    the DIP + TV loss (:func:`educated_dip`).  ``(B, 1, *range) -> (B, 1, H, W)``.

    .. [3] R. Barbano, J. Leuschner, M. Schmidt, A. Denker, A. Hauptmann, P. Maass and B. Jin,
           "An educated warm start for deep image prior-based micro CT reconstruction", IEEE
           Trans. Comput. Imaging 8, 1210-1222, 2022.
    """

    def __init__(self, op, channels: int = 32, scales: int = 4, skip_channels: int = 4):
        super().__init__()
        self._bind(op)
        c = self.image_channels
        self.net = SkipNet(c, c, channels, scales, skip_channels)

    def network_input(self, y: torch.Tensor):
        """``(x0 / c, c)``: the network's input ``(B, image_channels, H, W)`` and the scales
        ``c`` ``(B, 1, 1, 1)``."""
        h = self.image_to_channels(self.initial(y))
        c = h.abs().amax(dim=(1, 2, 3), keepdim=True).clamp_min(1e-12)
        return h / c, c

    def _reconstruct(self, y: torch.Tensor) -> torch.Tensor:
        h, c = self.network_input(y)
        return self.channels_to_image(c * self.net(h))


def educated_dip(model: EducatedDIPNet, y: torch.Tensor, *, n_iter: int = 500, lr: float = 1e-4,
                 gamma: float = 1e-4,
                 callback: Optional[Callable] = None) -> torch.Tensor:
    """The educated DIP: for each measurement, a copy of ``model``'s pretrained network is
    fine-tuned from its own first guess by :func:`fit_network` (DIP + TV loss, ``n_iter``
    iterations of Adam at ``lr``); ``model`` itself is not changed.  Shapes as
    :func:`deep_image_prior`; ``callback(index, iteration, loss, x)``."""
    _check_fit(n_iter, lr, gamma)
    model._check_y(y)

    def fit(i, y_i, target_i):
        with torch.no_grad():
            h, c = model.network_input(y_i)
        report = None if callback is None else (lambda k, loss, x: callback(i, k, loss, x))
        return fit_network(model.op, target_i, copy.deepcopy(model.net), h, float(c), n_iter, lr,
                           gamma, report)

    return _per_measurement(model.op, y, fit)


def _build_dip(task, op, device, gamma=0.0, **params):
    """``recon(y)``: :func:`deep_image_prior` on ``op`` with ``params`` (n_iter, lr, ...)."""
    def recon(y):
        return deep_image_prior(op, y, gamma=gamma, **params)

    return recon


_DIP = {"n_iter": 3000, "lr": 1e-3, "channels": 32, "scales": 4, "skip_channels": 4, "seed": 0}
#: a quick run on a task's tiny instance (the method battery): few iterations, a small network
_QUICK = {"n_iter": 60, "lr": 2e-2, "channels": 8, "scales": 2}
register_method("dip", _build_dip, requires=("linear", "2d"), slow=True,
                defaults={**_DIP, "gamma": 0.0}, quick=_QUICK, by_default=False,
                description="deep image prior: a network fitted to each measurement "
                            "(Ulyanov et al. 2018)")
register_method("dip-tv", _build_dip, requires=("linear", "2d"), slow=True,
                defaults={**_DIP, "gamma": 1e-4}, quick=_QUICK, by_default=False,
                description="deep image prior + TV (Baguer, Leuschner & Schmidt 2020)")
