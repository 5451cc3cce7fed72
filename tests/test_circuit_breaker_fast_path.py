"""A CLOSED breaker counts a success without its lock, whatever its options.

Successes are ticks folded into the window under the lock when something
reads it, or (time windows) by the first success of the next bucket; a
failure, a slow call or a result the predicate rejects takes the lock.
The model tests (test_breaker_model.py) check every observable against the
rules; these pin the mechanics: how often the lock is taken, which bucket
a folded success lands in, and that nothing is lost under threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from typing import Any

import pytest

from resilient import (
    CallTimeoutError,
    CircuitBreaker,
    CircuitBreakerConfig,
    events,
    with_circuit_breaker,
)
from resilient.testing import FakeClock, fake_clock
from tests.conftest import CountingLock

BAD = "bad"

OPTIONS: dict[str, dict[str, Any]] = {
    "plain": {},
    "failure rate": {"failure_rate_threshold": 0.5, "minimum_calls": 1},
    "time window": {"window_duration": 60.0},
    "time window, failure rate": {
        "window_duration": 3600.0,
        "failure_rate_threshold": 0.5,
        "minimum_calls": 1,
    },
    "slow calls": {"slow_call_duration": 1.0, "slow_call_rate_threshold": 0.5},
    "result predicate": {"result_predicate": lambda result: result == BAD},
    "timeout": {"timeout": 10.0},
    # A shadow breaker differs only where it would reject: CLOSED, its path is a plain one's.
    "shadow": {"shadow": True},
    "shadow, failure rate": {"shadow": True, "failure_rate_threshold": 0.5, "minimum_calls": 1},
    "everything": {
        "window_duration": 90_000.0,
        "slow_call_duration": 1.0,
        "slow_call_rate_threshold": 0.9,
        "failure_rate_threshold": 0.9,
        "minimum_calls": 1,
        "result_predicate": lambda result: result == BAD,
        "timeout": 10.0,
    },
}


def _breaker(**fields: Any) -> tuple[CircuitBreaker, CountingLock]:
    if "window_duration" not in fields:
        fields.setdefault("window_size", 1000)
    config = CircuitBreakerConfig(failure_threshold=1000, **fields)
    breaker = CircuitBreaker("fast", config, listeners=events.ListenerSet())
    lock = breaker._lock = CountingLock(breaker._lock)  # type: ignore[assignment]
    return breaker, lock


@pytest.mark.parametrize("option", sorted(OPTIONS))
def test_successes_take_the_lock_at_most_once(clock: FakeClock, option: str) -> None:
    breaker, lock = _breaker(**OPTIONS[option])
    call = with_circuit_breaker(breaker)(lambda x: x)
    for i in range(500):
        assert call(i) == i
    assert lock.taken <= 1  # a time window's first success starts its bucket
    metrics = breaker.metrics()
    assert (metrics.calls, metrics.failures, metrics.slow_calls) == (500, 0, 0)


@pytest.mark.parametrize("option", sorted(OPTIONS))
async def test_async_successes_take_the_lock_at_most_once(clock: FakeClock, option: str) -> None:
    breaker, lock = _breaker(**OPTIONS[option])

    @with_circuit_breaker(breaker)
    async def call(x: int) -> int:
        await asyncio.sleep(0)
        return x

    for i in range(200):
        assert await call(i) == i
    assert lock.taken <= 1
    assert breaker.metrics().calls == 200


def test_a_time_window_folds_successes_once_per_bucket(clock: FakeClock) -> None:
    breaker, lock = _breaker(window_duration=60.0)
    call = with_circuit_breaker(breaker)(lambda: None)
    for second in range(5):
        taken = lock.taken
        for _ in range(100):
            call()
        assert lock.taken == taken + 1, f"second {second}"
        clock.advance(1.0)
    assert breaker.metrics().calls == 500


def test_a_one_day_window_folds_once_per_wide_bucket(clock: FakeClock) -> None:
    breaker, lock = _breaker(window_duration=86_400.0)  # buckets of 675 s
    call = with_circuit_breaker(breaker)(lambda: None)
    clock.advance(675.0 - clock.now() % 675.0)  # the start of a bucket
    for _ in range(600):
        call()
        clock.advance(1.0)
    assert lock.taken == 1
    assert breaker.metrics().calls == 600


def test_folded_successes_keep_the_second_they_were_made_in(clock: FakeClock) -> None:
    clock.advance(0.2)  # 1000.2
    breaker, lock = _breaker(window_duration=2.0)
    call = with_circuit_breaker(breaker)(lambda: None)
    for _ in range(5):
        call()
    assert lock.taken == 1
    clock.advance(1.3)  # 1001.5: folded now, into second 1000
    assert breaker.metrics().calls == 5
    clock.advance(0.5)  # 1002.0: second 1000 has slid out, with them
    assert breaker.metrics().calls == 0


def test_a_slow_success_takes_the_lock_and_counts_as_slow(clock: FakeClock) -> None:
    breaker, lock = _breaker(slow_call_duration=0.5)

    @with_circuit_breaker(breaker)
    def call(seconds: float) -> None:
        clock.advance(seconds)

    call(0.1)
    assert lock.taken == 0
    call(0.5)
    assert lock.taken == 1
    metrics = breaker.metrics()
    assert (metrics.calls, metrics.slow_calls, metrics.failures) == (2, 1, 0)


def test_a_result_the_predicate_rejects_is_returned_and_counted(clock: FakeClock) -> None:
    breaker, lock = _breaker(result_predicate=lambda result: result == BAD)
    call = with_circuit_breaker(breaker)(lambda x: x)
    assert call("fine") == "fine"
    assert lock.taken == 0
    assert call(BAD) == BAD
    assert lock.taken == 1
    metrics = breaker.metrics()
    assert (metrics.calls, metrics.failures, metrics.consecutive_failures) == (2, 1, 1)


def test_a_breaker_timeout_is_a_failure_and_a_success_is_lock_free() -> None:
    breaker, lock = _breaker(timeout=0.05)
    release = threading.Event()

    @with_circuit_breaker(breaker)
    def call(wait: bool) -> str:
        if wait:
            release.wait(5.0)
        return threading.current_thread().name

    try:
        assert call(False) != threading.current_thread().name  # in a worker
        assert lock.taken == 0
        with pytest.raises(CallTimeoutError):
            call(True)
        assert lock.taken == 1
    finally:
        release.set()
    assert (breaker.metrics().calls, breaker.metrics().failures) == (2, 1)


def test_a_success_that_could_trip_the_rates_takes_the_lock(clock: FakeClock) -> None:
    # Below minimum_calls a success can bring the window to it with a rate
    # over the threshold: such a success takes the lock, and trips.
    breaker, lock = _breaker(
        window_duration=60.0, failure_rate_threshold=0.5, minimum_calls=4, result_predicate=bool
    )
    call = with_circuit_breaker(breaker)(lambda x: x)
    assert call(1) == 1  # rejected by the predicate: a failure
    assert call(1) == 1
    assert call(0) == 0
    assert lock.taken == 3
    assert breaker.state.value == "closed"
    assert call(0) == 0  # the fourth call: 2 of 4 failed
    assert breaker.state.value == "open"


@pytest.mark.parametrize("option", sorted(set(OPTIONS) - {"timeout", "everything"}))
def test_no_success_or_failure_is_lost_under_eight_threads(option: str) -> None:
    threads, per_thread = 8, 2000
    fields = dict(OPTIONS[option])
    if "window_duration" in fields:
        fields["window_duration"] = 3600.0
    else:
        fields["window_size"] = threads * per_thread
    if "minimum_calls" in fields:
        fields["minimum_calls"] = 100
    with fake_clock(start=5000.0) as clock:
        breaker, _ = _breaker(**fields)
        counted = 0

        @with_circuit_breaker(breaker)
        def call(i: int) -> int:
            if i % 7 == 3:
                raise ValueError(i)
            return i

        start = threading.Barrier(threads + 1)

        def worker() -> None:
            start.wait()
            for i in range(per_thread):
                with contextlib.suppress(ValueError):
                    call(i)

        pool = [threading.Thread(target=worker) for _ in range(threads)]
        for thread in pool:
            thread.start()
        start.wait()
        # Time moves on while they call: buckets change under them.
        while any(thread.is_alive() for thread in pool):
            clock.advance(0.25)
            counted += 1
            time.sleep(0)
        for thread in pool:
            thread.join()
        failures = threads * sum(1 for i in range(per_thread) if i % 7 == 3)
        metrics = breaker.metrics()
        assert metrics.state.value == "closed"
        assert (metrics.calls, metrics.failures) == (threads * per_thread, failures)
        assert counted * 0.25 < 3600.0  # nothing slid out of the window


def test_freezegun_moves_the_lock_free_time_window() -> None:
    freezegun = pytest.importorskip("freezegun")
    with freezegun.freeze_time("2026-01-01") as frozen:
        breaker, lock = _breaker(window_duration=60.0)
        call = with_circuit_breaker(breaker)(lambda: None)
        for _ in range(10):
            call()
        assert lock.taken == 1
        assert breaker.metrics().calls == 10
        frozen.tick(61)
        assert breaker.metrics().calls == 0
        for _ in range(5):
            call()
        assert breaker.metrics().calls == 5


def test_time_machine_moves_the_lock_free_time_window() -> None:
    time_machine = pytest.importorskip("time_machine")
    with time_machine.travel("2026-01-01", tick=False) as traveller:
        breaker, lock = _breaker(window_duration=60.0)
        call = with_circuit_breaker(breaker)(lambda: None)
        for _ in range(10):
            call()
        assert lock.taken == 1
        assert breaker.metrics().calls == 10
        traveller.shift(61)
        assert breaker.metrics().calls == 0
        for _ in range(5):
            call()
        assert breaker.metrics().calls == 5


@pytest.mark.parametrize("option", sorted(set(OPTIONS) - {"timeout", "everything"}))
def test_metrics_count_the_lock_free_calls_of_every_option(clock: FakeClock, option: str) -> None:
    import resilient
    from resilient.metrics import MetricsCollector

    collector = MetricsCollector()
    unsubscribe = resilient.subscribe(collector)
    try:
        breaker = CircuitBreaker(
            option, CircuitBreakerConfig(failure_threshold=100, **OPTIONS[option])
        )

        @with_circuit_breaker(breaker)
        def call(x: object) -> object:
            if x == "boom":
                raise ValueError(x)
            clock.advance(0.001)
            return x

        for _ in range(10):
            call(1)
        for _ in range(2):
            with contextlib.suppress(ValueError):
                call("boom")
        assert call(BAD) == BAD  # returned; a failure only where the predicate says so
        stats = collector.statistics.by_name[option]
        assert (stats.total_requests, stats.successes, stats.failures) == (13, 11, 2)
        assert stats.p50 > 0
        metrics = breaker.metrics()
        rejected = 1 if "result_predicate" in OPTIONS[option] else 0
        assert (metrics.calls, metrics.failures) == (13, 2 + rejected)
    finally:
        unsubscribe()


# -- an open breaker's rejections leave nothing for the cyclic collector ----------


def _rejected_calls(flavour: str, observed: bool, clock: FakeClock) -> int:
    """Trip a breaker, then reject 50 calls with it; how many objects the
    cyclic collector found afterwards (with it off meanwhile)."""
    import gc

    from resilient import CircuitOpenError, Registry
    from resilient.metrics import MetricsCollector

    registry = Registry()
    stop = registry.subscribe(MetricsCollector()) if observed else None

    def fail() -> None:
        raise ValueError("down")

    async def afail() -> None:
        raise ValueError("down")

    decorate = with_circuit_breaker("cycles", failure_threshold=1, registry=registry)
    call = decorate(fail) if flavour == "sync" else decorate(afail)

    def once() -> None:
        result = call()
        if flavour == "async":
            # Driven by hand, as it never suspends: an event loop makes
            # cycles of its own when a task raises.
            with contextlib.suppress(StopIteration):
                result.send(None)

    with contextlib.suppress(ValueError):
        once()
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(50):
            with contextlib.suppress(CircuitOpenError):
                once()
        found = gc.collect()
    finally:
        if was_enabled:
            gc.enable()
        if stop is not None:
            stop()
    return found


@pytest.mark.parametrize("observed", [False, True], ids=["plain", "observed"])
@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_rejections_make_no_reference_cycle(clock: FakeClock, flavour: str, observed: bool) -> None:
    # A rejection kept in a local of the closure that raised it is a cycle
    # (error -> traceback -> frame -> error): freed only by the collector.
    assert _rejected_calls(flavour, observed, clock) == 0
