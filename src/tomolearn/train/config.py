"""Training configurations (``tomolearn train CONFIG.yaml``): schema, validation, overrides.

:data:`CONFIG_SCHEMA` lists every key with its default and accepted types;
:func:`load_config` reads a YAML file (or a dict), applies ``KEY.PATH=VALUE``
overrides and refuses unknown keys and wrong types with :class:`ConfigError`
naming the key's dotted path.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Sequence

import yaml

from ..weights import architectures


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
        "task": ("ct", (str,)),
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
    known = architectures()
    if config["model"]["name"] not in known:
        raise ConfigError(f"model.name: unknown model {config['model']['name']!r}; expected one "
                          f"of {', '.join(sorted(known))}")
    return config
