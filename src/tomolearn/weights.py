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

Architectures: a learned method with shipped weights is registered with the method registry
(:data:`SHIPPED_METHODS`; ``tl.methods()`` offers it ready to use) together with its
untrained architecture; an architecture without shipped weights is registered
with :func:`register_architecture` only, so ``tomolearn train`` can build and train it
(``model.name``) and :func:`load` can rebuild trained weights of it, while ``tl.methods()``
offers no method that would need weights nobody has trained.  :func:`architectures` lists
both kinds.
"""

from __future__ import annotations

import hashlib
import json
import re
import warnings
from pathlib import Path
from typing import Dict

import torch
from safetensors.torch import load as safetensors_load
from safetensors.torch import save as safetensors_save

from . import __version__
from . import hardware
from .files import atomic_write_bytes
from .model_cards import WeightsError, check_card_consistent, check_card_schema
from .learned import (AdversarialRegulariser, ConvexAdversarialRegulariser, DeepEnsemble, DnCNN,
                      DRUNet, EducatedDIPNet, FBPConvNet, FBSEMNet, LearnedGradientDescent,
                      LearnedPrimalDual, MoDL, VarNet)
from .registry import methods, register_method, task
from .registry import method as method_info
from .uq import scale_from_ensemble

__all__ = ["architectures", "register_architecture", "architecture_description", "build_model",
           "save_weights", "load_weights", "load", "available", "ensemble_members", "WeightsError",
           "card_task", "learned_model", "shipped_weights_for"]

SHIPPED = Path(__file__).parent / "weights"


def _fbpconvnet(op, channels: int = 16, depth: int = 4, norm: str = "batch",
                normalise: bool = False):
    return FBPConvNet(op, channels=channels, depth=depth, norm=norm, normalise=normalise)


#: Learned architectures without shipped weights: name -> (constructor, description).
_UNSHIPPED: Dict[str, tuple] = {}


def architectures() -> dict:
    """Architecture name -> constructor ``f(op, **params)`` (what training configurations'
    ``model.name`` may say): the registered learned methods' architectures, then those
    registered without weights (:func:`register_architecture`)."""
    found = {name: method_info(name).architecture for name in methods()
             if method_info(name).architecture is not None}
    for name, (build, _) in _UNSHIPPED.items():
        found.setdefault(name, build)
    return found


def register_architecture(name: str, architecture, description: str = ""):
    """Register a learned architecture that has no shipped weights yet.

    It becomes trainable (``model.name: NAME`` in a ``tomolearn train`` configuration) and
    loadable from trained weights (:func:`load` of a ``.safetensors`` file whose card names
    it), but is not a method: ``tl.methods()`` lists only what runs without training.  Once
    weights ship, register it as a learned method instead (:data:`SHIPPED_METHODS`).

    Parameters
    ----------
    name : str
    architecture : callable
        ``architecture(op, **params) -> nn.Module``, the untrained network bound to ``op``.
    description : str
        One line for listings.

    Raises
    ------
    ValueError
        ``name`` is already an architecture.
    """
    if name in architectures():
        raise ValueError(f"an architecture named {name!r} is already registered")
    if not callable(architecture):
        raise TypeError(f"architecture must be callable (op, **params) -> nn.Module, got "
                        f"{type(architecture).__name__}")
    _UNSHIPPED[name] = (architecture, description)
    return architecture


def architecture_description(name: str) -> str:
    """The one-line description of the architecture ``name`` (its method's, or the one given
    to :func:`register_architecture`)."""
    if name in _UNSHIPPED:
        return _UNSHIPPED[name][1]
    return method_info(name).description


def build_model(name: str, op, **params):
    """A fresh (untrained) model of the learned method ``name``'s architecture bound to ``op``.

    Raises ``ValueError`` for an unknown name or parameter.
    """
    known = architectures()
    if name not in known:
        raise ValueError(f"unknown model {name!r}; expected one of {sorted(known)}")
    try:
        return known[name](op, **params)
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
    data = safetensors_save(tensors)
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
    check_card_schema(card, card_path)
    if card.get("sha256") != _sha256(data):
        raise WeightsError(f"{path}: content hash differs from its model card (file damaged or "
                           f"replaced)")
    try:
        state = safetensors_load(data)
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


def card_task(card: dict):
    """The task a model card's weights were trained on: its ``task`` spec, or (cards written
    before tasks existed) the ``"ct"`` task of its ``data.simulation`` spec."""
    try:
        if "task" in card:
            return task(card["task"])
        return task({"task": "ct", **card["data"]["simulation"]})
    except (KeyError, TypeError, ValueError) as e:
        raise WeightsError(f"the model card has no usable task spec ({e}); pass the operator "
                           f"the weights were trained with as op=") from None


def card_operator(card: dict):
    """The operator a model card was trained with (its task's operator)."""
    return card_task(card).operator()


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
    arch, params = card["model"]["name"], card["model"].get("params", {})
    if "task" in card or "simulation" in (card.get("data") or {}) or op is None:
        model = build_model(arch, card_operator(card), **params)
        check_card_consistent(card, model, state, path)
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
    model.task = card_task(card) if "task" in card or "simulation" in (card.get("data") or {}) \
        else None
    # channels-last convolutions are 1.6x faster on CPUs (oneDNN); values are unchanged
    fmt = torch.channels_last if torch.device(device).type == "cpu" else torch.contiguous_format
    return model.to(device, memory_format=fmt).eval()


# -- the shipped learned methods ----------------------------------------------------------------
_loaded: Dict[tuple, torch.nn.Module] = {}


def _task_distance(weights: str, task) -> float:
    """How many fields of ``task``'s spec (all but the seed) the shipped card of ``weights``
    was trained with other values of; infinite for a card of another task kind (weights
    trained on CT never serve an MRI task)."""
    card = json.loads((SHIPPED / f"{weights}.json").read_text(encoding="utf-8"))
    trained = {k: v for k, v in card_task(card).spec().items() if k != "seed"}
    want = {k: v for k, v in task.spec().items() if k != "seed"}
    if trained.get("task") != want.get("task"):
        return float("inf")
    return sum(trained.get(k) != v for k, v in want.items())


def shipped_weights_for(name: str, task=None) -> str:
    """The shipped weights the learned method ``name`` uses for ``task``: among its installed
    variants (its registered ``weight_variants``, e.g. ``varnet-brain-4x`` and
    ``varnet-brain-8x``), the one whose card's task differs from ``task`` in the fewest
    fields, the first on ties; the method's registered weights without a task.

    Raises
    ------
    WeightsError
        None of the installed variants was trained on ``task``'s kind (e.g. only CT weights
        for an MRI task).
    """
    primary = method_info(name).weights
    variants = [w for w in method_info(name).weight_variants if w in _shipped_weights()]
    if task is None or not variants:
        return primary
    distance = {w: _task_distance(w, task) for w in variants}
    best = min(variants, key=distance.get)
    if distance[best] == float("inf"):
        raise WeightsError(f"{name}: none of its installed weights {variants} was trained on a "
                           f"{task.spec().get('task')!r} task")
    return best


def learned_model(name: str, op, device="cpu", task=None):
    """The shipped model of the learned method ``name`` for ``task`` (:func:`shipped_weights_for`)
    bound to ``op`` on ``device`` (loaded once per process)."""
    return _shipped_model(shipped_weights_for(name, task), op, device)


def _shipped_model(weights: str, op, device):
    """The shipped ``weights`` bound to ``op`` on ``device``, loaded once per process."""
    key = (weights, id(op), str(device))
    if key not in _loaded:
        _loaded[key] = load(weights, op=op, device=device)
    return _loaded[key]


def _build_shipped(name: str):
    def build(task, op, device, amp=False):
        """``recon(y)``: the shipped weights closest to ``task`` bound to ``op`` (autocast with
        ``amp``)."""
        weights = shipped_weights_for(name, task)  # reads the variants' cards once
        model = _shipped_model(weights, op, device)
        warned = []

        def run(fn, y):
            on_cpu = y.device.type == "cpu"
            use = bool(amp) and not (on_cpu and not hardware.cpu_has_native_bf16())
            if bool(amp) and not use and not warned:  # emulated bfloat16: ~10x slower
                warned.append(True)
                warnings.warn(f"{name}: amp asked for bfloat16 autocast, but this CPU has no "
                              f"native bfloat16 (no avx512_bf16 or amx_bf16), where it is about "
                              f"10 times slower; running in float32", RuntimeWarning,
                              stacklevel=3)
            with torch.no_grad(), torch.autocast(y.device.type, enabled=use,
                                                 dtype=torch.bfloat16 if on_cpu
                                                 else torch.float16):
                return fn(y)

        def recon(y):
            out = run(model, y)  # float32 / complex64 out of autocast's lower precision
            return out.to(torch.complex64) if out.is_complex() else out.float()

        if isinstance(model, DeepEnsemble):
            recon.uncertainty = lambda y: scale_from_ensemble(run(model.members, y).float())
        recon.card = model.card
        recon.weights = weights
        return recon
    return build


#: The learned methods whose weights ship in the package, trained on the task their cards record:
#: name -> (weights, architecture, description, tasks); the weights are a tuple of variants
#: trained at different settings of the task, the first the method's registered weights
#: (:func:`shipped_weights_for` picks the variant closest to the task at hand).
SHIPPED_METHODS = {
    "fbpconvnet": (("fbpconvnet-ellipses",), _fbpconvnet, "FBP + U-Net (Jin et al. 2017)",
                   ("ct",)),
    "lgd": (("lgd-ellipses", "lgd-brain-4x", "lgd-brain-8x"), LearnedGradientDescent,
            "learned gradient descent (Adler & Oktem 2017)", ("ct", "mri")),
    "lpd": (("lpd-ellipses", "lpd-brain-4x"), LearnedPrimalDual,
            "learned primal-dual (Adler & Oktem 2018)", ("ct", "mri")),
    "lpd-ensemble": (("lpd-ensemble",), None, "deep ensemble of learned primal-dual models",
                     ("ct",)),
    "varnet": (("varnet-brain-4x", "varnet-brain-8x"), VarNet,
               "end-to-end variational network with sensitivity estimation (after Sriram et al. "
               "2020); the 4x or 8x weights, whichever were trained closer to the task", ("mri",)),
    "fbsem": (("fbsem-pet-1e6", "fbsem-pet-1e5"), FBSEMNet,
              "FBSEM-Net: unrolled MAP-EM with a shared residual CNN prior (Mehranian & Reader "
              "2021); the weights trained at the nearer count level", ("pet",)),
    "modl": (("modl-brain-4x", "modl-brain-8x"), MoDL,
             "MoDL: CNN denoiser + conjugate-gradient data consistency (Aggarwal, Mani & "
             "Jacob 2019)", ("mri",)),
}
for _name, (_weights, _architecture, _description, _tasks) in SHIPPED_METHODS.items():
    register_method(_name, _build_shipped(_name), tasks=_tasks, defaults={"amp": False},
                    kind="learned", weights=_weights[0], weight_variants=_weights,
                    architecture=_architecture, description=_description)
register_architecture("educated-dip", EducatedDIPNet,
                      "the educated DIP's network, pretrained from first guesses to images "
                      "(Barbano et al. 2022)")
register_architecture("dncnn", DnCNN, "DnCNN denoiser with a noise-level map (Zhang et al. "
                                      "2017), the prior of plug-and-play and RED")
register_architecture("drunet", DRUNet, "a small DRUNet denoiser with a noise-level map (DPIR, "
                                        "Zhang et al. 2022)")
register_architecture("ar", AdversarialRegulariser, "adversarial regulariser (Lunz, Oktem & "
                                                   "Schonlieb 2018), trained as a critic")
register_architecture("acr", ConvexAdversarialRegulariser, "adversarial convex regulariser, "
                                                           "input-convex (Mukherjee et al. 2021)")
