"""Dataclass configs from plain values (JSON, TOML, the command line), typed field by field."""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from typing import Any


def coerce(value: Any, kind: Any) -> Any:
    """Turn a TOML or command-line value into the dataclass field's type."""
    origin = typing.get_origin(kind)
    if origin is tuple:
        items = json.loads(value) if isinstance(value, str) else value
        args = typing.get_args(kind)
        item_types = [args[0]] * len(items) if len(args) == 2 and args[1] is Ellipsis else list(args)
        if len(item_types) != len(items):
            raise ValueError(f"expected {len(item_types)} values, got {items!r}")
        return tuple(coerce(v, t) for v, t in zip(items, item_types))
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(kind) if a is not type(None)]
        if value in (None, "none", "None"):
            return None
        return coerce(value, options[0])
    if kind is bool:
        if isinstance(value, str):
            if value.lower() not in ("true", "false", "1", "0"):
                raise ValueError(f"expected true or false, got {value!r}")
            return value.lower() in ("true", "1")
        return bool(value)
    if kind is int and (isinstance(value, bool) or (isinstance(value, float) and not value.is_integer())):
        raise ValueError(f"expected an integer, got {value!r}")
    if kind in (int, float, str):
        return kind(value)
    if dataclasses.is_dataclass(kind):
        raise ValueError("a section, not a value")
    return value


def from_dict(kind: type, data: dict[str, Any]) -> Any:
    """Rebuild a nested dataclass from `to_dict` output (as stored in a checkpoint's JSON)."""
    hints = typing.get_type_hints(kind)
    kwargs = {}
    for f in dataclasses.fields(kind):
        if f.name not in data:
            continue
        value, t = data[f.name], hints[f.name]
        kwargs[f.name] = from_dict(t, value) if dataclasses.is_dataclass(t) else coerce(value, t)
    return kind(**kwargs)
