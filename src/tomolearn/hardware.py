"""What this machine offers: native bfloat16 on the CPU, and the torch devices that exist.

:func:`cpu_has_native_bf16` is the one place that decides whether bfloat16 autocast
is worth using on the CPU (training, the shipped learned methods' ``amp``, and
``tomolearn benchmark learned`` all ask it); :func:`available_devices` and
:func:`check_device` name the devices a configuration may ask for.
"""

from __future__ import annotations

import functools
import sys
from typing import FrozenSet, List, Optional

import torch

#: /proc/cpuinfo flags (x86) or features (Arm) that mean the CPU computes in bfloat16 natively.
BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16", "bf16"})


@functools.lru_cache(maxsize=1)
def _cpu_flags() -> Optional[FrozenSet[str]]:
    """The CPU's flags from /proc/cpuinfo (Linux), or None where they cannot be read."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, sep, value = line.partition(":")
                if sep and key.strip().lower() in ("flags", "features"):
                    return frozenset(value.split())
    except OSError:
        return None
    return None


def cpu_has_native_bf16() -> bool:
    """Whether the CPU computes in bfloat16 natively (AVX-512 BF16, AMX, or Arm BF16).

    Without it bfloat16 autocast is emulated and about ten times slower than float32
    (learned primal-dual inference 580 ms per image against 45 ms), so callers fall
    back to float32.  On Linux the answer is read from the flags of /proc/cpuinfo
    (``avx512_bf16`` or ``amx_bf16``; ``bf16`` on Arm): torch's own check
    (``torch.ops.mkldnn._is_mkldnn_bf16_supported``) says yes on every AVX-512 CPU,
    including those that only emulate bfloat16.  Elsewhere torch's check decides.
    """
    flags = _cpu_flags()
    if flags is not None:
        return bool(flags & BF16_FLAGS)
    try:
        return bool(torch.backends.mkldnn.is_available()
                    and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def available_devices() -> List[str]:
    """The torch devices of this machine: ``cpu``, ``cuda:0`` ..., ``mps``."""
    devices = ["cpu"]
    if torch.cuda.is_available():
        devices += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        devices.append("mps")
    return devices


def check_device(name) -> torch.device:
    """``torch.device(name)`` if this machine has that device, else ValueError naming those it has."""
    have = available_devices()
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise ValueError(f"{name!r} is not a torch device; this machine has "
                         f"{', '.join(have)}") from None
    ok = device.type == "cpu" or \
        (device.type == "cuda" and f"cuda:{device.index or 0}" in have) or \
        (device.type == "mps" and "mps" in have)
    if not ok:
        kind = "CUDA device" if device.type == "cuda" else "device"
        raise ValueError(f"{name!r}: no such {kind} here; this machine has {', '.join(have)}")
    return device
