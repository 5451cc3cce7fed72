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
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ._runtime import switch as _active
from ._runtime.validation import MAX_SECONDS

if TYPE_CHECKING:
    from ._registry.document import Document
    from ._registry.registry import Registry
    from ._registry.watch import Watch
    from ._runtime.mapping import Exceptions

__all__ = ["VARIABLES", "Defaults", "defaults", "load", "reload", "watch"]

VARIABLES = (
    "RESILIENT_ENABLED",
    "RESILIENT_DEFAULT_TIMEOUT",
    "RESILIENT_RETRY_MAX_ATTEMPTS",
    "RESILIENT_CB_FAILURE_THRESHOLD",
    "RESILIENT_CB_RECOVERY_TIMEOUT",
)
"""The environment variables read (at import, and by ``reload``)."""


@dataclass(slots=True)
class Defaults:
    """The settings the environment gives, each field from its variable.

    Attributes:
        enabled: ``RESILIENT_ENABLED``; ``False`` makes every policy a
            pass-through (``set_active(False)``).
        timeout: ``RESILIENT_DEFAULT_TIMEOUT``, the timeout of
            ``ResiliencePolicy()`` (seconds).
        retry_max_attempts: ``RESILIENT_RETRY_MAX_ATTEMPTS``,
            ``RetryConfig().max_attempts``.
        cb_failure_threshold: ``RESILIENT_CB_FAILURE_THRESHOLD``,
            ``CircuitBreakerConfig().failure_threshold``.
        cb_recovery_timeout: ``RESILIENT_CB_RECOVERY_TIMEOUT``,
            ``CircuitBreakerConfig().recovery_timeout`` (seconds).
    """

    enabled: bool = True
    timeout: float = 30.0
    retry_max_attempts: int = 3
    cb_failure_threshold: int = 5
    cb_recovery_timeout: float = 30.0


defaults = Defaults()
"""The settings in force: what the environment said at import or at the last ``reload``."""

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _bool(variable: str, raw: str) -> bool:
    word = raw.strip().lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    raise ValueError(f"{variable} must be true or false, got {raw!r}")


# ASCII digits only: int() and float() would also take "1_000", other
# scripts' digits ("٣") and exponents, which nobody means in a setting.
_WHOLE = re.compile(r"[0-9]{1,9}")
_DECIMAL = re.compile(r"(?:[0-9]{1,12}(?:\.[0-9]{0,9})?|\.[0-9]{1,9})")
_MAX_WHOLE = 10**9 - 1


def _positive_int(variable: str, raw: str) -> int:
    text = raw.strip()
    if not _WHOLE.fullmatch(text) or int(text) < 1:
        raise ValueError(
            f"{variable} must be a whole number from 1 to {_MAX_WHOLE:_} in ASCII digits, "
            f"got {raw!r}"
        )
    return int(text)


def _positive_seconds(variable: str, raw: str) -> float:
    text = raw.strip()
    if not _DECIMAL.fullmatch(text) or not 0 < float(text) <= MAX_SECONDS:
        raise ValueError(
            f"{variable} must be a number of seconds > 0 and <= {MAX_SECONDS:g} in ASCII "
            f"decimal digits (e.g. 2.5), got {raw!r}"
        )
    return float(text)


def parse(environ: Mapping[str, str]) -> Defaults:
    """The defaults ``environ`` asks for; a bad value names the variable."""
    result = Defaults()
    if (raw := environ.get("RESILIENT_ENABLED")) is not None:
        result.enabled = _bool("RESILIENT_ENABLED", raw)
    if (raw := environ.get("RESILIENT_DEFAULT_TIMEOUT")) is not None:
        result.timeout = _positive_seconds("RESILIENT_DEFAULT_TIMEOUT", raw)
    if (raw := environ.get("RESILIENT_RETRY_MAX_ATTEMPTS")) is not None:
        result.retry_max_attempts = _positive_int("RESILIENT_RETRY_MAX_ATTEMPTS", raw)
    if (raw := environ.get("RESILIENT_CB_FAILURE_THRESHOLD")) is not None:
        result.cb_failure_threshold = _positive_int("RESILIENT_CB_FAILURE_THRESHOLD", raw)
    if (raw := environ.get("RESILIENT_CB_RECOVERY_TIMEOUT")) is not None:
        result.cb_recovery_timeout = _positive_seconds("RESILIENT_CB_RECOVERY_TIMEOUT", raw)
    return result


def reload(environ: Mapping[str, str] | None = None) -> Defaults:
    """Read the environment again (or ``environ``) and apply it."""
    parsed = parse(os.environ if environ is None else environ)
    for field in Defaults.__slots__:
        setattr(defaults, field, getattr(parsed, field))
    _active.set_active(parsed.enabled)
    return defaults


reload()


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
