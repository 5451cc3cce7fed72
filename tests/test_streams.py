"""Streams are calls too: every policy on generator functions and async
generator functions, sync and async, under asyncio, trio and anyio.

A stream is one protected call: it starts at its first item's request,
holds its permit until it ends (exhausted, raised, closed, garbage
collected), and is retried, hedged or answered by a fallback only before
its first item has reached the consumer.
"""

from __future__ import annotations

import gc
import inspect
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import anyio
import pytest

import resilient
from resilient import (
    Bulkhead,
    CallTimeoutError,
    CircuitBreaker,
    CircuitBreakerConfig,
    CircuitState,
    Fallback,
    Registry,
    ResiliencePolicy,
    Retry,
    RetryConfig,
    Timeout,
    TimeoutConfig,
    with_bulkhead,
    with_circuit_breaker,
    with_fallback,
    with_hedging,
    with_rate_limit,
    with_resilience,
    with_retry,
    with_timeout,
)
from resilient.testing import fake_clock, instant_waits
from tests.conftest import Boom, Main

# -- every decorator keeps the kind of function it wraps --------------------------

DECORATORS: dict[str, Callable[[], Callable[[Any], Any]]] = {
    "breaker": lambda: with_circuit_breaker("kinds", registry=Registry()),
    "retry": lambda: with_retry(max_attempts=2),
    "timeout": lambda: with_timeout(5.0),
    "timeout-first-item": lambda: with_timeout(first_item=5.0, inactivity=5.0),
    "bulkhead": lambda: with_bulkhead("kinds", max_concurrent=2, registry=Registry()),
    "rate_limit": lambda: with_rate_limit("kinds", rate=1000.0, registry=Registry()),
    "fallback": lambda: with_fallback(0),
    "hedging": lambda: with_hedging(5.0),
    "chaos": lambda: resilient.with_chaos(),
    "keyed": lambda: with_circuit_breaker("kinds", key=lambda n: str(n), registry=Registry()),
    "resilience": lambda: with_resilience(
        "kinds", registry=Registry(), hedging=resilient.HedgingConfig(5.0)
    ),
}


def counting(n: int) -> Iterator[int]:
    yield from range(n)


async def acounting(n: int) -> AsyncIterator[int]:
    for i in range(n):
        yield i


@pytest.mark.parametrize("decorator", DECORATORS.values(), ids=DECORATORS.keys())
def test_every_decorator_takes_a_generator_function(
    decorator: Callable[[], Callable[[Any], Any]],
) -> None:
    decorated = decorator()(counting)
    assert inspect.isgeneratorfunction(decorated)
    assert list(decorated(3)) == [0, 1, 2]


@pytest.mark.parametrize("decorator", DECORATORS.values(), ids=DECORATORS.keys())
def test_every_decorator_takes_an_async_generator_function(
    decorator: Callable[[], Callable[[Any], Any]], run: Callable[[Main], Any]
) -> None:
    decorated = decorator()(acounting)
    assert inspect.isasyncgenfunction(decorated)

    async def main() -> list[int]:
        return [x async for x in decorated(3)]

    assert run(main) == [0, 1, 2]


def test_call_and_call_async_take_streams(run: Callable[[Main], Any]) -> None:
    retry = Retry(RetryConfig(max_attempts=2))
    assert list(retry.call(counting, 2)) == [0, 1]

    async def main() -> list[int]:
        return [x async for x in await retry.call_async(acounting, 2)]

    assert run(main) == [0, 1]


# -- a stream starts at its first item's request ----------------------------------


def test_nothing_runs_before_the_first_next() -> None:
    bulkhead = Bulkhead("lazy", max_concurrent=1)
    started = []

    @with_bulkhead(bulkhead)
    def stream() -> Iterator[int]:
        started.append(1)
        yield 1

    opened = stream()
    assert started == []
    assert bulkhead.metrics().active == 0
    assert next(opened) == 1
    assert started == [1]
    assert bulkhead.metrics().active == 1
    opened.close()
    assert bulkhead.metrics().active == 0


# -- a permit is held until the stream ends -------------------------------------------


def _ends(kind: str, stream: Iterator[int]) -> None:
    """End ``stream`` (first item taken) the way ``kind`` says."""
    if kind == "exhausted":
        assert list(stream) == [1]
    elif kind == "raised":
        with pytest.raises(Boom):
            list(stream)
    elif kind == "closed":
        stream.close()
    elif kind == "garbage":
        del stream
        gc.collect()


@pytest.mark.parametrize("kind", ["exhausted", "raised", "closed", "garbage"])
def test_a_sync_stream_holds_its_permit_until_it_ends(kind: str) -> None:
    bulkhead = Bulkhead("held", max_concurrent=1)

    @with_resilience("held-stack", bulkhead=None, circuit_breaker=None, registry=Registry())
    @with_bulkhead(bulkhead)
    def stream() -> Iterator[int]:
        yield 0
        yield 1
        if kind == "raised":
            raise Boom()

    opened = stream()
    assert next(opened) == 0
    assert bulkhead.metrics().active == 1
    _ends(kind, opened)
    del opened
    gc.collect()
    assert bulkhead.metrics().active == 0


def test_a_stream_abandoned_in_another_thread_gives_its_permit_back() -> None:
    bulkhead = Bulkhead("thread-held", max_concurrent=1)

    @with_bulkhead(bulkhead)
    def stream() -> Iterator[int]:
        while True:
            yield 1

    def consumer() -> None:
        for _ in stream():
            break  # never closed: dropped with the thread's frame

    worker = threading.Thread(target=consumer)
    worker.start()
    worker.join()
    gc.collect()
    assert bulkhead.metrics().active == 0


async def _settle(done: Callable[[], bool]) -> None:
    """Let the event loop run the finalizers of collected async generators
    (each a task of its own), a bounded number of turns."""
    for _ in range(100):
        if done():
            return
        gc.collect()
        await anyio.sleep(0)


@pytest.mark.parametrize("kind", ["exhausted", "raised", "closed", "break", "garbage"])
def test_an_async_stream_holds_its_permit_until_it_ends(
    kind: str, run: Callable[[Main], Any]
) -> None:
    bulkhead = Bulkhead("aheld", max_concurrent=1)

    @with_retry(max_attempts=2)
    @with_bulkhead(bulkhead)
    async def stream() -> AsyncIterator[int]:
        yield 0
        yield 1
        if kind == "raised":
            raise Boom()

    async def main() -> tuple[int, int]:
        opened = stream()
        assert await anext(opened) == 0
        during = bulkhead.metrics().active
        if kind == "exhausted":
            assert [x async for x in opened] == [1]
        elif kind == "raised":
            assert await anext(opened) == 1
            with pytest.raises(Boom):
                await anext(opened)
        elif kind == "closed":
            await opened.aclose()
        elif kind == "break":
            async for _ in opened:
                break
            del opened
        else:
            del opened
        await _settle(lambda: bulkhead.metrics().active == 0)
        return during, bulkhead.metrics().active

    assert run(main) == (1, 0)


# -- retry, fallback and hedging act before the first item only -------------------------


def test_a_sync_stream_is_retried_before_its_first_item() -> None:
    opened = []

    @with_retry(max_attempts=3)
    def stream() -> Iterator[int]:
        opened.append(1)
        if len(opened) < 3:
            raise Boom()
        yield from (1, 2)

    with instant_waits():
        assert list(stream()) == [1, 2]
    assert len(opened) == 3


def test_after_the_first_item_an_error_propagates_as_itself() -> None:
    opened = []
    error = Boom("mid-stream")

    @with_fallback(["fallback"])
    @with_retry(max_attempts=5)
    def stream() -> Iterator[int]:
        opened.append(1)
        yield 1
        yield 2
        raise error

    got: list[int] = []
    with instant_waits(), pytest.raises(Boom) as info:
        got.extend(stream())
    assert info.value is error
    assert got == [1, 2]  # nothing repeated, nothing lost
    assert len(opened) == 1


def test_an_async_stream_is_retried_before_its_first_item_only(
    run: Callable[[Main], Any],
) -> None:
    opened = []

    @with_retry(max_attempts=4)
    async def stream() -> AsyncIterator[int]:
        opened.append(1)
        if len(opened) < 2:
            raise Boom("before")
        yield 1
        raise Boom("after")

    async def main() -> list[int]:
        got: list[int] = []

        async def consume() -> None:
            async for item in stream():
                got.append(item)

        with pytest.raises(Boom, match="after"):
            await consume()
        return got

    with instant_waits():
        assert run(main) == [1]
    assert len(opened) == 2


@pytest.mark.parametrize(
    ("answer", "items"),
    [(["a", "b"], ["a", "b"]), ("text", ["text"]), (7, [7]), ({"k": 1}, [{"k": 1}])],
    ids=["iterable", "text", "value", "mapping"],
)
def test_a_fallback_answers_a_stream_that_failed_before_its_first_item(
    answer: object, items: list[object]
) -> None:
    @with_fallback(handler=lambda: answer)
    def stream() -> Iterator[object]:
        raise Boom()
        yield  # pragma: no cover

    assert list(stream()) == items


def test_an_async_fallback_answers_with_an_async_iterable(run: Callable[[Main], Any]) -> None:
    async def spare() -> AsyncIterator[str]:
        yield "x"
        yield "y"

    async def handler(*, error: Exception) -> AsyncIterator[str]:
        assert isinstance(error, Boom)
        return spare()

    @with_fallback(handler=handler)
    async def stream() -> AsyncIterator[str]:
        raise Boom()
        yield  # pragma: no cover

    async def main() -> list[str]:
        return [x async for x in stream()]

    assert run(main) == ["x", "y"]


def test_hedging_starts_a_second_stream_when_the_first_item_is_late(
    run: Callable[[Main], Any],
) -> None:
    closed = []
    calls = []

    @with_hedging(0.01)
    async def stream() -> AsyncIterator[str]:
        calls.append(1)
        mine = len(calls)
        try:
            if mine == 1:
                await anyio.sleep(30)  # the slow first stream
            yield f"from {mine}"
            yield "more"
        finally:
            closed.append(mine)

    async def main() -> list[str]:
        return [x async for x in stream()]

    assert run(main) == ["from 2", "more"]
    assert sorted(closed) == [1, 2]  # the loser was closed too


def test_a_sync_stream_is_hedged_by_its_first_item() -> None:
    release = threading.Event()
    calls = []

    @with_hedging(0.01)
    def stream() -> Iterator[str]:
        calls.append(1)
        if len(calls) == 1:
            release.wait(30)
        yield f"from {len(calls)}"

    try:
        assert list(stream()) == ["from 2"]
    finally:
        release.set()


# -- the breaker's rules ---------------------------------------------------------------


def _breaker() -> CircuitBreaker:
    return CircuitBreaker("streams", CircuitBreakerConfig(failure_threshold=1, minimum_calls=1))


def test_an_exhausted_stream_is_a_success() -> None:
    breaker = _breaker()
    assert list(breaker(counting)(2)) == [0, 1]
    assert (breaker.metrics().calls, breaker.metrics().failures) == (1, 0)


def test_a_stream_that_raises_after_an_item_is_a_failure() -> None:
    breaker = _breaker()

    @breaker
    def stream() -> Iterator[int]:
        yield 1
        raise Boom()

    with pytest.raises(Boom):
        list(stream())
    assert breaker.state is CircuitState.OPEN


def test_a_stream_closed_after_an_item_is_a_success_and_before_it_neither() -> None:
    breaker = _breaker()
    opened = breaker(counting)(5)
    assert next(opened) == 0
    opened.close()
    assert (breaker.metrics().calls, breaker.metrics().failures) == (1, 0)
    breaker(counting)(5).close()  # never started: not a call at all
    never = breaker(counting)(5)
    del never
    assert (breaker.metrics().calls, breaker.metrics().failures) == (1, 0)


def test_an_async_stream_timing_out_is_a_breaker_failure(run: Callable[[Main], Any]) -> None:
    breaker = _breaker()

    @breaker
    @with_timeout(inactivity=0.02)
    async def stream() -> AsyncIterator[int]:
        yield 1
        await anyio.sleep(30)
        yield 2  # pragma: no cover

    async def main() -> None:
        async for _ in stream():
            pass

    with pytest.raises(CallTimeoutError):
        run(main)
    assert breaker.state is CircuitState.OPEN


def test_slow_call_detection_measures_the_time_to_the_first_item() -> None:
    config = CircuitBreakerConfig(
        slow_call_duration=1.0, slow_call_rate_threshold=1.0, minimum_calls=2, window_size=2
    )
    with fake_clock() as clock:

        def stream(first: float, rest: float) -> Iterator[int]:
            clock.advance(first)
            yield 1
            clock.advance(rest)
            yield 2

        quick = CircuitBreaker("ttfi-quick", config)
        for _ in range(2):
            assert list(quick(stream)(0.1, 10.0)) == [1, 2]  # a long stream, a quick first item
        assert quick.state is CircuitState.CLOSED
        slow = CircuitBreaker("ttfi-slow", config)
        for _ in range(2):
            assert list(slow(stream)(2.0, 0.0)) == [1, 2]
        assert slow.state is CircuitState.OPEN


# -- timeouts of a stream ---------------------------------------------------------------


def test_first_item_bounds_the_wait_for_the_first_item(run: Callable[[Main], Any]) -> None:
    @with_timeout(first_item=0.02)
    async def stream() -> AsyncIterator[int]:
        await anyio.sleep(30)
        yield 1  # pragma: no cover

    async def main() -> None:
        async for _ in stream():
            pass  # pragma: no cover

    with pytest.raises(CallTimeoutError, match="no first item") as info:
        run(main)
    assert info.value.timeout == 0.02


def test_first_item_leaves_later_waits_to_inactivity(run: Callable[[Main], Any]) -> None:
    @with_timeout(first_item=5.0, inactivity=0.02)
    async def stream() -> AsyncIterator[int]:
        yield 1
        await anyio.sleep(30)
        yield 2  # pragma: no cover

    got = []

    async def main() -> None:
        async for item in stream():
            got.append(item)

    with pytest.raises(CallTimeoutError, match="yielded nothing") as info:
        run(main)
    assert info.value.timeout == 0.02
    assert got == [1]


def test_seconds_bounds_the_whole_stream(run: Callable[[Main], Any]) -> None:
    @with_timeout(0.05, inactivity=5.0)
    async def stream() -> AsyncIterator[int]:
        while True:
            await anyio.sleep(0.01)
            yield 1

    async def main() -> None:
        async for _ in stream():
            pass

    with pytest.raises(CallTimeoutError) as info:
        run(main)
    assert info.value.timeout == 0.05


def test_a_float_timeout_of_a_stack_bounds_each_wait_not_the_stream(
    run: Callable[[Main], Any],
) -> None:
    stack = resilient.Resilience(
        "per-wait", ResiliencePolicy(timeout=0.5, retry=None, circuit_breaker=None)
    )

    @stack
    async def stream() -> AsyncIterator[int]:
        for i in range(10):
            await anyio.sleep(0.06)  # 0.6s in all: more than 0.5, each wait far less
            yield i

    async def main() -> list[int]:
        return [x async for x in stream()]

    assert run(main) == list(range(10))
    config = TimeoutConfig(0.2)
    assert config.first_item is None
    assert config.inactivity is None


def test_a_sync_stream_that_overran_its_first_item_fails() -> None:
    with fake_clock() as clock:

        @with_timeout(first_item=1.0, inactivity=5.0)
        def stream() -> Iterator[int]:
            clock.advance(2.0)
            yield 1

        with pytest.raises(CallTimeoutError, match="no first item"):
            list(stream())


def test_first_item_and_inactivity_refuse_plain_functions() -> None:
    def plain() -> int:
        return 1

    with pytest.raises(TypeError, match="first_item= and inactivity="):
        with_timeout(first_item=1.0)(plain)
    assert Timeout(first_item=1.0).first_item == 1.0


# -- the rest of the stack ---------------------------------------------------------------


def test_a_rate_limit_takes_one_turn_per_stream() -> None:
    registry = Registry()
    limiter = registry.rate_limiter("per-stream", rate=1.0, period=60.0, burst=1)

    @with_rate_limit(limiter)
    def stream() -> Iterator[int]:
        yield from range(10)

    assert list(stream()) == list(range(10))
    with pytest.raises(resilient.RateLimitExceededError):
        list(stream())


def test_the_full_stack_relays_a_stream(run: Callable[[Main], Any]) -> None:
    @with_resilience(
        "full",
        registry=Registry(),
        timeout=TimeoutConfig(5.0, inactivity=5.0),
        bulkhead=resilient.BulkheadConfig(2),
        fallback=Fallback(["spare"]),
    )
    async def stream(n: int) -> AsyncIterator[int]:
        for i in range(n):
            yield i

    async def main() -> list[int]:
        return [x async for x in stream(4)]

    assert run(main) == [0, 1, 2, 3]


# -- time to first item ---------------------------------------------------------------


def _paced(clock: Any, first: float) -> Callable[[], Iterator[str]]:
    def stream() -> Iterator[str]:
        clock.advance(first)
        yield "first"
        clock.advance(5.0)  # the rest of the stream is not the time to its first item
        yield "second"

    return stream


def test_time_to_first_item_reaches_the_collector() -> None:
    collector = resilient.MetricsCollector()
    stop = resilient.subscribe(collector)
    try:
        with fake_clock() as clock:
            stream = with_bulkhead("ttfi-stats", max_concurrent=2, registry=Registry())(
                _paced(clock, 0.5)
            )
            assert list(stream()) == ["first", "second"]
            assert list(stream()) == ["first", "second"]
        stats = collector.statistics.by_name["ttfi-stats"]
    finally:
        stop()
    assert stats.streams == 2
    assert stats.average_first_item == pytest.approx(0.5)
    assert stats.first_item_p99 == pytest.approx(0.5, rel=0.03)
    assert stats.average_latency == pytest.approx(5.5)


def test_time_to_first_item_is_a_prometheus_histogram() -> None:
    prom = pytest.importorskip("prometheus_client")
    from resilient.metrics import prometheus

    registry = prom.CollectorRegistry()
    stop = prometheus.instrument(registry)
    try:
        with fake_clock() as clock:
            stream = with_bulkhead("ttfi-prom", max_concurrent=2, registry=Registry())(
                _paced(clock, 0.02)
            )
            assert list(stream()) == ["first", "second"]
        text = prom.generate_latest(registry).decode()
    finally:
        stop()
    assert 'resilient_time_to_first_item_seconds_count{name="ttfi-prom"} 1.0' in text
    assert 'resilient_time_to_first_item_seconds_bucket{le="0.025",name="ttfi-prom"} 1.0' in text
    assert 'resilient_time_to_first_item_seconds_bucket{le="0.01",name="ttfi-prom"} 0.0' in text


def test_time_to_first_item_is_an_opentelemetry_histogram() -> None:
    sdk = pytest.importorskip("opentelemetry.sdk.metrics")
    export = pytest.importorskip("opentelemetry.sdk.metrics.export")
    from resilient.metrics import otel

    reader = export.InMemoryMetricReader()
    provider = sdk.MeterProvider(metric_readers=[reader])
    stop = otel.instrument(meter_provider=provider)
    try:
        with fake_clock() as clock:
            stream = with_bulkhead("ttfi-otel", max_concurrent=2, registry=Registry())(
                _paced(clock, 0.02)
            )
            assert list(stream()) == ["first", "second"]
        data = reader.get_metrics_data()
    finally:
        stop()
        provider.shutdown()
    metrics = {m.name: m for m in data.resource_metrics[0].scope_metrics[0].metrics}
    (point,) = [
        p
        for p in metrics["resilient.stream.time_to_first_item"].data.data_points
        if p.attributes["resilient.policy.name"] == "ttfi-otel"
    ]
    assert point.count == 1
    assert point.sum == pytest.approx(0.02, rel=0.03)


def test_a_plain_closed_breaker_counts_streams_on_its_fast_path() -> None:
    breaker = CircuitBreaker("fast-streams")  # a plain config: successes are lock-free ticks
    assert list(breaker(counting)(2)) == [0, 1]
    breaker(counting)(5).close()  # never started
    opened = breaker(counting)(5)
    assert next(opened) == 0
    opened.close()  # closed after an item: a success

    @breaker
    def broken() -> Iterator[int]:
        yield 1
        raise Boom()

    with pytest.raises(Boom):
        list(broken())
    assert (breaker.metrics().calls, breaker.metrics().failures) == (3, 1)


# -- failover -----------------------------------------------------------------------


def test_a_sync_stream_fails_over_before_its_first_item_only() -> None:
    def spare() -> Iterator[str]:
        yield "spare"

    @resilient.with_failover("stream-failover", [spare])
    def primary() -> Iterator[str]:
        raise resilient.CircuitOpenError("upstream", "open", 1.0)
        yield "never"  # pragma: no cover

    assert list(primary()) == ["spare"]

    @resilient.with_failover("stream-failover-late", [spare])
    def late() -> Iterator[str]:
        yield "first"
        raise resilient.CircuitOpenError("upstream", "open", 1.0)

    got: list[str] = []
    with pytest.raises(resilient.CircuitOpenError):
        got.extend(late())
    assert got == ["first"]
