"""The pure GCRA rules: the limit over every interval, bursts, reserved turns
and turns given back."""

from __future__ import annotations

import math
import random

import pytest

from resilient.rate_limit.state import GcraCore


def _most_in_any_window(starts: list[float], length: float) -> int:
    """The most starts in any closed interval of ``length``."""
    starts = sorted(starts)
    best = j = 0
    for i, s in enumerate(starts):
        while starts[j] < s - length - 1e-12:
            j += 1
        best = max(best, i - j + 1)
    return best


@pytest.mark.parametrize(("rate", "period", "burst"), [(10, 1.0, 10), (5, 2.0, 1), (3, 1.0, 7)])
def test_no_interval_holds_more_than_burst_plus_rate(
    rate: float, period: float, burst: int
) -> None:
    rng = random.Random(7)
    core = GcraCore(rate, period, burst)
    now = 1000.0
    starts: list[float] = []
    for _ in range(3000):
        now += rng.expovariate(rate * 3 / period)  # offered three times the rate
        token = core.acquire(now, max_wait=rng.choice([0.0, 0.0, 0.3]))
        if token is not None:
            starts.append(max(now, core.start_of(token)))
    for length in (0.0, 0.05, 0.5, 1.0, 3.0, 10.0):
        assert _most_in_any_window(starts, length) <= burst + rate * length / period + 1e-9
    # ...and it is not merely refusing: offered three times the rate, it admits
    # most of it (with burst=1, a turn nobody arrives for in time is lost).
    span = starts[-1] - starts[0]
    assert len(starts) >= 0.8 * rate * span / period


def test_a_quiet_limiter_admits_a_whole_burst_at_once_then_one_per_interval() -> None:
    core = GcraCore(10, 1.0, 10)
    assert [core.acquire(5.0) is not None for _ in range(11)] == [True] * 10 + [False]
    assert core.retry_after(5.0) == pytest.approx(0.1)
    assert core.acquire(5.1) is not None
    assert core.acquire(5.1) is None


def test_burst_one_spaces_calls_evenly() -> None:
    core = GcraCore(4, 1.0, 1)
    assert core.acquire(0.0) is not None
    assert core.acquire(0.2) is None
    assert core.retry_after(0.2) == pytest.approx(0.05)
    assert core.acquire(0.25) is not None


def test_a_turn_within_max_wait_is_reserved_in_order() -> None:
    core = GcraCore(2, 1.0, 1)
    first = core.acquire(0.0)
    second = core.acquire(0.0, max_wait=1.0)
    third = core.acquire(0.0, max_wait=1.0)
    assert first is not None
    assert second is not None
    assert third is not None
    assert [core.start_of(t) for t in (first, second, third)] == [0.0, 0.5, 1.0]
    # A turn further than max_wait is not reserved: nothing changes.
    assert core.acquire(0.0, max_wait=1.0) is None
    assert core.retry_after(0.0) == pytest.approx(1.5)


def test_the_last_turn_given_back_rolls_the_schedule_back() -> None:
    core = GcraCore(2, 1.0, 1)
    core.acquire(0.0)
    token = core.acquire(0.0, max_wait=1.0)
    assert token is not None
    core.give_back(token)
    again = core.acquire(0.0, max_wait=1.0)
    assert again == token


def test_an_earlier_turn_given_back_is_taken_by_the_next_caller_at_its_time() -> None:
    core = GcraCore(2, 1.0, 1)
    core.acquire(0.0)
    middle = core.acquire(0.0, max_wait=2.0)
    last = core.acquire(0.0, max_wait=2.0)
    assert middle is not None
    assert last is not None
    core.give_back(middle)
    assert core.retry_after(0.1) == pytest.approx(0.4)  # the hole, not the end
    taken = core.acquire(0.1, max_wait=2.0)
    assert taken == middle  # the same start: no extra call in any interval
    assert core.start_of(core.acquire(0.1, max_wait=2.0) or math.nan) == 1.5


def test_holes_whose_time_passed_are_dropped_and_trailing_ones_roll_back() -> None:
    core = GcraCore(2, 1.0, 1)
    tokens = [core.acquire(0.0, max_wait=5.0) for _ in range(4)]  # starts 0, .5, 1, 1.5
    assert all(t is not None for t in tokens)
    core.give_back(tokens[1])  # type: ignore[arg-type]
    core.give_back(tokens[2])  # type: ignore[arg-type]
    core.give_back(tokens[3])  # type: ignore[arg-type]
    # The last three turns were given back: the schedule is back after the first.
    assert core.holes == []
    assert core.start_of(core.acquire(0.0, max_wait=5.0) or math.nan) == 0.5
    core.give_back(core.acquire(0.0, max_wait=5.0) or math.nan)
    stale = core.acquire(0.0, max_wait=5.0)
    follower = core.acquire(0.0, max_wait=5.0)
    assert stale is not None
    assert follower is not None
    core.give_back(stale)
    # Its time passes unused: a late caller cannot start in it.
    assert core.acquire(1.2) is None
    assert core.holes == []


def test_reset_frees_the_whole_burst() -> None:
    core = GcraCore(3, 1.0, 3)
    for _ in range(3):
        core.acquire(0.0)
    assert core.available(0.0) == 0
    core.reset()
    assert core.available(0.0) == 3
