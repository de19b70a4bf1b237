"""Supervised training of learned reconstructors: the :class:`Trainer`.

One ``Trainer`` fits a reconstructor ``model(y) -> x_hat`` to pairs ``(y, x)``
with a mean squared error (or L1) loss:

- Adam or AdamW; learning rate with linear warm-up then cosine decay
  (``lr_min_ratio * lr`` at the end); gradient-norm clipping;
- optional exponential moving average (EMA) of the weights, used for
  validation and for the saved model;
- mixed precision (bfloat16 autocast on CPUs with native bfloat16 and on
  CUDA; float16 with a gradient scaler on older GPUs); the forward operators
  always run in float32 (:func:`tomolearn.operators._full_precision`);
- validation every ``val_every`` steps with PSNR / SSIM (DIVal convention),
  best-model selection on PSNR, early stopping after ``patience``
  validations without improvement;
- a progress bar with ETA and running loss, ``train.csv`` / ``validation.csv``
  and TensorBoard event files in the run directory;
- atomic checkpoints (model, optimiser, schedule, gradient scaler, EMA, RNG
  states, step = data position, best score) so that ``fit(resume=True)``
  continues a killed run to the same weights, bit for bit on the same machine
  and thread count, as a run that was never interrupted;
- data-parallel training on several processes with
  :class:`torch.nn.parallel.DistributedDataParallel` when started by
  ``torchrun`` (gloo on CPU, NCCL on CUDA): every process sees its share of
  each global batch through :class:`torch.utils.data.DistributedSampler`;
  rank 0 validates, logs and writes checkpoints.

The order of the training samples is a pure function of ``seed`` and the
epoch, so the data position is the step count and nothing else needs saving.

Run directory layout::

    checkpoint.pt        last checkpoint (resume from it)
    best.safetensors     weights with the best validation PSNR, + best.json (model card)
    final.safetensors    weights at the end, + final.json
    train.csv            step, epoch, samples, lr, loss, grad_norm, seconds
    validation.csv       step, samples, psnr, ssim, best
    events.out.tfevents.*  TensorBoard
"""

from __future__ import annotations

import copy
import csv
import io
import math
import os
import pickle
import platform
import random
import time
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from .files import atomic_write_bytes, exclusive_lock
from .metrics import psnr, ssim

__all__ = ["Trainer", "TrainingDivergedError", "CheckpointError", "cosine_schedule",
           "distributed_setup", "distributed_teardown"]

CHECKPOINT = "checkpoint.pt"
RUN_LOCK = "run.lock"
CHECKPOINT_FORMAT = 1


class TrainingDivergedError(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint was kept."""


class CheckpointError(ValueError):
    """A checkpoint cannot be used for this run (other architecture, damaged file...)."""


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


class Trainer:
    """Supervised training of a reconstructor on ``(y, x)`` pairs.

    Parameters
    ----------
    model : nn.Module
        Maps measurements ``(B, 1, A, D)`` to images ``(B, 1, H, W)``; usually
        a :mod:`tomolearn.learned` reconstructor.  Its ``state_dict`` is what
        is trained and saved.
    train_data, val_data : Dataset
        ``ds[i] -> (y, x)`` with shapes ``(1, A, D)``, ``(1, H, W)``; e.g.
        :func:`tomolearn.data.ellipses_benchmark` or an HDF5 file opened with
        :func:`tomolearn.data.open_hdf5`.  ``val_data`` may be None.
    out_dir : path
        Run directory (checkpoints, weights, logs).
    steps : int
        Optimiser steps in total (the schedule's length).
    batch_size : int
        Global batch size (split evenly over the processes).
    lr, optimizer, weight_decay, betas
        ``"adam"`` or ``"adamw"`` with these settings.
    warmup_steps, lr_min_ratio
        See :func:`cosine_schedule`.
    grad_clip : float or None
        Maximum global gradient 2-norm.
    ema_decay : float or None
        EMA of the weights with this decay (e.g. 0.999); used for validation
        and saved weights.
    amp : False, True/"auto", "bf16" or "fp16"
        Mixed precision (see the module docstring); "auto" picks bfloat16 where
        the hardware has it natively, else stays in float32.
    loss : {"mse", "l1"}
    val_every, val_size, val_batch_size
        Validate on the first ``val_size`` samples every ``val_every`` steps
        and at the end.
    patience : int or None
        Stop after this many validations without a PSNR improvement.
    checkpoint_every : int
        Steps between checkpoints (and at the end).
    log_every : int
        Steps between rows of ``train.csv`` (the running loss is their mean).
    seed : int
        Seeds the sample order and torch's generators.
    num_workers : int
        DataLoader worker processes.
    device : str or torch.device
    progress : bool
        Show a progress bar (rank 0).
    tensorboard : bool
        Write TensorBoard event files (needs the ``tensorboard`` package).
    channels_last : bool
        Keep convolution weights in the channels-last memory format (1.6 times
        faster convolutions on this project's CPUs; values are unaffected).
    card : dict, optional
        Extra fields for the model cards written with the weights
        (architecture, data spec, ...).
    """

    def __init__(self, model: nn.Module, train_data: Dataset, val_data: Optional[Dataset], *,
                 out_dir, steps: int, batch_size: int = 16, lr: float = 1e-3,
                 optimizer: str = "adam", weight_decay: float = 0.0, betas=(0.9, 0.999),
                 warmup_steps: int = 0, lr_min_ratio: float = 0.0, grad_clip: Optional[float] = 1.0,
                 ema_decay: Optional[float] = None, amp=False, loss: str = "mse",
                 val_every: int = 500, val_size: Optional[int] = None, val_batch_size: int = 32,
                 patience: Optional[int] = None, checkpoint_every: int = 100, log_every: int = 10,
                 seed: int = 0, num_workers: int = 0, device="cpu", progress: bool = True,
                 tensorboard: bool = True, channels_last: bool = True,
                 card: Optional[dict] = None):
        if steps < 1 or batch_size < 1:
            raise ValueError(f"steps and batch_size must be >= 1, got {steps} and {batch_size}")
        if optimizer not in ("adam", "adamw"):
            raise ValueError(f"optimizer must be 'adam' or 'adamw', got {optimizer!r}")
        if loss not in ("mse", "l1"):
            raise ValueError(f"loss must be 'mse' or 'l1', got {loss!r}")
        if ema_decay is not None and not 0.0 < ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in (0, 1), got {ema_decay}")
        self.rank, self.world, dist_device = distributed_setup()
        self.device = dist_device if dist_device is not None else torch.device(device)
        if batch_size % self.world:
            raise ValueError(f"batch_size {batch_size} must be divisible by the number of "
                             f"processes ({self.world})")
        if len(train_data) < batch_size:
            raise ValueError(f"the training set has {len(train_data)} samples, fewer than one "
                             f"batch ({batch_size})")
        self.model = model.to(self.device, memory_format=torch.channels_last if channels_last
                              else torch.contiguous_format)
        self.train_data, self.val_data = train_data, val_data
        self.out_dir = Path(out_dir)
        self.steps, self.batch_size = int(steps), int(batch_size)
        self.loss_name = loss
        self.amp_dtype = _amp_dtype(amp, self.device)
        self.grad_clip = grad_clip
        self.val_every, self.val_batch_size = int(val_every), int(val_batch_size)
        self.val_size = None if val_data is None else min(len(val_data), val_size or len(val_data))
        self.patience = patience
        self.checkpoint_every, self.log_every = int(checkpoint_every), int(log_every)
        self.seed, self.num_workers = int(seed), int(num_workers)
        self.progress, self.tensorboard = progress, tensorboard
        self.card = dict(card or {})
        self.hyper = {"steps": steps, "batch_size": batch_size, "lr": lr, "optimizer": optimizer,
                      "weight_decay": weight_decay, "betas": list(betas),
                      "warmup_steps": warmup_steps, "lr_min_ratio": lr_min_ratio,
                      "grad_clip": grad_clip, "ema_decay": ema_decay,
                      "amp": str(self.amp_dtype).replace("torch.", "") if self.amp_dtype else "off",
                      "loss": loss, "seed": seed, "processes": self.world}

        torch.manual_seed(self.seed)
        self.ddp = None
        if self.world > 1:
            self.ddp = nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        opt_cls = torch.optim.AdamW if optimizer == "adamw" else torch.optim.Adam
        self.optimizer = opt_cls(self.model.parameters(), lr=lr, betas=tuple(betas),
                                 weight_decay=weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: cosine_schedule(s, self.steps, warmup_steps, lr_min_ratio))
        self.scaler = torch.amp.GradScaler(self.device.type,
                                           enabled=self.amp_dtype == torch.float16)
        self.ema = _EMA(self.model, ema_decay) if ema_decay else None
        self.sampler = _ResumableSampler(train_data, num_replicas=self.world, rank=self.rank,
                                         shuffle=True, seed=self.seed, drop_last=True)
        self.step = 0
        self.best = {"psnr": -math.inf, "ssim": None, "step": None}
        self.bad_validations = 0
        self.history = []
        self.train_seconds = 0.0

    # -- paths -----------------------------------------------------------
    @property
    def checkpoint_path(self) -> Path:
        return self.out_dir / CHECKPOINT

    # -- checkpoints -----------------------------------------------------
    def _architecture(self) -> dict:
        m = self.model
        return {"class": type(m).__name__,
                "parameters": {k: list(v.shape) for k, v in m.state_dict().items()}}

    def state_dict(self) -> dict:
        """Everything needed to continue: weights, optimiser, schedule, EMA, RNG, counters."""
        return {"format": CHECKPOINT_FORMAT, "architecture": self._architecture(),
                "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "scaler": self.scaler.state_dict(),
                "ema": self.ema.state_dict() if self.ema else None, "rng": _rng_state(),
                "step": self.step, "best": self.best, "bad_validations": self.bad_validations,
                "history": self.history, "train_seconds": self.train_seconds,
                "hyper": self.hyper}

    def save_checkpoint(self) -> None:
        """Write ``checkpoint.pt`` atomically (rank 0 only)."""
        if self.rank != 0:
            return
        buf = io.BytesIO()
        torch.save(self.state_dict(), buf)
        atomic_write_bytes(self.checkpoint_path, buf.getvalue())

    def load_checkpoint(self, path=None) -> None:
        """Restore a checkpoint written by :meth:`save_checkpoint`.

        Raises
        ------
        FileNotFoundError, CheckpointError
            Missing or unreadable file, other architecture or batch settings.
        """
        path = Path(path) if path is not None else self.checkpoint_path
        if not path.exists():
            raise FileNotFoundError(f"{path}: no checkpoint to resume from")
        state = _read_checkpoint(path, self.device)
        mine, theirs = self._architecture(), state["architecture"]
        if mine != theirs:
            diff = sorted(k for k in set(mine["parameters"]) | set(theirs["parameters"])
                          if mine["parameters"].get(k) != theirs["parameters"].get(k))
            raise CheckpointError(
                f"{path}: checkpoint is for a {theirs['class']} with other parameters than this "
                f"{mine['class']} (differing: {', '.join(diff[:5]) or 'class'}"
                f"{' ...' if len(diff) > 5 else ''})")
        for key in ("batch_size", "seed", "processes", "steps"):
            if state["hyper"].get(key) != self.hyper[key] and key != "steps":
                raise CheckpointError(f"{path}: checkpoint was made with {key}="
                                      f"{state['hyper'].get(key)}, this run has {self.hyper[key]}")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        if self.ema is not None and state["ema"] is not None:
            self.ema.load_state_dict(state["ema"])
        _set_rng_state(state["rng"])
        self.step, self.best = state["step"], state["best"]
        self.bad_validations, self.history = state["bad_validations"], state["history"]
        self.train_seconds = state["train_seconds"]

    # -- weights -----------------------------------------------------------
    def eval_state_dict(self) -> dict:
        """The weights used for validation and saving (the EMA when enabled)."""
        return self.ema.state_dict() if self.ema else self.model.state_dict()

    def _save_weights(self, name: str, metrics: dict) -> None:
        if self.rank != 0:
            return
        from .weights import save_weights

        card = {"geometry": getattr(self.model, "geometry_spec", None), **self.card, "training": {**self.hyper, "steps_done": self.step,
                                          "samples_seen": self.step * self.batch_size,
                                          "seconds": round(self.train_seconds, 1),
                                          "hardware": _hardware(self.device)},
                "validation": metrics, "validation_history": self.history}
        save_weights(self.out_dir / f"{name}.safetensors", self.eval_state_dict(), card,
                     overwrite=True)

    # -- one step ----------------------------------------------------------
    def _loss(self, out, x):
        out = out.float()
        return torch.mean((out - x) ** 2) if self.loss_name == "mse" else torch.mean(torch.abs(out - x))

    def _train_step(self, y, x) -> tuple:
        net = self.ddp if self.ddp is not None else self.model
        net.train()
        self.optimizer.zero_grad(set_to_none=True)
        with torch.autocast(self.device.type, dtype=self.amp_dtype or torch.float32,
                            enabled=self.amp_dtype is not None):
            out = net(y)
        loss = self._loss(out, x)
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(self.optimizer)
        grad_norm = torch.nn.utils.clip_grad_norm_(
            self.model.parameters(), self.grad_clip if self.grad_clip else float("inf"))
        loss_value = loss.detach()
        if self.world > 1:  # the same NaN decision and logged loss on every rank
            dist.all_reduce(loss_value)
            loss_value /= self.world
        loss_value = float(loss_value)
        if not math.isfinite(loss_value):
            return loss_value, float(grad_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        if self.ema is not None:
            self.ema.update(self.model)
        return loss_value, float(grad_norm)

    # -- validation ----------------------------------------------------------
    @torch.no_grad()
    def validate(self) -> dict:
        """Mean PSNR / SSIM of the evaluation weights on the first ``val_size`` samples."""
        backup = None
        if self.ema is not None:
            backup = {k: v.clone() for k, v in self.model.state_dict().items()}
            self.model.load_state_dict(self.ema.shadow)
        self.model.eval()
        ps, ss = [], []
        try:
            for start in range(0, self.val_size, self.val_batch_size):
                idx = range(start, min(start + self.val_batch_size, self.val_size))
                batch = [self.val_data[i] for i in idx]
                y = torch.stack([b[0] for b in batch]).to(self.device)
                x = torch.stack([b[1] for b in batch]).to(self.device)
                with torch.autocast(self.device.type, dtype=self.amp_dtype or torch.float32,
                                    enabled=self.amp_dtype is not None):
                    out = self.model(y)
                out = out.float()
                ps.append(psnr(out, x).cpu())
                ss.append(ssim(out, x).cpu())
        finally:
            if backup is not None:
                self.model.load_state_dict(backup)
        return {"psnr": float(torch.cat(ps).mean()), "ssim": float(torch.cat(ss).mean()),
                "n": self.val_size}

    # -- the loop -------------------------------------------------------------
    def fit(self, resume: bool = False, max_steps: Optional[int] = None,
            callback: Optional[Callable[[int, float], None]] = None) -> dict:
        """Train until ``steps`` (or early stopping); return a summary.

        Parameters
        ----------
        resume : bool
            Continue from ``out_dir/checkpoint.pt``.  Without it, a run
            directory that already holds a checkpoint is refused (nothing is
            overwritten).
        max_steps : int, optional
            Stop after this step count even if the schedule is longer (the
            checkpoint lets a later call go on).
        callback : callable(step, loss), optional

        Returns
        -------
        dict
            ``steps``, ``samples_seen``, ``seconds``, ``best`` (step, psnr,
            ssim), ``stopped`` ("finished", "max_steps" or "early_stopping"),
            ``last_validation``.

        Raises
        ------
        TrainingDivergedError
            The loss became NaN/inf; the last checkpoint is left as it was.
        LockedError
            Another process is training in the same run directory.
        """
        if self.rank != 0:
            return self._fit(resume, max_steps, callback)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        # two runs in one directory would replace each other's weights and interleave the logs
        with exclusive_lock(self.out_dir / RUN_LOCK, f"the run directory {self.out_dir}"):
            return self._fit(resume, max_steps, callback)

    def _fit(self, resume: bool, max_steps: Optional[int], callback) -> dict:
        if resume:
            self.load_checkpoint()
        elif self.checkpoint_path.exists():
            raise FileExistsError(f"{self.out_dir} already holds a training run "
                                  f"({CHECKPOINT}); resume it, or choose another directory")
        self.out_dir.mkdir(parents=True, exist_ok=True)
        stop_at = self.steps if max_steps is None else min(self.steps, max_steps)
        logs = _Logs(self.out_dir, enabled=self.rank == 0, tensorboard=self.tensorboard,
                     resume_step=self.step if resume else None)
        local_batch = self.batch_size // self.world
        per_epoch = len(self.sampler) // local_batch  # before any skip
        bar = None
        if self.progress and self.rank == 0:
            from tqdm.auto import tqdm

            bar = tqdm(total=stop_at, initial=self.step, desc="train", unit="step",
                       dynamic_ncols=True)
        running, stopped, last_val = [], "finished", None
        try:
            while self.step < stop_at:
                epoch, within = divmod(self.step, per_epoch)
                self.sampler.set_epoch(epoch)
                self.sampler.skip = within * local_batch
                loader = DataLoader(self.train_data, batch_size=local_batch, sampler=self.sampler,
                                    num_workers=self.num_workers, drop_last=True,
                                    persistent_workers=False)
                for y, x in loader:
                    t0 = time.perf_counter()
                    loss, gnorm = self._train_step(y.to(self.device), x.to(self.device))
                    if not math.isfinite(loss):
                        raise TrainingDivergedError(
                            f"loss became {loss} at step {self.step + 1}; training stopped. The "
                            f"last good checkpoint (step {self._checkpoint_step()}) is kept at "
                            f"{self.checkpoint_path}; lower the learning rate or enable "
                            f"grad_clip and resume")
                    self.step += 1
                    self.train_seconds += time.perf_counter() - t0
                    running.append(loss)
                    if callback is not None:
                        callback(self.step, loss)
                    if bar is not None:
                        bar.update(1)
                        bar.set_postfix(loss=f"{np.mean(running[-50:]):.3g}")
                    if self.step % self.log_every == 0 or self.step == stop_at:
                        logs.train(self.step, epoch, self.step * self.batch_size,
                                   self.scheduler.get_last_lr()[0], float(np.mean(running)),
                                   gnorm, self.train_seconds)
                        running = []
                    final = self.step == self.steps
                    if self.val_data is not None and (self.step % self.val_every == 0 or final):
                        last_val = self._validate_and_select(logs)
                        if self._should_stop():
                            stopped = "early_stopping"
                    if self.step % self.checkpoint_every == 0 or self.step == stop_at \
                            or stopped != "finished":
                        self.save_checkpoint()
                    if stopped != "finished" or self.step >= stop_at:
                        break
                if stopped != "finished":
                    break
        finally:
            if bar is not None:
                bar.close()
            logs.close()
        if stopped == "finished" and self.step < self.steps:
            stopped = "max_steps"
        if self.step == self.steps or stopped == "early_stopping":
            self._save_weights("final", last_val or {})
        return {"steps": self.step, "samples_seen": self.step * self.batch_size,
                "seconds": self.train_seconds, "best": self.best, "stopped": stopped,
                "last_validation": last_val}

    def _checkpoint_step(self):
        if not self.checkpoint_path.exists():
            return "none written yet"
        try:
            return _read_checkpoint(self.checkpoint_path, "cpu")["step"]
        except (CheckpointError, KeyError, TypeError):
            return "unreadable"

    def _validate_and_select(self, logs: "_Logs") -> dict:
        metrics = None
        if self.rank == 0:
            metrics = self.validate()
            improved = metrics["psnr"] > self.best["psnr"]
            if improved:
                self.best = {"psnr": metrics["psnr"], "ssim": metrics["ssim"], "step": self.step}
                self.bad_validations = 0
                self._save_weights("best", {**metrics, "step": self.step})
            else:
                self.bad_validations += 1
            self.history.append({"step": self.step, **metrics})
            logs.validation(self.step, self.step * self.batch_size, metrics, improved)
        if self.world > 1:  # every rank needs the early-stopping counter
            box = [self.bad_validations, self.best]
            dist.broadcast_object_list(box, src=0)
            self.bad_validations, self.best = box
        return metrics

    def _should_stop(self) -> bool:
        return self.patience is not None and self.bad_validations >= self.patience


def _hardware(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, " \
           f"{torch.get_num_threads()} torch threads"


class _Logs:
    """CSV (and TensorBoard) logs of a run; appends when resuming."""

    TRAIN = ["step", "epoch", "samples", "lr", "loss", "grad_norm", "seconds"]
    VALIDATION = ["step", "samples", "psnr", "ssim", "best"]

    def __init__(self, out_dir: Path, enabled: bool, tensorboard: bool, resume_step=None):
        self.enabled = enabled
        self.out_dir = out_dir
        self.writer = None
        if enabled and resume_step is not None:
            # rows logged after the checkpoint by the interrupted run are logged again
            for name in ("train.csv", "validation.csv"):
                self._truncate(out_dir / name, resume_step)
        if enabled and tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as e:  # pragma: no cover - tensorboard is a dependency
                raise ImportError("TensorBoard logging needs the 'tensorboard' package; "
                                  "install it or pass tensorboard=False") from e
            self.writer = SummaryWriter(log_dir=str(out_dir))

    @staticmethod
    def _truncate(path: Path, step: int) -> None:
        if not path.exists():
            return
        with open(path, newline="") as f:
            rows = list(csv.reader(f))
        kept = rows[:1] + [r for r in rows[1:] if r and int(r[0]) <= step]
        buf = io.StringIO()
        csv.writer(buf).writerows(kept)
        atomic_write_bytes(path, buf.getvalue().encode())

    def _append(self, name: str, header: list, row: list) -> None:
        path = self.out_dir / name
        new = not path.exists()
        with open(path, "a", newline="") as f:
            w = csv.writer(f)
            if new:
                w.writerow(header)
            w.writerow(row)

    def train(self, step, epoch, samples, lr, loss, grad_norm, seconds) -> None:
        if not self.enabled:
            return
        self._append("train.csv", self.TRAIN,
                     [step, epoch, samples, f"{lr:.6g}", f"{loss:.6g}", f"{grad_norm:.4g}",
                      f"{seconds:.1f}"])
        if self.writer is not None:
            self.writer.add_scalar("train/loss", loss, step)
            self.writer.add_scalar("train/lr", lr, step)
            self.writer.add_scalar("train/grad_norm", grad_norm, step)

    def validation(self, step, samples, metrics, best) -> None:
        if not self.enabled:
            return
        self._append("validation.csv", self.VALIDATION,
                     [step, samples, f"{metrics['psnr']:.4f}", f"{metrics['ssim']:.4f}", int(best)])
        if self.writer is not None:
            self.writer.add_scalar("validation/psnr", metrics["psnr"], step)
            self.writer.add_scalar("validation/ssim", metrics["ssim"], step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


# ---------------------------------------------------------------------------
# Training from a configuration file (``tomolearn train CONFIG.yaml``)
# ---------------------------------------------------------------------------
class ConfigError(ValueError):
    """A training configuration is invalid; the message names the key's path."""


_NUM = (int, float)
#: Every configuration key with its default and accepted types (None: may be null).
CONFIG_SCHEMA = {
    "out_dir": ("runs/train", (str,)),
    "model": {
        "name": ("lpd", (str,)),
        "params": ({}, (dict,)),
    },
    "data": {
        "family": ("ellipses", (str,)),
        "shift": (None, (str, None)),
        "simulation": ({}, (dict,)),
        "train_file": (None, (str, None)),
        "validation_file": (None, (str, None)),
        "train_size": (None, (int, None)),
        "validation_size": (200, (int,)),
        "preload": (False, (bool,)),
        "num_workers": (0, (int,)),
    },
    "train": {
        "steps": (1000, (int,)),
        "batch_size": (16, (int,)),
        "lr": (1e-3, _NUM),
        "optimizer": ("adam", (str,)),
        "weight_decay": (0.0, _NUM),
        "betas": ([0.9, 0.999], (list,)),
        "warmup_steps": (0, (int,)),
        "lr_min_ratio": (0.0, _NUM),
        "grad_clip": (1.0, _NUM + (None,)),
        "ema_decay": (None, (float, None)),
        "amp": (False, (bool, str)),
        "loss": ("mse", (str,)),
        "val_every": (500, (int,)),
        "val_batch_size": (32, (int,)),
        "patience": (None, (int, None)),
        "checkpoint_every": (100, (int,)),
        "log_every": (10, (int,)),
        "seed": (0, (int,)),
        "device": ("cpu", (str,)),
        "threads": (None, (int, None)),
        "tensorboard": (True, (bool,)),
        "channels_last": (True, (bool,)),
    },
}


def _type_names(types) -> str:
    return " or ".join("null" if t is None else t.__name__ for t in types)


def _check_config(config, schema: dict, prefix: str = "") -> dict:
    if not isinstance(config, dict):
        raise ConfigError(f"{prefix.rstrip('.') or 'the configuration'}: expected a mapping, "
                          f"got {type(config).__name__}")
    unknown = sorted(set(config) - set(schema))
    if unknown:
        raise ConfigError(f"unknown configuration key {prefix}{unknown[0]}; expected one of "
                          f"{', '.join(prefix + k for k in sorted(schema))}")
    out = {}
    for key, spec in schema.items():
        path = prefix + key
        if isinstance(spec, dict):
            out[key] = _check_config(config.get(key, {}), spec, path + ".")
            continue
        default, types = spec
        value = config.get(key, default)
        ok = any((t is None and value is None) or
                 (t is not None and isinstance(value, t) and not (t is not bool and isinstance(value, bool)))
                 for t in types)
        if not ok:
            raise ConfigError(f"{path}: expected {_type_names(types)}, got "
                              f"{type(value).__name__} {value!r}")
        out[key] = float(value) if float in types and isinstance(value, int) else value
    return out


def _apply_override(raw: dict, override: str) -> None:
    """Set ``raw[a][b] = value`` for an override ``"a.b=value"`` (value parsed as YAML)."""
    import yaml

    key, sep, text = override.partition("=")
    if not sep or not key:
        raise ConfigError(f"override {override!r}: expected KEY.PATH=VALUE, e.g. train.seed=1")
    parts = key.strip().split(".")
    schema, node = CONFIG_SCHEMA, raw
    for i, part in enumerate(parts):
        path = ".".join(parts[:i + 1])
        if schema is not None:  # None: inside a free mapping such as model.params
            if part not in schema:
                raise ConfigError(f"override {override!r}: unknown configuration key {path}")
            schema = schema[part]
            if not isinstance(schema, dict):
                if i < len(parts) - 1 and schema[1] != (dict,):
                    raise ConfigError(f"override {override!r}: {path} is not a mapping")
                schema = None
        if i < len(parts) - 1:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {override!r}: {path} is not a mapping")
    try:
        node[parts[-1]] = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"override {override!r}: value is not valid YAML ({e})") from None


def load_config(source, overrides: Sequence[str] = ()) -> dict:
    """Read and validate a training configuration (YAML file path, or a dict).

    Unknown keys and wrong types raise :class:`ConfigError` naming the key's
    dotted path (e.g. ``train.batch_sise``); missing keys take the defaults
    of :data:`CONFIG_SCHEMA`.  ``overrides`` are ``"KEY.PATH=VALUE"``
    strings applied on top (value parsed as YAML), e.g. ``"train.seed=1"``;
    the command line's ``tomolearn train CONFIG --set train.seed=1``.
    """
    if isinstance(source, dict):
        raw = copy.deepcopy(source)
    else:
        import yaml

        path = Path(source)
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such configuration file")
        try:
            raw = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"{path}: not valid YAML ({e})") from None
    if isinstance(overrides, str):
        raise TypeError(f"overrides must be a list of 'KEY=VALUE' strings, got {overrides!r}")
    for override in overrides:
        if not isinstance(raw, dict):
            break  # _check_config names the problem
        _apply_override(raw, override)
    config = _check_config(raw, CONFIG_SCHEMA)
    from .weights import MODELS

    if config["model"]["name"] not in MODELS:
        raise ConfigError(f"model.name: unknown model {config['model']['name']!r}; expected one "
                          f"of {', '.join(sorted(MODELS))}")
    return config


def _simulation_spec(config: dict):
    from .data import SimulationSpec, shifted_spec

    try:
        spec = SimulationSpec.from_dict(config["data"]["simulation"])
    except (TypeError, ValueError) as e:
        raise ConfigError(f"data.simulation: {e}") from None
    if config["data"]["shift"] is not None:
        try:
            spec = shifted_spec(spec, config["data"]["shift"])
        except ValueError as e:
            raise ConfigError(f"data.shift: {e}") from None
    return spec


def _dataset(config: dict, split: str, spec):
    """The training or validation dataset a configuration asks for."""
    from torch.utils.data import Subset, TensorDataset

    from .data import SimulatedDataset, open_hdf5, spec_differences

    d = config["data"]
    size = d["train_size"] if split == "train" else d["validation_size"]
    file = d["train_file"] if split == "train" else d["validation_file"]
    wanted = SimulatedDataset(d["family"], split, spec, size=size)
    if file is None:
        return wanted
    ds = open_hdf5(file)
    diffs = [k for k in spec_differences(wanted.spec, ds.spec) if k != "size"]
    if diffs:
        raise ConfigError(f"data.{split if split == 'train' else 'validation'}_file: {file} holds "
                          f"another dataset than the configuration describes; differing fields: "
                          f"{', '.join(diffs)}")
    n = min(len(ds), size or len(ds))
    if d["preload"]:
        import h5py

        with h5py.File(file, "r") as f:
            return TensorDataset(torch.from_numpy(f["measurement"][:n]).float(),
                                 torch.from_numpy(f["ground_truth"][:n]).float())
    return ds if n == len(ds) else Subset(ds, range(n))


def trainer_from_config(config, out_dir=None, progress: bool = True,
                        overrides: Sequence[str] = ()) -> Trainer:
    """A :class:`Trainer` for a configuration and overrides (see :func:`load_config`)."""
    from .weights import build_model

    config = load_config(config, overrides)
    t = config["train"]
    if t["threads"]:
        torch.set_num_threads(t["threads"])
    spec = _simulation_spec(config)
    train_data = _dataset(config, "train", spec)
    val_data = _dataset(config, "validation", spec)
    torch.manual_seed(t["seed"])  # the initial weights are part of the run's seed
    try:
        model = build_model(config["model"]["name"], spec.operator(), **config["model"]["params"])
    except ValueError as e:
        raise ConfigError(f"model.params: {e}") from None
    data_spec = {"family": config["data"]["family"], "shift": config["data"]["shift"],
                 "simulation": spec.to_dict(), "train_size": len(train_data),
                 "validation_size": len(val_data)}
    card = {"model": {"name": config["model"]["name"], "params": config["model"]["params"],
                      "class": type(model).__name__, "n_parameters": model.n_parameters},
            "geometry": model.geometry_spec, "data": data_spec, "config": config}
    keys = ("steps", "batch_size", "lr", "optimizer", "weight_decay", "betas", "warmup_steps",
            "lr_min_ratio", "grad_clip", "ema_decay", "amp", "loss", "val_every",
            "val_batch_size", "patience", "checkpoint_every", "log_every", "seed", "device",
            "tensorboard", "channels_last")
    try:
        return Trainer(model, train_data, val_data,
                       out_dir=out_dir or config["out_dir"], progress=progress, card=card,
                       num_workers=config["data"]["num_workers"], **{k: t[k] for k in keys})
    except ValueError as e:
        raise ConfigError(f"train: {e}") from None
