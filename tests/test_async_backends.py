"""The async acceptance of every policy, under asyncio, trio and anyio on trio.

Each test is a plain function handed ``run``: it runs the coroutine function
given to it to completion under the parametrized library, the way a service
would (``asyncio.run``, ``trio.run``, ``anyio.run(..., backend="trio")``).
Only the library's own primitives that all three share (anyio's) are used
inside, so one body serves all three.
"""

from __future__ import annotations

import math
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import pytest

import resilient
from resilient import (
    Bulkhead,
    BulkheadFullError,
    CallTimeoutError,
    CircuitOpenError,
    CircuitState,
    ResiliencePolicy,
    RetryConfig,
    Timeout,
    with_bulkhead,
    with_circuit_breaker,
    with_fallback,
    with_resilience,
    with_retry,
    with_timeout,
)
from resilient._runtime import async_backend as backend
from resilient.testing import fake_clock, instant_waits
from tests.conftest import Main

# -- the backend module itself ---------------------------------------------------


def test_current_names_the_running_library(run: Callable[[Main], Any], library: str) -> None:
    async def main() -> str:
        return backend.current()

    assert run(main) == library


def test_outside_any_event_loop_is_a_clear_error() -> None:
    with pytest.raises(RuntimeError, match=r"no running event loop.*asyncio, trio"):
        backend.current()


def test_waiter_woken_from_another_thread(run: Callable[[Main], Any]) -> None:
    async def main() -> bool:
        waiter = backend.waiter()
        await anyio.to_thread.run_sync(waiter.wake)
        with anyio.fail_after(5):
            await waiter.wait()
        return waiter.woken()

    assert run(main) is True


def test_a_deadline_that_passes_raises_timeout_error(run: Callable[[Main], Any]) -> None:
    async def main() -> bool:
        scope = backend.timeout(0.01)
        with pytest.raises(TimeoutError):
            async with scope:
                await anyio.sleep(5)
        return scope.expired()

    assert run(main) is True


# -- every policy ------------------------------------------------------------------


def test_breaker_opens_and_rejects(run: Callable[[Main], Any]) -> None:
    @with_circuit_breaker("trio-breaker", failure_threshold=2)
    async def call() -> None:
        raise ConnectionError("down")

    async def main() -> None:
        for _ in range(2):
            with pytest.raises(ConnectionError):
                await call()
        with pytest.raises(CircuitOpenError):
            await call()

    run(main)
    assert resilient.registry.get("trio-breaker").state is CircuitState.OPEN


def test_retry_waits_between_attempts(run: Callable[[Main], Any]) -> None:
    attempts = []

    @with_retry(max_attempts=3, initial_delay=0.001, jitter=0.0)
    async def flaky() -> str:
        attempts.append(1)
        if len(attempts) < 3:
            raise ConnectionError("again")
        return "ok"

    assert run(flaky) == "ok"
    assert len(attempts) == 3


def test_retry_waits_are_recorded_by_instant_waits(run: Callable[[Main], Any]) -> None:
    @with_retry(max_attempts=3, initial_delay=10.0, multiplier=2.0, jitter=0.0)
    async def always() -> None:
        raise ConnectionError("down")

    with instant_waits() as waits, pytest.raises(ConnectionError):
        run(always)
    assert waits.delays == [10.0, 20.0]


def test_retry_waits_move_the_fake_clock(run: Callable[[Main], Any]) -> None:
    @with_retry(max_attempts=3, initial_delay=10.0, multiplier=2.0, jitter=0.0)
    async def always() -> None:
        raise ConnectionError("down")

    with fake_clock() as clock, pytest.raises(ConnectionError):
        run(always)
    assert clock.now() == 30.0
    assert clock.delays == [10.0, 20.0]


def test_timeout_stops_a_slow_call(run: Callable[[Main], Any]) -> None:
    @with_timeout(0.02)
    async def slow() -> None:
        await anyio.sleep(10)

    with pytest.raises(CallTimeoutError) as caught:
        run(slow)
    assert caught.value.timeout == 0.02


def test_timeout_lets_a_fast_call_through_and_keeps_its_own_timeout_error(
    run: Callable[[Main], Any],
) -> None:
    @with_timeout(5)
    async def fast() -> str:
        await anyio.sleep(0)
        return "done"

    @with_timeout(5)
    async def own() -> None:
        raise TimeoutError("the call's own")

    assert run(fast) == "done"
    with pytest.raises(TimeoutError, match="the call's own") as caught:
        run(own)
    assert not isinstance(caught.value, CallTimeoutError)


def test_timeout_as_async_with_block(run: Callable[[Main], Any]) -> None:
    async def main() -> None:
        async with Timeout(0.02):
            await anyio.sleep(10)

    with pytest.raises(CallTimeoutError):
        run(main)


def test_timeout_ends_when_the_fake_clock_reaches_it(run: Callable[[Main], Any]) -> None:
    @with_timeout(30)
    async def waits_for_the_clock() -> None:
        await resilient._runtime.clock.sleep_async(60)  # fake time: the clock jumps

    with fake_clock() as clock, pytest.raises(CallTimeoutError):
        run(waits_for_the_clock)
    assert clock.now() == 30.0


def test_an_outer_cancellation_is_not_a_timeout(run: Callable[[Main], Any]) -> None:
    @with_timeout(5)
    async def slow() -> None:
        await anyio.sleep(10)

    async def main() -> bool:
        with anyio.move_on_after(0.02) as scope:
            await slow()
        return scope.cancelled_caught

    assert run(main) is True


def test_stream_inactivity(run: Callable[[Main], Any]) -> None:
    @with_timeout(inactivity=0.05)
    async def stream() -> AsyncIterator[int]:
        yield 1
        await anyio.sleep(10)
        yield 2

    seen = []

    async def main() -> None:
        async for item in stream():
            seen.append(item)

    with pytest.raises(CallTimeoutError, match="yielded nothing"):
        run(main)
    assert seen == [1]


def test_contended_bulkhead_queues_then_admits(run: Callable[[Main], Any]) -> None:
    bulkhead = Bulkhead("trio-bh", max_concurrent=1, max_queue=2)
    order = []

    @with_bulkhead(bulkhead)
    async def work(n: int) -> None:
        order.append(("in", n))
        await anyio.sleep(0.01)
        order.append(("out", n))

    async def main() -> None:
        async with anyio.create_task_group() as tasks:
            for n in range(3):
                tasks.start_soon(work, n)
        # the queue is full: a fourth caller while three are there is refused
        async with anyio.create_task_group() as tasks:
            for n in range(3):
                tasks.start_soon(work, n)
            await anyio.wait_all_tasks_blocked()
            with pytest.raises(BulkheadFullError):
                await work(3)

    run(main)
    # one at a time: every "in" is followed by its own "out"
    assert len(order) == 12
    for i in range(0, 12, 2):
        assert order[i][0] == "in"
        assert order[i + 1] == ("out", order[i][1])
    assert bulkhead.metrics().active == 0
    assert bulkhead.metrics().queued == 0


def test_bulkhead_queue_timeout(run: Callable[[Main], Any]) -> None:
    bulkhead = Bulkhead("trio-bh-timeout", max_concurrent=1, max_queue=1, queue_timeout=0.02)

    @with_bulkhead(bulkhead)
    async def hold(until: anyio.Event | None) -> None:
        if until is not None:
            await until.wait()

    async def main() -> None:
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(hold, anyio.Event())  # never set: holds the slot
            await anyio.wait_all_tasks_blocked()
            with pytest.raises(BulkheadFullError):
                await hold(None)  # queued for 0.02 s, then refused
            tasks.cancel_scope.cancel()

    run(main)
    metrics = bulkhead.metrics()
    assert (metrics.active, metrics.queued, metrics.rejected) == (0, 0, 1)


def test_bulkhead_queue_timeout_on_the_fake_clock(run: Callable[[Main], Any]) -> None:
    bulkhead = Bulkhead("trio-bh-fake", max_concurrent=1, max_queue=1, queue_timeout=5.0)
    release = []

    @with_bulkhead(bulkhead)
    async def hold() -> None:
        while not release:
            await anyio.sleep(0.001)

    async def main() -> None:
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(hold)
            await anyio.wait_all_tasks_blocked()
            with pytest.raises(BulkheadFullError):
                await hold()
            release.append(True)

    with fake_clock() as clock:
        run(main)
    assert clock.delays == [5.0]
    assert bulkhead.metrics().active == 0


def test_cancelled_queued_caller_leaves_no_permit(run: Callable[[Main], Any]) -> None:
    bulkhead = Bulkhead("trio-bh-cancel", max_concurrent=1, max_queue=5)

    @with_bulkhead(bulkhead)
    async def hold(until: anyio.Event | None) -> None:
        if until is not None:
            await until.wait()

    async def main() -> None:
        released = anyio.Event()
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(hold, released)
            await anyio.wait_all_tasks_blocked()
            with anyio.move_on_after(0.01) as scope:
                await hold(None)  # queued, then cancelled
            assert scope.cancelled_caught
            assert bulkhead.metrics().queued == 0
            released.set()
        await hold(None)  # the permit came back

    run(main)
    metrics = bulkhead.metrics()
    assert (metrics.active, metrics.queued, metrics.completed) == (0, 0, 2)


def test_fallback(run: Callable[[Main], Any]) -> None:
    @with_fallback("cached")
    async def down() -> str:
        raise ConnectionError("down")

    assert run(down) == "cached"


def test_with_resilience_whole_stack(run: Callable[[Main], Any]) -> None:
    calls = []

    @with_resilience(
        "trio-stack",
        ResiliencePolicy(
            retry=RetryConfig(max_attempts=3, initial_delay=1.0, jitter=0.0),
            timeout=0.05,
            bulkhead=resilient.BulkheadConfig(2, max_queue=2),
        ),
    )
    async def call() -> str:
        calls.append(1)
        if len(calls) == 1:
            await anyio.sleep(10)  # times out
        if len(calls) == 2:
            raise ConnectionError("once")
        return "ok"

    with instant_waits() as waits:
        assert run(call) == "ok"
    assert len(calls) == 3
    assert waits.delays == [1.0, 2.0]


def test_with_resilience_forced_open(run: Callable[[Main], Any]) -> None:
    @with_resilience("trio-forced")
    async def call() -> str:
        return "never"

    with resilient.registry.forced_open("trio-forced"), pytest.raises(CircuitOpenError) as caught:
        run(call)
    assert caught.value.remaining == math.inf


def test_chaos_latency_sleeps_on_the_running_library(run: Callable[[Main], Any]) -> None:
    @resilient.with_chaos(latency=(1.0, 1.0), latency_rate=1.0)
    async def call() -> str:
        return "late"

    with instant_waits() as waits:
        assert run(call) == "late"
    assert waits.delays == [1.0]


def test_collector_event_stream_wakes_its_consumer(run: Callable[[Main], Any]) -> None:
    collector = resilient.MetricsCollector()
    unsubscribe = resilient.subscribe(collector)

    @with_circuit_breaker("streamed")
    async def call() -> int:
        return 1

    async def main() -> list[str]:
        names: list[str] = []
        async with collector.events() as stream:

            async def consume() -> None:
                async for event in stream:
                    names.append(type(event).__name__)
                    return

            async with anyio.create_task_group() as tasks:
                tasks.start_soon(consume)
                await anyio.wait_all_tasks_blocked()  # the consumer is waiting now
                await call()
        return names

    try:
        names = run(main)
    finally:
        unsubscribe()
    assert names == ["CallStarted"]


def test_in_thread_returns_and_raises(run: Callable[[Main], Any]) -> None:
    def boom() -> None:
        raise KeyError("in the thread")

    async def main() -> int:
        with pytest.raises(KeyError, match="in the thread"):
            await backend.in_thread(boom, print)
        return await backend.in_thread(lambda: 41 + 1, print)

    assert run(main) == 42


def test_in_thread_hands_an_abandoned_result_over(run: Callable[[Main], Any]) -> None:
    release, handed = threading.Event(), threading.Event()
    results: list[str] = []

    def slow() -> str:
        release.wait(5)
        return "late"

    def abandoned(result: str) -> None:
        results.append(result)
        handed.set()

    async def main() -> bool:
        with anyio.move_on_after(0.01) as scope:
            await backend.in_thread(slow, abandoned)
        release.set()
        return scope.cancelled_caught

    assert run(main) is True
    assert handed.wait(5)
    assert results == ["late"]


def test_httpx_async_transport(run: Callable[[Main], Any]) -> None:
    from resilient.http import async_client
    from resilient.http.testing import LoopbackServer

    policy = ResiliencePolicy(
        retry=RetryConfig(max_attempts=3, initial_delay=1.0, jitter=0.0), timeout=5.0
    )

    async def main() -> int:
        async with async_client(policy, base_url=server.url, verify=False) as http:
            response = await http.get("/")
        return response.status_code

    with LoopbackServer(500, 502, 200) as server, fake_clock() as clock:
        assert run(main) == 200
    assert clock.delays == [1.0, 2.0]
    assert len({r.headers["x-request-id"] for r in server.requests}) == 1


def test_cancellation_is_never_retried_counted_or_swallowed(run: Callable[[Main], Any]) -> None:
    attempts = []

    @with_resilience(
        "cancelled",
        ResiliencePolicy(
            retry=RetryConfig(max_attempts=3, initial_delay=0.0),
            timeout=5.0,
            fallback=resilient.Fallback(value="fallback"),
            bulkhead=resilient.BulkheadConfig(1),
        ),
    )
    async def hangs() -> str:
        attempts.append(1)
        await anyio.sleep(10)
        return "never"

    async def main() -> tuple[bool, Any]:
        with anyio.move_on_after(0.02) as scope:
            result = await hangs()
            return False, result
        return scope.cancelled_caught, None

    assert run(main) == (True, None)
    assert attempts == [1]
    breaker = resilient.registry.get("cancelled").metrics()
    assert (breaker.calls, breaker.failures) == (0, 0)
    assert resilient.registry.bulkhead("cancelled", max_concurrent=1).metrics().active == 0


def test_a_permit_freed_by_a_thread_wakes_a_queued_task(run: Callable[[Main], Any]) -> None:
    bulkhead = Bulkhead("shared-bh", max_concurrent=1, max_queue=1)
    holding, release = threading.Event(), threading.Event()

    def thread_holds() -> None:
        with bulkhead:
            holding.set()
            release.wait(5)

    @with_bulkhead(bulkhead)
    async def task_call() -> str:
        return "after the thread"

    async def main() -> str:
        worker = threading.Thread(target=thread_holds)
        worker.start()
        await anyio.to_thread.run_sync(holding.wait)
        results = []

        async def queued() -> None:
            results.append(await task_call())

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(queued)
            await anyio.wait_all_tasks_blocked()
            assert bulkhead.metrics().queued == 1
            release.set()  # the thread's exit hands the permit over, from its thread
        worker.join(5)
        return results[0]

    assert run(main) == "after the thread"
    assert bulkhead.metrics().active == 0


def test_fake_clock_wakes_racing_waits_in_order(run: Callable[[Main], Any]) -> None:
    woke: list[tuple[str, float]] = []

    async def wait(label: str, seconds: float) -> None:
        await resilient._runtime.clock.sleep_async(seconds)
        woke.append((label, clock.now()))

    async def main() -> None:
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(wait, "long", 10.0)
            tasks.start_soon(wait, "short", 5.0)
            tasks.start_soon(wait, "middle", 7.0)

    with fake_clock() as clock:
        run(main)
    assert woke == [("short", 5.0), ("middle", 7.0), ("long", 10.0)]
