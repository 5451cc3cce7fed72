"""Hedging: another attempt when one is slow, the first success wins."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import anyio
import pytest

import resilient
from resilient import (
    CircuitBreakerConfig,
    HedgeStarted,
    Hedging,
    HedgingConfig,
    MetricsCollector,
    ResiliencePolicy,
    with_hedging,
    with_resilience,
)
from resilient._runtime import clock as _clock
from resilient.testing import fake_clock
from tests.conftest import Main


def _hedges(events: list[Any]) -> list[int]:
    return [e.attempt for e in events if isinstance(e, HedgeStarted)]


# -- coroutines, under asyncio, trio and anyio on each ------------------------------------


def test_a_slow_first_attempt_is_hedged_and_the_hedge_wins(run: Callable[[Main], Any]) -> None:
    seen: list[Any] = []
    cancelled: list[int] = []
    attempts: list[float] = []
    policy = Hedging(delay=0.5, name="svc")
    policy.subscribe(seen.append)

    async def call() -> str:
        attempts.append(_clock.monotonic())
        if len(attempts) == 1:
            try:
                await _clock.sleep_async(10.0)
            except anyio.get_cancelled_exc_class():
                cancelled.append(1)
                raise
            return "first"
        return "hedge"

    async def main() -> str:
        return await policy.call_async(call)

    with fake_clock() as clock:
        assert run(main) == "hedge"
        assert attempts == [0.0, 0.5]  # the hedge started after the delay
        assert clock.now() == 0.5
    assert cancelled == [1]  # the slow attempt was cancelled, not left running
    assert _hedges(seen) == [2]
    assert seen[0].name == "svc"


def test_a_first_attempt_answering_in_time_starts_no_hedge(run: Callable[[Main], Any]) -> None:
    calls = []

    @with_hedging(1.0)
    async def quick() -> int:
        calls.append(1)
        await _clock.sleep_async(0.9)
        return 7

    with fake_clock() as clock:
        assert run(quick) == 7
        assert clock.now() == 0.9
    assert calls == [1]


def test_a_hedge_that_loses_is_cancelled(run: Callable[[Main], Any]) -> None:
    cancelled: list[int] = []
    attempts: list[float] = []

    @with_hedging(0.5)
    async def call() -> int:
        attempts.append(_clock.monotonic())
        number = len(attempts)
        try:
            await _clock.sleep_async(1.0 if number == 1 else 10.0)
        except anyio.get_cancelled_exc_class():
            cancelled.append(number)
            raise
        return number

    with fake_clock() as clock:
        assert run(call) == 1  # the first answers at 1.0, before the hedge
        assert clock.now() == 1.0
    assert attempts == [0.0, 0.5]
    assert cancelled == [2]


def test_a_hedged_on_failure_starts_the_next_attempt_at_once(run: Callable[[Main], Any]) -> None:
    attempts: list[float] = []

    @with_hedging(5.0, on=(ConnectionError,))
    async def flaky() -> str:
        attempts.append(_clock.monotonic())
        if len(attempts) == 1:
            raise ConnectionError("reset")
        return "ok"

    with fake_clock():
        assert run(flaky) == "ok"
    assert attempts == [0.0, 0.0]


def test_a_failure_after_suspending_starts_the_next_at_once_and_restarts_the_delay(
    run: Callable[[Main], Any],
) -> None:
    attempts: list[float] = []

    @with_hedging(1.0, max_hedges=2)
    async def flaky() -> int:
        attempts.append(_clock.monotonic())
        number = len(attempts)
        if number == 1:
            await _clock.sleep_async(0.25)
            raise ConnectionError("reset")
        await _clock.sleep_async(10.0 if number == 2 else 0.5)
        return number

    with fake_clock() as clock:
        assert run(flaky) == 3
        # The second starts at the failure; the third one delay after it.
        assert attempts == [0.0, 0.25, 1.25]
        assert clock.now() == 1.75


def test_a_failure_as_the_delay_passes_starts_one_attempt_not_two(
    run: Callable[[Main], Any],
) -> None:
    starts: list[float] = []

    @with_hedging(1.0, max_hedges=2)
    async def call() -> int:
        starts.append(_clock.monotonic())
        number = len(starts)
        if number == 1:
            await _clock.sleep_async(1.0)
            raise ConnectionError("fails just as the delay passes")
        await _clock.sleep_async(5.0)
        return number

    with fake_clock():
        assert run(call) == 2
    # The failure starts the second; the third waits a whole delay after it.
    assert starts == [0.0, 1.0, 2.0]


def test_when_every_attempt_fails_the_last_error_is_raised(run: Callable[[Main], Any]) -> None:
    errors = [ConnectionError("first"), ConnectionError("second"), ConnectionError("third")]
    starts: list[float] = []

    @with_hedging(1.0, max_hedges=2)
    async def down() -> None:
        n = len(starts)
        starts.append(_clock.monotonic())
        await _clock.sleep_async([3.0, 0.5, 0.5][n])
        raise errors[n]

    with fake_clock(), pytest.raises(ConnectionError) as info:
        run(down)
    # The second fails at 1.5 and starts the third at once; the first fails last.
    assert starts == [0.0, 1.0, 1.5]
    assert info.value is errors[0]


def test_hedges_start_one_delay_apart_up_to_max_hedges(run: Callable[[Main], Any]) -> None:
    attempts: list[float] = []
    seen: list[Any] = []

    async def slow() -> int:
        attempts.append(_clock.monotonic())
        number = len(attempts)
        await _clock.sleep_async(10.0 if number < 3 else 0.25)
        return number

    policy = Hedging(HedgingConfig(0.5, max_hedges=2))
    policy.subscribe(seen.append)

    async def main() -> int:
        return await policy.call_async(slow)

    with fake_clock():
        assert run(main) == 3
    assert attempts == [0.0, 0.5, 1.0]
    assert _hedges(seen) == [2, 3]


class _Interrupt(BaseException):
    """Not an ``Exception``: never hedged on, never wrapped."""


@pytest.mark.parametrize("kind", [KeyError, _Interrupt], ids=lambda kind: kind.__name__)
def test_an_error_not_hedged_on_is_raised_at_once_and_the_others_cancelled(
    run: Callable[[Main], Any], kind: type[BaseException]
) -> None:
    # Made here: raised, an error keeps the frames it went through (and the
    # policy in them) for as long as it lives.
    error = kind("bad request")
    cancelled: list[int] = []
    attempts = 0

    @with_hedging(0.5, on=(ConnectionError,))
    async def call() -> str:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            try:
                await _clock.sleep_async(10.0)
            except anyio.get_cancelled_exc_class():
                cancelled.append(1)
                raise
            return "first"
        raise error

    with fake_clock(), pytest.raises(kind) as raised:
        run(call)
    assert raised.value is error  # as it is: never wrapped in a group
    assert attempts == 2
    assert cancelled == [1]


def test_a_first_attempt_failing_with_another_error_cancels_the_hedges(
    run: Callable[[Main], Any],
) -> None:
    cancelled: list[int] = []
    attempts = 0

    @with_hedging(0.5, on=(ConnectionError,))
    async def call() -> str:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            await _clock.sleep_async(1.0)
            raise KeyError("bad")
        try:
            await _clock.sleep_async(10.0)
        except anyio.get_cancelled_exc_class():
            cancelled.append(1)
            raise
        return "hedge"

    async def main() -> None:
        with pytest.raises(KeyError):
            await call()
        await anyio.sleep(0)

    with fake_clock():
        run(main)
    assert attempts == 2
    assert cancelled == [1]


def test_cancelling_the_caller_cancels_every_attempt(run: Callable[[Main], Any]) -> None:
    running: list[int] = []
    cancelled: list[int] = []
    both: list[anyio.Event] = []

    @with_hedging(0.01, max_hedges=1)
    async def hang() -> None:
        running.append(1)
        if len(running) == 2:
            both[0].set()
        try:
            await anyio.sleep_forever()
        except anyio.get_cancelled_exc_class():
            cancelled.append(1)
            raise

    async def main() -> bool:
        both.append(anyio.Event())  # made under the running library
        with anyio.CancelScope() as scope:
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(hang)
                await both[0].wait()
                scope.cancel()
        return scope.cancelled_caught

    assert run(main) is True
    assert cancelled == [1, 1]


def test_request_context_flows_into_hedges(run: Callable[[Main], Any]) -> None:
    ids = []

    @with_hedging(0.5)
    async def call() -> None:
        ids.append(resilient.get_request_id())
        if len(ids) == 1:
            await _clock.sleep_async(10.0)

    async def main() -> None:
        with resilient.request_context("req-1"):
            await call()

    with fake_clock():
        run(main)
    assert ids == ["req-1", "req-1"]


def test_hedging_in_real_time(run: Callable[[Main], Any]) -> None:
    attempts = 0

    @with_hedging(0.01)
    async def call() -> int:
        nonlocal attempts
        attempts += 1
        number = attempts
        if number == 1:
            await anyio.sleep(10)
        return number

    async def main() -> int:
        with anyio.fail_after(5):
            return await call()

    assert run(main) == 2


def test_switched_off_hedging_is_a_pass_through(run: Callable[[Main], Any]) -> None:
    calls = []

    @with_hedging(0.5)
    async def slow() -> int:
        calls.append(1)
        await _clock.sleep_async(2.0)
        return 1

    resilient.set_active(False)
    with fake_clock():
        assert run(slow) == 1
    assert calls == [1]


# -- coroutines, asyncio only --------------------------------------------------------


async def test_an_outside_cancellation_racing_a_win_still_cancels_the_caller() -> None:
    started = asyncio.Event()
    caller: asyncio.Task[Any] | None = None
    attempts = 0

    @with_hedging(0.01)
    async def call() -> str:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            started.set()
            await asyncio.Event().wait()
        assert caller is not None
        caller.cancel()  # the caller is cancelled as the hedge wins
        return "hedge"

    caller = asyncio.create_task(call())
    await started.wait()
    with pytest.raises(asyncio.CancelledError):
        await caller


# -- sync functions ------------------------------------------------------------------


def test_a_slow_sync_attempt_is_hedged_on_a_worker_thread_and_abandoned() -> None:
    release = threading.Event()
    finished = threading.Event()
    threads: list[str] = []
    seen: list[Any] = []

    def call() -> str:
        threads.append(threading.current_thread().name)
        if len(threads) == 1:
            release.wait(10)
            finished.set()
            return "first"
        return "hedge"

    policy = Hedging(delay=0.01)
    policy.subscribe(seen.append)
    try:
        assert policy.call(call) == "hedge"
        assert not finished.is_set()  # the loser still runs, abandoned
    finally:
        release.set()
    assert finished.wait(10)
    assert threading.current_thread().name not in threads
    assert _hedges(seen) == [2]


def test_a_sync_call_answering_in_time_is_not_hedged() -> None:
    calls = []

    @with_hedging(10.0)
    def quick(x: int) -> int:
        calls.append(x)
        return x * 2

    assert quick(21) == 42
    assert calls == [21]


def test_sync_failures_hedge_at_once_and_the_last_error_is_raised() -> None:
    errors = [ConnectionError("a"), ConnectionError("b")]
    n = 0

    @with_hedging(10.0)
    def down() -> None:
        nonlocal n
        n += 1
        raise errors[n - 1]

    with pytest.raises(ConnectionError) as info:
        down()
    assert info.value is errors[1]


def test_a_sync_error_not_hedged_on_is_raised_without_a_hedge() -> None:
    calls = []

    @with_hedging(10.0, on=(ConnectionError,))
    def bad() -> None:
        calls.append(1)
        raise KeyError("x")

    with pytest.raises(KeyError):
        bad()
    assert calls == [1]


def test_sync_hedges_carry_the_callers_request_id() -> None:
    ids = []

    @with_hedging(10.0)
    def call() -> None:
        ids.append(resilient.get_request_id())
        if len(ids) == 1:
            raise ConnectionError()

    with resilient.request_context("req-9"):
        call()
    assert ids == ["req-9", "req-9"]


# -- composition, counting, configuration ------------------------------------------------


def test_in_a_policy_each_hedged_attempt_passes_the_breaker(run: Callable[[Main], Any]) -> None:
    attempts = 0

    @with_resilience(
        "hedged",
        ResiliencePolicy(
            retry=None,
            timeout=None,
            circuit_breaker=CircuitBreakerConfig(failure_threshold=100),
            hedging=HedgingConfig(0.5),
        ),
    )
    async def call() -> str:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise ConnectionError()
        return "ok"

    assert run(call) == "ok"
    breaker = resilient.registry.get("hedged")
    assert breaker is not None
    metrics = breaker.metrics()
    assert (metrics.calls, metrics.failures) == (2, 1)


def test_the_policy_orders_hedging_after_retry_and_before_the_breaker() -> None:
    policy = resilient.Resilience("ordered", ResiliencePolicy(hedging=HedgingConfig(1.0)))
    assert repr(policy) == "<Resilience 'ordered' retry > hedging > circuit_breaker > timeout>"
    kinds = [type(layer).__name__ for layer in policy._layers()]
    assert kinds == ["Retry", "Hedging", "CircuitBreaker", "Timeout"]


async def test_the_collector_counts_hedges() -> None:
    collector = MetricsCollector()
    unsubscribe = resilient.subscribe(collector)
    try:

        @with_hedging(10.0, name="counted")
        async def call() -> None:
            if collector.statistics.hedges == 0:
                raise ConnectionError()

        await call()
        stats = collector.statistics
        assert stats.hedges == 1
        assert stats.by_name["counted"].hedges == 1
        assert stats.total_requests == 1
    finally:
        unsubscribe()


@pytest.mark.parametrize(
    ("fields", "field", "value"),
    [
        ({"delay": -1.0}, "delay", -1.0),
        ({"delay": "1s"}, "delay", "1s"),
        ({"delay": float("inf")}, "delay", float("inf")),
        ({"delay": 1e300}, "delay", 1e300),
        ({"delay": 1.0, "max_hedges": 0}, "max_hedges", 0),
        ({"delay": 1.0, "max_hedges": 1.5}, "max_hedges", 1.5),
        ({"delay": 1.0, "max_hedges": 10_000}, "max_hedges", 10_000),
        ({"delay": 1.0, "on": "ValueError"}, "on", "ValueError"),
        ({"delay": 1.0, "on": (ValueError, int)}, "on", (ValueError, int)),
    ],
)
def test_bad_fields_are_refused_at_construction(
    fields: dict[str, Any], field: str, value: object
) -> None:
    with pytest.raises((TypeError, ValueError)) as info:
        HedgingConfig(**fields)
    assert f"HedgingConfig.{field}" in str(info.value)
    assert repr(value) in str(info.value)


def test_policy_and_decorator_arguments_are_checked() -> None:
    with pytest.raises(TypeError):
        Hedging()
    with pytest.raises(TypeError):
        Hedging(HedgingConfig(1.0), delay=2.0)
    with pytest.raises(TypeError):
        Hedging("1.0")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        ResiliencePolicy(hedging=1.0)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        with_hedging(Hedging(delay=1.0), max_hedges=2)
    assert HedgingConfig(1, on=lambda e: True).delay == 1.0


# -- the target: tail latency on a simulated dependency ----------------------------------


def test_hedging_at_the_p95_cuts_the_p99_of_a_dependency_with_rare_slow_calls(
    run: Callable[[Main], Any],
) -> None:
    import math
    import random

    from resilient._demo.overload import p99

    median = 0.01
    rng = random.Random(7)

    def draw() -> float:
        # 1 % of calls take 100 times the median; the rest spread around it.
        if rng.random() < 0.01:
            return 100 * median
        return median * math.exp(0.2 * rng.gauss(0.0, 1.0))

    sample = sorted(draw() for _ in range(20_000))
    p95 = sample[int(0.95 * len(sample))]

    async def dependency() -> None:
        await _clock.sleep_async(draw())

    async def measure(call: Any, n: int) -> list[float]:
        took = []
        for _ in range(n):
            start = _clock.monotonic()
            await call()
            took.append(_clock.monotonic() - start)
        return took

    policy = Hedging(delay=p95)
    stats = policy._stats_for("dependency")
    n = 2000

    async def main() -> tuple[list[float], list[float]]:
        plain = await measure(dependency, n)
        hedged = await measure(lambda: policy.call_async(dependency), n)
        return plain, hedged

    with fake_clock():
        plain, hedged = run(main)
    assert p99(plain) >= 50 * median  # without hedging: the slow calls are the p99
    assert p99(hedged) <= 3 * median
    assert stats.hedges <= 0.06 * n


async def test_an_awaitable_that_is_not_a_coroutine_is_hedged_too() -> None:
    loop = asyncio.get_running_loop()
    futures: list[asyncio.Future[str]] = []

    def call() -> asyncio.Future[str]:
        future = loop.create_future()
        futures.append(future)
        if len(futures) == 2:
            future.set_result("hedge")
        return future

    assert await Hedging(delay=0.01).call_async(call) == "hedge"
    assert len(futures) == 2
    assert futures[0].cancelled()


async def test_an_async_error_not_hedged_on_before_suspending_starts_no_hedge() -> None:
    calls = []

    @with_hedging(0.5, on=(ConnectionError,))
    async def bad() -> None:
        calls.append(1)
        raise KeyError("x")

    with pytest.raises(KeyError):
        await bad()
    assert calls == [1]


def test_a_hung_dependency_never_delays_another_ones_sync_hedges(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from resilient.hedging import hedging as hedging_module

    monkeypatch.setattr(hedging_module, "POOL_SIZE", 2)
    monkeypatch.setattr(hedging_module, "_pools", {})
    release = threading.Event()
    hung = Hedging(HedgingConfig(delay=0.0, max_hedges=1), name="hung-dependency")
    healthy = Hedging(HedgingConfig(delay=0.0, max_hedges=1), name="healthy-dependency")
    started = threading.Barrier(3)

    def hang() -> str:
        started.wait(5)
        release.wait(10)
        return "late"

    caller = threading.Thread(target=hung.call, args=(hang,), daemon=True)
    caller.start()
    try:
        started.wait(5)  # both threads of the hung dependency's pool are taken
        answered: list[str] = []
        other = threading.Thread(target=lambda: answered.append(healthy.call(lambda: "ok")))
        other.start()
        other.join(5)
        assert answered == ["ok"]
    finally:
        release.set()
        caller.join(5)
