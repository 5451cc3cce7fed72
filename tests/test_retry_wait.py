"""RetryConfig(wait=...): the delay from a callable of the attempt, the error
and the result, under the deadline, max_delay and Retry-After rules."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from resilient import RetryConfig, with_retry
from resilient.testing import FakeClock, fake_clock


@pytest.fixture
def clock() -> Iterator[FakeClock]:
    with fake_clock() as c:
        yield c


class Slow(Exception):
    def __init__(self, seconds: float) -> None:
        super().__init__(seconds)
        self.seconds = seconds


class Throttled(Exception):
    def __init__(self, retry_after: float) -> None:
        super().__init__(retry_after)
        self.retry_after = retry_after


def failing(*errors: BaseException) -> Any:
    remaining = list(errors)

    def call() -> str:
        if remaining:
            raise remaining.pop(0)
        return "ok"

    return call


NO_JITTER: dict[str, Any] = {"jitter": 0.0, "initial_delay": 1.0, "multiplier": 2.0}


def test_the_wait_comes_from_the_error(clock: FakeClock) -> None:
    seen: list[tuple[int, Any, Any]] = []

    def wait(attempt: int, error: BaseException | None, result: Any) -> float | None:
        seen.append((attempt, type(error).__name__, result))
        return error.seconds if isinstance(error, Slow) else None

    call = with_retry(max_attempts=4, wait=wait, **NO_JITTER)(
        failing(Slow(0.25), ConnectionError(), Slow(3.0))
    )
    assert call() == "ok"
    # None from wait: the backoff of that attempt (2.0 after the second).
    assert clock.sleeps == [0.25, 2.0, 3.0]
    assert seen == [(1, "Slow", None), (2, "ConnectionError", None), (3, "Slow", None)]


def test_a_retried_result_reaches_wait_with_no_error(clock: FakeClock) -> None:
    results = iter(["busy:0.5", "busy:0.1", "done"])

    def wait(attempt: int, error: BaseException | None, result: Any) -> float | None:
        assert error is None
        return float(result.split(":")[1])

    call = with_retry(
        max_attempts=5, wait=wait, retry_if_result=lambda r: r != "done", **NO_JITTER
    )(lambda: next(results))
    assert call() == "done"
    assert clock.sleeps == [0.5, 0.1]


def test_max_delay_caps_the_chosen_wait(clock: FakeClock) -> None:
    call = with_retry(max_attempts=2, max_delay=5.0, wait=lambda *a: 60.0, **NO_JITTER)(
        failing(ConnectionError())
    )
    assert call() == "ok"
    assert clock.sleeps == [5.0]


def test_a_longer_retry_after_wins_over_the_chosen_wait(clock: FakeClock) -> None:
    call = with_retry(max_attempts=2, wait=lambda *a: 0.1, **NO_JITTER)(failing(Throttled(2.0)))
    assert call() == "ok"
    assert clock.sleeps == [2.0]


def test_the_deadline_stops_a_chosen_wait_that_passes_it(clock: FakeClock) -> None:
    error = ConnectionError("down")
    call = with_retry(max_attempts=3, deadline=1.0, wait=lambda *a: 2.0, **NO_JITTER)(
        failing(error)
    )
    with pytest.raises(ConnectionError) as caught:
        call()
    assert caught.value is error
    assert clock.sleeps == []
    assert any("deadline" in note for note in caught.value.__notes__)


async def test_async_retries_wait_what_the_callable_picks(clock: FakeClock) -> None:
    attempts = 0

    async def call() -> str:
        nonlocal attempts
        attempts += 1
        if attempts < 3:
            raise ConnectionError(attempts)
        return "ok"

    retried = with_retry(max_attempts=3, wait=lambda attempt, e, r: attempt / 10, **NO_JITTER)(call)
    assert await retried() == "ok"
    assert clock.sleeps == [0.1, 0.2]


@pytest.mark.parametrize("bad", [-1.0, float("nan"), "1s", True], ids=["neg", "nan", "str", "bool"])
def test_a_bad_wait_answer_is_a_value_error_naming_wait(clock: FakeClock, bad: Any) -> None:
    call = with_retry(max_attempts=2, wait=lambda *a: bad)(failing(ConnectionError()))
    with pytest.raises(ValueError, match="wait"):
        call()


def test_a_raising_wait_reaches_the_caller_as_itself(clock: FakeClock) -> None:
    own = LookupError("the callback's own")

    def wait(*args: Any) -> float:
        raise own

    call = with_retry(max_attempts=3, wait=wait)(failing(ConnectionError()))
    with pytest.raises(LookupError) as caught:
        call()
    assert caught.value is own
    with pytest.raises(LookupError):
        asyncio.run(with_retry(max_attempts=3, wait=wait)(_araise)())


async def _araise() -> None:
    raise ConnectionError


def test_wait_is_validated_and_goes_through_from_dict_and_to_dict() -> None:
    with pytest.raises(TypeError, match="wait"):
        RetryConfig(wait=3)  # type: ignore[arg-type]

    def pick(attempt: int, error: BaseException | None, result: Any) -> float | None:
        return None

    config = RetryConfig.from_dict({"wait": pick, "max_attempts": 2})
    assert config.wait is pick
    assert config.to_dict()["wait"] is pick
    assert RetryConfig.from_dict(config.to_dict()) == config
