"""Trained weights: safetensors files with a JSON model card, and the shipped models.

A saved model is two files side by side::

    NAME.safetensors   the state_dict (safetensors format, float32)
    NAME.json          the model card

The card says everything needed to rebuild and judge the model: ``model``
(architecture name and constructor parameters), ``geometry`` (the operator's
spec: class, image shape, data shape, geometry), ``data`` (the dataset spec,
including its noise), ``training`` (hyper-parameters, steps, samples seen,
wall-clock seconds, hardware), ``validation`` (PSNR / SSIM), ``tomolearn``
(package version) and ``sha256`` (of the safetensors file), which
:func:`load_weights` checks.

``tomolearn.load("lpd-ellipses")`` loads the weights shipped in the package
(``tomolearn/weights/``), trained on this project's ellipses benchmark, bound
to the benchmark's operator (or to a compatible operator passed as ``op``).
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Optional

import torch

from .files import atomic_write_bytes

__all__ = ["MODELS", "build_model", "save_weights", "load_weights", "load", "available",
           "ensemble_members", "WeightsError"]

SHIPPED = Path(__file__).parent / "weights"


class WeightsError(ValueError):
    """A weights file or model card is missing, damaged or does not fit the model."""


def _fbpconvnet(op, channels: int = 16, depth: int = 4, norm: str = "batch",
                filter: Optional[str] = None, frequency_scaling: Optional[float] = None):
    from .learned import FBP_DEFAULTS, FBPConvNet, UNet

    return FBPConvNet(op, UNet(1, 1, channels=channels, depth=depth, norm=norm),
                      filter=filter or FBP_DEFAULTS["filter"],
                      frequency_scaling=frequency_scaling or FBP_DEFAULTS["frequency_scaling"])


def _lgd(op, **params):
    from .learned import LearnedGradientDescent

    return LearnedGradientDescent(op, **params)


def _lpd(op, **params):
    from .learned import LearnedPrimalDual

    return LearnedPrimalDual(op, **params)


#: Architecture name -> constructor ``f(op, **params)``.
MODELS = {"fbpconvnet": _fbpconvnet, "lgd": _lgd, "lpd": _lpd}


def build_model(name: str, op, **params):
    """A fresh (untrained) model ``name`` from :data:`MODELS` bound to ``op``.

    Raises ``ValueError`` for an unknown name or parameter.
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; expected one of {sorted(MODELS)}")
    try:
        return MODELS[name](op, **params)
    except TypeError as e:
        raise ValueError(f"bad parameters for model {name!r}: {e}") from None


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def save_weights(path, state_dict: dict, card: dict, *, overwrite: bool = False) -> Path:
    """Write ``state_dict`` as safetensors at ``path`` and the card beside it (``.json``).

    Both files are written atomically; the card gets ``sha256`` (of the
    safetensors bytes), ``tomolearn`` (version) and ``n_parameters``.
    Refuses to replace existing files unless ``overwrite``.
    """
    from safetensors.torch import save

    from . import __version__

    path = Path(path)
    if path.suffix != ".safetensors":
        raise ValueError(f"weights go to a .safetensors file, got {path}")
    card_path = path.with_suffix(".json")
    if not overwrite:
        for p in (path, card_path):
            if p.exists():
                raise FileExistsError(f"{p} exists; pass overwrite=True to replace it")
    tensors = {k: v.detach().to("cpu", torch.float32).contiguous() if v.is_floating_point()
               else v.detach().cpu().contiguous() for k, v in state_dict.items()}
    data = save(tensors)
    card = {**card, "tomolearn": __version__, "sha256": _sha256(data),
            "n_parameters": int(sum(v.numel() for v in tensors.values()
                                    if v.is_floating_point()))}
    atomic_write_bytes(path, data)
    atomic_write_bytes(card_path, (json.dumps(card, indent=2, sort_keys=True) + "\n").encode())
    return path


def load_weights(path) -> tuple:
    """Read ``(state_dict, card)`` from ``path`` (``.safetensors``) and its ``.json`` card.

    Raises
    ------
    FileNotFoundError
        Either file is missing.
    WeightsError
        The card is not valid JSON, or the file's hash differs from the card's.
    """
    from safetensors.torch import load

    path = Path(path)
    card_path = path.with_suffix(".json")
    for p in (path, card_path):
        if not p.exists():
            raise FileNotFoundError(f"{p}: no such file (weights need both NAME.safetensors "
                                    f"and its model card NAME.json)")
    data = path.read_bytes()
    try:
        card = json.loads(card_path.read_text())
    except json.JSONDecodeError as e:
        raise WeightsError(f"{card_path}: the model card is not valid JSON ({e})") from None
    if card.get("sha256") != _sha256(data):
        raise WeightsError(f"{path}: content hash differs from its model card (file damaged or "
                           f"replaced)")
    try:
        state = load(data)
    except Exception as e:
        raise WeightsError(f"{path}: not a readable safetensors file ({e})") from None
    return state, card


def _shipped_weights() -> list:
    return sorted(p.stem for p in SHIPPED.glob("*.safetensors"))


def ensemble_members(name: str) -> list:
    """The shipped members ``NAME-1``, ``NAME-2``, ... of the deep ensemble ``name`` (in order)."""
    members = [w for w in _shipped_weights() if re.fullmatch(re.escape(name) + r"-\d+", w)]
    return sorted(members, key=lambda w: int(w.rsplit("-", 1)[1]))


def available() -> list:
    """Names :func:`load` knows: the shipped weights, and each deep ensemble whose members
    (``NAME-1``, ``NAME-2``, ..., at least two) are shipped."""
    singles = _shipped_weights()
    ensembles = {w.rsplit("-", 1)[0] for w in singles if re.fullmatch(r".+-\d+", w)}
    return sorted(singles + [e for e in ensembles if len(ensemble_members(e)) >= 2])


def _ensemble_card(name: str, cards: list) -> dict:
    """The card of a deep ensemble: its members' cards and their totals."""
    first = cards[0]
    return {"model": {"name": name, "class": "DeepEnsemble",
                      "members": [c["model"] for c in cards]},
            "n_parameters": sum(c["n_parameters"] for c in cards),
            "geometry": first.get("geometry"), "data": first.get("data"),
            "training": {"members": len(cards),
                         "samples_seen": sum(c["training"]["samples_seen"] for c in cards),
                         "steps_done": sum(c["training"]["steps_done"] for c in cards),
                         "seconds": round(sum(c["training"]["seconds"] for c in cards), 1),
                         "hardware": first["training"]["hardware"]},
            "validation": {"members": [c.get("validation") for c in cards]},
            "members": cards}


def card_operator(card: dict):
    """The operator a model card was trained with (from its data spec)."""
    from .data.simulation import SimulationSpec

    try:
        return SimulationSpec.from_dict(card["data"]["simulation"]).operator()
    except (KeyError, TypeError, ValueError) as e:
        raise WeightsError(f"the model card has no usable data spec ({e}); pass the operator "
                           f"the weights were trained with as op=") from None


def _load_state(model, state: dict, path, arch: str, params: dict) -> None:
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise WeightsError(f"{path}: weights do not fit a {arch} with {params}: {e}") from None


def load(name_or_path, op=None, device="cpu"):
    """A trained reconstructor, ready to use: ``model(y) -> x_hat``, in eval mode.

    Parameters
    ----------
    name_or_path : str or Path
        A shipped model name (see :func:`available`, e.g. ``"lpd-ellipses"``)
        or the path of a ``.safetensors`` file with its card beside it.  The
        name of a shipped deep ensemble (``"lpd-ensemble"``: members
        ``lpd-ensemble-1``, ``-2``, ...) gives a
        :class:`tomolearn.learned.DeepEnsemble` of all its members, whose
        card lists the members' cards.
    op : LinearOperator, optional
        Bind the weights to this operator instead of the card's; it must be
        compatible with the card's geometry (same operator class and geometry
        type, same image shape; e.g. another number of angles), otherwise
        ``ValueError`` names the difference.
    device : str or torch.device

    Raises
    ------
    FileNotFoundError, WeightsError, ValueError
    """
    path = Path(name_or_path)
    if path.suffix != ".safetensors" and str(name_or_path) not in _shipped_weights() \
            and str(name_or_path) in available():
        from .learned import DeepEnsemble

        members = [load(m, op=op, device=device) for m in ensemble_members(str(name_or_path))]
        ensemble = DeepEnsemble(members).eval()
        ensemble.card = _ensemble_card(str(name_or_path), [m.card for m in members])
        return ensemble
    if path.suffix != ".safetensors":
        if str(name_or_path) not in available():
            raise FileNotFoundError(f"no shipped model {str(name_or_path)!r}; available: "
                                    f"{', '.join(available()) or 'none'} (or give a .safetensors "
                                    f"path)")
        path = SHIPPED / f"{name_or_path}.safetensors"
    state, card = load_weights(path)
    try:
        arch = card["model"]["name"]
        params = card["model"].get("params", {})
    except (KeyError, TypeError):
        raise WeightsError(f"{path}: the model card lacks 'model.name'") from None
    if "simulation" in (card.get("data") or {}) or op is None:
        model = build_model(arch, card_operator(card), **params)
        _load_state(model, state, path, arch, params)
        if op is not None:
            model = model.with_operator(op)
    else:  # trained on user data: bind to op, which must match the card's geometry
        model = build_model(arch, op, **params)
        _load_state(model, state, path, arch, params)
        want, got = card.get("geometry") or {}, model.geometry_spec
        for key in ("operator", "domain_shape"):
            if key in want and want[key] != got[key]:
                raise ValueError(f"{path}: weights were trained with {key} {want[key]}, the given "
                                 f"operator has {got[key]}")
        g_want, g_got = (want.get("geometry") or {}).get("type"), (got.get("geometry") or {}).get("type")
        if g_want != g_got:
            raise ValueError(f"{path}: weights were trained for geometry type {g_want}, got {g_got}")
    model.card = card
    # channels-last convolutions are 1.6x faster on CPUs (oneDNN); values are unchanged
    fmt = torch.channels_last if torch.device(device).type == "cpu" else torch.contiguous_format
    return model.to(device, memory_format=fmt).eval()
