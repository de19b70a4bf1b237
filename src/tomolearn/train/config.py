"""Training configurations (``tomolearn train CONFIG.yaml``): schema, validation, overrides.

:data:`CONFIG_SCHEMA` lists every key with its default and accepted types, and
:data:`CONFIG_RULES` the range or set of values each accepts; :func:`load_config`
reads a YAML file (or a dict) that must be a mapping naming at least ``model``
(with its ``name``) and ``data``, applies ``KEY.PATH=VALUE`` overrides and
refuses unknown keys, wrong types and values out of range with
:class:`ConfigError` naming the key's dotted path.  Nothing is created before
a configuration has passed.
"""

from __future__ import annotations

import copy
import math
import os
from pathlib import Path
from typing import Sequence

import yaml

from ..hardware import check_device
from ..weights import architectures
from .optim import AMP_VALUES


class ConfigError(ValueError):
    """A training configuration is invalid; the message names the key's path."""


_NUM = (int, float)
#: Every configuration key with its default and accepted types (None: may be null).
CONFIG_SCHEMA = {
    "out_dir": ("runs/train", (str,)),
    "model": {
        "name": ("lpd", (str,)),
        "params": ({}, (dict,)),
        "init_weights": (None, (str, None)),
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
        "patch": (None, (int, None)),
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
        "ema_decay": (None, _NUM + (None,)),
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


def _finite(v) -> bool:
    return math.isfinite(v)


def _two_fractions(v) -> bool:
    return len(v) == 2 and all(isinstance(b, _NUM) and not isinstance(b, bool) and 0 <= b < 1
                               for b in v)


_POSITIVE_INT = (lambda v: v >= 1, "an integer >= 1")
#: The values each key accepts beyond its type: dotted path -> (test, description).
CONFIG_RULES = {
    "data.train_size": (lambda v: v is None or v >= 1, "an integer >= 1 or null"),
    "data.validation_size": _POSITIVE_INT,
    "data.num_workers": (lambda v: v >= 0, "an integer >= 0"),
    "data.patch": (lambda v: v is None or v >= 1, "an integer >= 1 or null (denoisers only)"),
    "train.steps": _POSITIVE_INT,
    "train.batch_size": _POSITIVE_INT,
    "train.val_every": _POSITIVE_INT,
    "train.val_batch_size": _POSITIVE_INT,
    "train.checkpoint_every": _POSITIVE_INT,
    "train.log_every": _POSITIVE_INT,
    "train.warmup_steps": (lambda v: v >= 0, "an integer >= 0"),
    "train.lr": (lambda v: _finite(v) and v > 0, "a positive finite number"),
    "train.weight_decay": (lambda v: _finite(v) and v >= 0, "a finite number >= 0"),
    "train.betas": (_two_fractions, "a list of two numbers in [0, 1)"),
    "train.lr_min_ratio": (lambda v: 0 <= v <= 1, "a number in [0, 1]"),
    "train.grad_clip": (lambda v: v is None or (_finite(v) and v > 0),
                        "a positive number or null"),
    "train.ema_decay": (lambda v: v is None or 0 < v < 1, "a number in (0, 1) or null"),
    "train.optimizer": (lambda v: v in ("adam", "adamw"), "one of adam, adamw"),
    "train.loss": (lambda v: v in ("mse", "l1"), "one of mse, l1"),
    "train.amp": (lambda v: v is None or isinstance(v, bool) or v in AMP_VALUES,
                  f"true, false or one of {', '.join(AMP_VALUES)}"),
    "train.patience": (lambda v: v is None or v >= 1, "an integer >= 1 or null"),
    "train.threads": (lambda v: v is None or v >= 1,
                      "an integer >= 1 or null (null: torch's default)"),
}


def _check_rule(path: str, value) -> None:
    rule = CONFIG_RULES.get(path)
    if rule is None:
        return
    test, text = rule
    try:
        ok = bool(test(value))
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ConfigError(f"{path}: must be {text}, got {value!r}")


def check_train_values(values: dict, prefix: str = "train.") -> None:
    """Check the hyper-parameters in ``values`` (keys of ``train``, or ``data``) against
    :data:`CONFIG_RULES`; :class:`ConfigError` names ``prefix + key``.  The
    :class:`~tomolearn.train.Trainer` checks its arguments with it (``prefix=""``)."""
    for key, value in values.items():
        section = "train." if "train." + key in CONFIG_RULES else "data."
        try:
            _check_rule(section + key, value)
        except ConfigError as e:
            raise ConfigError(prefix + str(e)[len(section):]) from None


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
        _check_rule(path, value)
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


def _found(raw, text) -> str:
    """What a configuration source holds instead of a mapping, for the error message."""
    if raw is None:
        if text is not None and not text.strip():
            return "an empty file"
        return "no values (only comments, or null)"
    kind = {list: "a list", str: "a string", int: "a number", float: "a number",
            bool: "a boolean"}.get(type(raw), f"a {type(raw).__name__}")
    shown = repr(raw)
    return f"{kind} ({shown[:60]}{' ...' if len(shown) > 60 else ''})"


def _check_sections(raw: dict, where: str) -> None:
    """A configuration names at least ``model`` (with its ``name``) and ``data``."""
    missing = [k for k in ("model", "data") if k not in raw]
    if "model" in raw and "name" not in raw["model"]:
        missing.insert(0, "model.name")
    if missing:
        found = ", ".join(sorted(raw)) or "nothing"
        raise ConfigError(f"{where}: a training configuration names at least model (with "
                          f"model.name) and data; missing {', '.join(missing)} (found: {found})")


def _world_size() -> int:
    try:
        return max(1, int(os.environ.get("WORLD_SIZE", "1")))
    except ValueError:
        return 1


def load_config(source, overrides: Sequence[str] = ()) -> dict:
    """Read and validate a training configuration (YAML file path, or a dict).

    The source must be a mapping that names at least ``model`` (with
    ``model.name``) and ``data``: an empty file, one of comments only, or a
    YAML list or scalar is refused (with the file's name and what it holds).
    Unknown keys, wrong types and values out of range (:data:`CONFIG_RULES`)
    raise :class:`ConfigError` naming the key's dotted path (e.g.
    ``train.batch_sise``, ``train.grad_clip: must be a positive number or
    null, got -1``), and so does a ``train.device`` this machine lacks or a
    ``train.batch_size`` that the ``torchrun`` processes cannot share equally;
    missing keys take the defaults of :data:`CONFIG_SCHEMA`.  ``overrides``
    are ``"KEY.PATH=VALUE"`` strings applied on top (value parsed as YAML),
    e.g. ``"train.seed=1"``; the command line's ``tomolearn train CONFIG
    --set train.seed=1``.
    """
    if isinstance(source, dict):
        raw, where, text = copy.deepcopy(source), "the configuration", None
    else:
        path = Path(source)
        where = str(path)
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such configuration file")
        try:
            text = path.read_text()
            raw = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise ConfigError(f"{path}: not valid YAML ({e})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: a training configuration is a mapping that names at least "
                          f"model and data; found {_found(raw, text)}")
    if isinstance(overrides, str):
        raise TypeError(f"overrides must be a list of 'KEY=VALUE' strings, got {overrides!r}")
    for override in overrides:
        _apply_override(raw, override)
    config = _check_config(raw, CONFIG_SCHEMA)
    known = architectures()
    if config["model"]["name"] not in known:
        raise ConfigError(f"model.name: unknown model {config['model']['name']!r}; expected one "
                          f"of {', '.join(sorted(known))}")
    _check_sections(raw, where)
    t = config["train"]
    try:
        check_device(t["device"])
    except ValueError as e:
        raise ConfigError(f"train.device: {e}") from None
    world = _world_size()
    if t["batch_size"] % world:
        raise ConfigError(f"train.batch_size: {t['batch_size']} is not divisible by the number "
                          f"of torchrun processes ({world}); every process takes an equal share "
                          f"of each batch")
    return config
