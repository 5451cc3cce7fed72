from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import math
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import resilient
from resilient import (
    CircuitBreaker,
    CircuitBreakerConfig,
    CircuitOpenError,
    MetricsCollector,
    events,
)
from resilient.metrics import EventStream, Statistics
from resilient.metrics._histogram import MAX_BUCKETS, RELATIVE_ERROR, LogHistogram
from resilient.testing import fake_clock


@pytest.fixture
def collector() -> Iterator[MetricsCollector]:
    c = MetricsCollector()
    unsubscribe = resilient.subscribe(c)
    yield c
    unsubscribe()


def make(kind: type[events.Event], name: str = "api", **fields: Any) -> events.Event:
    """An event as a policy would emit it."""
    return kind(name=name, policy="test", timestamp=0.0, monotonic=0.0, request_id=None, **fields)


def timed(breaker: CircuitBreaker, clock: Any, seconds: float, fail: bool = False) -> None:
    def work() -> None:
        clock.advance(seconds)
        if fail:
            raise ConnectionError("down")

    with contextlib.suppress(ConnectionError, CircuitOpenError):
        breaker.call(work)


# -- statistics ------------------------------------------------------------------


def test_requests_successes_failures_rejections_and_latency(collector: MetricsCollector) -> None:
    breaker = CircuitBreaker("db", CircuitBreakerConfig(failure_threshold=2))
    with fake_clock() as clock:
        timed(breaker, clock, 0.1)
        timed(breaker, clock, 0.3)
        timed(breaker, clock, 0.2, fail=True)
        timed(breaker, clock, 0.4, fail=True)  # opens the breaker
        timed(breaker, clock, 9.9)  # rejected: never runs, no latency

    stats = collector.statistics
    assert (stats.total_requests, stats.successes, stats.failures, stats.rejections) == (
        5,
        2,
        2,
        1,
    )
    assert stats.total_requests == stats.successes + stats.failures + stats.rejections
    assert stats.success_rate == pytest.approx(2 / 5)
    assert stats.average_latency == pytest.approx(0.25)
    assert stats.p50 == pytest.approx(0.2, rel=RELATIVE_ERROR)
    assert stats.p95 == pytest.approx(0.4, rel=RELATIVE_ERROR)
    assert stats.p99 == pytest.approx(0.4, rel=RELATIVE_ERROR)
    assert stats.by_name["db"].total_requests == 5
    assert stats.by_name["db"].by_name == {}


def test_a_stacked_call_is_one_request(collector: MetricsCollector) -> None:
    @CircuitBreaker("outer")
    @CircuitBreaker("inner")
    def work() -> int:
        return 1

    work()
    work()
    stats = collector.statistics
    assert stats.total_requests == 2
    assert stats.by_name["outer"].total_requests == 2
    assert "inner" not in stats.by_name


def test_policy_events_count_at_any_layer(collector: MetricsCollector) -> None:
    emit = events.ListenerSet(events.GLOBAL).emit
    emit(make(events.RetryAttempted, attempt=1, delay=1.0, error=None))
    emit(make(events.RetryAttempted, attempt=2, delay=2.0, error=None))
    emit(make(events.RateLimited, retry_after=3.0))
    emit(make(events.TimedOut, name="slow", timeout=1.0))
    emit(make(events.StreamInactive, name="slow", inactivity=5.0))
    emit(make(events.FallbackUsed, error=None))
    emit(make(events.RetriesExhausted, attempts=3, error=None))  # counted nowhere
    emit(make(events.BulkheadRejected, max_concurrent=1, max_queue=0))  # the request says it
    stats = collector.statistics
    assert stats.total_retries == 2
    assert stats.rate_limit_count == 1
    assert stats.timeouts == 2
    assert stats.fallbacks == 1
    assert stats.total_requests == 0
    assert stats.by_name["slow"].timeouts == 2
    assert stats.by_name["api"].total_retries == 2


def test_policy_level_call_events_are_not_requests() -> None:
    collector = MetricsCollector()
    collector(make(events.CallSucceeded, duration=1.0))
    collector(make(events.CallFailed, duration=1.0, error=ValueError()))
    collector(make(events.CallRejected, state="open", remaining=1.0))
    assert collector.statistics.total_requests == 0
    collector(make(events.CallSucceeded, duration=1.0, level="request"))
    assert collector.statistics.total_requests == 1


def test_empty_statistics() -> None:
    stats = MetricsCollector().statistics
    assert stats == Statistics()
    assert stats.success_rate == 1.0
    assert (stats.average_latency, stats.p50, stats.p95, stats.p99) == (0.0, 0.0, 0.0, 0.0)
    assert stats.by_name == {}


def test_statistics_are_a_snapshot_and_serialize(collector: MetricsCollector) -> None:
    CircuitBreaker("db").call(lambda: None)
    before = collector.statistics
    CircuitBreaker("db").call(lambda: None)
    assert before.total_requests == 1
    data = json.loads(json.dumps(collector.statistics.to_dict()))
    assert data["total_requests"] == 2
    assert data["by_name"]["db"]["successes"] == 2
    with pytest.raises(TypeError):
        before.by_name["x"] = before  # type: ignore[index]


def test_reset_forgets_everything(collector: MetricsCollector) -> None:
    CircuitBreaker("db").call(lambda: None)
    collector.reset()
    assert collector.statistics == Statistics()
    CircuitBreaker("db").call(lambda: None)
    assert collector.statistics.total_requests == 1


def test_a_disabled_collector_counts_nothing() -> None:
    collector = MetricsCollector(enabled=False)
    unsubscribe = resilient.subscribe(collector)
    try:
        CircuitBreaker("db").call(lambda: None)
        assert collector.statistics.total_requests == 0
        collector.enabled = True
        CircuitBreaker("db").call(lambda: None)
        assert collector.statistics.total_requests == 1
    finally:
        unsubscribe()
    assert "enabled" in repr(collector)


def test_a_collector_on_one_breaker_sees_only_it() -> None:
    collector = MetricsCollector()
    mine = CircuitBreaker("mine")
    unsubscribe = mine.subscribe(collector)
    mine.call(lambda: None)
    CircuitBreaker("other").call(lambda: None)
    unsubscribe()
    assert list(collector.statistics.by_name) == ["mine"]


@pytest.mark.slow
def test_counts_are_exact_under_threads(collector: MetricsCollector) -> None:
    breaker = CircuitBreaker("db")

    def hammer() -> None:
        for _ in range(500):
            breaker.call(lambda: None)

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert collector.statistics.successes == 2000


# -- the histogram ---------------------------------------------------------------


def exact(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q * len(ordered))) - 1]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.floats(min_value=1e-6, max_value=1e5), min_size=1, max_size=300),
    st.sampled_from([0.01, 0.5, 0.9, 0.95, 0.99, 1.0]),
)
def test_quantiles_are_within_the_stated_relative_error(values: list[float], q: float) -> None:
    histogram = LogHistogram()
    for v in values:
        histogram.add(v)
    (estimate,) = histogram.quantiles(q)
    truth = exact(values, q)
    assert abs(estimate - truth) <= RELATIVE_ERROR * truth * (1 + 1e-9)
    assert histogram.mean == pytest.approx(sum(values) / len(values))
    # Totals are per-name histograms merged: the same answer.
    half = len(values) // 2
    merged, other = LogHistogram(), LogHistogram()
    for v in values[:half]:
        merged.add(v)
    for v in values[half:]:
        other.add(v)
    merged.merge(other)
    assert merged.quantiles(q) == [estimate]
    assert merged.count == histogram.count


def test_zero_durations_and_extremes() -> None:
    histogram = LogHistogram()
    for v in [0.0, 0.0, 0.0, 2.0]:
        histogram.add(v)
    assert histogram.quantiles(0.5, 0.75, 1.0) == [0.0, 0.0, 2.0]
    histogram.add(math.inf)
    assert histogram.quantiles(1.0) == [1e6]
    assert LogHistogram().quantiles(0.5) == [0.0]


def test_memory_is_bounded_whatever_is_recorded() -> None:
    histogram = LogHistogram()
    value = 1e-12
    while value < 1e12:
        histogram.add(value)
        value *= 1.001
    assert len(histogram._buckets) <= MAX_BUCKETS < 2000


# -- the event stream ------------------------------------------------------------


async def test_events_arrive_in_order(collector: MetricsCollector) -> None:
    stream = collector.events()
    CircuitBreaker("db").call(lambda: None)
    got = [await anext(stream) for _ in range(3)]
    assert [type(e).__name__ for e in got] == ["CallStarted", "CallSucceeded", "CallSucceeded"]
    await stream.aclose()


async def test_a_slow_consumer_loses_the_oldest_and_the_call_never_waits(
    collector: MetricsCollector,
) -> None:
    stream = collector.events(maxsize=5)
    emit = events.ListenerSet(events.GLOBAL).emit
    for attempt in range(1000):
        emit(make(events.RetryAttempted, attempt=attempt, delay=0.0, error=None))
    assert stream.dropped == 995
    assert len(stream) == stream.maxsize == 5
    kept = [await anext(stream) for _ in range(5)]
    assert [e.attempt for e in kept] == [995, 996, 997, 998, 999]  # type: ignore[attr-defined]
    await stream.aclose()


async def test_events_from_a_worker_thread_wake_the_consumer(
    collector: MetricsCollector,
) -> None:
    breaker = CircuitBreaker("db")
    async with collector.events() as stream:
        loop = asyncio.get_running_loop()
        waiting = asyncio.ensure_future(anext(stream))
        await asyncio.sleep(0)  # the consumer is now parked on its waiter
        assert not waiting.done()
        await loop.run_in_executor(None, breaker.call, lambda: None)
        first = await asyncio.wait_for(waiting, timeout=10)
        assert type(first).__name__ == "CallStarted"


async def test_closing_ends_the_iteration_and_stops_receiving(
    collector: MetricsCollector,
) -> None:
    stream = collector.events()
    received = []

    async def consume() -> None:
        async for event in stream:
            received.append(event)

    task = asyncio.ensure_future(consume())
    await asyncio.sleep(0)
    stream.close()
    await asyncio.wait_for(task, timeout=10)
    CircuitBreaker("db").call(lambda: None)
    assert received == []
    assert len(stream) == 0
    assert collector._streams == ()


async def test_an_abandoned_stream_stops_receiving(collector: MetricsCollector) -> None:
    stream = collector.events()
    CircuitBreaker("db").call(lambda: None)
    async for _ in stream:
        break
    del stream  # never closed
    gc.collect()
    assert [ref() for ref in collector._streams] == [None]
    kept = collector.events()  # prunes the dead reference
    assert [ref() for ref in collector._streams] == [kept]


async def test_one_consumer_per_stream(collector: MetricsCollector) -> None:
    stream = collector.events()
    first = asyncio.ensure_future(anext(stream))
    await asyncio.sleep(0)
    with pytest.raises(RuntimeError, match="consumer"):
        await anext(stream)
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    CircuitBreaker("db").call(lambda: None)  # a cancelled waiter is not woken
    assert type(await anext(stream)).__name__ == "CallStarted"


def test_a_consumer_whose_loop_closed_does_not_break_the_call(
    collector: MetricsCollector,
) -> None:
    stream = collector.events()
    gone = asyncio.new_event_loop()
    stream._waiter = gone.create_future()  # a consumer parked in a loop that then closed
    gone.close()
    CircuitBreaker("db").call(lambda: None)
    assert len(stream) == 3


@pytest.mark.parametrize("size", [0, -1, 1.5, True])
def test_the_buffer_size_is_validated(size: Any) -> None:
    with pytest.raises(ValueError, match="maxsize"):
        MetricsCollector().events(maxsize=size)


def test_streams_are_exported() -> None:
    assert isinstance(MetricsCollector().events(), EventStream)
    assert resilient.MetricsCollector is MetricsCollector


# -- with the real policies ------------------------------------------------------


def test_statistics_of_composed_calls(collector: MetricsCollector) -> None:
    answers = iter(
        [ConnectionError("down"), "ok", ConnectionError("down"), ConnectionError("down")]
    )

    def flaky() -> str:
        clock.advance(0.1)
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    api = resilient.with_resilience(
        "api",
        retry=resilient.RetryConfig(max_attempts=2, jitter=0.0),
        timeout=None,
        fallback=None,
    )(flaky)
    with fake_clock() as clock:
        assert api() == "ok"  # a retry, then success: one request
        with pytest.raises(ConnectionError):
            api()  # two attempts, both fail: one failed request
    stats = collector.statistics.by_name["api"]
    assert (stats.total_requests, stats.successes, stats.failures) == (2, 1, 1)
    assert stats.total_retries == 2
    # Each request's latency spans its attempts and the wait between them.
    assert stats.average_latency == pytest.approx((0.1 + 1.0 + 0.1) * 1.0)


def test_rejections_timeouts_and_fallbacks_of_real_policies(collector: MetricsCollector) -> None:
    resilient.registry.force_open("closed-shop")
    shop = resilient.with_circuit_breaker("closed-shop")(lambda: None)
    with pytest.raises(CircuitOpenError):
        shop()
    cached = resilient.with_fallback("cached")(
        resilient.with_circuit_breaker("closed-shop")(lambda: None)
    )
    assert cached() == "cached"

    gate = threading.Event()
    slow = resilient.with_timeout(0.05, name="slow")(lambda: gate.wait(10))
    try:
        with pytest.raises(resilient.CallTimeoutError):
            slow()
    finally:
        gate.set()

    stats = collector.statistics
    assert stats.rejections == 1  # the fallback turned the second one into a success
    assert stats.fallbacks == 1
    assert stats.timeouts == 1
    assert stats.by_name["slow"].failures == 1
    assert stats.total_requests == 3
