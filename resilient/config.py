"""Configuration from the environment, and from a file of named policies.

The environment is read at import and again by ``reload``.
``RESILIENT_ENABLED=false`` turns every policy into a pass-through; the
other variables change the defaults of ``CircuitBreakerConfig()``,
``RetryConfig()`` and ``ResiliencePolicy()`` for the fields not given
explicitly.

``load(path_or_mapping)`` applies a TOML or JSON document of named policies
to a registry (creating them, or reconfiguring them in place), all or
nothing; ``watch(path)`` applies it again whenever the file changes.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

# The environment's settings live below every policy (whose configs read
# ``defaults``); this module adds what sits above the registry.
from ._runtime.environment import VARIABLES, Defaults, defaults, reload
from ._runtime.environment import parse as parse

if TYPE_CHECKING:
    from ._registry.document import Document
    from ._registry.registry import Registry
    from ._registry.watch import Watch
    from ._runtime.mapping import Exceptions

__all__ = ["VARIABLES", "Defaults", "defaults", "load", "reload", "watch"]


def load(
    source: str | os.PathLike[str] | Mapping[str, Any],
    registry: Registry | None = None,
    *,
    exceptions: Exceptions | None = None,
) -> Document:
    """Apply a document of named policies to ``registry`` (default: the
    global one), all or nothing.

    ``source`` is a path (JSON when named ``*.json``, else TOML) or a
    mapping already read. Its tables are ``[breakers.NAME]``,
    ``[bulkheads.NAME]``, ``[rate_limits.NAME]`` (the fields of
    ``CircuitBreakerConfig``, ``BulkheadConfig``, ``RateLimitConfig``) and
    ``[policies.NAME]`` (a ``ResiliencePolicy``, whose breaker, bulkhead and
    rate limit are registered under ``NAME``). Each named policy is created,
    or reconfigured in place when it exists (state, counts and callers in
    flight are kept). A table gives the whole settings of its policy: a
    field it leaves out takes its default, except what a file cannot hold
    (``storage``, predicates, a health check), which a running policy keeps.

    A document with any bad entry changes nothing: the error names the
    entry's key (``breakers.payments.failure_threshold``). ``exceptions``:
    as for ``from_dict``. Returns what the document holds (the policies
    under ``.policies``, ready for ``with_resilience(name, policy)``)."""
    from ._registry import document as _document
    from ._registry.registry import registry as _global

    target = _global if registry is None else registry
    raw: Mapping[str, Any] = source if isinstance(source, Mapping) else _document.read(source)
    parsed = _document.parse(raw, exceptions)
    _document.apply(parsed, target, raw)
    return parsed


def watch(
    path: str | os.PathLike[str],
    interval: float = 5.0,
    *,
    registry: Registry | None = None,
    exceptions: Exceptions | None = None,
) -> Watch:
    """Apply the document at ``path`` now (as ``load``) and again whenever
    the file changes, checked every ``interval`` seconds by a background
    thread (a daemon; a forked child runs its own). A file that cannot be
    read or applied is logged, and the last good settings stay.

    Returns the function that stops watching (its ``check()`` reads the
    file at once, as the thread does)."""
    from ._registry import watch as _watch
    from ._runtime import validation as _validate

    _validate.seconds("watch", "interval", interval, allow_zero=False)
    return _watch.watch(path, interval, registry, exceptions, load)
