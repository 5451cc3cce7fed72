"""A document of named policies (TOML or JSON) applied to a registry, all
or nothing: ``resilient.config.load``.

The tables: ``[breakers.NAME]`` (``CircuitBreakerConfig`` fields),
``[bulkheads.NAME]`` (``BulkheadConfig``), ``[rate_limits.NAME]``
(``RateLimitConfig``) and ``[policies.NAME]`` (``ResiliencePolicy``, whose
breaker, bulkhead and rate limit are registered under ``NAME``, as
``with_resilience(NAME, policy)`` registers them). Each named policy is
created, or reconfigured in place when it exists.

A table gives a policy's whole settings: a field it leaves out takes its
default, except what a file cannot hold (``storage``, predicates, a health
check), which a running policy keeps.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tomllib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

from .._runtime.mapping import Exceptions, load_table
from ..bulkhead.bulkhead import BulkheadConfig
from ..circuit_breaker.config import CircuitBreakerConfig
from ..policy import ResiliencePolicy
from ..rate_limit.limiter import RateLimitConfig

if TYPE_CHECKING:
    from .registry import Registry

__all__ = ["Document", "apply", "parse", "read"]

_TABLES: dict[str, tuple[str, type[Any]]] = {
    "breakers": ("circuit_breaker", CircuitBreakerConfig),
    "bulkheads": ("bulkhead", BulkheadConfig),
    "rate_limits": ("rate_limiter", RateLimitConfig),
}
# What a file cannot hold: a running policy keeps these unless the table names them.
_KEPT = {
    "circuit_breaker": ("storage", "failure_predicate", "result_predicate", "health_check"),
    "bulkhead": (),
    "rate_limiter": ("storage",),
}
_POLICY_LAYERS = (
    ("circuit_breaker", "circuit_breaker"),
    ("bulkhead", "bulkhead"),
    ("rate_limit", "rate_limiter"),
)


class Document(NamedTuple):
    """What a document says, read and checked: the configs of each kind, and
    the composed policies, by name."""

    breakers: dict[str, CircuitBreakerConfig]
    bulkheads: dict[str, BulkheadConfig]
    rate_limits: dict[str, RateLimitConfig]
    policies: dict[str, ResiliencePolicy]


def read(source: str | os.PathLike[str]) -> dict[str, Any]:
    """The mapping a file holds: JSON when it is named ``*.json``, else TOML."""
    with open(source, "rb") as file:
        raw = file.read()
    name = os.fspath(source)
    try:
        data = json.loads(raw) if name.endswith(".json") else tomllib.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as error:
        raise ValueError(f"{name}: not a valid document: {error}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{name}: a document is a table of tables, got {data!r}")
    return data


def parse(document: Mapping[str, Any], exceptions: Exceptions | None = None) -> Document:
    """Check every entry of ``document``; the first bad one raises, naming
    its key (``breakers.payments.failure_threshold``)."""
    if not isinstance(document, Mapping):
        raise TypeError(f"a document must be a mapping, got {document!r}")
    known = (*_TABLES, "policies")
    unknown = sorted(str(key) for key in document if key not in known)
    if unknown:
        raise ValueError(
            f"the document has no table {', '.join(map(repr, unknown))}; "
            f"the tables are {', '.join(known)}"
        )
    parsed: dict[str, dict[str, Any]] = {}
    for table in known:
        entries = document.get(table, {})
        if not isinstance(entries, Mapping):
            raise TypeError(f"{table} must be a table of named tables, got {entries!r}")
        kind = ResiliencePolicy if table == "policies" else _TABLES[table][1]
        parsed[table] = {}
        for name, entry in entries.items():
            if not isinstance(entry, Mapping):
                raise TypeError(f"{table}.{name} must be a table, got {entry!r}")
            parsed[table][str(name)] = load_table(kind, entry, exceptions, f"{table}.{name}")
    found = Document(
        parsed["breakers"], parsed["bulkheads"], parsed["rate_limits"], parsed["policies"]
    )
    for name in found.policies:
        for layer, policy_kind in _POLICY_LAYERS:
            table = next(t for t, (k, _) in _TABLES.items() if k == policy_kind)
            if layer in document["policies"][name] and name in getattr(found, table):
                raise ValueError(
                    f"{table}.{name} and policies.{name}.{layer} both set the {policy_kind} "
                    f"named {name!r}: keep one"
                )
    return found


def _wanted(document: Document) -> dict[str, dict[str, Any]]:
    """The configs by name, then kind."""
    out: dict[str, dict[str, Any]] = {}
    for name, policy in document.policies.items():
        for layer, kind in _POLICY_LAYERS:
            config = getattr(policy, layer)
            if config is not None:
                out.setdefault(name, {})[kind] = config
    # A table of its own wins over a policy's default layer.
    for table, (kind, _) in _TABLES.items():
        for name, config in getattr(document, table).items():
            out.setdefault(name, {})[kind] = config
    return out


def _completed(kind: str, config: Any, running: Any, given: Mapping[str, Any] | None) -> Any:
    """``config`` with what a file cannot hold taken from the running policy."""
    kept = {
        field: getattr(running.config, field)
        for field in _KEPT[kind]
        if given is None or field not in given
    }
    return dataclasses.replace(config, **kept) if kept else config


def apply(document: Document, registry: Registry, source: Mapping[str, Any]) -> None:
    """Create or reconfigure every named policy of ``document``: first check
    that each can take its new settings, then change them all."""
    plan: list[tuple[str, dict[str, Any]]] = []
    for name, configs in _wanted(document).items():
        running = registry._named(name)
        ready: dict[str, Any] = {}
        for kind, config in configs.items():
            policy = running.get(kind)
            if policy is not None:
                config = _completed(kind, config, policy, _given(source, name, kind))
                if kind == "bulkhead" and config.adaptive != policy.config.adaptive:
                    raise ValueError(
                        f"bulkheads.{name}.adaptive cannot change while the bulkhead runs "
                        f"(it has {policy.config.adaptive!r})"
                    )
            ready[kind] = config
        plan.append((name, ready))
    for name, ready in plan:
        registry._apply(name, ready)


def _given(source: Mapping[str, Any], name: str, kind: str) -> Mapping[str, Any] | None:
    """The table the document gave for the ``kind`` named ``name``."""
    table = next(t for t, (k, _) in _TABLES.items() if k == kind)
    entry = source.get(table, {}).get(name)
    if entry is None:
        layer = next(layer for layer, k in _POLICY_LAYERS if k == kind)
        entry = source.get("policies", {}).get(name, {}).get(layer)
    return entry if isinstance(entry, Mapping) else None
