"""The optimisation pieces a :class:`~tomolearn.train.Trainer` assembles.

:func:`cosine_schedule` (learning-rate factor: linear warm-up, cosine decay),
:func:`_amp_dtype` (the autocast dtype a mixed-precision setting means on a
device) and :class:`_EMA` (exponential moving average of the weights).
"""

from __future__ import annotations

import math
from typing import Optional

import torch
from torch import nn


def cosine_schedule(step: int, total: int, warmup: int, min_ratio: float) -> float:
    """Learning-rate factor at ``step`` (0-based): linear warm-up, then cosine decay.

    ``(step + 1) / warmup`` for the first ``warmup`` steps, then
    ``min_ratio + (1 - min_ratio) * (1 + cos(pi * t)) / 2`` with ``t`` going
    from 0 to 1 over the remaining steps.
    """
    if step < warmup:
        return (step + 1) / warmup
    t = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * t))


def _amp_dtype(amp, device: torch.device) -> Optional[torch.dtype]:
    """The autocast dtype for ``amp`` in {False, True, "auto", "bf16", "fp16"} (None: off)."""
    if amp in (False, None, "off"):
        return None
    if amp in ("bf16", "bfloat16"):
        return torch.bfloat16
    if amp in ("fp16", "float16"):
        if device.type != "cuda":
            raise ValueError("amp='fp16' needs a CUDA device; use 'bf16' on the CPU")
        return torch.float16
    if amp in (True, "auto"):
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        if device.type == "cpu" and torch.backends.mkldnn.is_available() \
                and torch.ops.mkldnn._is_mkldnn_bf16_supported():
            return torch.bfloat16
        return None
    raise ValueError(f"amp must be one of False, True, 'auto', 'bf16', 'fp16'; got {amp!r}")


class _EMA:
    """Exponential moving average of a module's floating-point parameters and buffers."""

    def __init__(self, module: nn.Module, decay: float):
        self.decay = decay
        self.shadow = {k: v.detach().clone() for k, v in module.state_dict().items()}

    @torch.no_grad()
    def update(self, module: nn.Module) -> None:
        for k, v in module.state_dict().items():
            if v.is_floating_point():
                self.shadow[k].lerp_(v.detach(), 1.0 - self.decay)
            else:
                self.shadow[k].copy_(v)

    def state_dict(self) -> dict:
        return {k: v.clone() for k, v in self.shadow.items()}

    def load_state_dict(self, state: dict) -> None:
        for k in self.shadow:
            self.shadow[k].copy_(state[k])
