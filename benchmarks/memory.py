"""Memory per breaker: 10,000 breakers built under tracemalloc, and 50
breakers with a one-day window, each after a day of traffic (under the fake
clock: a success a minute, and a failure every seven minutes, through
``call``)."""

from __future__ import annotations

import contextlib
import gc
import importlib.util
import tracemalloc
from collections.abc import Callable
from datetime import timedelta
from typing import Any

__all__ = ["BREAKERS", "DAY_TRAFFIC", "DAY_TRAFFIC_OBSERVED", "DAY_WINDOW", "per_breaker"]

COUNT = 10_000
DAY_WINDOW = "resilient (time window of one day)"
DAY_TRAFFIC = "resilient (time window of one day, after a day of traffic)"
DAY_TRAFFIC_OBSERVED = (
    "resilient (time window of one day, after a day of traffic, a MetricsCollector subscribed)"
)
# Breakers driven through a day each: fewer, as each takes ~3,000 calls.
TRAFFIC_COUNT = 50


def _resilient() -> Callable[[int], Any]:
    from resilient import CircuitBreaker

    return lambda i: CircuitBreaker(f"breaker-{i}")


def _resilient_registry() -> Callable[[int], Any]:
    from resilient import Registry

    registry = Registry()
    return lambda i: registry.get_or_create(f"breaker-{i}")


def _pybreaker() -> Callable[[int], Any]:
    import pybreaker

    return lambda i: pybreaker.CircuitBreaker(name=f"breaker-{i}")


def _circuitbreaker() -> Callable[[int], Any]:
    import circuitbreaker

    return lambda i: circuitbreaker.CircuitBreaker(name=f"breaker-{i}")


def _aiobreaker() -> Callable[[int], Any]:
    import aiobreaker

    return lambda i: aiobreaker.CircuitBreaker(
        name=f"breaker-{i}", timeout_duration=timedelta(seconds=30)
    )


def _resilient_day_window() -> Callable[[int], Any]:
    from resilient import CircuitBreaker, CircuitBreakerConfig

    config = CircuitBreakerConfig(window_duration=86_400.0, failure_rate_threshold=0.5)
    return lambda i: CircuitBreaker(f"breaker-{i}", config)


def _resilient_day_of_traffic() -> Callable[[int], Any]:
    from resilient import CircuitBreaker, CircuitBreakerConfig
    from resilient.testing import fake_clock

    # Never opens: every call of the day is counted in the window.
    config = CircuitBreakerConfig(
        window_duration=86_400.0,
        failure_rate_threshold=0.9,
        failure_threshold=1_000_000,
        minimum_calls=1_000_000,
    )

    def ok() -> int:
        return 1

    def boom() -> None:
        raise ValueError

    def make(i: int) -> Any:
        breaker = CircuitBreaker(f"breaker-{i}", config)
        with fake_clock() as clock:
            for minute in range(24 * 60):
                clock.advance(60.0)
                breaker.call(ok)
                if minute % 7 == 0:
                    with contextlib.suppress(ValueError):
                        breaker.call(boom)
        return breaker

    return make


BREAKERS: list[tuple[str, str | None, Callable[[], Callable[[int], Any]]]] = [
    ("resilient (CircuitBreaker, window of 100 calls)", None, _resilient),
    ("resilient (registered by name)", None, _resilient_registry),
    (DAY_WINDOW, None, _resilient_day_window),
    (DAY_TRAFFIC, None, _resilient_day_of_traffic),
    (DAY_TRAFFIC_OBSERVED, None, _resilient_day_of_traffic),
    ("pybreaker", "pybreaker", _pybreaker),
    ("circuitbreaker", "circuitbreaker", _circuitbreaker),
    ("aiobreaker", "aiobreaker", _aiobreaker),
]


def _measure(make: Callable[[int], Any], count: int) -> float:
    make(-1)  # first-use allocations (caches, interned constants) are not per breaker
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        kept = [make(i) for i in range(count)]
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    # The list holding them is not the breakers' cost either.
    overhead = 8 * len(kept) + 56
    del kept
    return (after - before - overhead) / count


def per_breaker(count: int = COUNT) -> list[tuple[str, float | None]]:
    """Bytes per breaker for each library (``None``: not installed)."""
    results: list[tuple[str, float | None]] = []
    for label, module, factory in BREAKERS:
        if module is not None and importlib.util.find_spec(module) is None:
            results.append((label, None))
            continue
        if label not in (DAY_TRAFFIC, DAY_TRAFFIC_OBSERVED):
            results.append((label, _measure(factory(), count)))
            continue
        n = min(count, TRAFFIC_COUNT)
        if label == DAY_TRAFFIC:
            results.append((label, _measure(factory(), n)))
            continue
        import resilient

        # What production runs: the counters read by a collector (its own
        # memory per name included), and the durations it has not read yet.
        stop = resilient.subscribe(resilient.MetricsCollector())
        try:
            results.append((label, _measure(factory(), n)))
        finally:
            stop()
    return results
