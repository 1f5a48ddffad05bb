"""Error messages of sweep spec validation: pydantic's errors as ``key.path: what is wrong``."""

from __future__ import annotations

import types
import typing
from typing import Any

from pydantic import BaseModel

__all__ = ["key_path", "message"]


def key_path(loc) -> str:
    """A pydantic error location as a TOML key path (``grid.h.num``, ``outputs[2]``)."""
    parts = []
    for x in loc:
        if isinstance(x, int):
            parts.append(f"[{x}]")
        elif x in ("NonNegativeAxis", "Axis", "function-before[_shorthand(), NonNegativeAxis]"):
            continue
        else:
            parts.append(("." if parts else "") + str(x))
    return "".join(parts)


def message(err: dict, root: type[BaseModel]) -> str:
    """A pydantic error (one of ``ValidationError.errors()``) as one line; ``root`` is the
    validated model (for the keys allowed where an unknown key was found)."""
    kind, msg, loc = err["type"], err["msg"], err["loc"]
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
    if kind == "extra_forbidden":
        allowed = _allowed_keys(loc[:-1], root)
        return f"unknown key {loc[-1]!r}" + (f" (allowed here: {', '.join(allowed)})"
                                              if allowed else "")
    if kind == "missing":
        return "missing required key"
    if kind in ("model_type", "dict_type", "model_attributes_type"):
        return f"expected a table, got {err.get('input')!r}"
    if kind in ("float_parsing", "float_type", "int_type", "int_parsing", "int_from_float",
                "string_type", "list_type", "literal_error", "greater_than", "greater_than_equal",
                "less_than_equal", "finite_number", "bool_type"):
        return f"{msg}; got {err.get('input')!r}"
    return msg


def _allowed_keys(loc, root) -> list[str]:
    model: Any = root
    for x in loc:
        if isinstance(x, int) or not (isinstance(model, type) and issubclass(model, BaseModel)):
            return []
        if x not in model.model_fields:
            continue  # a union/validator tag in the location, not a key
        model = _model_of(model.model_fields[x].annotation)
    if isinstance(model, type) and issubclass(model, BaseModel):
        return list(model.model_fields)
    return []


def _model_of(annotation):
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        for a in typing.get_args(annotation):
            if isinstance(a, type) and issubclass(a, BaseModel):
                return a
    return None
