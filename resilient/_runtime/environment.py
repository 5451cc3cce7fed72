"""The settings the environment gives (``resilient.config``'s defaults).

Read at import and again by ``reload``. The policies' configs read
``defaults`` for the fields not given explicitly; ``resilient.config``
re-exports everything here beside ``load`` and ``watch`` (which sit above
the registry, so the policies below it never import them).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

from . import switch as _active
from .validation import MAX_SECONDS

__all__ = ["VARIABLES", "Defaults", "defaults", "parse", "reload"]

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
