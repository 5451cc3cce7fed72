"""Bad input, field by field, policy by policy: every bad value fails at
construction with a ``TypeError`` or ``ValueError`` that names the field and
shows the value; and no decorator accepts something it cannot call.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable
from typing import Any

import pytest

from resilient import (
    Bulkhead,
    BulkheadConfig,
    Chaos,
    CircuitBreaker,
    CircuitBreakerConfig,
    Fallback,
    RateLimitConfig,
    Registry,
    ResiliencePolicy,
    Retry,
    RetryConfig,
    Timeout,
    TimeoutConfig,
    with_bulkhead,
    with_chaos,
    with_circuit_breaker,
    with_fallback,
    with_resilience,
    with_retry,
    with_timeout,
)
from resilient.policy import Resilience

NAN = math.nan
INF = math.inf


class NotAnException:
    pass


# What every kind of field rejects, beyond its own specials.
COUNT = [None, "3", 2.0, True, -1, NAN]  # an int
# Longer than threading (and so the clock's time_t) can wait for: accepted
# once, these failed inside every call with OverflowError.
TOO_LONG = [1e10, 1e300]
SECONDS = [None, "1", True, -1.0, NAN, INF, [1], *TOO_LONG]  # finite seconds >= 0
SECONDS_OR_NONE = ["1", True, -1.0, 0.0, NAN, INF, *TOO_LONG]  # finite seconds > 0, or None
# More than a size allocates up front (permits, window slots).
TOO_MANY = [10**8, 10**29]
RATE_OR_NONE = ["0.5", True, 0.0, -0.5, 1.5, NAN, INF]  # 0 < r <= 1, or None
PROBABILITY = [None, "0.5", True, -0.1, 1.01, NAN, INF]  # 0 <= p <= 1
EXCEPTIONS = [None, "ValueError", ValueError(), NotAnException, (ValueError, int), 3]
CALLABLE_OR_NONE = ["f", 3, object()]

# (owner, build(**bad), field, bad values). ``build`` makes the policy with
# every other field valid; the message must name "owner.field" (or the
# field) and contain repr(value).
CASES: list[tuple[str, Callable[..., object], str, list[Any]]] = []


def _add(owner: str, build: Callable[..., object], field: str, values: list[Any]) -> None:
    CASES.append((owner, build, field, values))


# -- CircuitBreakerConfig ---------------------------------------------------------


def _breaker_config(**kw: Any) -> object:
    return CircuitBreakerConfig(**kw)


for _field in ("failure_threshold", "half_open_max_calls", "success_threshold"):
    _add("CircuitBreakerConfig", _breaker_config, _field, [*COUNT, 0])
_add("CircuitBreakerConfig", _breaker_config, "minimum_calls", [*COUNT, 0])
_add("CircuitBreakerConfig", _breaker_config, "window_size", [*COUNT, 0, *TOO_MANY])
_add("CircuitBreakerConfig", _breaker_config, "window_duration", [1e7])  # a bucket a second
for _field in ("failure_rate_threshold", "slow_call_rate_threshold"):
    _add("CircuitBreakerConfig", _breaker_config, _field, RATE_OR_NONE)
for _field in ("window_duration", "slow_call_duration", "timeout"):
    _add("CircuitBreakerConfig", _breaker_config, _field, SECONDS_OR_NONE)
_add("CircuitBreakerConfig", _breaker_config, "recovery_timeout", SECONDS)
_add("CircuitBreakerConfig", _breaker_config, "health_check_interval", [*SECONDS, 0.0])
for _field in ("record_on", "ignore_on"):
    _add("CircuitBreakerConfig", _breaker_config, _field, EXCEPTIONS)
for _field in ("failure_predicate", "result_predicate", "health_check"):
    _add("CircuitBreakerConfig", _breaker_config, _field, CALLABLE_OR_NONE)
_add("CircuitBreakerConfig", _breaker_config, "storage", ["redis://localhost", 3])
_add(
    "CircuitBreakerConfig",
    _breaker_config,
    "recovery_backoff",
    [None, "2", True, 0.5, 0.0, -2.0, NAN, INF],
)
# 1.0 is under the default recovery_timeout (30 s): the first opening would exceed the cap.
_add("CircuitBreakerConfig", _breaker_config, "max_recovery_timeout", [*SECONDS_OR_NONE, 1.0])
_add("CircuitBreakerConfig", _breaker_config, "max_half_open_duration", SECONDS_OR_NONE)
_add("CircuitBreakerConfig", _breaker_config, "shadow", ["yes", 1, None])


# -- RetryConfig -------------------------------------------------------------------


def _retry_config(**kw: Any) -> object:
    return RetryConfig(**kw)


_add("RetryConfig", _retry_config, "max_attempts", [*COUNT, 0])
_add("RetryConfig", _retry_config, "initial_delay", SECONDS)
_add("RetryConfig", _retry_config, "max_delay", [*SECONDS, 0.5])  # 0.5 < initial_delay
_add("RetryConfig", _retry_config, "multiplier", [None, "2", True, 0.5, -2.0, NAN, INF])
_add("RetryConfig", _retry_config, "jitter", [None, True, -0.1, 1.5, NAN, INF, "fully"])
_add("RetryConfig", _retry_config, "retry_on", [None, "ValueError", 3, (ValueError, int)])
_add("RetryConfig", _retry_config, "give_up_on", EXCEPTIONS)
for _field in ("retry_if_result", "on_retry", "wait"):
    _add("RetryConfig", _retry_config, _field, CALLABLE_OR_NONE)
_add("RetryConfig", _retry_config, "respect_retry_after", [None, 1, "yes"])
_add("RetryConfig", _retry_config, "deadline", SECONDS_OR_NONE)
_add("RetryConfig", _retry_config, "rng", [42, "random", object()])
_add("RetryConfig", _retry_config, "budget", [0.2, "budget", object()])


# -- BulkheadConfig, Bulkhead ---------------------------------------------------------


def _bulkhead_config(**kw: Any) -> object:
    kw.setdefault("max_concurrent", 2)
    return BulkheadConfig(**kw)


_add("BulkheadConfig", _bulkhead_config, "max_concurrent", [*COUNT, 0, *TOO_MANY])
_add("BulkheadConfig", _bulkhead_config, "max_queue", [*COUNT[:-2], -1, NAN, *TOO_MANY])
_add("BulkheadConfig", _bulkhead_config, "queue_timeout", SECONDS_OR_NONE)
_add("BulkheadConfig", _bulkhead_config, "adaptive", ["gradient", 20, {"initial": 20}])


def _bulkhead(**kw: Any) -> object:
    kw.setdefault("max_concurrent", 2)
    return Bulkhead("b", **kw)


_add("BulkheadConfig", _bulkhead, "max_concurrent", [*COUNT[1:], 0])
_add("BulkheadConfig", _bulkhead, "max_queue", [-1, "1", 1.5])
_add("BulkheadConfig", _bulkhead, "queue_timeout", SECONDS_OR_NONE)


# -- Timeout ------------------------------------------------------------------------


def _timeout(**kw: Any) -> object:
    kw.setdefault("seconds", 1.0)
    return Timeout(**kw)


_add("Timeout", _timeout, "seconds", SECONDS_OR_NONE)
_add("Timeout", _timeout, "first_item", SECONDS_OR_NONE)
_add("Timeout", _timeout, "inactivity", SECONDS_OR_NONE)
_add("Timeout", _timeout, "mode", ["threads", None, 1])
_add("Timeout", _timeout, "pool", ["pool", 4])


def _timeout_config(**kw: Any) -> object:
    kw.setdefault("seconds", 1.0)
    return TimeoutConfig(**kw)


_add("TimeoutConfig", _timeout_config, "seconds", SECONDS_OR_NONE)
_add("TimeoutConfig", _timeout_config, "first_item", SECONDS_OR_NONE)
_add("TimeoutConfig", _timeout_config, "inactivity", SECONDS_OR_NONE)
_add("TimeoutConfig", _timeout_config, "pool_size", [*COUNT, 0, 10**6])
_add("TimeoutConfig", _timeout_config, "mode", ["threads", None, 1])


# -- Fallback -------------------------------------------------------------------------


def _fallback(**kw: Any) -> object:
    if "handler" not in kw:
        kw.setdefault("value", None)
    return Fallback(**kw)


_add("Fallback", _fallback, "handler", CALLABLE_OR_NONE)
_add("Fallback", _fallback, "on", EXCEPTIONS)


# -- Chaos --------------------------------------------------------------------------


def _chaos(**kw: Any) -> object:
    return Chaos(**kw)


_add("Chaos", _chaos, "fault_rate", PROBABILITY)
_add("Chaos", _chaos, "latency_rate", PROBABILITY)
_add("Chaos", _chaos, "latency", [*SECONDS, (1.0,), (2.0, 1.0), (0.0, NAN), (-1.0, 1.0), "1"])
_add("Chaos", _chaos, "exception", [None, "ValueError", 3, NotAnException])
_add("Chaos", _chaos, "enabled", [None, "yes", 1])
_add("Chaos", _chaos, "seed", ["42", 4.2, True])


# -- ResiliencePolicy ----------------------------------------------------------------


def _resilience_policy(**kw: Any) -> object:
    return ResiliencePolicy(**kw)


_NOT_A_CONFIG = [{"max_attempts": 3}, "default", 3]
for _field in (
    "circuit_breaker",
    "retry",
    "bulkhead",
    "fallback",
    "rate_limit",
    "hedging",
    "failover",
):
    _add("ResiliencePolicy", _resilience_policy, _field, _NOT_A_CONFIG)


# -- RateLimitConfig -------------------------------------------------------------------


def _rate_limit_config(**kw: Any) -> object:
    kw.setdefault("rate", 5)
    return RateLimitConfig(**kw)


_add("RateLimitConfig", _rate_limit_config, "rate", [None, "5", True, 0, -1.0, NAN, INF, 1e12])
_add("RateLimitConfig", _rate_limit_config, "period", [*SECONDS, 0.0])
_add("RateLimitConfig", _rate_limit_config, "burst", [*COUNT[1:], 0, 2**40])
_add("RateLimitConfig", _rate_limit_config, "max_wait", [*SECONDS, 1e300])
_add("RateLimitConfig", _rate_limit_config, "storage", ["redis://localhost", 3])
_add("ResiliencePolicy", _resilience_policy, "timeout", SECONDS_OR_NONE)


def _id(value: object) -> str:
    """A test id the same on every run: the value's repr, but never an address
    (``<object object at 0x...>`` changes from run to run)."""
    text = repr(value)
    return f"{type(value).__name__}()" if re.search(r" at 0x[0-9a-fA-F]+", text) else text


def _params() -> list[Any]:
    params = []
    for _owner, build, field, values in CASES:
        for value in values:
            params.append(
                pytest.param(build, field, value, id=f"{build.__name__}-{field}-{_id(value)}")
            )
    return params


@pytest.mark.parametrize(("build", "field", "value"), _params())
def test_a_bad_value_is_refused_naming_the_field_and_the_value(
    build: Callable[..., object], field: str, value: object
) -> None:
    with pytest.raises((TypeError, ValueError)) as info:
        build(**{field: value})
    message = str(info.value)
    assert field in message, f"{message!r} does not name {field!r}"
    assert repr(value) in message, f"{message!r} does not show {value!r}"


def test_every_config_field_is_covered() -> None:
    covered: dict[str, set[str]] = {}
    for owner, _, field, _ in CASES:
        covered.setdefault(owner, set()).add(field)
    for config in (
        CircuitBreakerConfig,
        RetryConfig,
        BulkheadConfig,
        ResiliencePolicy,
        TimeoutConfig,
        RateLimitConfig,
    ):
        fields = {f.name for f in dataclasses.fields(config)}  # type: ignore[arg-type]
        assert fields <= covered[config.__name__], fields - covered[config.__name__]


# -- names and pairs of fields --------------------------------------------------------


@pytest.mark.parametrize(
    ("build", "value"),
    [
        (lambda v: CircuitBreaker(v), ""),
        (lambda v: CircuitBreaker(v), 3),
        (lambda v: CircuitBreaker("b", v), {"failure_threshold": 3}),
        (lambda v: Bulkhead(v, max_concurrent=1), ""),
        (lambda v: Bulkhead(v, max_concurrent=1), None),
        (lambda v: Bulkhead("b", v), {"max_concurrent": 1}),
        (lambda v: Retry(v), {"max_attempts": 3}),
        (lambda v: Retry(name=v), ""),
        (lambda v: Timeout(1.0, name=v), 3),
        (lambda v: Fallback(None, name=v), ""),
        (lambda v: Chaos(name=v), ""),
        (lambda v: with_circuit_breaker(v), ""),
        (lambda v: with_circuit_breaker(v), 3),
        (lambda v: with_circuit_breaker("b", failure_threshold=v), 0),
        (lambda v: with_bulkhead(v, max_concurrent=1), ""),
        (lambda v: with_bulkhead("b", max_concurrent=v), 0),
        (lambda v: with_retry(v), "fast"),
        (lambda v: with_retry(max_attempts=v), 0),
        (lambda v: with_timeout(v), -1),
        (lambda v: with_chaos(v), "chaos"),
        (lambda v: with_chaos(fault_rate=v), 2),
        (lambda v: with_resilience(v), ""),
        (lambda v: with_resilience("r", v), "api"),
        (lambda v: with_resilience("r", timeout=v), -5),
        (lambda v: with_resilience("r", **{v: 1}), "retries"),
        (lambda v: Resilience(v), None),
    ],
)
def test_bad_names_and_configs_show_the_value(build: Callable[[Any], object], value: Any) -> None:
    with pytest.raises((TypeError, ValueError)) as info:
        build(value)
    assert repr(value) in str(info.value)


@pytest.mark.parametrize(
    ("build", "words"),
    [
        (lambda: CircuitBreakerConfig(slow_call_rate_threshold=0.5), ["slow_call_duration"]),
        (
            lambda: CircuitBreakerConfig(
                failure_rate_threshold=0.5, minimum_calls=20, window_size=10
            ),
            ["minimum_calls", "20", "window_size", "10"],
        ),
        (lambda: RetryConfig(initial_delay=5.0, max_delay=1.0), ["max_delay", "1.0", "5.0"]),
        (lambda: Timeout(), ["seconds", "inactivity"]),
        (lambda: Fallback(), ["value", "handler"]),
        (lambda: Fallback(1, handler=print), ["value", "handler"]),
        (lambda: Chaos(result=1, exception=KeyError), ["result", "exception"]),
        (lambda: Bulkhead("b"), ["max_concurrent"]),
    ],
)
def test_inconsistent_fields_are_refused_naming_them(
    build: Callable[[], object], words: list[str]
) -> None:
    with pytest.raises((TypeError, ValueError)) as info:
        build()
    for word in words:
        assert word in str(info.value)


def test_presets_and_defaults_are_valid() -> None:
    for config in (
        CircuitBreakerConfig.DEFAULT,
        CircuitBreakerConfig.LENIENT,
        CircuitBreakerConfig.STRICT,
        CircuitBreakerConfig.AI_SERVICE,
        RetryConfig.DEFAULT,
        RetryConfig.AGGRESSIVE,
        RetryConfig.NO_RETRY,
    ):
        fields = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}
        assert type(config)(**fields) == config


# -- decorating what cannot be called ------------------------------------------------------

DECORATORS: list[tuple[str, Callable[[], Callable[[Any], Any]]]] = [
    ("with_circuit_breaker", lambda: with_circuit_breaker("validation")),
    ("CircuitBreaker", lambda: CircuitBreaker("validation")),
    ("with_retry", lambda: with_retry()),
    ("Retry", lambda: Retry()),
    ("with_timeout", lambda: with_timeout(1.0)),
    ("Timeout", lambda: Timeout(1.0)),
    ("with_fallback", lambda: with_fallback(None)),
    ("Fallback", lambda: Fallback(None)),
    ("with_bulkhead", lambda: with_bulkhead("validation", max_concurrent=1)),
    ("Bulkhead", lambda: Bulkhead("validation", max_concurrent=1)),
    ("with_chaos", lambda: with_chaos(fault_rate=0.5)),
    ("Chaos", lambda: Chaos()),
    ("with_resilience", lambda: with_resilience("validation")),
    ("Resilience", lambda: Resilience("validation", registry=Registry())),
]


@pytest.mark.parametrize("target", [42, "fn", None, object(), [print]], ids=_id)
@pytest.mark.parametrize(("_name", "make"), DECORATORS, ids=[n for n, _ in DECORATORS])
def test_decorating_a_non_callable_is_a_type_error(
    _name: str, make: Callable[[], Callable[[Any], Any]], target: object
) -> None:
    decorator = make()
    with pytest.raises(TypeError) as info:
        decorator(target)
    assert repr(target) in str(info.value)
