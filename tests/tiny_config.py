"""The tiny training configuration the training, config and trust tests share (seconds per run)."""

import copy

_BASE = {
    "model": {"name": "lgd", "params": {"n_iter": 2, "channels": 4}},
    "data": {"simulation": {"image_size": 24, "n_angles": 6, "n_detectors": 35, "fine_size": 48},
             "train_size": 8, "validation_size": 2},
    "train": {"steps": 2, "batch_size": 4, "lr": 3e-3, "val_every": 2, "checkpoint_every": 1,
              "log_every": 1, "seed": 3, "tensorboard": False},
}


def tiny_config(train_size: int = 8, validation_size: int = 2, **train) -> dict:
    """A fresh copy of the tiny LGD configuration, with data sizes and ``train`` keys changed."""
    config = copy.deepcopy(_BASE)
    config["data"].update(train_size=train_size, validation_size=validation_size)
    config["train"].update(train)
    return config
