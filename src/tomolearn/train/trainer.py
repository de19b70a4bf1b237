"""The :class:`Trainer`: supervised training of a reconstructor on ``(y, x)`` pairs.

The loop (data order, mixed precision, gradient clipping, EMA), validation
and best-model selection, early stopping, the checkpoint of its whole state
and the saved weights with their model cards.  See :mod:`tomolearn.train`
for the features and the run directory's layout.
"""

from __future__ import annotations

import io
import math
import os
import platform
import time
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from ..files import atomic_write_bytes, exclusive_lock
from ..metrics import psnr, ssim
from ..weights import save_weights
from .checkpoint import (CHECKPOINT, CHECKPOINT_FORMAT, CheckpointError, _read_checkpoint,
                         _rng_state, _set_rng_state)
from .config import check_train_values
from .distributed import _ResumableSampler, distributed_setup
from .logs import _Logs
from .optim import _EMA, _amp_dtype, cosine_schedule

#: The lock file that keeps a second run out of a run directory.
RUN_LOCK = "run.lock"


class TrainingDivergedError(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint was kept."""


class Trainer:
    """Supervised training of a reconstructor on ``(y, x)`` pairs.

    Parameters
    ----------
    model : nn.Module
        Maps measurements ``(B, 1, A, D)`` (``(B, 1, *lead, A, D)``, e.g. multi-coil
        k-space) to images ``(B, 1, H, W)``, real or complex; usually a
        :mod:`tomolearn.learned` reconstructor.  Its ``state_dict`` is what is trained
        and saved.
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
        Mean squared / absolute error; for complex images (MRI) of the complex difference,
        ``mean |x_hat - x|^2`` / ``mean |x_hat - x|`` (validation PSNR and SSIM score
        magnitudes, as :mod:`tomolearn.metrics` does for complex images).
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
        check_train_values(  # ConfigError (a ValueError) naming the argument
            {"steps": steps, "batch_size": batch_size, "lr": lr, "optimizer": optimizer,
             "weight_decay": weight_decay, "betas": betas, "warmup_steps": warmup_steps,
             "lr_min_ratio": lr_min_ratio, "grad_clip": grad_clip, "ema_decay": ema_decay,
             "amp": amp, "loss": loss, "val_every": val_every, "val_batch_size": val_batch_size,
             "patience": patience, "checkpoint_every": checkpoint_every, "log_every": log_every,
             "num_workers": num_workers}, prefix="")
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
        self.amp_dtype = _amp_dtype(amp, self.device, warn=self.rank == 0)
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
        if self.world > 1 and hasattr(self.model, "training_loss"):
            raise ValueError(f"{type(self.model).__name__} trains by its own training_loss, "
                             f"which multi-process (torchrun) training does not synchronise; "
                             f"train it in one process")
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
        """``out_dir / "checkpoint.pt"``, the checkpoint that ``fit(resume=True)`` continues."""
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
        card = {"geometry": getattr(self.model, "geometry_spec", None), **self.card, "training": {**self.hyper, "steps_done": self.step,
                                          "samples_seen": self.step * self.batch_size,
                                          "seconds": round(self.train_seconds, 1),
                                          "hardware": _hardware(self.device)},
                "validation": metrics, "validation_history": self.history}
        save_weights(self.out_dir / f"{name}.safetensors", self.eval_state_dict(), card,
                     overwrite=True)

    # -- one step ----------------------------------------------------------
    def _loss(self, out, x):
        if out.is_complex() or x.is_complex():  # complex images (MRI): see _complex_loss
            return _complex_loss(out, x, self.loss_name)
        out = out.float()
        return torch.mean((out - x) ** 2) if self.loss_name == "mse" else torch.mean(torch.abs(out - x))

    def _train_step(self, y, x) -> tuple:
        net = self.ddp if self.ddp is not None else self.model
        net.train()
        self.optimizer.zero_grad(set_to_none=True)
        with torch.autocast(self.device.type, dtype=self.amp_dtype or torch.float32,
                            enabled=self.amp_dtype is not None):
            if hasattr(self.model, "training_loss"):  # a model with its own objective (a critic)
                loss = self.model.training_loss(y, x)
            else:
                loss = self._loss(net(y), x)
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
                out = out.to(torch.complex64) if out.is_complex() else out.float()
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
        if max_steps is not None and (isinstance(max_steps, bool) or max_steps < 1):
            raise ValueError(f"max_steps must be an integer >= 1 or None, got {max_steps!r}")
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


def _complex_loss(out: torch.Tensor, x: torch.Tensor, loss: str) -> torch.Tensor:
    """The training loss of complex images ``(B, 1, H, W)``: ``"mse"`` is the mean squared
    modulus of the complex error ``mean |x_hat - x|^2`` (the sum of the real and imaginary
    parts' squared errors per pixel), ``"l1"`` its mean modulus ``mean |x_hat - x|``.  Both
    compare phase too, since the truth is complex; validation scores magnitudes
    (:mod:`tomolearn.metrics`' convention for complex images)."""
    diff = out.to(torch.complex64) - x.to(torch.complex64)
    return (diff.real ** 2 + diff.imag ** 2).mean() if loss == "mse" else diff.abs().mean()


def _hardware(device: torch.device) -> str:
    """The machine a run trained on, for the model card: the GPU's name, or CPU and threads."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, " \
           f"{torch.get_num_threads()} torch threads"
