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

Modules
-------
``trainer``
    :class:`Trainer` (the loop, validation, checkpoints of its state,
    weights) and :class:`TrainingDivergedError`.
``optim``
    The learning-rate schedule, the mixed-precision dtype and the EMA of the
    weights.
``checkpoint``
    Safe reading of ``checkpoint.pt`` and the RNG states it stores.
``distributed``
    Joining and leaving ``torchrun``'s process group; the sampler that
    shares and resumes each epoch.
``logs``
    ``train.csv``, ``validation.csv`` and TensorBoard event files.
``config``
    Training configurations: schema, value rules, validation, ``--set`` overrides.
``from_config``
    :func:`trainer_from_config`: datasets, model and Trainer of a configuration.
"""

from .checkpoint import (CHECKPOINT, CHECKPOINT_FORMAT, CheckpointError,  # noqa: F401
                         _read_checkpoint, _rng_state, _set_rng_state)
from .config import CONFIG_RULES, CONFIG_SCHEMA, ConfigError, load_config  # noqa: F401
from .distributed import distributed_setup, distributed_teardown
from .from_config import trainer_from_config  # noqa: F401
from .optim import _EMA, _amp_dtype, cosine_schedule  # noqa: F401
from .trainer import RUN_LOCK, Trainer, TrainingDivergedError  # noqa: F401

__all__ = ["Trainer", "TrainingDivergedError", "CheckpointError", "cosine_schedule",
           "distributed_setup", "distributed_teardown"]
