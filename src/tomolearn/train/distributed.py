"""Data-parallel training under ``torchrun``: the process group, and the sampler.

:func:`distributed_setup` joins the process group (NCCL on CUDA, gloo on the
CPU), :func:`distributed_teardown` leaves it.  :class:`_ResumableSampler`
gives every process its share of each global batch, in an order that is a
pure function of the seed and the epoch, and can start part-way through an
epoch (the data position of a resumed run is its step count).
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist
from torch.utils.data import DistributedSampler


class _ResumableSampler(DistributedSampler):
    """A :class:`DistributedSampler` that can start part-way through an epoch."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.skip = 0

    def __iter__(self):
        indices = list(super().__iter__())
        return iter(indices[self.skip:])

    def __len__(self):
        return super().__len__() - self.skip


def distributed_setup() -> tuple:
    """Join the process group started by ``torchrun`` (if any): ``(rank, world_size, device)``.

    Uses NCCL when CUDA is available (one GPU per local rank), gloo otherwise.
    Outside ``torchrun`` returns ``(0, 1, None)`` and does nothing.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1, None
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend=backend)
    device = None
    if torch.cuda.is_available():
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)
    return dist.get_rank(), dist.get_world_size(), device


def distributed_teardown(wait: bool = True) -> None:
    """Leave the process group joined by :func:`distributed_setup`, if any.

    With ``wait`` every rank first meets at a barrier (pass False after an
    error, when the other ranks may never arrive).  Without this teardown
    gloo's threads can abort the interpreter at exit ("terminate called
    without an active exception") after a finished run.
    """
    if dist.is_available() and dist.is_initialized():
        if wait:
            dist.barrier()
        dist.destroy_process_group()
