"""Learned reconstruction networks.

Every reconstructor here is a ``torch.nn.Module`` that is given a linear
forward operator (:class:`tomolearn.operators.LinearOperator`) at construction
and a batch of measurements ``y`` of shape ``(B, 1, *op.range_shape)`` in
``forward``; it returns images of shape ``(B, 1, *op.domain_shape)``.  Apart
from :class:`FBPConvNet`, whose initial reconstruction is a filtered
back-projection, none of them knows which modality the operator belongs to:
they only use ``op(x)``, ``op.adjoint(y)`` and ``op.norm()``.

The operator is *bound* to a model, not registered as a sub-module: the
``state_dict`` holds only learned weights, and :meth:`with_operator` returns a
copy of the weights bound to another operator of the same kind and image
shape (e.g. more projection angles: all convolutions are size-agnostic).

Models
------
:class:`UNet`
    Plain image-to-image U-Net (used by :class:`FBPConvNet`).
:class:`FBPConvNet`
    FBP followed by a residual U-Net (Jin et al. 2017).
:class:`LearnedGradientDescent`
    Unrolled gradient descent with a learned update per iteration
    (Adler & Öktem 2017).
:class:`LearnedPrimalDual`
    Learned primal-dual (Adler & Öktem 2018), as published.
:class:`DeepEnsemble`
    K independently trained reconstructors; mean and per-member outputs
    (Lakshminarayanan et al. 2017).
"""

from __future__ import annotations

import copy
import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from .operators import LinearOperator

__all__ = ["UNet", "FBPConvNet", "LearnedGradientDescent", "LearnedPrimalDual", "DeepEnsemble"]

#: FBP settings of the ellipses benchmark, chosen on its validation split (grid in
#: docs/solvers.md); the FBP baseline and the start of :class:`FBPConvNet` both use them.
FBP_DEFAULTS = {"filter": "hamming", "frequency_scaling": 0.7}


def _n_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# ---------------------------------------------------------------------------
# U-Net
# ---------------------------------------------------------------------------
def _norm_layer(norm: str, channels: int) -> nn.Module:
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


# ---------------------------------------------------------------------------
# Operator-bound reconstructors
# ---------------------------------------------------------------------------
class _Reconstructor(nn.Module):
    """Base class: binds a :class:`LinearOperator`, checks inputs and compatibility.

    The operator is stored as a plain attribute (not a sub-module), so it does
    not appear in ``state_dict``.  Subclasses implement ``_rebind`` to refresh
    whatever they derive from the operator (e.g. its norm).
    """

    #: Whether the operator must be a :class:`tomolearn.ct.RayTransform`.
    _needs_ray_transform = False

    #: Inference (eval mode, no autograd) on CPU tensors runs in sub-batches of this many
    #: images: the activations of 8 images of 128 x 128 stay in cache, which made learned
    #: primal-dual 1.5 times faster per image at batch 16 in float32 (1.4 times in bfloat16),
    #: learned gradient descent 1.5 times and FBPConvNet 1.2 times, on this project's 2-core
    #: CPU.  The result is that of one batch: in eval mode every image is reconstructed on
    #: its own.  None: never split.
    inference_chunk: Optional[int] = 8

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        """Reconstruct measurements ``y`` of shape ``(B, 1, A, D)``: ``(B, 1, H, W)`` images.

        Shapes are those of the bound operator (``op.range_shape`` to
        ``op.domain_shape``); dtype and device follow ``y``.
        """
        self._check_y(y)
        chunk = self.inference_chunk
        if (chunk and y.shape[0] > chunk and y.device.type == "cpu" and not self.training
                and not torch.is_grad_enabled()):
            return torch.cat([self._reconstruct(part) for part in y.split(chunk)])
        return self._reconstruct(y)

    def _reconstruct(self, y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _bind(self, op) -> None:
        if not isinstance(op, LinearOperator):
            raise TypeError(f"{type(self).__name__} needs a LinearOperator, got {type(op).__name__}")
        if len(op.domain_shape) != 2 or len(op.range_shape) != 2:
            raise ValueError(
                f"{type(self).__name__} needs an operator between 2-D spaces (images to "
                f"sinogram-like data); got domain_shape {op.domain_shape} and range_shape "
                f"{op.range_shape}")
        if self._needs_ray_transform:
            from .ct import RayTransform

            if not isinstance(op, RayTransform):
                raise TypeError(f"{type(self).__name__} needs a RayTransform (for its FBP), "
                                f"got {type(op).__name__}")
        object.__setattr__(self, "op", op)
        object.__setattr__(self, "geometry_spec", self._spec_of(op))
        self._rebind()

    def _rebind(self) -> None:
        pass

    @staticmethod
    def _spec_of(op) -> dict:
        spec = {"operator": type(op).__name__, "domain_shape": list(op.domain_shape),
                "range_shape": list(op.range_shape)}
        if callable(getattr(op, "spec", None)):
            spec.update(op.spec())
        return spec

    @property
    def image_shape(self):
        """``(H, W)`` of the reconstructed images (the operator's domain shape)."""
        return tuple(self.geometry_spec["domain_shape"])

    @property
    def n_parameters(self) -> int:
        """Number of scalar parameters (learned weights)."""
        return _n_parameters(self)

    def check_operator(self, op) -> None:
        """Raise ``ValueError`` if these weights cannot run with ``op``.

        Compatible means: a :class:`LinearOperator` of the same class, with the
        same geometry type (when the operators describe one through
        ``spec()``), between 2-D spaces, with the same image (domain) shape
        as the operator the model was built with.  The data (range) shape may
        differ (e.g. more angles): all convolutions are size-agnostic.
        """
        name = type(self).__name__
        spec = self.geometry_spec
        if not isinstance(op, LinearOperator):
            raise ValueError(f"{name} needs a LinearOperator, got {type(op).__name__}")
        if type(op).__name__ != spec["operator"]:
            raise ValueError(f"{name} was built for a {spec['operator']}, got a "
                             f"{type(op).__name__}")
        new = self._spec_of(op)
        g_old = (spec.get("geometry") or {}).get("type")
        g_new = (new.get("geometry") or {}).get("type")
        if g_old != g_new:
            raise ValueError(f"{name} was built for geometry type {g_old}, got {g_new}")
        if tuple(op.domain_shape) != self.image_shape:
            raise ValueError(f"{name} was built for image shape {self.image_shape}, the given "
                             f"operator has image shape {tuple(op.domain_shape)}")
        if len(op.range_shape) != len(spec["range_shape"]):
            raise ValueError(f"{name} was built for {len(spec['range_shape'])}-D data, the given "
                             f"operator has range_shape {tuple(op.range_shape)}")

    def with_operator(self, op) -> "_Reconstructor":
        """A copy of this model (same weights, copied) bound to the operator ``op``.

        Raises
        ------
        ValueError
            When ``op`` is incompatible (see :meth:`check_operator`).
        """
        self.check_operator(op)
        new = copy.deepcopy(self, memo={id(self.op): op})  # do not copy the operator
        new._bind(op)
        return new

    def _check_y(self, y) -> None:
        name = type(self).__name__
        expected = (1,) + tuple(self.op.range_shape)
        if not isinstance(y, torch.Tensor):
            raise TypeError(f"{name} expects a torch.Tensor, got {type(y).__name__}")
        if y.dim() != 4 or tuple(y.shape[1:]) != expected:
            raise ValueError(f"{name} expects measurements of shape (B, {', '.join(map(str, expected))}), "
                             f"got {tuple(y.shape)}")
        if not y.is_floating_point():
            raise TypeError(f"{name} expects a real floating-point tensor, got {y.dtype}")

    def extra_repr(self) -> str:
        return (f"operator={self.geometry_spec['operator']}, image_shape={self.image_shape}, "
                f"data_shape={tuple(self.geometry_spec['range_shape'])}")


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
        from .ct import fbp

        self._check_y(y)
        return fbp(self.op, y, filter=self.filter, frequency_scaling=self.frequency_scaling)

    def _reconstruct(self, y: torch.Tensor) -> torch.Tensor:
        x = self.initial(y)
        return x + self.unet(x)


class LearnedGradientDescent(_Reconstructor):
    """Learned gradient descent (after Adler & Öktem 2017, "Solving ill-posed
    inverse problems using iterative deep neural networks").

    With the normalised operator ``K = A / ||A||`` and data ``g = y / ||A||``::

        x_0 = 0            (or the FBP of y, init="fbp")
        for k in range(n_iter):
            dx  = Lambda_k([x_k, K^T (K x_k - g)])
            x_{k+1} = x_k + dx

    ``K^T (K x - g) = A^T (A x - y) / ||A||^2``, so the gradient has a fixed
    scale whatever the operator's units.  Each ``Lambda_k`` (own weights per
    iteration) is 3x3 conv (2 -> ``channels``) - PReLU - 3x3 conv - PReLU -
    3x3 conv (-> 1).  The paper's variant also carries memory channels and
    the gradient of a regulariser; this is the plain, memory-less form.

    Parameters
    ----------
    op : LinearOperator
        Images ``(B, 1, H, W)`` to data ``(B, 1, A, D)``.
    n_iter : int
    channels : int
    init : {"zero", "fbp"}
        Starting point; ``"fbp"`` needs a RayTransform.

    Attributes
    ----------
    operator_scale : float
        ``1 / op.norm()``.
    """

    def __init__(self, op, n_iter: int = 10, channels: int = 32, init: str = "zero"):
        super().__init__()
        if init not in ("zero", "fbp"):
            raise ValueError(f"init must be 'zero' or 'fbp', got {init!r}")
        self.init = init
        if init == "fbp":
            self._needs_ray_transform = True
        self._bind(op)
        self.n_iter = int(n_iter)
        self.blocks = nn.ModuleList(_conv_block(2, 1, channels) for _ in range(self.n_iter))

    def _rebind(self) -> None:
        self.operator_scale = 1.0 / self.op.norm()

    def _reconstruct(self, y: torch.Tensor) -> torch.Tensor:
        s2 = self.operator_scale**2
        if self.init == "fbp":
            from .ct import fbp

            x = fbp(self.op, y, **FBP_DEFAULTS)
        else:
            x = y.new_zeros((y.shape[0], 1) + tuple(self.op.domain_shape))
        for block in self.blocks:
            grad = s2 * self.op.adjoint(self.op(x) - y)
            x = x + block(torch.cat([x, grad], dim=1))
        return x


class LearnedPrimalDual(_Reconstructor):
    """Learned primal-dual reconstruction (Adler & Öktem 2018, IEEE TMI 37(6)).

    With ``K = A / ||A||`` (operator norm 1) and ``g = y / ||A||`` (the data
    scaled the same way, so that ``K x = g`` exactly when ``A x = y`` and
    the output keeps the image's units)::

        h = zeros(B, n_primal, H, W);  d = zeros(B, n_dual, A, D)
        for k in range(n_iter):
            d = d + Gamma_k([d, K h[:, 1:2], g])        # n_dual + 2 -> n_dual channels
            h = h + Lambda_k([h, K^T d[:, 0:1]])        # n_primal + 1 -> n_primal channels
        return h[:, 0:1]

    Every ``Gamma_k`` / ``Lambda_k`` (own weights per iteration) is 3x3 conv
    (-> ``channels``) - PReLU - 3x3 conv (-> ``channels``) - PReLU - 3x3 conv
    (-> n), with biases, per-channel PReLU slopes initialised to 0 and
    Glorot-uniform kernels with zero biases.

    Verified against the authors' reference implementation,
    ``adler-j/learned_primal_dual``, file ``ellipses/learned_primal_dual.py``
    (the ellipse experiment of the paper): operator multiplied by
    ``1 / power_method_opnorm(operator)`` and the training data generated
    with that scaled operator; zero initial primal and dual; the dual input
    is ``concat([dual, K(primal[..., 1:2]), y])``, the primal input
    ``concat([primal, K^T(dual[..., 0:1])])``; both updates residual;
    ``apply_conv`` = 3x3 ``conv2d``, 32 filters, ``padding='SAME'``, Xavier
    init; ``prelu`` after the first two convolutions (``adler.tensorflow``'s
    ``prelu``: one trainable slope per channel, initialised to 0); output
    ``primal[..., 0:1]``; ``n_iter=10, n_primal=5, n_dual=5``.  DIVal's
    ``PrimalDualNet`` (``dival/reconstructors/networks/iterative.py``) has the
    same data flow but adds batch norm, a 4th layer and leaky ReLU by
    default; this class follows the paper's code, not DIVal's defaults.

    With the defaults the model has 253,220 parameters (251,940 in the
    convolutions and 1,280 PReLU slopes).

    Parameters
    ----------
    op : LinearOperator
        Images ``(B, 1, H, W)`` to data ``(B, 1, A, D)``; both 2-D.
    n_iter, n_primal, n_dual, channels : int

    Attributes
    ----------
    operator_scale : float
        ``1 / op.norm()``, applied to both the operator and ``y``.
    """

    def __init__(self, op, n_iter: int = 10, n_primal: int = 5, n_dual: int = 5,
                 channels: int = 32):
        super().__init__()
        if n_primal < 2 or n_dual < 1:
            raise ValueError(f"need n_primal >= 2 and n_dual >= 1, got {n_primal}, {n_dual}")
        self._bind(op)
        self.n_iter, self.n_primal, self.n_dual = int(n_iter), int(n_primal), int(n_dual)
        self.dual_blocks = nn.ModuleList(
            _conv_block(n_dual + 2, n_dual, channels) for _ in range(self.n_iter))
        self.primal_blocks = nn.ModuleList(
            _conv_block(n_primal + 1, n_primal, channels) for _ in range(self.n_iter))

    def _rebind(self) -> None:
        self.operator_scale = 1.0 / self.op.norm()

    def _reconstruct(self, y: torch.Tensor) -> torch.Tensor:
        s = self.operator_scale
        g = s * y
        B = y.shape[0]
        primal = y.new_zeros((B, self.n_primal) + tuple(self.op.domain_shape))
        dual = y.new_zeros((B, self.n_dual) + tuple(self.op.range_shape))
        for gamma, lam in zip(self.dual_blocks, self.primal_blocks):
            k_primal = s * self.op(primal[:, 1:2])
            dual = dual + gamma(torch.cat([dual, k_primal, g], dim=1))
            kt_dual = s * self.op.adjoint(dual[:, 0:1])
            primal = primal + lam(torch.cat([primal, kt_dual], dim=1))
        return primal[:, 0:1]


# ---------------------------------------------------------------------------
# Deep ensembles
# ---------------------------------------------------------------------------
class DeepEnsemble(nn.Module):
    """A deep ensemble: K independently trained reconstructors of one operator.

    ``forward(y)`` returns the ensemble mean, ``members(y)`` every member's
    reconstruction.  The spread of the members over pixels is an uncertainty
    map (Lakshminarayanan, Pritzel and Blundell 2017, "Simple and scalable
    predictive uncertainty estimation using deep ensembles", NeurIPS):
    members differ in their random initialisation and sample order only, and
    disagree most where the data leave the image undetermined.
    :func:`tomolearn.uq.scale_from_ensemble` turns ``members(y)`` into the
    mean and a per-pixel standard deviation.

    Parameters
    ----------
    members : sequence of reconstructors
        ``K >= 2`` models mapping ``(B, 1, A, D)`` to ``(B, 1, H, W)``, all
        bound to operators of one geometry (same ``geometry_spec``).

    Notes
    -----
    Like the members, an ensemble can be rebound to a compatible operator
    with :meth:`with_operator` (e.g. more angles); every member is checked.
    """

    def __init__(self, members):
        super().__init__()
        members = list(members)
        if len(members) < 2:
            raise ValueError(f"a deep ensemble needs at least 2 members, got {len(members)}")
        for i, m in enumerate(members):
            if not isinstance(m, _Reconstructor):
                raise TypeError(f"ensemble member {i} must be a tomolearn.learned reconstructor, "
                                f"got {type(m).__name__}")
            if m.geometry_spec != members[0].geometry_spec:
                raise ValueError(f"ensemble member {i} is bound to another geometry than member 0: "
                                 f"{m.geometry_spec} vs {members[0].geometry_spec}")
        self.ensemble = nn.ModuleList(members)

    @property
    def op(self):
        """The operator shared by the members."""
        return self.ensemble[0].op

    @property
    def geometry_spec(self) -> dict:
        return self.ensemble[0].geometry_spec

    @property
    def image_shape(self):
        return self.ensemble[0].image_shape

    @property
    def n_members(self) -> int:
        """K, the number of members."""
        return len(self.ensemble)

    @property
    def n_parameters(self) -> int:
        """Number of scalar parameters of all members together."""
        return _n_parameters(self)

    def check_operator(self, op) -> None:
        """Raise ``ValueError`` if the members cannot run with ``op`` (see the members' method)."""
        self.ensemble[0].check_operator(op)

    def with_operator(self, op) -> "DeepEnsemble":
        """A copy of the ensemble (weights copied) with every member bound to ``op``."""
        new = DeepEnsemble([m.with_operator(op) for m in self.ensemble])
        if hasattr(self, "card"):
            new.card = self.card
        return new

    def members(self, y: torch.Tensor) -> torch.Tensor:
        """Every member's reconstruction of ``y`` (B, 1, A, D): a (K, B, 1, H, W) tensor."""
        return torch.stack([m(y) for m in self.ensemble])

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        """The ensemble mean, (B, 1, H, W)."""
        return self.members(y).mean(0)
