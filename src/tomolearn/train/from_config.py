"""A :class:`~tomolearn.train.Trainer` built from a training configuration.

:func:`trainer_from_config` validates the configuration (:func:`load_config`),
builds the datasets it describes (simulated on the fly, or HDF5 files checked
against the simulation spec), seeds and builds the model, and fills the
model card.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import h5py
import torch
from torch.utils.data import Subset, TensorDataset

from ..data import DenoisingDataset, SimulatedDataset, open_hdf5, spec_differences
from ..learned.denoisers import ImageDenoiser
from ..registry import shifted, task
from ..weights import SHIPPED, WeightsError, available, build_model, load_weights
from .config import ConfigError, load_config
from .trainer import Trainer


def _task(config: dict):
    """The task of ``data.task`` (a registered kind) with the fields of ``data.simulation``,
    under the measurement shift ``data.shift``."""
    d = config["data"]
    try:
        spec = task({**d["simulation"], "task": d["task"]})
    except (TypeError, ValueError) as e:
        key = "data.task" if "unknown task" in str(e) else "data.simulation"
        raise ConfigError(f"{key}: {e}") from None
    if d["shift"] is not None:
        try:
            spec = shifted(spec, d["shift"])
        except ValueError as e:
            raise ConfigError(f"data.shift: {e}") from None
    return spec


def _working(t: torch.Tensor) -> torch.Tensor:
    """Preloaded arrays in the working precision: float32, or complex64 for complex data."""
    return t.to(torch.complex64) if t.is_complex() else t.float()


def _dataset(config: dict, split: str, spec, model):
    """The training or validation dataset a configuration asks for: simulated (or read)
    measurement pairs, or for a denoiser noisy / clean pairs of the family's images at its
    noise levels (validation on whole images, training on ``data.patch`` crops)."""
    d = config["data"]
    size = d["train_size"] if split == "train" else d["validation_size"]
    file = d["train_file"] if split == "train" else d["validation_file"]
    if isinstance(model, ImageDenoiser):
        if file is not None:
            raise ConfigError("data.train_file / data.validation_file: a denoiser trains on "
                              "images drawn on the fly; leave the files out")
        return DenoisingDataset(d["family"], split, spec, size=size,
                                sigma_range=model.sigma_range,
                                patch=d["patch"] if split == "train" else None)
    if d["patch"] is not None:
        raise ConfigError(f"data.patch: only denoisers train on patches; "
                          f"{config['model']['name']!r} reconstructs whole measurements")
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
        with h5py.File(file, "r") as f:
            return TensorDataset(_working(torch.from_numpy(f["measurement"][:n])),
                                 _working(torch.from_numpy(f["ground_truth"][:n])))
    return ds if n == len(ds) else Subset(ds, range(n))


def _initialise(model, model_config: dict) -> dict:
    """Load ``model.init_weights`` (a shipped name or a ``.safetensors`` path with its card)
    into ``model``: fine-tuning starts from trained weights of the same architecture and
    parameters.  Returns what the card records: ``{"weights", "sha256", "validation"}``."""
    given = model_config["init_weights"]
    path = SHIPPED / f"{given}.safetensors" if given in available() else Path(given)
    if path.suffix != ".safetensors":
        raise ConfigError(f"model.init_weights: expected a shipped model ({', '.join(available())})"
                          f" or a .safetensors file, got {given!r}")
    try:
        state, card = load_weights(path)
    except (FileNotFoundError, WeightsError) as e:
        raise ConfigError(f"model.init_weights: {e}") from None
    want = {"name": model_config["name"], "params": model_config["params"]}
    got = {"name": card["model"]["name"], "params": card["model"].get("params", {})}
    if got != want:
        raise ConfigError(f"model.init_weights: {given} holds a {got['name']} with "
                          f"{got['params']}; this configuration trains a {want['name']} with "
                          f"{want['params']} (fine-tuning needs the same architecture)")
    model.load_state_dict(state)
    return {"weights": str(given), "sha256": card["sha256"], "validation": card.get("validation")}


def trainer_from_config(config, out_dir=None, progress: bool = True,
                        overrides: Sequence[str] = ()) -> Trainer:
    """A :class:`Trainer` for a configuration and overrides (see :func:`load_config`)."""
    config = load_config(config, overrides)
    t = config["train"]
    if t["threads"]:
        torch.set_num_threads(t["threads"])
    spec = _task(config)
    torch.manual_seed(t["seed"])  # the initial weights are part of the run's seed
    try:
        model = build_model(config["model"]["name"], spec.operator(), **config["model"]["params"])
    except ValueError as e:  # bad parameters, or an operator the architecture cannot use
        raise ConfigError(f"model.params: {e} (model.name {config['model']['name']!r}, "
                          f"data.task {spec.kind!r})") from None
    train_data = _dataset(config, "train", spec, model)
    val_data = _dataset(config, "validation", spec, model)
    initialised = (_initialise(model, config["model"]) if config["model"]["init_weights"]
                   else None)
    data_spec = {"family": config["data"]["family"], "shift": config["data"]["shift"],
                 "simulation": spec.to_dict(), "train_size": len(train_data),
                 "validation_size": len(val_data)}
    card = {"model": {"name": config["model"]["name"], "params": config["model"]["params"],
                      "class": type(model).__name__, "n_parameters": model.n_parameters,
                      "init_weights": initialised},
            "task": spec.spec(), "geometry": model.geometry_spec, "data": data_spec,
            "config": config}
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
