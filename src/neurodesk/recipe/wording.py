"""Validation messages in our own words: the key path, what is wrong, and the closest valid
choices for a misspelt key or value (``instal:`` → did you mean 'install'?).

pydantic checks shapes for us, but its messages ("Extra inputs are not permitted", "Input
should be ...", "Value error, ...") speak about Python, not about a recipe. Every pydantic error
that reaches a user goes through :func:`describe`, which knows the model so it can list the keys
that *are* allowed where an unknown one was written.
"""

from __future__ import annotations

import difflib
import typing
from collections.abc import Iterable, Sequence
from typing import Any

from pydantic import BaseModel
from pydantic_core import ErrorDetails

_TYPE_NAMES = {
    "string_type": "a string",
    "int_type": "a whole number",
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "list_type": "a list",
    "dict_type": "a mapping (key: value)",
    "model_type": "a mapping (key: value)",
    "model_attributes_type": "a mapping (key: value)",
}


def yaml_type(value: Any) -> str:
    """The YAML name of a parsed value's type, for 'expected X, got Y'."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "a number"
    if isinstance(value, float):
        return "a decimal number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def closest(word: str, choices: Iterable[str], n: int = 3, cutoff: float = 0.6) -> list[str]:
    """The valid choices nearest to ``word`` (case-insensitive), best first."""
    pool = list(dict.fromkeys(str(c) for c in choices))
    lowered = {c.lower(): c for c in pool}
    if word.lower() in lowered:
        return [lowered[word.lower()]]
    found = difflib.get_close_matches(word.lower(), list(lowered), n=n, cutoff=cutoff)
    return [lowered[f] for f in found]


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """'; did you mean 'x'?' (or '' when nothing is close)."""
    near = closest(word, choices)
    if not near:
        return ""
    return "; did you mean " + " or ".join(f"'{n}'" for n in near) + "?"


def unknown(kind: str, word: str, choices: Sequence[str], show_all: int = 12) -> str:
    """'unknown <kind> 'word'; did you mean ...?' — or the valid choices when few."""
    hint = did_you_mean(word, choices)
    if not hint and len(choices) <= show_all:
        hint = "; valid: " + ", ".join(choices)
    return f"unknown {kind} '{word}'{hint}"


def _unwrap(annotation: Any) -> list[Any]:
    """The model classes an annotation may hold (through Optional, list, dict, unions)."""
    origin = typing.get_origin(annotation)
    if origin is None:
        return [annotation]
    out: list[Any] = []
    args = typing.get_args(annotation)
    if origin is dict:
        args = args[1:]
    if origin is typing.Annotated:
        args = args[:1]
    for arg in args:
        out.extend(_unwrap(arg))
    return out


def _field_keys(model: type[BaseModel]) -> list[str]:
    return [info.alias or name for name, info in model.model_fields.items()]


def _model_at(model: type[BaseModel], loc: Sequence[int | str]) -> type[BaseModel] | None:
    current: type[BaseModel] | None = model
    for part in loc:
        if current is None:
            return None
        if isinstance(part, int):
            continue
        fields = {info.alias or name: info for name, info in current.model_fields.items()}
        fields.update(current.model_fields)
        info = fields.get(part)
        if info is None:
            # A dict of models (variants.<name>): stay on the value type chosen before.
            continue
        models = [
            m for m in _unwrap(info.annotation) if isinstance(m, type) and issubclass(m, BaseModel)
        ]
        current = models[0] if models else None
    return current


def allowed_keys(model: type[BaseModel], loc: Sequence[int | str]) -> list[str]:
    """The keys valid at ``loc`` (the mapping containing the offending key)."""
    inner = _model_at(model, loc)
    return _field_keys(inner) if inner is not None else []


def describe(err: ErrorDetails, model: type[BaseModel] | None = None) -> str:
    """One error of ``model.model_validate`` in our words (without its key path)."""
    kind = err["type"]
    loc = err["loc"]
    value = err.get("input")
    ctx = err.get("ctx") or {}
    if kind == "extra_forbidden":
        key = str(loc[-1]) if loc else "?"
        choices = allowed_keys(model, loc[:-1]) if model is not None else []
        return unknown("key", key, choices) if choices else f"unknown key '{key}'"
    if kind == "missing":
        return "this key is required"
    if kind in ("literal_error", "enum"):
        expected = str(ctx.get("expected", ""))
        options = [o.strip().strip("'\"") for o in expected.replace(" or ", ",").split(",")]
        options = [o for o in options if o]
        if isinstance(value, str):
            return unknown("value", value, options, show_all=50)
        return f"must be one of {', '.join(options)}, not {yaml_type(value)}"
    if kind == "string_pattern_mismatch":
        words = getattr(model, "pattern_words", {}).get(str(ctx.get("pattern", "")))
        return f"'{value}' is not allowed here" + (f": use {words}" if words else "")
    if kind in ("too_short", "string_too_short"):
        return "may not be empty"
    if kind in ("greater_than_equal", "greater_than"):
        return f"must be at least {ctx.get('ge', ctx.get('gt'))}, not {value}"
    if kind in ("less_than_equal", "less_than"):
        return f"must be at most {ctx.get('le', ctx.get('lt'))}, not {value}"
    if kind in _TYPE_NAMES:
        return f"expected {_TYPE_NAMES[kind]}, got {yaml_type(value)}"
    if kind in ("value_error", "assertion_error"):
        error = ctx.get("error")
        return str(error) if error is not None else err["msg"]
    if kind.endswith("_type"):
        return f"expected {kind.removesuffix('_type').replace('_', ' ')}, got {yaml_type(value)}"
    msg = err["msg"]
    for prefix in ("Value error, ", "Assertion failed, "):
        msg = msg.removeprefix(prefix)
    return msg[:1].lower() + msg[1:]
