"""Bad input at construction, table-driven: every constructor rejects each bad
value with a ``TypeError`` or ``ValueError`` that names the field and shows
the value; never a bare ``OverflowError`` or ``AttributeError`` from deep
inside, and never silently. Each case's id is written here, never derived
from a value's repr.

Also: a policy's ``call`` / ``call_async`` refuses what cannot be called at
once, before any attempt (no retry, no backoff).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import pytest

from resilient import (
    AdaptiveLimit,
    Bulkhead,
    BulkheadConfig,
    CircuitBreaker,
    CircuitBreakerConfig,
    Fallback,
    Hedging,
    HedgingConfig,
    RateLimitConfig,
    RateLimiter,
    Registry,
    ResiliencePolicy,
    Retry,
    RetryBudget,
    RetryConfig,
    Timeout,
    TimeoutConfig,
    with_bulkhead,
    with_circuit_breaker,
    with_rate_limit,
    with_resilience,
)
from resilient.policy import Resilience
from resilient.testing import FakeClock

HUGE = 10**400  # more than any float holds: float(HUGE) is an OverflowError
NAN = math.nan


class Case(NamedTuple):
    id: str
    make: Callable[[], object]
    field: str
    shown: str  # how the message shows the value
    error: type[Exception]


def _numbers(owner: str, make: Callable[[str, object], object], fields: list[str]) -> list[Case]:
    """``10**400`` and ``-10**400`` for each numeric field of ``owner``."""
    cases = []
    for field in fields:
        for sign, value in (("huge", HUGE), ("minus-huge", -HUGE)):
            cases.append(
                Case(
                    f"{owner}.{field}={sign}",
                    lambda f=field, v=value: make(f, v),  # type: ignore[misc]
                    field,
                    str(value),
                    ValueError,
                )
            )
    return cases


CASES: list[Case] = [
    *_numbers(
        "CircuitBreakerConfig",
        lambda f, v: CircuitBreakerConfig(**{f: v}),
        [
            "failure_threshold",
            "failure_rate_threshold",
            "minimum_calls",
            "window_size",
            "window_duration",
            "slow_call_duration",
            "slow_call_rate_threshold",
            "recovery_timeout",
            "half_open_max_calls",
            "success_threshold",
            "timeout",
            "health_check_interval",
            "recovery_backoff",
            "max_recovery_timeout",
            "max_half_open_duration",
        ],
    ),
    *_numbers(
        "RetryConfig",
        lambda f, v: RetryConfig(**{f: v}),
        ["max_attempts", "initial_delay", "max_delay", "multiplier", "jitter", "deadline"],
    ),
    *_numbers("TimeoutConfig", lambda f, v: TimeoutConfig(**{"seconds": 1.0, f: v}), ["seconds"]),
    *_numbers("TimeoutConfig", lambda f, v: TimeoutConfig(1.0, **{f: v}), ["pool_size"]),
    *_numbers("Timeout", lambda f, v: Timeout(**{f: v}), ["seconds", "inactivity"]),
    *_numbers(
        "BulkheadConfig",
        lambda f, v: BulkheadConfig(**{"max_concurrent": 1, f: v}),
        [
            "max_concurrent",
        ],
    ),
    *_numbers(
        "BulkheadConfig",
        lambda f, v: BulkheadConfig(1, **{f: v}),
        ["max_queue", "queue_timeout"],
    ),
    *_numbers("RateLimitConfig", lambda f, v: RateLimitConfig(**{"rate": 1.0, f: v}), ["rate"]),
    *_numbers(
        "RateLimitConfig",
        lambda f, v: RateLimitConfig(1.0, **{f: v}),
        ["period", "burst", "max_wait"],
    ),
    *_numbers("HedgingConfig", lambda f, v: HedgingConfig(**{"delay": 1.0, f: v}), ["delay"]),
    *_numbers("HedgingConfig", lambda f, v: HedgingConfig(1.0, **{f: v}), ["max_hedges"]),
    *_numbers(
        "RetryBudget",
        lambda f, v: RetryBudget(**{f: v}),
        ["ratio", "min_retries_per_second", "window"],
    ),
    *_numbers(
        "AdaptiveLimit",
        lambda f, v: AdaptiveLimit(**{f: v}),
        ["initial", "min_limit", "max_limit"],
    ),
    *_numbers("FakeClock", lambda f, v: FakeClock(**{f: v}), ["start", "wall_start"]),
    # Accepted silently before.
    Case("FakeClock.start=nan", lambda: FakeClock(NAN), "start", "nan", ValueError),
    Case("FakeClock.start=inf", lambda: FakeClock(math.inf), "start", "inf", ValueError),
    Case("FakeClock.start=str", lambda: FakeClock("0"), "start", "'0'", TypeError),  # type: ignore[arg-type]
    Case(
        "FakeClock.wall_start=nan",
        lambda: FakeClock(wall_start=NAN),
        "wall_start",
        "nan",
        ValueError,
    ),
    Case(
        "Registry.storage=str",
        lambda: Registry(storage="x"),  # type: ignore[arg-type]
        "storage",
        "'x'",
        TypeError,
    ),
    Case("RetryBudget.name=int", lambda: RetryBudget(name=5), "name", "5", TypeError),  # type: ignore[arg-type]
    Case("RetryBudget.name=empty", lambda: RetryBudget(name=""), "name", "''", ValueError),
    Case(
        "Fallback.on=KeyboardInterrupt",
        lambda: Fallback(1, on=KeyboardInterrupt),
        "on",
        "KeyboardInterrupt",
        ValueError,
    ),
    Case(
        "Fallback.on=SystemExit-in-tuple",
        lambda: Fallback(1, on=(KeyError, SystemExit)),
        "on",
        "SystemExit",
        ValueError,
    ),
    # A registry that is not one: an AttributeError deep inside before.
    Case(
        "with_circuit_breaker.registry=str",
        lambda: with_circuit_breaker("b", registry="x"),
        "registry",
        "'x'",
        TypeError,
    ),
    Case(
        "with_circuit_breaker.registry=str-keyed",
        lambda: with_circuit_breaker("b", key=str, registry="x"),
        "registry",
        "'x'",
        TypeError,
    ),
    Case(
        "with_bulkhead.registry=int",
        lambda: with_bulkhead("b", max_concurrent=1, registry=3),
        "registry",
        "3",
        TypeError,
    ),
    Case(
        "with_rate_limit.registry=str",
        lambda: with_rate_limit("r", rate=1.0, registry="x"),
        "registry",
        "'x'",
        TypeError,
    ),
    Case(
        "with_resilience.registry=str",
        lambda: with_resilience("p", registry="x"),
        "registry",
        "'x'",
        TypeError,
    ),
    Case(
        "Resilience.registry=str",
        lambda: Resilience("p", registry="x"),  # type: ignore[arg-type]
        "Resilience.registry",
        "'x'",
        TypeError,
    ),
    Case(
        "CircuitBreaker.key=int",
        lambda: CircuitBreaker("p", key=5),  # type: ignore[arg-type]
        "key",
        "5",
        TypeError,
    ),
]


def _integration(which: str) -> object:
    """An integration made with ``registry="x"`` (each needs its extra)."""
    if which == "aiohttp.middleware":
        pytest.importorskip("aiohttp")
        from resilient.aiohttp import middleware

        return middleware(registry="x")  # type: ignore[arg-type]
    pytest.importorskip("httpx")
    from resilient.http import ResilientTransport, client

    if which == "http.client":
        return client(registry="x")  # type: ignore[arg-type]
    return ResilientTransport(registry="x")  # type: ignore[arg-type]


@pytest.mark.parametrize("which", ["ResilientTransport", "http.client", "aiohttp.middleware"])
def test_the_integrations_name_a_bad_registry(which: str) -> None:
    with pytest.raises(TypeError, match=r"\.registry must be a Registry or None, got 'x'"):
        _integration(which)


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input_names_the_field_and_shows_the_value(case: Case) -> None:
    with pytest.raises((TypeError, ValueError)) as caught:
        case.make()
    assert type(caught.value) is case.error, caught.value
    message = str(caught.value)
    assert case.field in message
    assert case.shown in message


def test_the_case_ids_are_unique() -> None:
    ids = [case.id for case in CASES]
    assert len(ids) == len(set(ids))


def test_an_int_too_long_to_print_is_shown_by_its_size() -> None:
    with pytest.raises(ValueError, match=r"RetryConfig\.max_attempts .* hex digits"):
        RetryConfig(max_attempts=10**5000)


def test_base_exception_itself_still_catches_every_exception() -> None:
    assert Fallback(1, on=BaseException).call(lambda: {}["missing"]) == 1


# -- calling what cannot be called ------------------------------------------------------

POLICIES: dict[str, Callable[[], Any]] = {
    "Retry": lambda: Retry(RetryConfig(max_attempts=5)),
    "CircuitBreaker": lambda: CircuitBreaker("calls"),
    "Bulkhead": lambda: Bulkhead("calls", BulkheadConfig(2)),
    "RateLimiter": lambda: RateLimiter("calls", rate=10.0),
    "Timeout": lambda: Timeout(5.0),
    "Fallback": lambda: Fallback(1),
    "Hedging": lambda: Hedging(HedgingConfig(1.0)),
    "Resilience": lambda: Resilience("calls", ResiliencePolicy()),
}


@pytest.mark.parametrize("kind", sorted(POLICIES))
def test_calling_a_non_callable_is_a_type_error_at_once(kind: str, fake_clock: FakeClock) -> None:
    policy = POLICIES[kind]()
    with pytest.raises(TypeError, match=r"call\(fn, \.\.\.\) needs a callable, got None"):
        policy.call(None)
    assert fake_clock.sleeps == []  # no backoff, no attempt


@pytest.mark.parametrize("kind", sorted(POLICIES))
async def test_awaiting_a_non_callable_is_a_type_error_at_once(
    kind: str, fake_clock: FakeClock
) -> None:
    policy = POLICIES[kind]()
    with pytest.raises(TypeError, match=r"call_async\(fn, \.\.\.\) needs a callable, got 3"):
        await policy.call_async(3)
    assert fake_clock.sleeps == []
