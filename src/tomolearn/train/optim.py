"""The optimisation pieces a :class:`~tomolearn.train.Trainer` assembles.

:func:`cosine_schedule` (learning-rate factor: linear warm-up, cosine decay),
:func:`_amp_dtype` (the autocast dtype a mixed-precision setting means on a
device) and :class:`_EMA` (exponential moving average of the weights).
"""

from __future__ import annotations

import math
import warnings
from typing import Optional

import torch
from torch import nn

from .. import hardware


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


#: The accepted values of ``amp`` (besides True and False).
AMP_VALUES = ("auto", "bf16", "bfloat16", "fp16", "float16", "off")


def _amp_dtype(amp, device: torch.device, warn: bool = True) -> Optional[torch.dtype]:
    """The autocast dtype for ``amp`` in {False, True, "auto", "bf16", "fp16"} (None: off).

    On a CPU without native bfloat16 (:func:`tomolearn.hardware.cpu_has_native_bf16`)
    ``True``/``"auto"``/``"bf16"`` mean float32: emulated bfloat16 is about ten times
    slower.  With ``warn`` the fall-back says so with one :class:`RuntimeWarning`.
    """
    if amp in (False, None, "off"):
        return None
    if amp in ("fp16", "float16"):
        if device.type != "cuda":
            raise ValueError("amp='fp16' needs a CUDA device; use 'bf16' on the CPU")
        return torch.float16
    if amp not in (True, "auto", "bf16", "bfloat16"):
        raise ValueError(f"amp must be one of False, True, 'auto', 'bf16', 'fp16'; got {amp!r}")
    if device.type == "cuda":
        if amp in ("bf16", "bfloat16"):
            return torch.bfloat16
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type != "cpu":  # e.g. mps: bfloat16 only when asked for
        return torch.bfloat16 if amp in ("bf16", "bfloat16") else None
    if not hardware.cpu_has_native_bf16():
        if warn:
            warnings.warn(f"amp={amp!r}: this CPU has no native bfloat16 (no avx512_bf16 or "
                          f"amx_bf16), where bfloat16 autocast is about 10 times slower than "
                          f"float32; training in float32", RuntimeWarning, stacklevel=3)
        return None
    return torch.bfloat16


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
