"""A clock that goes back (freezegun or time-machine moved back a day, a
stepped system clock, a test clock set back): a tripped breaker stays open
no longer than its recovery time from the latest reading, and a rate limiter
refuses no longer than one turn, never for the time the clock went back.

The pure rules are driven with explicit times; the policies with
time-machine, which moves the clock every policy reads (see
``resilient._runtime.clock``) without any real wait.
"""

from __future__ import annotations

import pytest

from resilient import (
    CircuitBreaker,
    CircuitBreakerConfig,
    CircuitOpenError,
    CircuitState,
    RateLimiter,
    RateLimitExceededError,
)
from resilient.circuit_breaker.state import REJECT, BreakerCore
from resilient.rate_limit.state import GcraCore

DAY = 86_400.0


def _tripped(now: float, **fields: object) -> BreakerCore:
    core = BreakerCore(CircuitBreakerConfig(failure_threshold=1, recovery_timeout=30.0, **fields))
    core.on_failure(core.acquire(now), False, now)
    assert core.current(now) is CircuitState.OPEN
    return core


def test_an_open_breaker_stays_open_its_recovery_time_from_the_latest_reading() -> None:
    core = _tripped(DAY + 100.0)
    back = 100.0  # a day earlier
    assert core.remaining(back) > 30.0  # as recorded: 86,430 s
    assert core.acquire(back) == REJECT  # reads the time: the breaker's times follow it back
    assert core.remaining(back) == 30.0
    assert core.reject_until == back + 30.0
    assert core.current(back + 29.9) is CircuitState.OPEN
    assert core.current(back + 30.0) is CircuitState.HALF_OPEN


def test_a_half_open_limit_follows_the_clock_back() -> None:
    core = _tripped(DAY, max_half_open_duration=10.0)
    core.recover_early(DAY + 1.0)
    assert core.current(DAY + 1.0) is CircuitState.HALF_OPEN
    assert core.current(5.0) is CircuitState.HALF_OPEN
    assert core.current(15.0) is CircuitState.OPEN  # the 10 s limit, from the latest reading


def test_a_health_check_is_due_its_interval_after_the_latest_reading() -> None:
    core = _tripped(DAY, health_check=lambda: True, health_check_interval=5.0)
    assert core.health_due(DAY + 5.0)
    assert not core.health_due(0.0)  # a day back: checked "now"
    assert core.health_due(5.0)  # not a day later


def test_a_breaker_tripped_before_time_machine_moved_back_a_day_recovers_in_30s() -> None:
    time_machine = pytest.importorskip("time_machine")
    breaker = CircuitBreaker(
        "clock-back", CircuitBreakerConfig(failure_threshold=1, recovery_timeout=30.0)
    )
    with time_machine.travel("2026-01-02", tick=False) as traveller:
        with pytest.raises(ZeroDivisionError):
            breaker.call(lambda: 1 / 0)
        traveller.shift(-DAY)
        with pytest.raises(CircuitOpenError) as rejected:
            breaker.call(lambda: "no")
        assert rejected.value.remaining <= 30.0
        traveller.shift(30.0)
        assert breaker.call(lambda: "probe") == "probe"


# -- the rate limiter ------------------------------------------------------------------------


@pytest.mark.parametrize("max_wait", [0.0, 0.5])
def test_gcra_refuses_no_longer_than_a_turn_after_the_clock_went_back(max_wait: float) -> None:
    core = GcraCore(2.0, 1.0, 2)  # a turn every 0.5 s, bursts of 2
    now = DAY
    while core.acquire(now, max_wait) is not None:  # every turn in reach taken
        pass
    back = now - DAY
    assert core.retry_after(back) == pytest.approx(0.5 + max_wait)
    assert core.acquire(back + 0.5 + max_wait + 1e-6, max_wait) is not None


def test_gcra_drops_the_holes_past_the_clock_that_went_back() -> None:
    core = GcraCore(1.0, 1.0, 1)
    tokens = [core.acquire(DAY, 5.0) for _ in range(4)]
    core.give_back(tokens[1])  # a hole, a day ahead once the clock goes back
    assert core.holes
    assert core.acquire(0.0, 0.0) is None
    assert core.holes == []
    assert core.retry_after(0.0) == pytest.approx(1.0 + 5.0)


def test_a_rate_limiter_refuses_for_a_turn_not_a_day_after_time_machine_moved_back() -> None:
    time_machine = pytest.importorskip("time_machine")
    limiter = RateLimiter("clock-back", rate=1.0, period=1.0)
    with time_machine.travel("2026-01-02", tick=False) as traveller:
        assert limiter.call(lambda: "first") == "first"
        traveller.shift(-DAY)
        with pytest.raises(RateLimitExceededError) as refused:
            limiter.call(lambda: "no")
        assert refused.value.retry_after == pytest.approx(1.0)
        traveller.shift(1.0)
        assert limiter.call(lambda: "again") == "again"
