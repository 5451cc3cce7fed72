"""Retrying a block: ``retrying`` / ``aretrying``."""

from __future__ import annotations

import asyncio
import functools
import random
from collections.abc import Callable, Iterable, Iterator

import pytest

import resilient
from resilient import CircuitBreaker, CircuitOpenError, Retry, RetryConfig, aretrying, retrying
from resilient.attempts import Attempt
from resilient.events import Event, RetriesExhausted, RetryAttempted
from resilient.testing import FakeClock, fake_clock

NO_JITTER = {"jitter": 0.0}


@pytest.fixture
def clock() -> Iterator[FakeClock]:
    with fake_clock() as c:
        yield c


class Flaky:
    """Raises the given errors in turn, then returns its count of calls."""

    def __init__(self, *errors: BaseException) -> None:
        self.errors = list(errors)
        self.calls = 0

    def __call__(self) -> int:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return self.calls


def run(op: Callable[[], object], attempts: Iterable[Attempt]) -> object:
    """``op()`` in a retried block."""
    for attempt in attempts:
        with attempt:
            result = op()
    return result


def fail() -> None:
    raise ConnectionError


def test_success_after_failures_waits_like_the_decorator(clock: FakeClock) -> None:
    op = Flaky(ConnectionError(), ConnectionError())
    numbers = []
    for attempt in retrying(max_attempts=5, initial_delay=0.5, **NO_JITTER):
        numbers.append(attempt.number)
        with attempt:
            result = op()
    assert result == 3
    assert numbers == [1, 2, 3]
    assert clock.sleeps == [0.5, 1.0]


def test_success_at_once_never_waits(clock: FakeClock) -> None:
    runs = 0
    for attempt in retrying():
        with attempt:
            runs += 1
    assert runs == 1
    assert clock.sleeps == []


def test_exhaustion_re_raises_the_last_error_with_the_decorators_note(clock: FakeClock) -> None:
    last = ConnectionError("third")
    op = Flaky(ConnectionError("first"), ConnectionError("second"), last)
    with pytest.raises(ConnectionError) as info:
        run(op, retrying(max_attempts=3, **NO_JITTER))
    assert info.value is last
    assert info.value.__notes__ == ["resilient: gave up after 3 attempts"]
    assert op.calls == 3
    assert clock.sleeps == [1.0, 2.0]


def test_an_error_retry_on_does_not_accept_is_raised_at_once(clock: FakeClock) -> None:
    op = Flaky(ConnectionError(), KeyError("k"))
    with pytest.raises(KeyError) as info:
        run(op, retrying(retry_on=(ConnectionError,), **NO_JITTER))
    assert op.calls == 2
    assert info.value.__notes__ == ["resilient: gave up after 2 attempts (KeyError is not retried)"]
    assert clock.sleeps == [1.0]


@pytest.mark.parametrize("error", [KeyboardInterrupt(), SystemExit(3), GeneratorExit()])
def test_base_exceptions_are_never_retried(clock: FakeClock, error: BaseException) -> None:
    op = Flaky(error)
    with pytest.raises(type(error)):
        run(op, retrying(max_attempts=5))
    assert op.calls == 1
    assert clock.sleeps == []


def test_the_deadline_counts_from_the_first_attempt(clock: FakeClock) -> None:
    op = Flaky(*(ConnectionError() for _ in range(10)))
    with pytest.raises(ConnectionError) as info:
        run(op, retrying(max_attempts=10, initial_delay=1.0, deadline=4.0, **NO_JITTER))
    assert clock.sleeps == [1.0, 2.0]
    assert "deadline" in info.value.__notes__[0]


def test_retry_after_is_honoured(clock: FakeClock) -> None:
    error = ConnectionError()
    error.retry_after = 7.0  # type: ignore[attr-defined]
    op = Flaky(error)
    for attempt in retrying(max_attempts=2, max_delay=30.0, **NO_JITTER):
        with attempt:
            op()
    assert clock.sleeps == [7.0]


def test_a_ready_retry_names_its_events_and_counts_retries(clock: FakeClock) -> None:
    seen: list[Event] = []
    retry = Retry(RetryConfig(max_attempts=2, **NO_JITTER), name="block")  # type: ignore[arg-type]
    retry.subscribe(seen.append)
    with pytest.raises(ConnectionError):
        run(fail, retrying(retry))
    assert [(type(e), e.name) for e in seen] == [
        (RetryAttempted, "block"),
        (RetriesExhausted, "block"),
    ]
    assert retry._stats_for("block").retries == 1


def test_seeded_jitter_repeats_exactly(clock: FakeClock) -> None:
    with pytest.raises(ConnectionError):
        run(fail, retrying(max_attempts=3, jitter=0.2, rng=random.Random(5)))
    mirror = random.Random(5)
    assert clock.sleeps == [2.0 ** (n - 1) * (1 + mirror.uniform(-0.2, 0.2)) for n in (1, 2)]


def test_an_open_breaker_inside_the_block_is_waited_out(clock: FakeClock) -> None:
    config = resilient.CircuitBreakerConfig(failure_threshold=1, recovery_timeout=5.0)
    breaker = CircuitBreaker("dep", config)
    calls: list[float] = []

    def call() -> str:
        calls.append(clock.now())
        if len(calls) == 1:
            raise ConnectionError
        return "ok"

    for attempt in retrying(max_attempts=3, initial_delay=1.0, max_delay=10.0, **NO_JITTER):
        with attempt:
            result = breaker.call(call)
    # The first failure opened the breaker; the second attempt met it open
    # and waited out its remaining time; the third went through.
    assert result == "ok"
    assert len(calls) == 2
    assert calls[1] >= 5.0
    assert clock.sleeps[0] == 1.0


def test_an_open_breaker_that_outlasts_max_delay_is_given_up_at_once(clock: FakeClock) -> None:
    config = resilient.CircuitBreakerConfig(failure_threshold=1, recovery_timeout=60.0)
    breaker = CircuitBreaker("dep", config)
    with pytest.raises(CircuitOpenError):
        run(
            functools.partial(breaker.call, Flaky(ConnectionError())),
            retrying(max_attempts=5, initial_delay=1.0, max_delay=2.0, **NO_JITTER),
        )
    assert clock.sleeps == [1.0]


def test_set_active_false_runs_the_block_once(clock: FakeClock) -> None:
    resilient.set_active(False)
    op = Flaky(ConnectionError())
    with pytest.raises(ConnectionError):
        run(op, retrying(max_attempts=5))
    assert op.calls == 1


def test_an_attempt_not_used_as_a_block_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="with attempt:"):
        for _attempt in retrying(max_attempts=3):
            pass


def test_an_attempt_used_twice_is_an_error(clock: FakeClock) -> None:
    attempts = iter(retrying(max_attempts=3))
    attempt = next(attempts)
    with attempt:
        pass
    with pytest.raises(RuntimeError, match="attempt 1 was already used"), attempt:
        pass


def test_bad_settings_are_errors_at_once() -> None:
    with pytest.raises(TypeError, match=r"RetryConfig\.max_attempts must be an int"):
        retrying(max_attempts="3")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="retry_if_result has no result"):
        retrying(retry_if_result=lambda r: True)
    with pytest.raises(TypeError, match="either a Retry or a config with fields"):
        retrying(Retry(), max_attempts=2)
    with pytest.raises(TypeError, match="config must be a RetryConfig or a Retry, got 3"):
        retrying(3)  # type: ignore[arg-type]


def test_break_leaves_the_loop_without_waiting(clock: FakeClock) -> None:
    for attempt in retrying(max_attempts=3):
        with attempt:
            raise ConnectionError
        break  # the error was swallowed for a retry; leaving now waits for nothing
    assert clock.sleeps == []


async def test_async_attempts(clock: FakeClock) -> None:
    op = Flaky(ConnectionError(), TimeoutError())
    numbers = []
    async for attempt in aretrying(max_attempts=3, initial_delay=0.25, **NO_JITTER):
        numbers.append(attempt.number)
        with attempt:
            await asyncio.sleep(0)
            result = op()
    assert (result, numbers) == (3, [1, 2, 3])
    assert clock.sleeps == [0.25, 0.5]


async def test_async_exhaustion_re_raises_with_the_note(clock: FakeClock) -> None:
    async def run_async() -> None:
        async for attempt in aretrying(max_attempts=2, **NO_JITTER):
            with attempt:
                raise ConnectionError("x")

    with pytest.raises(ConnectionError) as info:
        await run_async()
    assert info.value.__notes__ == ["resilient: gave up after 2 attempts"]


async def test_cancellation_during_the_block_is_never_retried() -> None:
    attempts = 0

    async def run() -> None:
        nonlocal attempts
        async for attempt in aretrying(max_attempts=5, initial_delay=0.0):
            with attempt:
                attempts += 1
                await asyncio.sleep(10)

    task = asyncio.create_task(run())
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert attempts == 1


async def test_cancellation_during_the_wait_ends_the_loop() -> None:
    attempts = 0

    async def run() -> None:
        nonlocal attempts
        async for attempt in aretrying(max_attempts=5, initial_delay=10.0, **NO_JITTER):
            with attempt:
                attempts += 1
                raise ConnectionError

    task = asyncio.create_task(run())
    for _ in range(3):
        await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert attempts == 1
