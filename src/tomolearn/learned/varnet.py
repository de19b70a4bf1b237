"""An end-to-end variational network (after Sriram et al. 2020) for multi-coil Cartesian MRI.

The network needs the multi-coil structure of the data, which it takes from the bound
operator through a small protocol (checked when the operator is bound, with an error naming
what is missing), not from any modality module:

**The multi-coil Cartesian protocol.**  A :class:`~tomolearn.operators.LinearOperator` ``op``
with

* ``op.requires_complex`` true: complex images ``(B, 1, H, W)``;
* ``op.n_coils``, an int, and ``op.range_shape == (n_coils, H, W)``: coil k-space;
* ``op.mask``, a bool tensor ``(H, W)``: the sampled k-space points, shared by the coils,
  with the k-space centre ``(H // 2, W // 2)`` sampled (the auto-calibration signal, ACS);
* k-space is the centred orthonormal DFT of the coil images (fastMRI's ``fft2c``: zero
  frequency at ``(H // 2, W // 2)``), zero where not sampled, and ``op.adjoint`` is the
  coil combination ``sum_c conj(S_c) F^{-1}(M y_c)`` with the operator's own maps.

:class:`tomolearn.modalities.mri.MultiCoilSENSE` (the ``"mri"`` task's operator) has it.
"""

from __future__ import annotations

import torch
from torch import nn

from ..operators import LinearOperator
from ..operators.fourier import fft2c, ifft2c
from .base import _Reconstructor
from .unet import UNet

def _run(line: torch.Tensor, centre: int) -> tuple:
    """``(start, stop)`` of the run of True entries of a 1-D bool ``line`` containing ``centre``."""
    lo, hi = centre, centre + 1
    while lo > 0 and bool(line[lo - 1]):
        lo -= 1
    while hi < line.numel() and bool(line[hi]):
        hi += 1
    return lo, hi


def acs_region(mask: torch.Tensor) -> torch.Tensor:
    """The auto-calibration region of a centred k-space mask: a centred box ``(H, W)`` bool.

    Its columns are the sampled run through the centre on the centre row, its rows the
    sampled run through the centre on the centre column: for fastMRI's column masks the fully
    sampled central lines, all rows; for a 2-D mask with a square calibration region, about
    that square (entries of the box the mask does not sample are zero in the data anyway).

    Raises
    ------
    ValueError
        The k-space centre ``(H // 2, W // 2)`` is not sampled.
    """
    h, w = mask.shape
    if not bool(mask[h // 2, w // 2]):
        raise ValueError(f"the mask does not sample the k-space centre ({h // 2}, {w // 2}); "
                         f"sensitivity estimation needs a fully sampled centre (ACS)")
    c0, c1 = _run(mask[h // 2], w // 2)
    r0, r1 = _run(mask[:, w // 2], h // 2)
    box = torch.zeros_like(mask, dtype=torch.bool)
    box[r0:r1, c0:c1] = True
    return box


class _NormUNet(nn.Module):
    """A U-Net on complex images ``(N, 1, H, W)``, as real and imaginary channels normalised by
    their per-image mean and standard deviation (fastMRI's ``NormUnet``); the output is scaled
    back by the standard deviation but gets no mean added, so a zero U-Net output is a zero
    correction.  The last (1x1) convolution starts at ``out_scale`` times PyTorch's default
    initialisation, so an untrained network makes small corrections."""

    def __init__(self, channels: int, depth: int, norm: str, eps: float = 1e-6,
                 out_scale: float = 0.01):
        super().__init__()
        self.unet = UNet(2, 2, channels=channels, depth=depth, norm=norm)
        self.eps = eps
        with torch.no_grad():
            self.unet.outc.weight.mul_(out_scale)
            self.unet.outc.bias.mul_(out_scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.view_as_real(x[:, 0]).permute(0, 3, 1, 2)  # (N, 2, H, W)
        mean = h.mean(dim=(-2, -1), keepdim=True)
        std = h.std(dim=(-2, -1), keepdim=True, correction=0) + self.eps
        out = (self.unet((h - mean) / std) * std).to(h.dtype)
        return torch.complex(out[:, 0], out[:, 1])[:, None]


class VarNet(_Reconstructor):
    """End-to-end variational network (after Sriram et al. 2020, "End-to-End Variational
    Networks for Accelerated MRI Reconstruction", MICCAI, LNCS 12262, 64-73).

    Cascades update the coil k-space ``k`` (``(B, n_coils, H, W)``), starting from the data
    ``k^0 = y``::

        S       = sensitivities(y)                                   (sum_c |S_c|^2 = 1)
        k^{t+1} = k^t - eta_t M (k^t - y) + F E(CNN_t(R F^{-1} k^t))   t = 0 .. cascades - 1
        x       = R F^{-1} k^T

    with ``F`` the centred orthonormal DFT per coil, ``M`` the operator's mask, ``R`` the
    coil combination ``R(u) = sum_c conj(S_c) u_c``, ``E`` its adjoint ``E(x)_c = S_c x``,
    ``eta_t`` a learned soft data-consistency weight per cascade (initialised to 1) and
    ``CNN_t`` a U-Net per cascade on the real and imaginary channels, normalised by their
    per-image mean and standard deviation (:class:`~tomolearn.learned.UNet`, ``channels``
    feature maps, ``depth`` poolings, group norm by default).

    Sensitivities: the ACS (:func:`acs_region` of ``op.mask``) of every coil's data,
    inverse-Fourier transformed, is a low-resolution coil image ``a_c``; a U-Net shared by the
    coils (``sens_channels``, ``sens_depth``) refines each, residually, and the maps are
    normalised to ``sum_c |S_c|^2 = 1``.  As in the paper, and unlike it in one point: maps
    from data are defined up to a common phase per pixel, and ``a_c / RSS(a)`` carries the
    object's own low-resolution phase, so the combined image would lose its phase (fastMRI
    outputs root-sum-of-squares magnitudes instead).  This task's truth is a complex image
    in the operator's phase convention, so the ``a_c`` are first multiplied by the phase of
    ``op.adjoint`` of the ACS data (the object's low-resolution phase in that convention).
    For fully sampled noiseless data and zero U-Net outputs the maps are then the operator's
    own (where the image is non-zero) and the output is the truth exactly.

    Initialisation: every U-Net's last convolution starts at 1/100 of PyTorch's default, so
    the untrained network is close to data consistency alone (the zero-filled coil images
    combined with the ACS maps); on 64 x 64 brain images at 4x this gave 23.6 dB validation
    PSNR after 120 steps of 4 images, against 21.1 dB from the default initialisation.

    Output: the coil combination ``R F^{-1} k^T`` with the estimated maps, a complex
    ``(B, 1, H, W)`` image, not the paper's root-sum-of-squares magnitude: the task's truth
    is complex, and the combination is the least-squares image for the maps.

    Sizes: the paper uses 12 cascades of 18-channel, 4-pooling U-Nets (about 30 M
    parameters).  The default here, for a 2-core CPU: 8 cascades of 8-channel U-Nets with 2
    poolings (29 562 parameters each), 8 weights ``eta`` and a 4-channel, 2-pooling
    sensitivity U-Net (7 518): 244 022 parameters.

    Parameters
    ----------
    op : LinearOperator
        A multi-coil Cartesian operator (the protocol of :mod:`tomolearn.learned.varnet`):
        complex images ``(B, 1, H, W)`` to k-space ``(B, 1, n_coils, H, W)``.
    cascades : int
    channels, depth : int
        Feature maps at the finest level and poolings of each cascade's U-Net.
    sens_channels, sens_depth : int
        The same for the sensitivity U-Net.
    norm : {"group", "batch", "none"}
        Normalisation in the U-Nets (``"group"``: ``gcd(8, c)`` groups, per image, like the
        paper's instance norm).

    Raises
    ------
    ValueError
        The operator does not have the protocol (the message says what is missing), or its
        mask does not sample the k-space centre.
    """

    #: the coils share the sensitivity U-Net and the cascades see coil combinations: any
    #: number of coils can be bound (:meth:`with_operator`)
    channels_from_data_axes = False

    def __init__(self, op, cascades: int = 8, channels: int = 8, depth: int = 2,
                 sens_channels: int = 4, sens_depth: int = 2, norm: str = "group"):
        super().__init__()
        for name, value in (("cascades", cascades), ("channels", channels),
                            ("sens_channels", sens_channels)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        self._bind(op)
        self.cnns = nn.ModuleList(_NormUNet(channels, depth, norm) for _ in range(cascades))
        self.eta = nn.Parameter(torch.ones(cascades))
        self.sens_net = _NormUNet(sens_channels, sens_depth, norm)

    # -- the operator protocol ------------------------------------------------------------
    def _bind(self, op) -> None:
        name = type(op).__name__
        if not isinstance(op, LinearOperator):
            raise TypeError(f"VarNet needs a LinearOperator, got {name}")
        missing = []
        if not op.requires_complex:
            missing.append("complex images (requires_complex)")
        image = tuple(op.domain_shape)
        mask = getattr(op, "mask", None)
        if not (isinstance(mask, torch.Tensor) and mask.dtype == torch.bool
                and tuple(mask.shape) == image):
            missing.append(f"a bool sampling mask `mask` of the image shape {image}")
        n_coils = getattr(op, "n_coils", None)
        if isinstance(n_coils, bool) or not isinstance(n_coils, int) or \
                tuple(op.range_shape) != (n_coils,) + image:
            missing.append(f"`n_coils` and coil k-space range_shape (n_coils, *{image}) "
                           f"(range_shape is {tuple(op.range_shape)})")
        if missing:
            raise ValueError(f"VarNet needs a multi-coil Cartesian MRI operator (see "
                             f"tomolearn.learned.varnet); {name} lacks: {'; '.join(missing)}")
        super()._bind(op)

    def _rebind(self) -> None:
        mask = self.op.mask.detach().cpu()
        self.acs = acs_region(mask)
        self.mask = mask

    # -- the network ------------------------------------------------------------------------
    def sensitivities(self, y: torch.Tensor) -> torch.Tensor:
        """Estimated coil maps ``(B, n_coils, H, W)`` from k-space ``(B, 1, n_coils, H, W)``,
        normalised to ``sum_c |S_c|^2 = 1`` (0 where no coil has signal)."""
        acs = self.acs.to(y.device)
        y_acs = y * acs
        a = ifft2c(y_acs[:, 0])  # (B, C, H, W) low-resolution coil images
        a = a * torch.sgn(self.op.adjoint(y_acs)).conj()  # the operator's phase convention
        b, c = a.shape[:2]
        flat = a.reshape((b * c, 1) + tuple(a.shape[-2:]))
        s = (flat + self.sens_net(flat)).reshape(a.shape)
        power = (s.real ** 2 + s.imag ** 2).sum(dim=1, keepdim=True)
        return s * torch.rsqrt(power + 1e-12)

    def cascade(self, t: int, k: torch.Tensor, y: torch.Tensor, maps: torch.Tensor) -> torch.Tensor:
        """Cascade ``t``: ``k - eta_t M (k - y) + F E(CNN_t(R F^{-1} k))``, all ``(B, C, H, W)``
        coil k-space (``y`` the data without its channel axis) and ``maps`` from
        :meth:`sensitivities`.  With ``eta_t = 1`` and a zero CNN output it is hard data
        consistency: ``(1 - M) k + M y``."""
        m = self.mask.to(device=k.device, dtype=k.real.dtype)
        image = (ifft2c(k) * maps.conj()).sum(dim=1, keepdim=True)  # R F^{-1} k
        return k - self.eta[t] * m * (k - y) + fft2c(maps * self.cnns[t](image))

    def _reconstruct(self, y: torch.Tensor) -> torch.Tensor:
        maps = self.sensitivities(y)
        data = y[:, 0]
        k = data
        for t in range(len(self.cnns)):
            k = self.cascade(t, k, data, maps)
        return (ifft2c(k) * maps.conj()).sum(dim=1, keepdim=True)
