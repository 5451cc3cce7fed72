"""New settings for a running policy: the checked config, what changed, and
its announcement (a log line and a ``Reconfigured`` event).

A breaker, a bulkhead and a rate limiter each adopt a new config in place
(``reconfigure``); this module holds what the three share.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from typing import Any, TypeVar

__all__ = ["changes", "replaced", "settings_error", "store_kept"]

log = logging.getLogger("resilient")

C = TypeVar("C")


def settings_error(error: Exception) -> ValueError:
    """A config's own complaint about a value, as the ``ValueError`` that
    reconfiguring raises (a wrong type included)."""
    if isinstance(error, ValueError):
        return error
    return ValueError(str(error))


def replaced(owner: str, config: C, fields: Mapping[str, Any]) -> C:
    """``config`` with ``fields`` replaced, validated as a new config is; an
    unknown field or a bad value is a ``ValueError`` naming it."""
    known = [f.name for f in dataclasses.fields(config) if f.init]  # type: ignore[arg-type]
    unknown = sorted(str(key) for key in fields if key not in known)
    if unknown:
        raise ValueError(
            f"{owner} has no setting {', '.join(map(repr, unknown))}; "
            f"the settings are {', '.join(known)}"
        )
    try:
        return dataclasses.replace(config, **fields)  # type: ignore[type-var]
    except (TypeError, ValueError) as error:
        raise settings_error(error) from None


def changes(old: object, new: object) -> dict[str, tuple[Any, Any]]:
    """The fields that differ: ``{field: (old, new)}``, in field order."""
    out: dict[str, tuple[Any, Any]] = {}
    for f in dataclasses.fields(old):  # type: ignore[arg-type]
        before, after = getattr(old, f.name), getattr(new, f.name)
        if before != after:
            out[f.name] = (before, after)
    return out


def store_kept(
    owner: str, noun: str, name: str, old: Any, new: object
) -> dict[str, tuple[Any, Any]]:
    """What ``new`` changes of ``old``, the config of the ``owner`` (a
    ``noun``) called ``name``: a TypeError for a config of another type, a
    ValueError for another store (``storage`` cannot change in place)."""
    if not isinstance(new, type(old)):
        raise TypeError(f"{owner} config must be a {type(old).__name__}, got {new!r}")
    if new.storage is not old.storage:
        raise ValueError(
            f"{owner} {name!r}: storage cannot change in place "
            f"(got {new.storage!r}, the {noun} has {old.storage!r})"
        )
    return changes(old, new)
