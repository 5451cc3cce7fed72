"""A breaker with a health check probes its dependency early when it is back."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from resilient import (
    CircuitBreaker,
    CircuitBreakerConfig,
    CircuitOpenError,
    CircuitState,
    StateChanged,
)
from resilient.testing import FakeClock, fake_clock


@pytest.fixture
def clock() -> Iterator[FakeClock]:
    with fake_clock() as c:
        yield c


class Check:
    """A health check that answers ``healthy`` and counts its calls."""

    def __init__(self, healthy: bool = False) -> None:
        self.healthy = healthy
        self.calls = 0

    def __call__(self) -> bool:
        self.calls += 1
        return self.healthy


class AsyncCheck(Check):
    async def __call__(self) -> bool:  # type: ignore[override]
        return super().__call__()


def boom() -> None:
    raise OSError("down")


def opened(check: object, interval: float = 5.0) -> CircuitBreaker:
    breaker = CircuitBreaker(
        "dep",
        CircuitBreakerConfig(
            failure_threshold=1,
            recovery_timeout=60.0,
            health_check=check,  # type: ignore[arg-type]
            health_check_interval=interval,
        ),
    )
    with pytest.raises(OSError):
        breaker.call(boom)
    return breaker


def test_an_open_breaker_polls_its_check_at_most_once_per_interval(clock: FakeClock) -> None:
    check = Check()
    breaker = opened(check)
    for _ in range(3):
        with pytest.raises(CircuitOpenError):
            breaker.call(lambda: None)
    assert check.calls == 0  # the interval starts when the breaker opens
    clock.advance(5.0)
    for _ in range(3):
        with pytest.raises(CircuitOpenError):
            breaker.call(lambda: None)
    assert check.calls == 1
    clock.advance(4.9)
    assert breaker.state is CircuitState.OPEN
    assert check.calls == 1
    clock.advance(0.1)
    assert breaker.state is CircuitState.OPEN
    assert check.calls == 2


def test_a_healthy_answer_half_opens_the_breaker_before_its_timer(clock: FakeClock) -> None:
    check = Check()
    breaker = opened(check)
    seen: list[StateChanged] = []
    breaker.subscribe(lambda e: seen.append(e) if isinstance(e, StateChanged) else None)
    clock.advance(5.0)
    with pytest.raises(CircuitOpenError):
        breaker.call(lambda: None)
    check.healthy = True
    clock.advance(5.0)
    assert breaker.call(lambda: "probe") == "probe"  # admitted as a probe
    assert breaker.state is CircuitState.HALF_OPEN
    assert [(e.old_state, e.new_state) for e in seen] == [("open", "half_open")]


def test_a_state_read_polls_the_check_too(clock: FakeClock) -> None:
    check = Check(healthy=True)
    breaker = opened(check)
    clock.advance(5.0)
    assert breaker.state is CircuitState.HALF_OPEN
    assert check.calls == 1


def test_a_check_that_raises_counts_as_unhealthy(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    def broken() -> bool:
        raise ConnectionError("no route")

    breaker = opened(broken)
    clock.advance(5.0)
    with caplog.at_level(logging.WARNING, logger="resilient"):
        assert breaker.state is CircuitState.OPEN
    assert "health check raised" in caplog.text


def test_a_check_never_swallows_keyboard_interrupt(clock: FakeClock) -> None:
    def interrupted() -> bool:
        raise KeyboardInterrupt

    breaker = opened(interrupted)
    clock.advance(5.0)
    with pytest.raises(KeyboardInterrupt):
        breaker.call(lambda: None)


def test_the_check_is_not_polled_unless_open(clock: FakeClock) -> None:
    check = Check(healthy=True)
    breaker = CircuitBreaker("dep", CircuitBreakerConfig(health_check=check))
    clock.advance(100.0)
    assert breaker.call(lambda: 1) == 1
    breaker.force_open()
    clock.advance(100.0)
    assert breaker.state is CircuitState.FORCED_OPEN
    assert check.calls == 0


def test_the_timer_still_half_opens_without_a_healthy_answer(clock: FakeClock) -> None:
    breaker = opened(Check(), interval=30.0)
    clock.advance(60.0)
    assert breaker.state is CircuitState.HALF_OPEN


async def test_an_async_check_is_awaited_by_async_calls(clock: FakeClock) -> None:
    check = AsyncCheck(healthy=True)
    breaker = opened(check)
    clock.advance(5.0)
    assert breaker.state is CircuitState.OPEN  # a sync read cannot await it
    assert check.calls == 0

    async def work() -> str:
        return "probe"

    assert await breaker.call_async(work) == "probe"
    assert check.calls == 1
    assert breaker.state is CircuitState.HALF_OPEN


async def test_an_async_check_is_awaited_by_async_with(clock: FakeClock) -> None:
    check = AsyncCheck(healthy=True)
    breaker = opened(check)
    clock.advance(5.0)
    async with breaker:
        pass
    assert check.calls == 1


async def test_a_sync_check_serves_async_calls(clock: FakeClock) -> None:
    check = Check(healthy=True)
    breaker = opened(check)
    clock.advance(5.0)

    async def work() -> str:
        return "probe"

    assert await breaker.call_async(work) == "probe"
    assert check.calls == 1


async def test_an_async_check_that_raises_counts_as_unhealthy(clock: FakeClock) -> None:
    async def broken() -> bool:
        raise ConnectionError("no route")

    breaker = opened(broken)
    clock.advance(5.0)

    async def work() -> None:
        return None

    with pytest.raises(CircuitOpenError):
        await breaker.call_async(work)


def test_a_sync_callable_returning_a_coroutine_is_not_left_unawaited(
    clock: FakeClock, recwarn: pytest.WarningsRecorder
) -> None:
    async def healthy() -> bool:
        return True

    breaker = opened(lambda: healthy())
    clock.advance(5.0)
    assert breaker.state is CircuitState.OPEN
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]


def test_a_decorated_call_polls_the_check_too(clock: FakeClock) -> None:
    """A decorated plain function rejects an open breaker without its lock,
    except when a health check is due: then it asks the check."""
    check = Check()
    breaker = opened(check)

    @breaker
    def call() -> str:
        return "probe"

    clock.advance(5.0)
    with pytest.raises(CircuitOpenError):
        call()
    assert check.calls == 1
    check.healthy = True
    clock.advance(5.0)
    assert call() == "probe"
    assert check.calls == 2
    assert breaker.state is CircuitState.HALF_OPEN


async def test_a_decorated_coroutine_awaits_an_async_check(clock: FakeClock) -> None:
    check = AsyncCheck(healthy=True)
    breaker = opened(check)

    @breaker
    async def call() -> str:
        return "probe"

    clock.advance(5.0)
    assert await call() == "probe"
    assert check.calls == 1
    assert breaker.state is CircuitState.HALF_OPEN
