"""Configs from and to plain mappings: ``from_dict`` / ``to_dict``.

A config (a dataclass) inherits ``FromDict`` and names its durations in
``_durations``; a field whose type is another ``FromDict`` config (or
``None``) takes a nested mapping. So loading ``[tool.myapp.resilience]`` from
TOML, JSON or YAML is ``ResiliencePolicy.from_dict(table)``.

Values a file can hold are read as Python ones:

- a duration: a number of seconds, or a string ``"250ms"``, ``"30s"``,
  ``"2m"``, ``"1h"`` (``"1.5s"`` too); ``false`` is ``None`` (no limit);
- exception types: a type, a name (``"ConnectionError"``,
  ``"http.client.RemoteDisconnected"``), or a list of them;
- a layer of a policy: a mapping (``{}`` is the layer's defaults), a ready
  config, or ``None`` / ``false`` for no layer (TOML has no null).

``to_dict()`` gives the fields back: nested configs as mappings, exception
types as their names, durations as seconds; anything else (predicates,
storages) as it is. ``from_dict(config.to_dict()) == config``.
"""

from __future__ import annotations

import builtins
import dataclasses
import importlib
import re
import sys
import types
import typing
from collections.abc import Mapping
from typing import Any, ClassVar, Self

__all__ = ["FromDict", "duration", "exception_name", "exception_type"]

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|h)\s*")
#: Fields holding exception types, in any config.
_EXCEPTION_FIELDS = frozenset({"record_on", "ignore_on", "retry_on", "give_up_on", "on"})


def duration(owner: str, field: str, value: object) -> object:
    """Seconds from ``value``: numbers pass (the config validates them), a
    string needs a unit."""
    if not isinstance(value, str):
        return value
    match = _DURATION.fullmatch(value)
    if match is None:
        raise ValueError(
            f"{owner}.{field} must be a number of seconds or a duration such as "
            f"'250ms', '30s', '2m', '1h', got {value!r}"
        )
    return float(match[1]) * _UNITS[match[2]]


def exception_type(owner: str, field: str, value: object) -> object:
    """The exception type ``value`` names (types pass as they are)."""
    if not isinstance(value, str):
        return value
    module, _, name = value.rpartition(".")
    try:
        found = getattr(importlib.import_module(module) if module else builtins, name)
    except (ImportError, AttributeError, ValueError):
        found = None
    if not (isinstance(found, type) and issubclass(found, BaseException)):
        raise ValueError(
            f"{owner}.{field}: {value!r} does not name an exception type "
            "(a builtin such as 'ConnectionError', or 'package.module.Name')"
        )
    return found


def exception_name(kind: type[BaseException]) -> str:
    """What ``exception_type`` reads back as ``kind``."""
    if kind.__module__ == "builtins":
        return kind.__qualname__
    return f"{kind.__module__}.{kind.__qualname__}"


def _exceptions(owner: str, field: str, value: object) -> object:
    if isinstance(value, (list, tuple)):
        return tuple(exception_type(owner, field, item) for item in value)
    return exception_type(owner, field, value)


class FromDict:
    """``from_dict`` / ``to_dict`` for a config dataclass.

    ``_durations`` names the fields that hold seconds.
    """

    __slots__ = ()
    _durations: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def from_dict(cls, mapping: Mapping[str, Any]) -> Self:
        """A config from a mapping of its field names (as read from TOML,
        JSON or YAML). Durations may be strings (``"250ms"``, ``"30s"``,
        ``"2m"``, ``"1h"``), exception types names; an unknown key is a
        ``ValueError`` naming it."""
        owner = cls.__name__
        if not isinstance(mapping, Mapping):
            raise TypeError(f"{owner}.from_dict needs a mapping, got {mapping!r}")
        fields = _fields(cls)
        unknown = sorted(str(key) for key in mapping if key not in fields)
        if unknown:
            raise ValueError(
                f"{owner} has no field {', '.join(map(repr, unknown))}; "
                f"the fields are {', '.join(fields)}"
            )
        nested = _nested(cls)
        values: dict[str, Any] = {}
        for key, value in mapping.items():
            if key in nested:
                value = _layer(owner, key, nested[key], value)
            elif key in cls._durations:
                value = None if value is False else duration(owner, key, value)
            elif key in _EXCEPTION_FIELDS:
                value = _exceptions(owner, key, value)
            values[key] = value
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """The fields as a plain dict; ``from_dict`` reads it back equal."""
        out: dict[str, Any] = {}
        for name in _fields(type(self)):
            value = getattr(self, name)
            if isinstance(value, FromDict):
                value = value.to_dict()
            elif name in _EXCEPTION_FIELDS and isinstance(value, tuple):
                value = [exception_name(kind) for kind in value]
            out[name] = value
        return out


def _layer(owner: str, field: str, kind: type[FromDict], value: object) -> object:
    if value is None or value is False:
        return None
    if isinstance(value, Mapping):
        return kind.from_dict(value)
    return value  # a ready config, or a bad value the config rejects by name


_FIELDS: dict[type, tuple[str, ...]] = {}
_NESTED: dict[type, dict[str, type[FromDict]]] = {}


def _fields(cls: type) -> tuple[str, ...]:
    found = _FIELDS.get(cls)
    if found is None:
        found = _FIELDS[cls] = tuple(
            f.name for f in dataclasses.fields(cls) if f.init and not f.name.startswith("_")
        )
    return found


def _nested(cls: type) -> dict[str, type[FromDict]]:
    """The fields typed as another ``FromDict`` config (or ``None``)."""
    found = _NESTED.get(cls)
    if found is None:
        found = {}
        space = vars(sys.modules[cls.__module__])
        for field in dataclasses.fields(cls):
            hint: Any = field.type
            if isinstance(hint, str):
                try:
                    hint = eval(hint, space)  # the class's own annotation
                except NameError:  # a name imported for type checking only: not a config
                    continue
            options = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
            for option in options:
                if isinstance(option, type) and issubclass(option, FromDict):
                    found[field.name] = option
        _NESTED[cls] = found
    return found
