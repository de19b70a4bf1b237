"""Training checkpoints: reading ``checkpoint.pt`` safely, and the RNG states it holds.

A checkpoint is a ``torch.save`` dict of tensors and plain values (written by
:meth:`tomolearn.train.Trainer.save_checkpoint`); :func:`_read_checkpoint`
loads it with ``weights_only=True`` so that a crafted file runs no code.
"""

from __future__ import annotations

import pickle
import random
from pathlib import Path

import numpy as np
import torch

#: The checkpoint's file name in a run directory.
CHECKPOINT = "checkpoint.pt"
#: The ``format`` field of the checkpoints this version writes and reads.
CHECKPOINT_FORMAT = 1


class CheckpointError(ValueError):
    """A checkpoint cannot be used for this run (other architecture, damaged file...)."""


def _rng_state() -> dict:
    """The global RNG states as tensors and plain Python values (loadable with weights_only)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {"torch": torch.get_rng_state(),
             "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss),
                       float(cached)],
             "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    """Restore the global RNG states saved by :func:`_rng_state`."""
    torch.set_rng_state(state["torch"])
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _unsupported(error: Exception) -> str:
    """The 'Unsupported global: ...' part of torch's weights-only error, without its advice."""
    line = next(l for l in str(error).splitlines() if "Unsupported global" in l)
    return "Unsupported global" + line.split("Unsupported global", 1)[1].split(". Please", 1)[0]


def _read_checkpoint(path: Path, device) -> dict:
    """Read a checkpoint without running code from it.

    ``torch.load(weights_only=True)`` unpickles tensors and plain containers only: a crafted
    file that would import or call anything is refused before any of its code runs.
    """
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except pickle.UnpicklingError as e:
        if "Unsupported global" not in str(e):  # junk bytes, not a forbidden object
            raise CheckpointError(f"{path}: not a readable checkpoint (not a torch.save "
                                  f"file)") from None
        raise CheckpointError(f"{path}: refused: the checkpoint holds objects other than tensors "
                              f"and plain values, which tomolearn never writes (not loaded, "
                              f"nothing in it was run): "
                              f"{_unsupported(e)}") from None
    except Exception as e:  # zip errors of a damaged or foreign file
        raise CheckpointError(f"{path}: not a readable checkpoint ({e})") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path}: not a tomolearn checkpoint (format "
                              f"{state.get('format') if isinstance(state, dict) else None})")
    return state
