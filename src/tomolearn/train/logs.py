"""The logs of a training run: ``train.csv``, ``validation.csv`` and TensorBoard event files."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from ..files import atomic_write_bytes


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
            # imported here, not with the module: only runs that log to TensorBoard need it
            # (tensorboard=False runs, and tests, skip its ~50 ms import), and a missing
            # package is reported when such a run is built, with what to do about it
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as e:  # pragma: no cover - tensorboard is a dependency
                raise ImportError("TensorBoard logging needs the 'tensorboard' package; "
                                  "install it or pass tensorboard=False") from e
            self.writer = SummaryWriter(log_dir=str(out_dir))

    @staticmethod
    def _truncate(path: Path, step: int) -> None:
        """Drop the rows of a CSV log after ``step`` (logged by an interrupted run)."""
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
        """Append one row to ``train.csv`` (and the TensorBoard scalars)."""
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
        """Append one row to ``validation.csv`` (and the TensorBoard scalars)."""
        if not self.enabled:
            return
        self._append("validation.csv", self.VALIDATION,
                     [step, samples, f"{metrics['psnr']:.4f}", f"{metrics['ssim']:.4f}", int(best)])
        if self.writer is not None:
            self.writer.add_scalar("validation/psnr", metrics["psnr"], step)
            self.writer.add_scalar("validation/ssim", metrics["ssim"], step)

    def close(self) -> None:
        """Close the TensorBoard writer, if any."""
        if self.writer is not None:
            self.writer.close()
