from __future__ import annotations

import asyncio
import bisect
import contextlib
import gc
import json
import linecache
import math
import sys
import threading
import types
from collections.abc import Iterator
from typing import Any

import pytest
from _support import RateLimitedError, failing, go_quiet, retrying, time_out, turn_away
from hypothesis import given, settings
from hypothesis import strategies as st

import resilient
from resilient import (
    Bulkhead,
    CircuitBreaker,
    CircuitBreakerConfig,
    CircuitOpenError,
    Fallback,
    MetricsCollector,
    events,
)
from resilient._execution import counters as _stats
from resilient._execution.counters import RELATIVE_ERROR
from resilient.metrics import EventStream, Statistics
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
    assert MetricsCollector.RELATIVE_ERROR == RELATIVE_ERROR < 0.025


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


def test_policy_counts_at_any_layer(collector: MetricsCollector) -> None:
    # Two retries, one honouring a retry_after, then success: one request.
    api = retrying("api", 3)(failing(ConnectionError("reset"), RateLimitedError()))
    assert api() == "ok"
    # Retries exhausted: counted as a retry and a failed request, nothing else.
    with pytest.raises(ConnectionError):
        retrying("api", 2)(failing(ConnectionError(), ConnectionError()))()
    time_out("slow")
    go_quiet("slow")
    # A fallback answering for a failure, inside the "api" name too.
    assert Fallback("cached", name="api")(failing(ConnectionError()))() == "cached"

    stats = collector.statistics
    assert stats.total_retries == 3
    assert stats.rate_limit_count == 1
    assert stats.timeouts == 2
    assert stats.fallbacks == 1
    assert stats.by_name["slow"].timeouts == 2
    assert stats.by_name["api"].total_retries == 3
    assert stats.by_name["api"].fallbacks == 1
    api_stats = stats.by_name["api"]
    assert (api_stats.total_requests, api_stats.successes, api_stats.failures) == (3, 2, 1)


def test_a_breaker_own_counts_are_not_requests(collector: MetricsCollector) -> None:
    # The breaker counts three calls (each attempt); the caller made one.
    flaky = retrying("api", 3)(
        CircuitBreaker("inner-db")(failing(ConnectionError(), ConnectionError()))
    )
    assert flaky() == "ok"
    stats = collector.statistics
    assert stats.total_requests == 1
    assert list(stats.by_name) == ["api"]


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
    breaker = CircuitBreaker("db")
    breaker.call(lambda: None)
    CircuitBreaker("gone").call(lambda: None)
    gc.collect()  # "gone" is kept by the collector, until the reset
    collector.reset()
    assert collector.statistics == Statistics()
    breaker.call(lambda: None)
    CircuitBreaker("db").call(lambda: None)
    assert collector.statistics.total_requests == 2


def test_a_disabled_collector_counts_nothing() -> None:
    collector = MetricsCollector(enabled=False)
    unsubscribe = resilient.subscribe(collector)
    breaker = CircuitBreaker("db")
    try:
        breaker.call(lambda: None)
        assert collector.statistics.total_requests == 0
        collector.enabled = True
        breaker.call(lambda: None)
        assert collector.statistics.total_requests == 1
        collector.enabled = False  # what was counted stays
        breaker.call(lambda: None)
        CircuitBreaker("meanwhile").call(lambda: None)
        assert collector.statistics.total_requests == 1
        collector.enabled = True  # counts from now on
        breaker.call(lambda: None)
        assert collector.statistics.total_requests == 2
        assert "meanwhile" not in collector.statistics.by_name
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
    mine.call(lambda: None)  # after unsubscribing: not counted, and the rest is kept
    assert list(collector.statistics.by_name) == ["mine"]
    assert collector.statistics.total_requests == 1


def test_a_collector_on_a_registry_sees_its_policies() -> None:
    registry = resilient.Registry()
    collector = MetricsCollector()
    unsubscribe = registry.subscribe(collector)
    try:
        registry.get_or_create("inside").call(lambda: None)
        resilient.with_resilience("composed", registry=registry, timeout=None)(lambda: 1)()
        CircuitBreaker("outside").call(lambda: None)
        resilient.registry.get_or_create("global").call(lambda: None)
    finally:
        unsubscribe()
    assert sorted(collector.statistics.by_name) == ["composed", "inside"]


def test_overlapping_scopes_count_each_request_once() -> None:
    collector = MetricsCollector()
    breaker = CircuitBreaker("db")
    breaker.call(lambda: None)  # before subscribing: not counted
    unsubscribers = [resilient.subscribe(collector), breaker.subscribe(collector)]
    breaker.call(lambda: None)
    unsubscribers.pop()()  # still watched through the process scope
    breaker.call(lambda: None)
    unsubscribers.pop()()
    breaker.call(lambda: None)
    assert collector.statistics.total_requests == 2


def test_what_a_collected_policy_counted_is_kept(collector: MetricsCollector) -> None:
    for _ in range(3):
        CircuitBreaker("ephemeral").call(lambda: None)
        retrying("ephemeral", 2)(failing(ConnectionError()))()
    gc.collect()
    stats = collector.statistics.by_name["ephemeral"]
    assert (stats.total_requests, stats.total_retries) == (6, 3)


def test_memory_is_bounded_by_names_and_live_policies(collector: MetricsCollector) -> None:
    for i in range(500):
        CircuitBreaker(f"db-{i % 5}").call(lambda: None)
    gc.collect()
    reading = collector._reading
    reading.read()
    assert len(reading._kept) <= 5
    assert len(reading._gone) == 0
    assert len(reading._base) <= len(_stats.within(events.GLOBAL))
    assert collector.statistics.total_requests == 500


def test_a_collector_on_one_policy_costs_the_others_nothing() -> None:
    collector = MetricsCollector()
    mine = CircuitBreaker("mine")
    other = CircuitBreaker("other")
    decorated = other(lambda: None)
    unsubscribe = mine.subscribe(collector)
    try:
        assert not events.GLOBAL.metered
        assert other._own_gate.level == events.NONE
        assert other._block_request().gate.level == events.NONE
        assert mine._block_request().gate.level == events.METERED
        assert not mine._listeners.events  # a reader builds no events
        for _ in range(10):
            mine.call(lambda: None)
            other.call(lambda: None)
            decorated()
        for policy, name in ((other, "other"), (mine, "mine")):
            policy._stats_for(name).fold()
        assert sum(other._stats_for("other").latency.values()) == 0  # never timed
        assert sum(mine._stats_for("mine").latency.values()) == 10
    finally:
        unsubscribe()
    assert mine._block_request().gate.level == events.NONE


def test_counts_are_exact_under_threads(collector: MetricsCollector) -> None:
    breaker = CircuitBreaker("db")

    def hammer() -> None:
        for _ in range(500):
            breaker.call(lambda: None)

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert collector.statistics.successes == 4000


# -- quantiles ---------------------------------------------------------------------


def exact(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q * len(ordered))) - 1]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.floats(min_value=1e-6, max_value=1e3), min_size=1, max_size=300),
    st.sampled_from([0.01, 0.5, 0.9, 0.95, 0.99, 1.0]),
)
def test_quantiles_are_within_the_stated_relative_error(values: list[float], q: float) -> None:
    stats = _stats.Stats("q", "test", events.GLOBAL)
    for v in values:
        stats.record(v)
    stats.fold()
    estimate = _stats.quantile(stats.latency, q)
    truth = exact(values, q)
    assert abs(estimate - truth) <= RELATIVE_ERROR * truth * (1 + 1e-9)


def test_latency_statistics_through_a_collector() -> None:
    collector = MetricsCollector()
    breaker = CircuitBreaker("search")
    unsubscribe = breaker.subscribe(collector)
    durations = [0.001 * 1.07**i for i in range(100)]
    with fake_clock() as clock:
        for seconds in durations:
            breaker.call(clock.advance, seconds)
    unsubscribe()
    stats = collector.statistics
    assert stats.average_latency == pytest.approx(sum(durations) / 100)
    for q, got in ((0.5, stats.p50), (0.95, stats.p95), (0.99, stats.p99)):
        assert got == pytest.approx(exact(durations, q), rel=RELATIVE_ERROR)


# -- the event stream ------------------------------------------------------------


async def test_events_arrive_in_order(collector: MetricsCollector) -> None:
    stream = collector.events()
    CircuitBreaker("db").call(lambda: None)
    got = [await anext(stream) for _ in range(3)]
    assert [type(e).__name__ for e in got] == ["CallStarted", "CallSucceeded", "CallSucceeded"]
    await stream.aclose()


async def test_events_are_built_only_while_a_stream_is_open(collector: MetricsCollector) -> None:
    assert events.GLOBAL.metered
    assert not events.GLOBAL.events
    async with collector.events():
        assert events.GLOBAL.events
        async with collector.events():
            pass
        assert events.GLOBAL.events  # one stream still open
    assert not events.GLOBAL.events
    assert collector.statistics == Statistics()


async def test_a_stream_sees_the_collector_scopes_only() -> None:
    collector = MetricsCollector()
    mine = CircuitBreaker("mine")
    async with collector.events() as stream:
        unsubscribe = mine.subscribe(collector)
        unsubscribers = [unsubscribe, resilient.subscribe(collector)]
        assert events.GLOBAL.events  # the outermost scope only: no event twice
        CircuitBreaker("other").call(lambda: None)
        unsubscribers.pop()()
        CircuitBreaker("other").call(lambda: None)
        mine.call(lambda: None)
        names = [(await anext(stream)).name for _ in range(6)]
        assert names == ["other"] * 3 + ["mine"] * 3
        assert len(stream) == 0
        unsubscribers.pop()()
        assert not mine._listeners.events


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
    assert not events.GLOBAL.events


async def test_an_abandoned_stream_stops_receiving(collector: MetricsCollector) -> None:
    stream = collector.events()
    CircuitBreaker("db").call(lambda: None)
    async for _ in stream:
        break
    del stream  # never closed
    gc.collect()
    assert [ref() for ref in collector._streams] == [None]
    CircuitBreaker("db").call(lambda: None)  # the listener notices and leaves
    assert collector._streams == ()
    assert not events.GLOBAL.events
    kept = collector.events()
    assert [ref() for ref in collector._streams] == [kept]
    assert events.GLOBAL.events


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


def test_a_disabled_collector_streams_nothing() -> None:
    collector = MetricsCollector(enabled=False)
    unsubscribe = resilient.subscribe(collector)
    stream = collector.events()
    try:
        CircuitBreaker("db").call(lambda: None)
        assert len(stream) == 0
        collector.enabled = True
        CircuitBreaker("db").call(lambda: None)
        assert len(stream) == 3
    finally:
        stream.close()
        unsubscribe()


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


def test_a_full_bulkhead_is_a_rejected_request(collector: MetricsCollector) -> None:
    turn_away(Bulkhead("pool", max_concurrent=1))
    stats = collector.statistics.by_name["pool"]
    # The block holding the slot is a request too, and it succeeded.
    assert (stats.total_requests, stats.successes, stats.rejections) == (2, 1, 1)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.floats(min_value=0.0, max_value=2e3),
            st.sampled_from(_stats.BOUNDS),  # exactly on a bound: that bucket (le)
        ),
        max_size=3 * _stats.FOLD_AT,
    )
)
def test_folding_buckets_each_duration_as_a_bisection_would(values: list[float]) -> None:
    stats = _stats.Stats("fold", "test", events.GLOBAL)
    for v in values:
        stats.record(v)  # folds by itself each FOLD_AT durations
    assert len(stats.pending) < _stats.FOLD_AT
    stats.fold()
    assert len(stats.pending) == 0
    expected: dict[int, int] = {}
    for v in values:
        i = bisect.bisect_left(_stats.BOUNDS, v)
        expected[i] = expected.get(i, 0) + 1
    assert stats.ensure_latency() == expected  # sparse: only the buckets used
    assert stats.latency_sum == pytest.approx(sum(values))


def test_a_fold_reentered_on_its_own_thread_counts_every_duration_once() -> None:
    # Whatever runs inside a fold (a finalizer the garbage collector calls,
    # say) may record into the same counters, enough to fold them again, at
    # the worst moment: between taking the batch and removing it.
    stats = _stats.Stats("reentrant", "test", events.GLOBAL)
    recorded = 0

    def record(duration: float) -> None:
        nonlocal recorded
        recorded += 1
        stats.record(duration)

    def meddle(frame: types.FrameType, event: str, arg: object) -> Any:
        if event == "line" and linecache.getline(
            frame.f_code.co_filename, frame.f_lineno
        ).strip().startswith("del pending[:n]"):
            sys.settrace(None)
            frame.f_trace = None
            for _ in range(_stats.FOLD_AT):
                record(0.5)  # enough to fold again
        return meddle

    def tracer(frame: types.FrameType, event: str, arg: object) -> Any:
        return meddle if frame.f_code.co_filename == _stats.__file__ else None

    for _ in range(_stats.FOLD_AT - 1):
        record(0.01)
    sys.settrace(tracer)
    try:
        record(0.02)  # the FOLD_AT-th: folds
    finally:
        sys.settrace(None)
    assert recorded == 2 * _stats.FOLD_AT  # the meddling ran
    stats.fold()
    assert len(stats.pending) == 0
    assert sum(stats.latency.values()) == recorded
    assert stats.latency_sum == pytest.approx(
        0.01 * (_stats.FOLD_AT - 1) + 0.02 + 0.5 * _stats.FOLD_AT
    )


def test_a_stack_with_a_fallback_outermost_times_each_success(
    collector: MetricsCollector,
) -> None:
    # The fallback is the outermost layer of with_resilience: it meters the call.
    def work(seconds: float) -> float:
        clock.advance(seconds)
        return seconds

    async def awork(seconds: float) -> float:
        clock.advance(seconds)
        return seconds

    fallback = resilient.Fallback(value=0.0)
    sync_call = resilient.with_resilience("fronted", timeout=None, fallback=fallback)(work)
    async_call = resilient.with_resilience("afronted", timeout=None, fallback=fallback)(awork)
    with fake_clock() as clock:
        for seconds in (0.1, 0.3):
            assert sync_call(seconds) == seconds
            assert asyncio.run(async_call(seconds)) == seconds
    for name in ("fronted", "afronted"):
        stats = collector.statistics.by_name[name]
        assert (stats.total_requests, stats.successes) == (2, 2)
        assert stats.average_latency == pytest.approx(0.2)
