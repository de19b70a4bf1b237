"""Model cards: the JSON that travels beside a weights file, checked against a schema and
against the weights and operator it describes (:func:`tomolearn.weights.load_weights` and
:func:`tomolearn.weights.load` call these)."""

from __future__ import annotations

from typing import Optional

__all__ = ["WeightsError", "CARD_SCHEMA", "check_card_schema", "check_card_consistent"]


class WeightsError(ValueError):
    """A weights file or model card is missing, damaged or does not fit the model."""


#: Model-card fields :func:`load_weights` requires or checks, with their JSON types.
CARD_SCHEMA = {"model": dict, "sha256": str, "geometry": (dict, type(None)),
               "data": (dict, type(None)), "n_parameters": int, "training": (dict, type(None)),
               "validation": (dict, type(None)), "task": dict}
_TYPE_NAMES = {dict: "an object", list: "a list", str: "a string", int: "an integer",
               float: "a number", bool: "a boolean", type(None): "null"}


def _json_type(value) -> str:
    return _TYPE_NAMES.get(type(value), type(value).__name__)


def check_card_schema(card, card_path) -> None:
    """Raise :class:`WeightsError` unless ``card`` has the fields and types of a model card."""
    if not isinstance(card, dict):
        raise WeightsError(f"{card_path}: a model card must be a JSON object, got "
                           f"{_json_type(card)}")
    for key in ("model", "sha256"):
        if key not in card:
            raise WeightsError(f"{card_path}: the model card lacks {key!r}")
    for key, types in CARD_SCHEMA.items():
        if key in card and not isinstance(card[key], types):
            want = " or ".join(_TYPE_NAMES[t] for t in (types if isinstance(types, tuple)
                                                         else (types,)))
            raise WeightsError(f"{card_path}: model card field {key!r} must be {want}, got "
                               f"{_json_type(card[key])}")
    model = card["model"]
    if not isinstance(model.get("name"), str):
        raise WeightsError(f"{card_path}: model card field 'model.name' must be a string, got "
                           f"{_json_type(model.get('name'))}")
    if not isinstance(model.get("params", {}), dict):
        raise WeightsError(f"{card_path}: model card field 'model.params' must be an object, got "
                           f"{_json_type(model.get('params'))}")
    geometry = card.get("geometry") or {}
    for key in ("domain_shape", "range_shape"):
        shape = geometry.get(key)
        if key in geometry and not (isinstance(shape, list) and shape and all(
                isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in shape)):
            raise WeightsError(f"{card_path}: model card field 'geometry.{key}' must be a list "
                               f"of positive integers, got {shape!r}")


def _spec_mismatch(want, got, where: str = "geometry") -> Optional[str]:
    """The first field where two geometry specs differ (floats to 1e-9 relative), or None."""
    if isinstance(want, dict) and isinstance(got, dict):
        for key in sorted(set(want) | set(got)):
            if key not in want or key not in got:
                return f"{where}.{key}"
            found = _spec_mismatch(want[key], got[key], f"{where}.{key}")
            if found:
                return found
        return None
    if isinstance(want, list) and isinstance(got, list):
        if len(want) != len(got):
            return f"{where} (length {len(want)} vs {len(got)})"
        return next((m for m in (_spec_mismatch(a, b, where) for a, b in zip(want, got)) if m),
                    None)
    if isinstance(want, float) or isinstance(got, float):
        try:
            return None if abs(want - got) <= 1e-9 * max(1.0, abs(want)) else where
        except TypeError:
            return where
    return None if want == got else where


def check_card_consistent(card: dict, model, state: dict, path) -> None:
    """The card's geometry, its data spec's operator and the weights must tell one story."""
    geometry = card.get("geometry")
    if geometry:
        differs = _spec_mismatch(geometry, model.geometry_spec)
        if differs:
            raise WeightsError(
                f"{path}: the model card contradicts itself: its data spec builds an operator "
                f"whose {differs} differs from the card's geometry (card geometry: domain "
                f"{geometry.get('domain_shape')}, range {geometry.get('range_shape')}; data "
                f"spec: domain {model.geometry_spec['domain_shape']}, range "
                f"{model.geometry_spec['range_shape']}); the card was edited or damaged")
    n_state = int(sum(v.numel() for v in state.values() if v.is_floating_point()))
    if "n_parameters" in card and card["n_parameters"] != n_state:
        raise WeightsError(f"{path}: the model card says {card['n_parameters']} parameters, the "
                           f"weights hold {n_state}")
