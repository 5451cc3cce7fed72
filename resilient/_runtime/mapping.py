"""Configs from and to plain mappings: ``from_dict`` / ``to_dict``.

A config (a dataclass) inherits ``FromDict`` and names its durations in
``_durations``; a field whose type is another ``FromDict`` config (or
``None``) takes a nested mapping. So loading ``[tool.myapp.resilience]`` from
TOML, JSON or YAML is ``ResiliencePolicy.from_dict(table)``.

Values a file can hold are read as Python ones:

- a duration: a number of seconds, or a string ``"250ms"``, ``"30s"``,
  ``"2m"``, ``"1h"`` (``"1.5s"`` too; ASCII digits only); ``false`` is
  ``None`` (no limit);
- exception types: a type, a name, or a list of them. A name is looked up,
  never imported: among the builtins (``"ConnectionError"``), resilient's
  own errors (``"CircuitOpenError"``, ``"resilient.errors.CircuitOpenError"``,
  the HTTP ones too), and the classes passed as
  ``from_dict(..., exceptions={"Name": cls})`` (under that key, or the
  ``module.Name`` that ``to_dict`` writes);
- a layer of a policy: a mapping (``{}`` is the layer's defaults), a ready
  config, or ``None`` / ``false`` for no layer (TOML has no null).

``to_dict()`` gives the fields back: nested configs as mappings, exception
types as their names, durations as seconds; anything else (predicates,
storages) as it is. ``from_dict(config.to_dict()) == config``, and a config
holding no predicate, storage or fallback goes through JSON unchanged.
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

__all__ = [
    "FromDict",
    "duration",
    "exception_name",
    "exception_type",
    "exception_types",
    "load_table",
]

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
# ASCII only: ``\d`` would also take Arabic-Indic or full-width digits.
_DURATION = re.compile(r"[ \t]*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)[ \t]*(ms|s|m|h)[ \t]*")
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


Exceptions = Mapping[str, type[BaseException]]


def _is_exception(value: object) -> bool:
    return isinstance(value, type) and issubclass(value, BaseException)


def _own_errors() -> dict[str, type[BaseException]]:
    """resilient's exceptions, by short and full name (already part of the
    package: loading them runs none of the caller's code)."""
    found: dict[str, type[BaseException]] = {}
    for module in ("resilient.errors", "resilient.http.errors"):
        try:
            space = vars(importlib.import_module(module))
        except ImportError:  # pragma: no cover - both ship with the package
            continue
        for kind in list(space.values()):
            if _is_exception(kind) and kind.__module__.startswith("resilient."):
                found.setdefault(kind.__name__, kind)
                found[exception_name(kind)] = kind
    return found


def exception_type(
    owner: str, field: str, value: object, exceptions: Exceptions | None = None
) -> object:
    """The exception type ``value`` names (types pass as they are). Nothing
    is imported: see the module's docstring for where names are looked up."""
    if not isinstance(value, str):
        return value
    found: object = None
    if exceptions:
        found = exceptions.get(value)
        if found is None:
            found = next((k for k in exceptions.values() if exception_name(k) == value), None)
    if found is None and value.isidentifier():
        found = getattr(builtins, value, None)
    if not _is_exception(found):
        found = _own_errors().get(value)
    if not _is_exception(found):
        raise ValueError(
            f"{owner}.{field}: {value!r} names no exception type from_dict knows: a "
            "builtin ('ConnectionError'), one of resilient's errors ('CircuitOpenError'), "
            "or a class passed as from_dict(..., exceptions={'Name': cls}); "
            "from_dict imports nothing"
        )
    return found


def exception_name(kind: type[BaseException]) -> str:
    """What ``exception_type`` reads back as ``kind``."""
    if kind.__module__ == "builtins":
        return kind.__qualname__
    return f"{kind.__module__}.{kind.__qualname__}"


def exception_types(
    owner: str, field: str, value: object, exceptions: Exceptions | None = None
) -> object:
    """``exception_type`` of ``value``, or of each item of a list of them."""
    return _exceptions(owner, field, value, exceptions)


def _exceptions(owner: str, field: str, value: object, exceptions: Exceptions | None) -> object:
    if isinstance(value, (list, tuple)):
        return tuple(exception_type(owner, field, item, exceptions) for item in value)
    return exception_type(owner, field, value, exceptions)


def _check_exceptions(owner: str, exceptions: object) -> Exceptions | None:
    if exceptions is None:
        return None
    if not isinstance(exceptions, Mapping) or not all(
        isinstance(key, str) and _is_exception(kind) for key, kind in exceptions.items()
    ):
        raise TypeError(
            f"{owner}.from_dict: exceptions must map names to exception types, got {exceptions!r}"
        )
    return exceptions


class FromDict:
    """``from_dict`` / ``to_dict`` for a config dataclass.

    ``_durations`` names the fields that hold seconds.
    """

    __slots__ = ()
    _durations: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def from_dict(cls, mapping: Mapping[str, Any], *, exceptions: Exceptions | None = None) -> Self:
        """A config from a mapping of its field names (as read from TOML,
        JSON or YAML). Durations may be strings (``"250ms"``, ``"30s"``,
        ``"2m"``, ``"1h"``), exception types names; an unknown key is a
        ``ValueError`` naming it.

        ``exceptions``: the exception classes (beyond the builtins and
        resilient's own errors) that names may stand for, by name, e.g.
        ``{"PaymentDeclined": PaymentDeclined}``. Nothing is ever imported."""
        exceptions = _check_exceptions(cls.__name__, exceptions)
        loaded: Self = load_table(cls, mapping, exceptions, "")
        return loaded

    def to_dict(self) -> dict[str, Any]:
        """The fields as a plain dict; ``from_dict`` reads it back equal."""
        out: dict[str, Any] = {}
        for name in _fields(type(self)):
            value = getattr(self, name)
            if isinstance(value, FromDict) or _is_table(type(value)):
                value = value.to_dict()
            elif name in _EXCEPTION_FIELDS and isinstance(value, tuple):
                value = [exception_name(kind) for kind in value]
            out[name] = value
        return out


def load_table(cls: Any, mapping: object, exceptions: Exceptions | None, path: str) -> Any:
    """``cls`` from ``mapping``; errors name ``path``, the key of the table
    in its document (``""``: the mapping itself), and the document's keys."""
    owner = f"{path} ({cls.__name__})" if path else cls.__name__
    if not isinstance(mapping, Mapping):
        raise TypeError(f"{cls.__name__}.from_dict needs a mapping, got {mapping!r}")
    fields = _fields(cls)
    unknown = sorted(str(key) for key in mapping if key not in fields)
    if unknown:
        raise ValueError(
            f"{owner} has no field {', '.join(map(repr, unknown))}; "
            f"the fields are {', '.join(fields)}"
        )
    missing = [name for name in _required(cls) if name not in mapping]
    if missing:
        raise ValueError(f"{owner} needs {', '.join(map(repr, missing))}")
    nested = _nested(cls)
    values: dict[str, Any] = {}
    durations: frozenset[str] = getattr(cls, "_durations", frozenset())
    try:
        for key, value in mapping.items():
            if key in nested and (isinstance(value, Mapping) or key not in durations):
                value = _layer(nested[key], value, exceptions, f"{path}.{key}" if path else key)
            elif key in durations:
                value = None if value is False else duration(cls.__name__, key, value)
            elif key in _EXCEPTION_FIELDS:
                value = _exceptions(cls.__name__, key, value, exceptions)
            values[key] = value
        return cls(**values)
    except (TypeError, ValueError) as error:
        if not path or str(error).startswith(path):
            raise
        raise type(error)(f"{path}: {error}") from None


def _is_table(kind: type) -> bool:
    """A layer that is not a dataclass config but loads from a table too."""
    return callable(getattr(kind, "from_table", None))


def _layer(kind: Any, value: object, exceptions: Exceptions | None, path: str) -> object:
    if value is None or value is False:
        return None
    if isinstance(value, kind):
        return value
    if not isinstance(value, Mapping):
        raise TypeError(
            f"{path} must be a table of {kind.__name__} fields ({{}} for its defaults), "
            f"or false for no {path.rpartition('.')[2]}, got {value!r}"
        )
    if _is_table(kind):
        return kind.from_table(value, exceptions, path)
    return load_table(kind, value, exceptions, path)


_FIELDS: dict[type, tuple[str, ...]] = {}
_NESTED: dict[type, dict[str, Any]] = {}


def _fields(cls: type) -> tuple[str, ...]:
    found = _FIELDS.get(cls)
    if found is None:
        found = _FIELDS[cls] = tuple(
            f.name for f in dataclasses.fields(cls) if f.init and not f.name.startswith("_")
        )
    return found


def _required(cls: type) -> tuple[str, ...]:
    """The fields a table must give (no default)."""
    return tuple(
        f.name
        for f in dataclasses.fields(cls)
        if f.init
        and not f.name.startswith("_")
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    )


def _nested(cls: type) -> dict[str, Any]:
    """The fields typed as another ``FromDict`` config, or a layer that
    loads from a table (``from_table``), or ``None``."""
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
                if isinstance(option, type) and (issubclass(option, FromDict) or _is_table(option)):
                    found[field.name] = option
        _NESTED[cls] = found
    return found
