"""No policy counts, retries, converts or swallows a ``BaseException`` that is
not an ``Exception``: KeyboardInterrupt, SystemExit, asyncio.CancelledError,
GeneratorExit. Each one passes through every policy as the very same object,
and leaves nothing behind: no failure counted, no retry, no fallback, no
permit held.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

import resilient
from resilient import (
    Bulkhead,
    BulkheadConfig,
    Chaos,
    CircuitBreaker,
    CircuitBreakerConfig,
    CircuitOpenError,
    Fallback,
    Registry,
    Resilience,
    ResiliencePolicy,
    Retry,
    RetryConfig,
    Timeout,
    events,
)
from resilient.testing import FakeClock, fake_clock

BASE_EXCEPTIONS = [KeyboardInterrupt, SystemExit, asyncio.CancelledError, GeneratorExit]
# asyncio re-raises these two out of the event loop instead of into the awaiting task.
LOOP_ESCAPING = (KeyboardInterrupt, SystemExit)


@pytest.fixture(autouse=True)
def clock() -> Iterator[FakeClock]:
    with fake_clock() as c:
        yield c


@pytest.fixture
def seen() -> Iterator[list[events.Event]]:
    got: list[events.Event] = []
    unsubscribe = resilient.subscribe(got.append)
    yield got
    unsubscribe()


@dataclass
class Case:
    """A policy, and what it must look like after a BaseException went through."""

    name: str
    make: Callable[[], Any]
    untouched: Callable[[Any], None]


def _breaker_untouched(breaker: CircuitBreaker) -> None:
    metrics = breaker.metrics()
    assert metrics.state == "closed"
    assert (metrics.calls, metrics.failures, metrics.consecutive_failures) == (0, 0, 0)


def _bulkhead_untouched(bulkhead: Bulkhead) -> None:
    metrics = bulkhead.metrics()
    assert (metrics.active, metrics.queued, metrics.rejected) == (0, 0, 0)


def _nothing(_: Any) -> None:
    pass


def _composed() -> Resilience:
    policy = ResiliencePolicy(
        circuit_breaker=CircuitBreakerConfig(failure_threshold=1),
        retry=RetryConfig(max_attempts=3, retry_on=(BaseException,)),
        timeout=5.0,
        bulkhead=BulkheadConfig(1),
        fallback=Fallback("fallback", on=(BaseException,)),
    )
    return Resilience("base", policy, registry=Registry())


def _composed_untouched(composed: Resilience) -> None:
    assert composed.breaker is not None
    assert composed.bulkhead is not None
    _breaker_untouched(composed.breaker)
    _bulkhead_untouched(composed.bulkhead)


CASES = [
    Case(
        "breaker",
        lambda: CircuitBreaker("base", CircuitBreakerConfig(failure_threshold=1)),
        _breaker_untouched,
    ),
    Case(
        "breaker-timed",
        lambda: CircuitBreaker(
            "base", CircuitBreakerConfig(failure_threshold=1, slow_call_duration=1.0)
        ),
        _breaker_untouched,
    ),
    Case("retry", lambda: Retry(RetryConfig(max_attempts=5, retry_on=(BaseException,))), _nothing),
    Case("timeout", lambda: Timeout(5.0), _nothing),
    Case("fallback", lambda: Fallback("fallback", on=(BaseException,)), _nothing),
    Case("bulkhead", lambda: Bulkhead("base", max_concurrent=1), _bulkhead_untouched),
    Case("chaos", lambda: Chaos(latency=0.5), _nothing),
    Case("with_resilience", _composed, _composed_untouched),
]
IDS = [case.name for case in CASES]


def _raiser(error: BaseException, calls: list[int]) -> Callable[[], None]:
    def fn() -> None:
        calls.append(1)
        raise error

    return fn


def _async_raiser(error: BaseException, calls: list[int]) -> Callable[[], Any]:
    async def fn() -> None:
        calls.append(1)
        await asyncio.sleep(0)
        raise error

    return fn


def _quiet(seen: list[events.Event]) -> None:
    """No event says a failure was counted, retried or answered for."""
    loud = (
        events.CallFailed,
        events.CallSucceeded,
        events.RetryAttempted,
        events.RetriesExhausted,
        events.FallbackUsed,
        events.TimedOut,
        events.StateChanged,
    )
    assert [e for e in seen if isinstance(e, loud)] == []


@pytest.mark.parametrize("kind", BASE_EXCEPTIONS)
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_sync_call_passes_it_through_untouched(
    case: Case, kind: type[BaseException], seen: list[events.Event]
) -> None:
    policy = case.make()
    error = kind()
    calls: list[int] = []
    with pytest.raises(kind) as info:
        policy.call(_raiser(error, calls))
    assert info.value is error
    assert calls == [1], "never retried"
    assert not getattr(error, "__notes__", None)
    case.untouched(policy)
    _quiet(seen)


@pytest.mark.parametrize("kind", BASE_EXCEPTIONS)
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_async_call_passes_it_through_untouched(
    case: Case, kind: type[BaseException], seen: list[events.Event]
) -> None:
    policy = case.make()
    error = kind()
    calls: list[int] = []

    async def main() -> None:
        await policy.call_async(_async_raiser(error, calls))

    with pytest.raises(kind) as info:
        asyncio.run(main())
    assert info.value is error
    assert calls == [1]
    case.untouched(policy)
    _quiet(seen)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_cancelling_the_task_is_neither_success_nor_failure(
    case: Case, seen: list[events.Event]
) -> None:
    policy = case.make()
    calls: list[int] = []

    async def main() -> None:
        never: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        async def fn() -> None:
            calls.append(1)
            await never

        task = asyncio.ensure_future(policy.call_async(fn))
        while not calls:
            await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert task.cancelled()

    asyncio.run(main())
    assert calls == [1]
    case.untouched(policy)
    _quiet(seen)


@pytest.mark.parametrize("kind", BASE_EXCEPTIONS)
def test_a_half_open_probe_interrupted_gives_its_permit_back(
    clock: FakeClock, kind: type[BaseException]
) -> None:
    cfg = CircuitBreakerConfig(failure_threshold=1, recovery_timeout=1.0, success_threshold=1)
    breaker = CircuitBreaker("probe", cfg)
    with pytest.raises(ZeroDivisionError):
        breaker.call(lambda: 1 / 0)
    clock.advance(1.0)
    with pytest.raises(kind):
        breaker.call(_raiser(kind(), []))
    assert breaker.state == "half_open"  # neither reopened nor closed
    assert breaker.call(lambda: "probe") == "probe"  # the permit came back
    assert breaker.state == "closed"


def test_an_interrupted_call_does_not_break_a_run_of_failures() -> None:
    breaker = CircuitBreaker("run", CircuitBreakerConfig(failure_threshold=2))
    with pytest.raises(ZeroDivisionError):
        breaker.call(lambda: 1 / 0)
    with pytest.raises(KeyboardInterrupt):
        breaker.call(_raiser(KeyboardInterrupt(), []))
    with pytest.raises(ZeroDivisionError):
        breaker.call(lambda: 1 / 0)
    with pytest.raises(CircuitOpenError):
        breaker.call(lambda: None)


def test_retry_does_not_retry_even_when_told_to_retry_everything(clock: FakeClock) -> None:
    calls: list[int] = []
    retry = Retry(
        RetryConfig(max_attempts=5, retry_on=lambda e: True, retry_if_result=lambda r: True)
    )
    with pytest.raises(SystemExit):
        retry.call(_raiser(SystemExit(3), calls))
    assert calls == [1]
    assert clock.sleeps == []


def test_an_interrupt_during_a_retry_wait_ends_the_call() -> None:
    calls: list[int] = []

    def sleep_interrupted(seconds: float) -> None:
        raise KeyboardInterrupt

    retry = Retry(RetryConfig(max_attempts=5))
    previous = resilient._runtime.clock.set_clock(
        resilient._runtime.clock.Clock(sleep=sleep_interrupted, monotonic=lambda: 0.0)
    )
    try:
        with pytest.raises(KeyboardInterrupt):
            retry.call(_raiser(ConnectionError(), calls))
    finally:
        resilient._runtime.clock.set_clock(previous)
    assert calls == [1]


def test_timeout_in_signal_mode_passes_it_through() -> None:
    error = KeyboardInterrupt()
    with pytest.raises(KeyboardInterrupt) as info:
        Timeout(5.0, mode="signal").call(_raiser(error, []))
    assert info.value is error


def test_a_stack_of_policies_passes_it_through_and_holds_nothing(
    seen: list[events.Event],
) -> None:
    breaker = CircuitBreaker("stack", CircuitBreakerConfig(failure_threshold=1))
    bulkhead = Bulkhead("stack", max_concurrent=1)
    calls: list[int] = []

    @Fallback("fallback", on=(BaseException,))
    @Retry(RetryConfig(max_attempts=3, retry_on=(BaseException,)))
    @breaker
    @bulkhead
    @Timeout(5.0)
    @Chaos(latency=0.1)
    def call() -> None:
        calls.append(1)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        call()
    assert calls == [1]
    _breaker_untouched(breaker)
    _bulkhead_untouched(bulkhead)
    assert bulkhead.metrics().completed == 0  # interrupted: it never finished
    _quiet(seen)
