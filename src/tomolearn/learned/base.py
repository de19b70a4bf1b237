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
"""

from __future__ import annotations

import copy
from typing import Optional

import torch
from torch import nn

from ..operators import LinearOperator
from .blocks import _n_parameters


class _Reconstructor(nn.Module):
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
        if len(op.domain_shape) != 2 or len(op.range_shape) != 2:
            raise ValueError(
                f"{type(self).__name__} needs an operator between 2-D spaces (images to "
                f"sinogram-like data); got domain_shape {op.domain_shape} and range_shape "
                f"{op.range_shape}")
        object.__setattr__(self, "op", op)
        object.__setattr__(self, "geometry_spec", self._spec_of(op))
        self._rebind()

    def _rebind(self) -> None:
        pass

    def initial(self, y: torch.Tensor) -> torch.Tensor:
        """The bound operator's first guess from ``y`` (``op.initial_reconstruction``: FBP
        for the ray transform): ``(B, 1, *data_shape)`` -> ``(B, 1, *image_shape)``."""
        self._check_y(y)
        return self.op.initial_reconstruction(y)

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

    # -- inputs --------------------------------------------------------------
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
