"""The base class of the operator-bound reconstructors.

:class:`_Reconstructor` binds a :class:`tomolearn.operators.LinearOperator`
to a model (as a plain attribute, so ``state_dict`` holds only learned
weights), records its ``geometry_spec``, checks that another operator fits
the weights (:meth:`~_Reconstructor.check_operator`), rebinds a copy of the
weights (:meth:`~_Reconstructor.with_operator`), checks the measurements
given to ``forward`` and runs CPU inference in cache-sized sub-batches.

The models know no modality: where they start from a classical
reconstruction (:class:`~tomolearn.learned.FBPConvNet`, and
:class:`~tomolearn.learned.LearnedGradientDescent` with ``init="initial"``) it
is the operator's own first guess (:meth:`initial`; FBP for the ray transform,
which is what the CT tasks use too).

Networks see real channels.  A complex operator's image ``(B, 1, H, W)`` becomes
``image_channels = 2`` channels (real, imaginary); data ``(B, 1, *lead, A, D)``
become ``data_channels = (2 if complex else 1) * prod(lead)`` channels on the
last two axes (e.g. the coils of multi-coil MRI k-space).  For CT both are 1,
so weights and results are those of the one-channel models.
"""

from __future__ import annotations

import copy
import math
from typing import Optional

import torch

from ..operators import LinearOperator
from .blocks import _ShapedModule


class _Reconstructor(_ShapedModule):
    """Base class: binds a :class:`LinearOperator`, checks inputs and compatibility.

    The operator is stored as a plain attribute (not a sub-module), so it does
    not appear in ``state_dict``.  Subclasses implement ``_rebind`` to refresh
    whatever they derive from the operator (e.g. its norm).
    """

    #: Inference (eval mode, no autograd) on CPU tensors runs in sub-batches of this many
    #: images: the activations of 8 images of 128 x 128 stay in cache, which made learned
    #: primal-dual 1.5 times faster per image at batch 16 in float32 (1.4 times in bfloat16),
    #: learned gradient descent 1.5 times and FBPConvNet 1.2 times, on this project's 2-core
    #: CPU.  The result is that of one batch: in eval mode every image is reconstructed on
    #: its own.  None: never split.
    inference_chunk: Optional[int] = 8
    #: Whether the network's layers take the data's leading axes (e.g. MRI coils) as
    #: channels, so that an operator with other leading axes cannot be bound; False for
    #: networks that treat them alike with shared weights (VarNet's coils).
    channels_from_data_axes: bool = True

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

    # -- the operator ------------------------------------------------------
    def _bind(self, op) -> None:
        if not isinstance(op, LinearOperator):
            raise TypeError(f"{type(self).__name__} needs a LinearOperator, got {type(op).__name__}")
        if len(op.domain_shape) != 2 or len(op.range_shape) < 2:
            raise ValueError(
                f"{type(self).__name__} needs 2-D images and data whose last two axes are "
                f"2-D (sinograms, k-space; leading axes such as coils become channels); got "
                f"domain_shape {op.domain_shape} and range_shape {op.range_shape}")
        object.__setattr__(self, "op", op)
        object.__setattr__(self, "geometry_spec", self._spec_of(op))
        self.is_complex = bool(op.requires_complex)
        parts = 2 if self.is_complex else 1
        self.image_channels = parts
        self.data_channels = parts * math.prod(op.range_shape[:-2])
        self._rebind()

    def _rebind(self) -> None:
        pass

    def initial(self, y: torch.Tensor) -> torch.Tensor:
        """The bound operator's first guess from ``y`` (``op.initial_reconstruction``: FBP
        for the ray transform): ``(B, 1, *data_shape)`` -> ``(B, 1, *image_shape)``."""
        self._check_y(y)
        return self.op.initial_reconstruction(y)

    # -- images and data as real channels ------------------------------------------------
    def image_to_channels(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 1, H, W)`` images as ``(B, image_channels, H, W)`` real channels."""
        return torch.view_as_real(x[:, 0]).permute(0, 3, 1, 2) if self.is_complex else x

    def channels_to_image(self, h: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`image_to_channels` (the first ``image_channels`` of ``h``)."""
        return torch.complex(h[:, 0], h[:, 1])[:, None] if self.is_complex else h[:, :1]

    def data_to_channels(self, y: torch.Tensor) -> torch.Tensor:
        """``(B, 1, *lead, A, D)`` data as ``(B, data_channels, A, D)`` real channels."""
        if self.is_complex:
            y = torch.view_as_real(y).movedim(-1, 2)  # (B, 1, 2, *lead, A, D)
        return y.reshape((y.shape[0], self.data_channels) + tuple(y.shape[-2:]))

    def channels_to_data(self, d: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`data_to_channels` (the first ``data_channels`` of ``d``)."""
        d = d[:, :self.data_channels]
        lead = tuple(self.op.range_shape[:-2])
        if not self.is_complex:
            return d.reshape((d.shape[0], 1) + lead + tuple(d.shape[-2:]))
        d = d.reshape((d.shape[0], 2) + lead + tuple(d.shape[-2:])).movedim(1, -1)
        return torch.view_as_complex(d.contiguous())[:, None]

    @staticmethod
    def _spec_of(op) -> dict:
        spec = {"operator": type(op).__name__, "domain_shape": list(op.domain_shape),
                "range_shape": list(op.range_shape)}
        if callable(getattr(op, "spec", None)):
            spec.update(op.spec())
        return spec

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
        if len(op.range_shape) != len(spec["range_shape"]) or (
                self.channels_from_data_axes
                and tuple(op.range_shape[:-2]) != tuple(spec["range_shape"][:-2])):
            raise ValueError(f"{name} was built for data of shape {tuple(spec['range_shape'])} "
                             f"(the last two axes may differ), the given operator has "
                             f"range_shape {tuple(op.range_shape)}")
        if bool(op.requires_complex) != self.is_complex:
            raise ValueError(f"{name} was built for {'complex' if self.is_complex else 'real'} "
                             f"images, the given operator takes the other kind")

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

    # -- inputs --------------------------------------------------------------
    def _check_y(self, y) -> None:
        name = type(self).__name__
        expected = (1,) + tuple(self.op.range_shape)
        if not isinstance(y, torch.Tensor):
            raise TypeError(f"{name} expects a torch.Tensor, got {type(y).__name__}")
        if y.dim() != 1 + len(expected) or tuple(y.shape[1:]) != expected:
            raise ValueError(f"{name} expects measurements of shape (B, {', '.join(map(str, expected))}), "
                             f"got {tuple(y.shape)}")
        if self.is_complex and not y.is_complex():
            raise TypeError(f"{name} expects complex measurements (its operator is complex), "
                            f"got {y.dtype}")
        if not self.is_complex and not y.is_floating_point():
            raise TypeError(f"{name} expects a real floating-point tensor, got {y.dtype}")

    def extra_repr(self) -> str:
        return (f"operator={self.geometry_spec['operator']}, image_shape={self.image_shape}, "
                f"data_shape={tuple(self.geometry_spec['range_shape'])}")
