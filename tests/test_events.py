from __future__ import annotations

import asyncio
import contextvars
import gc
import logging
import threading
import weakref
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

import resilient
from resilient import (
    CallFailed,
    CallRejected,
    CallStarted,
    CallSucceeded,
    CircuitBreaker,
    CircuitBreakerConfig,
    CircuitOpenError,
    Event,
    FallbackUsed,
    Registry,
    RetryAttempted,
    RetryConfig,
    StateChanged,
    events,
    get_request_id,
    request_context,
)
from resilient._execution.request import Request
from resilient.testing import fake_clock


@pytest.fixture
def seen() -> Iterator[list[Event]]:
    received: list[Event] = []
    unsubscribe = resilient.subscribe(received.append)
    yield received
    unsubscribe()


def request_events(seen: list[Event]) -> list[Event]:
    return [e for e in seen if getattr(e, "level", None) == events.REQUEST]


def kinds(items: list[Event]) -> list[tuple[str, str]]:
    return [(type(e).__name__, e.name) for e in items]


def Repeat(name: str, times: int) -> resilient.Retry:
    """A retry that runs a failing call up to ``times`` times, without waiting."""
    return resilient.Retry(
        RetryConfig(max_attempts=times, initial_delay=0.0, jitter=0.0), name=name
    )


# -- the fields every event carries ---------------------------------------------


def test_breaker_events_carry_name_policy_timestamps_and_request_id(seen: list[Event]) -> None:
    breaker = CircuitBreaker("db")

    @breaker
    def work() -> int:
        return 1

    with fake_clock(start=5.0) as clock, request_context("req-1"):
        clock.advance(1.0)
        work()

    assert seen
    for event in seen:
        assert event.name == "db"
        assert event.policy == "circuit_breaker"
        assert event.monotonic == 6.0
        assert event.timestamp == clock.wall()
        assert event.request_id == "req-1"


def test_events_are_frozen() -> None:
    event = CallStarted(name="a", policy="p", timestamp=0.0, monotonic=0.0, request_id=None)
    with pytest.raises(AttributeError):
        event.name = "b"  # type: ignore[misc]
    assert event.level == events.POLICY


# -- request accounting ------------------------------------------------------------


def test_a_single_breaker_call_is_one_request(seen: list[Event]) -> None:
    @CircuitBreaker("db")
    def work() -> int:
        return 1

    assert work() == 1
    assert [(type(e).__name__, getattr(e, "level", None)) for e in seen] == [
        ("CallStarted", "request"),
        ("CallSucceeded", "policy"),
        ("CallSucceeded", "request"),
    ]


def test_stacked_layers_make_one_request_named_after_the_outermost(seen: list[Event]) -> None:
    @CircuitBreaker("outer")
    @CircuitBreaker("inner")
    def work() -> int:
        return 1

    work()
    assert kinds(request_events(seen)) == [("CallStarted", "outer"), ("CallSucceeded", "outer")]
    policy_level = [e for e in seen if getattr(e, "level", None) == events.POLICY]
    assert kinds(policy_level) == [("CallSucceeded", "inner"), ("CallSucceeded", "outer")]


def test_attempts_of_an_inner_breaker_are_not_extra_requests(seen: list[Event]) -> None:
    calls = 0

    @Repeat("api", times=3)
    @CircuitBreaker("api")
    def flaky() -> str:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise ConnectionError("down")
        return "ok"

    assert flaky() == "ok"
    requests = request_events(seen)
    assert kinds(requests) == [("CallStarted", "api"), ("CallSucceeded", "api")]
    assert requests[0].policy == "retry"
    breaker = [e for e in seen if e.policy == "circuit_breaker"]
    assert [type(e) for e in breaker] == [CallFailed, CallFailed, CallSucceeded]


def test_a_decorated_call_inside_another_is_a_request_of_its_own(seen: list[Event]) -> None:
    @CircuitBreaker("fetch")
    def fetch() -> str:
        return "data"

    @CircuitBreaker("handler")
    def handler() -> str:
        return fetch()

    handler()
    requests = request_events(seen)
    assert kinds(requests) == [
        ("CallStarted", "handler"),
        ("CallStarted", "fetch"),
        ("CallSucceeded", "fetch"),
        ("CallSucceeded", "handler"),
    ]
    assert len({e.request_id for e in seen}) == 1


def test_a_rejected_call_is_a_request(seen: list[Event]) -> None:
    breaker = CircuitBreaker("db")
    breaker.force_open()
    seen.clear()

    @breaker
    def work() -> None:
        raise AssertionError("never runs")

    with pytest.raises(CircuitOpenError):
        work()
    requests = request_events(seen)
    assert [type(e) for e in requests] == [CallStarted, CallRejected]
    rejected = requests[1]
    assert isinstance(rejected, CallRejected)
    assert rejected.state == "forced_open"
    assert rejected.remaining == float("inf")
    # The breaker's own view of the rejection is there too.
    assert [type(e) for e in seen if getattr(e, "level", None) == events.POLICY] == [CallRejected]


def test_a_rejection_seen_through_an_outer_layer_is_a_rejected_request(
    seen: list[Event],
) -> None:
    breaker = CircuitBreaker("db")
    breaker.force_open()
    seen.clear()

    @Repeat("db", times=2)
    @breaker
    def work() -> None:
        raise AssertionError("never runs")

    with pytest.raises(CircuitOpenError):
        work()
    requests = request_events(seen)
    assert [type(e) for e in requests] == [CallStarted, CallRejected]
    assert requests[1].policy == "retry"


def test_a_full_bulkhead_is_a_rejected_request(seen: list[Event]) -> None:
    @Repeat("pool", times=1)
    def work() -> None:
        raise resilient.BulkheadFullError("pool", 2, 0)

    with pytest.raises(resilient.BulkheadFullError):
        work()
    rejected = request_events(seen)[-1]
    assert isinstance(rejected, CallRejected)
    assert (rejected.state, rejected.remaining) == ("full", 0.0)


def test_a_failure_is_a_failed_request_with_its_error_and_duration(seen: list[Event]) -> None:
    @CircuitBreaker("db")
    def work() -> None:
        clock.advance(0.25)
        raise ConnectionError("down")

    with fake_clock() as clock, pytest.raises(ConnectionError):
        work()
    failed = request_events(seen)[-1]
    assert isinstance(failed, CallFailed)
    assert isinstance(failed.error, ConnectionError)
    assert failed.duration == 0.25


def test_caller_and_breaker_may_disagree_and_each_level_says_its_own(
    seen: list[Event],
) -> None:
    breaker = CircuitBreaker(
        "db",
        CircuitBreakerConfig(result_predicate=lambda r: r is None, ignore_on=(KeyError,)),
    )

    @breaker
    def work(value: Any) -> Any:
        if value == "missing":
            raise KeyError(value)
        return value

    assert work(None) is None  # the caller got a result; the breaker counts a failure
    assert [(type(e), e.level) for e in seen[1:]] == [  # type: ignore[attr-defined]
        (CallFailed, "policy"),
        (CallSucceeded, "request"),
    ]
    seen.clear()
    with pytest.raises(KeyError):  # the caller got an error; the breaker ignores it
        work("missing")
    assert [(type(e), e.level) for e in seen[1:]] == [(CallFailed, "request")]  # type: ignore[attr-defined]


@pytest.mark.parametrize("interrupt", [KeyboardInterrupt, asyncio.CancelledError, SystemExit])
def test_an_interrupted_call_has_no_outcome(
    seen: list[Event], interrupt: type[BaseException]
) -> None:
    @CircuitBreaker("db")
    def work() -> None:
        raise interrupt()

    with pytest.raises(interrupt):
        work()
    assert [type(e) for e in seen] == [CallStarted]
    assert get_request_id() is None


async def test_async_calls_are_counted_the_same_way(seen: list[Event]) -> None:
    calls = 0

    @Repeat("api", times=2)
    @CircuitBreaker("api")
    async def flaky() -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionError("down")
        return "ok"

    @CircuitBreaker("other")
    async def other() -> str:
        return "x"

    @CircuitBreaker("handler")
    async def handler() -> list[str]:
        # gather copies the context into new tasks: still requests of their own.
        return list(await asyncio.gather(flaky(), other()))

    assert await handler() == ["ok", "x"]
    starts = [e.name for e in request_events(seen) if isinstance(e, CallStarted)]
    ends = [e.name for e in request_events(seen) if isinstance(e, CallSucceeded)]
    assert sorted(starts) == ["api", "handler", "other"]
    assert sorted(ends) == ["api", "handler", "other"]
    assert len({e.request_id for e in seen}) == 1


def test_methods_and_classmethods_stacked_through_wrapt_are_one_request(
    seen: list[Event],
) -> None:
    class Service:
        @CircuitBreaker("outer")
        @classmethod
        @CircuitBreaker("inner")
        def build(cls) -> str:
            return cls.__name__

        @CircuitBreaker("outer")
        @staticmethod
        @CircuitBreaker("inner")
        def ping() -> str:
            return "pong"

    assert Service.build() == "Service"
    assert Service().ping() == "pong"
    assert kinds(request_events(seen)) == [
        ("CallStarted", "outer"),
        ("CallSucceeded", "outer"),
        ("CallStarted", "outer"),
        ("CallSucceeded", "outer"),
    ]


def test_a_policy_handed_a_decorated_function_stacks_on_it(seen: list[Event]) -> None:
    outer, inner = CircuitBreaker("outer"), CircuitBreaker("inner")

    @inner
    def fn() -> int:
        return 7

    assert outer.call(fn) == 7
    assert kinds(request_events(seen)) == [("CallStarted", "outer"), ("CallSucceeded", "outer")]
    seen.clear()

    def user_code() -> int:
        return inner.call(lambda: 7)

    outer.call(user_code)  # user code calling a breaker: two requests
    assert len([e for e in request_events(seen) if isinstance(e, CallStarted)]) == 2


def test_a_call_in_a_worker_thread_with_a_copy_of_the_context_shares_the_request_id(
    seen: list[Event],
) -> None:
    inner = CircuitBreaker("inner")

    def in_worker(*args: Any) -> int:
        result: list[int] = []
        context = contextvars.copy_context()
        thread = threading.Thread(target=lambda: result.append(context.run(inner.call, lambda: 3)))
        thread.start()
        thread.join()
        return result[0]

    assert CircuitBreaker("outer").call(in_worker) == 3
    assert len({e.request_id for e in seen}) == 1


# -- context managers ------------------------------------------------------------


def test_a_breaker_block_is_one_request_and_calls_inside_it_are_their_own(
    seen: list[Event],
) -> None:
    breaker = CircuitBreaker("block")

    @CircuitBreaker("fetch")
    def fetch() -> int:
        return 1

    with breaker:
        fetch()
    assert kinds(request_events(seen)) == [
        ("CallStarted", "block"),
        ("CallStarted", "fetch"),
        ("CallSucceeded", "fetch"),
        ("CallSucceeded", "block"),
    ]
    assert len({e.request_id for e in seen}) == 1
    assert get_request_id() is None


async def test_an_async_block_that_fails_or_is_rejected_counts_once(seen: list[Event]) -> None:
    breaker = CircuitBreaker("block")
    with pytest.raises(ValueError):
        async with breaker:
            raise ValueError("bad")
    assert [type(e) for e in request_events(seen)] == [CallStarted, CallFailed]
    breaker.force_open()
    seen.clear()
    with pytest.raises(CircuitOpenError):
        async with breaker:
            raise AssertionError("never runs")
    assert [type(e) for e in request_events(seen)] == [CallStarted, CallRejected]
    assert get_request_id() is None


# -- streams -----------------------------------------------------------------------


def Stream(name: str) -> resilient.Timeout:
    """A layer for async generator functions that never fires here."""
    return resilient.Timeout(inactivity=60.0, name=name)


async def test_a_stream_is_one_request_and_leaves_the_consumer_context_alone(
    seen: list[Event],
) -> None:
    ids_inside: list[str | None] = []

    @Stream("outer")
    @Stream("inner")
    async def numbers() -> AsyncIterator[int]:
        for i in range(3):
            ids_inside.append(get_request_id())
            yield i

    @CircuitBreaker("side")
    async def side() -> None:
        return None

    got = []
    async for n in numbers():
        assert get_request_id() is None
        await side()  # a request of its own, between items
        got.append(n)
    assert got == [0, 1, 2]
    streams = [e for e in request_events(seen) if e.name != "side"]
    assert kinds(streams) == [("CallStarted", "outer"), ("CallSucceeded", "outer")]
    assert len([e for e in request_events(seen) if e.name == "side"]) == 6
    assert len(set(ids_inside)) == 1
    assert ids_inside[0] == streams[0].request_id


async def test_a_failing_stream_fails_and_an_abandoned_one_is_not_counted(
    seen: list[Event],
) -> None:
    @Stream("s")
    async def broken() -> AsyncIterator[int]:
        yield 1
        raise ConnectionError("reset")

    with pytest.raises(ConnectionError):
        async for _ in broken():
            pass
    assert [type(e) for e in request_events(seen)] == [CallStarted, CallFailed]
    seen.clear()

    stream = broken()
    async for _ in stream:
        break
    await stream.aclose()  # type: ignore[attr-defined]
    assert [type(e) for e in request_events(seen)] == [CallStarted]


# -- request ids -----------------------------------------------------------------


def test_a_request_id_is_generated_per_call_shared_by_its_events_and_then_cleared(
    seen: list[Event],
) -> None:
    inside: list[str | None] = []

    @CircuitBreaker("db")
    def work() -> None:
        inside.append(get_request_id())

    work()
    work()
    first, second = inside
    assert first is not None
    assert second is not None
    assert first != second
    assert len(first) == 32
    assert int(first, 16) >= 0
    assert {e.request_id for e in seen} == {first, second}
    assert get_request_id() is None


def test_request_context_sets_the_id_of_every_event_and_error(seen: list[Event]) -> None:
    breaker = CircuitBreaker("db")
    breaker.force_open()
    seen.clear()

    with request_context("from-the-web-framework") as rid:
        assert rid == get_request_id() == "from-the-web-framework"
        with pytest.raises(CircuitOpenError) as info:
            breaker.call(lambda: None)
    assert info.value.request_id == "from-the-web-framework"
    assert {e.request_id for e in seen} == {"from-the-web-framework"}
    assert get_request_id() is None


def test_errors_carry_the_request_id_even_with_nobody_listening(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    breaker = CircuitBreaker("db")
    breaker.force_open()
    with request_context() as rid, pytest.raises(CircuitOpenError) as info:
        breaker.call(lambda: None)
    assert info.value.request_id == rid
    assert resilient.CallTimeoutError(1.0).request_id is None


def test_request_context_nests_and_rejects_a_non_string() -> None:
    with request_context("a"):
        with request_context("b"):
            assert get_request_id() == "b"
        assert get_request_id() == "a"
    with pytest.raises(TypeError, match="request_id"), request_context(42):  # type: ignore[arg-type]
        pass


# -- subscription ----------------------------------------------------------------


def test_policy_registry_and_global_scopes_each_see_their_events() -> None:
    local = Registry()
    mine, everything, registry_events, other_events = [], [], [], []
    breaker = local.get_or_create("mine")
    other = CircuitBreaker("other")
    unsubscribers = [
        breaker.subscribe(mine.append),
        local.subscribe(registry_events.append),
        resilient.subscribe(everything.append),
        other.subscribe(other_events.append),
    ]
    breaker.call(lambda: None)
    other.call(lambda: None)
    for unsubscribe in unsubscribers:
        unsubscribe()
    assert {e.name for e in mine} == {"mine"} == {e.name for e in registry_events}
    assert {e.name for e in other_events} == {"other"}
    assert {e.name for e in everything} == {"mine", "other"}
    assert len(mine) == len(registry_events) == 3


def test_unsubscribing_twice_is_harmless_and_listening_follows_subscriptions() -> None:
    breaker = CircuitBreaker("db")
    assert not breaker._listeners.events
    unsubscribe = resilient.subscribe(lambda e: None)
    assert breaker._listeners.events
    assert breaker._own_gate.level == events.EVENTS
    unsubscribe()
    unsubscribe()
    assert not breaker._listeners.events
    assert breaker._own_gate.level == events.NONE
    with pytest.raises(TypeError, match="callable"):
        resilient.subscribe("not a function")  # type: ignore[arg-type]


def test_a_listener_that_raises_is_logged_once_and_never_breaks_the_call(
    caplog: pytest.LogCaptureFixture,
) -> None:
    received: list[Event] = []

    def broken(event: Event) -> None:
        raise RuntimeError("listener bug")

    breaker = CircuitBreaker("db")
    unsubscribers = [breaker.subscribe(broken), breaker.subscribe(received.append)]
    with caplog.at_level(logging.DEBUG, logger="resilient"):
        assert breaker.call(lambda: 1) == 1
        assert breaker.call(lambda: 2) == 2
    for unsubscribe in unsubscribers:
        unsubscribe()
    errors = [r for r in caplog.records if "listener" in r.getMessage()]
    assert len(errors) == 1
    assert errors[0].levelno == logging.ERROR
    assert errors[0].exc_info is not None
    assert len(received) == 6  # the next listener still got every event


def test_a_listener_on_one_policy_costs_the_others_nothing() -> None:
    listened, other = CircuitBreaker("listened"), CircuitBreaker("other")

    @other
    def work() -> int:
        return 1

    unsubscribe = listened.subscribe(lambda e: None)
    try:
        assert listened._own_gate.level == events.EVENTS
        assert other._own_gate.level == events.NONE
        entry_gate = work.__closure__[  # type: ignore[index]
            work.__code__.co_freevars.index("gate")
        ].cell_contents
        assert entry_gate.level == events.NONE
        stats = other._stats_for("other")
        work()
        stats.fold()
        assert sum(stats.latency.values()) == 0  # not even timed
    finally:
        unsubscribe()


def test_a_policy_dropped_with_listeners_on_it_is_collected() -> None:
    breaker = CircuitBreaker("db")
    breaker.subscribe(lambda e: None)  # never unsubscribed
    ref = weakref.ref(breaker)
    del breaker
    gc.collect()
    assert ref() is None


def test_subscribing_from_many_threads_loses_nobody() -> None:
    breaker = CircuitBreaker("db")
    unsubscribers: list[Callable[[], None]] = []
    lock = threading.Lock()

    def subscribe_many() -> None:
        for _ in range(200):
            u = breaker.subscribe(lambda e: None)
            with lock:
                unsubscribers.append(u)

    threads = [threading.Thread(target=subscribe_many) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(breaker._listeners.listeners) == 800
    for u in unsubscribers:
        u()
    assert breaker._listeners.listeners == ()


def test_with_nobody_listening_no_request_scope_is_opened(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def fail(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the hot path must not reach the request scope")

    monkeypatch.setattr(Request, "begin", fail)
    monkeypatch.setattr(Request, "succeeded", fail)
    monkeypatch.setattr(Request, "failed", fail)
    breaker = CircuitBreaker("db", CircuitBreakerConfig(slow_call_duration=1.0))
    assert breaker.call(lambda: 1) == 1  # the slow path (a timed breaker) too
    with breaker:
        pass
    assert asyncio.run(breaker.call_async(asyncio.sleep, 0, 2)) == 2


# -- logging ---------------------------------------------------------------------


def test_nothing_is_logged_on_the_success_path_even_when_observed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    breaker = CircuitBreaker("db")
    unsubscribe = resilient.subscribe(resilient.MetricsCollector())
    with caplog.at_level(logging.DEBUG, logger="resilient"):
        for _ in range(3):
            breaker.call(lambda: None)
        with breaker:
            pass
    unsubscribe()
    assert caplog.records == []


def test_state_changes_are_logged_at_warning_with_structured_extra(
    caplog: pytest.LogCaptureFixture, seen: list[Event]
) -> None:
    breaker = CircuitBreaker("db", CircuitBreakerConfig(failure_threshold=1))
    with caplog.at_level(logging.DEBUG, logger="resilient"), pytest.raises(ConnectionError):
        breaker.call(_fail)
    (record,) = caplog.records
    assert record.levelno == logging.WARNING
    assert record.name == "resilient"
    assert (record.breaker, record.old_state, record.new_state) == ("db", "closed", "open")  # type: ignore[attr-defined]
    (change,) = [e for e in seen if isinstance(e, StateChanged)]
    assert (change.old_state, change.new_state) == ("closed", "open")


def _fail() -> None:
    raise ConnectionError("down")


# -- the real layers ---------------------------------------------------------------


def requests_of(seen: list[Event]) -> list[tuple[str, str, str]]:
    return [(type(e).__name__, e.name, e.policy) for e in request_events(seen)]


def test_with_resilience_is_one_request_whatever_its_layers_do(seen: list[Event]) -> None:
    calls = 0

    @resilient.with_resilience("api", retry=RetryConfig(max_attempts=3, jitter=0.0))
    def flaky() -> str:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise ConnectionError("down")
        return "ok"

    with fake_clock():
        assert flaky() == "ok"
    assert requests_of(seen) == [
        ("CallStarted", "api", "resilience"),
        ("CallSucceeded", "api", "resilience"),
    ]
    breaker = [type(e) for e in seen if e.policy == "circuit_breaker"]
    assert breaker == [CallFailed, CallFailed, CallSucceeded]
    assert [e.attempt for e in seen if isinstance(e, RetryAttempted)] == [1, 2]
    assert len({e.request_id for e in seen}) == 1


async def test_with_resilience_async_with_every_layer(seen: list[Event]) -> None:
    @resilient.with_resilience(
        "api",
        retry=RetryConfig(max_attempts=2, jitter=0.0),
        bulkhead=resilient.BulkheadConfig(2),
        fallback=resilient.Fallback("cached"),
    )
    async def down() -> str:
        raise ConnectionError("down")

    with fake_clock():
        assert await down() == "cached"
    assert requests_of(seen) == [
        ("CallStarted", "api", "resilience"),
        ("CallSucceeded", "api", "resilience"),  # the fallback answered
    ]
    assert len([e for e in seen if isinstance(e, FallbackUsed)]) == 1
    # The bulkhead reports each call it admitted (each attempt).
    assert [type(e) for e in seen if e.policy == "bulkhead"] == [CallFailed, CallFailed]


def test_a_fallback_over_an_open_breaker_is_a_successful_request(seen: list[Event]) -> None:
    resilient.registry.force_open("api")

    @resilient.with_resilience("api", retry=None, fallback=resilient.Fallback("cached"))
    def call() -> str:
        raise AssertionError("never runs")

    assert call() == "cached"
    assert [type(e).__name__ for e in request_events(seen)] == ["CallStarted", "CallSucceeded"]
    assert [type(e) for e in seen if e.policy == "circuit_breaker"][-1] is CallRejected


def test_a_fallback_handler_calling_a_decorated_function_makes_it_a_request(
    seen: list[Event],
) -> None:
    @resilient.with_circuit_breaker("backup")
    def backup() -> str:
        return "backup"

    @resilient.with_fallback(handler=backup)
    @resilient.with_circuit_breaker("primary")
    def primary() -> str:
        raise ConnectionError("down")

    assert primary() == "backup"
    starts = [e.name for e in request_events(seen) if isinstance(e, CallStarted)]
    # An unnamed outermost layer names the request after the function.
    assert [name.rsplit(".", 1)[-1] for name in starts] == ["primary", "backup"]


def test_manually_stacked_decorators_are_one_request(seen: list[Event]) -> None:
    calls = 0

    @resilient.with_retry(resilient.Retry(RetryConfig(max_attempts=2, jitter=0.0), name="fetch"))
    @resilient.with_timeout(5.0)
    @resilient.with_circuit_breaker("fetch")
    def fetch() -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ConnectionError("down")
        return "ok"

    with fake_clock():
        assert fetch() == "ok"
    assert requests_of(seen) == [
        ("CallStarted", "fetch", "retry"),
        ("CallSucceeded", "fetch", "retry"),
    ]
    # The breaker ran in the timeout's worker thread, still inside the request.
    assert [type(e) for e in seen if e.policy == "circuit_breaker"] == [CallFailed, CallSucceeded]


def test_a_timed_out_call_is_a_failed_request(seen: list[Event]) -> None:
    gate = threading.Event()

    @resilient.with_timeout(0.05)
    def stuck() -> None:
        gate.wait(10)

    try:
        with pytest.raises(resilient.CallTimeoutError):
            stuck()
    finally:
        gate.set()
    kinds = [type(e) for e in seen]
    assert kinds == [CallStarted, resilient.TimedOut, CallFailed]


async def test_a_stream_through_timeout_and_bulkhead_is_one_request(seen: list[Event]) -> None:
    @resilient.with_timeout(inactivity=5.0, name="feed")
    @resilient.with_bulkhead("feed", max_concurrent=1)
    async def feed() -> AsyncIterator[int]:
        for i in range(3):
            yield i

    assert [i async for i in feed()] == [0, 1, 2]
    assert requests_of(seen) == [
        ("CallStarted", "feed", "timeout"),
        ("CallSucceeded", "feed", "timeout"),
    ]

    @resilient.with_timeout(inactivity=0.01)
    async def silent() -> AsyncIterator[int]:
        yield 1
        await asyncio.Event().wait()
        yield 2

    seen.clear()
    with pytest.raises(resilient.CallTimeoutError):
        async for _ in silent():
            pass
    assert [type(e) for e in seen] == [CallStarted, resilient.StreamInactive, CallFailed]


async def test_an_abandoned_stream_gives_back_its_bulkhead_slot_at_once() -> None:
    bulkhead = resilient.Bulkhead("feed", max_concurrent=1)

    @bulkhead
    async def feed() -> AsyncIterator[int]:
        for i in range(3):
            yield i

    stream = feed()
    async for _ in stream:
        break
    await stream.aclose()  # type: ignore[attr-defined]
    assert bulkhead.metrics().active == 0


def test_an_observed_composed_call_logs_nothing_until_it_retries(
    caplog: pytest.LogCaptureFixture,
) -> None:
    answers = iter(["ok", ConnectionError("reset"), "ok"])

    @resilient.with_resilience("api", retry=RetryConfig(max_attempts=2, jitter=0.0))
    def call() -> str:
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    unsubscribe = resilient.subscribe(resilient.MetricsCollector())
    try:
        with fake_clock(), caplog.at_level(logging.DEBUG, logger="resilient"):
            call()
            assert caplog.records == []
            call()
    finally:
        unsubscribe()
    (record,) = caplog.records
    assert record.levelno == logging.INFO
    assert (record.retry, record.attempt, record.delay, record.error_type) == (  # type: ignore[attr-defined]
        "api",
        1,
        1.0,
        "ConnectionError",
    )


async def test_a_bulkhead_block_is_a_request_and_a_full_one_a_rejected_request(
    seen: list[Event],
) -> None:
    bulkhead = resilient.Bulkhead("pool", max_concurrent=1)
    with bulkhead:
        with pytest.raises(resilient.BulkheadFullError):
            async with bulkhead:
                raise AssertionError("never runs")
        assert bulkhead.metrics().active == 1
    assert bulkhead.metrics().active == 0
    assert [type(e) for e in request_events(seen)] == [
        CallStarted,
        CallStarted,
        CallRejected,
        CallSucceeded,
    ]
    assert get_request_id() is None


def _event_types() -> set[str]:
    found: set[str] = set()
    todo = [Event]
    while todo:
        cls = todo.pop()
        found.add(cls.__name__)
        todo.extend(cls.__subclasses__())
    return {name for name in found if getattr(events, name, None) is not None}


def test_events_exports_the_event_types_and_how_to_listen_nothing_of_the_hot_path() -> None:
    exported = set(events.__all__)
    assert _event_types() <= exported
    assert exported - _event_types() == {
        "Level",
        "Listener",
        "POLICY",
        "REQUEST",
        "Reader",
        "get_request_id",
        "request_context",
        "subscribe",
    }
    namespace: dict[str, object] = {}
    exec("from resilient.events import *", namespace)
    internals = {"Gate", "ListenerSet", "GLOBAL", "NONE", "METERED", "EVENTS", "new_request_id"}
    assert internals.isdisjoint(namespace)
    # Every exported event type is also a name of the package.
    assert _event_types() <= set(resilient.__all__)


def test_a_scope_forgets_its_dead_children_before_they_are_half_of_it() -> None:
    # Policies come and go (per-key breakers, say): the scope above them
    # keeps no more dead references than live ones, whatever it held before.
    from resilient.events import ListenerSet

    parent = ListenerSet()
    children = [ListenerSet(parent) for _ in range(1000)]
    del children
    gc.collect()
    kept = [ListenerSet(parent) for _ in range(10)]
    assert len(parent._children) <= 2 * len(kept) + 1
    assert [r() for r in parent._children[-10:]] == kept
    more = [ListenerSet(parent) for _ in range(3000)]  # live ones are never dropped
    assert sum(r() is not None for r in parent._children) == len(kept) + len(more)


def test_a_scope_with_children_is_freed_without_the_cyclic_collector() -> None:
    from resilient.events import ListenerSet

    gc.disable()
    try:
        parent = ListenerSet()
        child = ListenerSet(parent)
        freed = weakref.ref(parent)
        del parent, child
        assert freed() is None
    finally:
        gc.enable()
