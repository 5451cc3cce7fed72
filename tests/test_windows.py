from __future__ import annotations

import pytest

from resilient._windows import CountWindow, TimeWindow


def totals(window: CountWindow | TimeWindow) -> tuple[int, int, int]:
    return window.calls, window.failures, window.slow


def test_count_window_keeps_the_last_n_outcomes() -> None:
    window = CountWindow(3)
    window.record(True, False, 0.0)
    window.record(False, True, 0.0)
    assert totals(window) == (2, 1, 1)
    window.record(True, True, 0.0)
    assert totals(window) == (3, 2, 2)
    window.record(False, False, 0.0)  # evicts the first failure
    assert totals(window) == (3, 1, 2)
    window.record(False, False, 0.0)  # evicts the slow success
    assert totals(window) == (3, 1, 1)


def test_count_window_add_successes_evicts_oldest_first() -> None:
    window = CountWindow(4)
    for failure, slow in [(True, False), (True, True), (False, True)]:
        window.record(failure, slow, 0.0)
    window.add_successes(2, 0.0)  # fills the free slot, then evicts (True, False)
    assert totals(window) == (4, 1, 2)
    window.add_successes(1, 0.0)  # evicts (True, True)
    assert totals(window) == (4, 0, 1)
    window.add_successes(10, 0.0)
    assert totals(window) == (4, 0, 0)


def test_count_window_add_successes_wraps_around_the_ring() -> None:
    reference = CountWindow(5)
    fast = CountWindow(5)
    pattern = [(True, False), (False, True), (True, True), (False, False)] * 3
    for failure, slow in pattern:
        reference.record(failure, slow, 0.0)
        fast.record(failure, slow, 0.0)
    for _ in range(3):
        reference.record(False, False, 0.0)
    fast.add_successes(3, 0.0)
    assert totals(fast) == totals(reference)
    assert bytes(fast._ring) == bytes(reference._ring)


def test_count_window_clear() -> None:
    window = CountWindow(2)
    window.record(True, True, 0.0)
    window.clear()
    assert totals(window) == (0, 0, 0)
    window.record(False, False, 0.0)
    assert totals(window) == (1, 0, 0)


def test_time_window_forgets_outcomes_older_than_its_duration() -> None:
    window = TimeWindow(3)
    window.record(True, False, 100.2)
    window.record(False, True, 101.5)
    window.record(False, False, 102.9)
    assert totals(window) == (3, 1, 1)
    window.expire(103.0)  # second 100 slid out
    assert totals(window) == (2, 0, 1)
    window.record(True, False, 104.0)  # second 101 slid out
    assert totals(window) == (2, 1, 0)
    window.expire(1000.0)  # everything
    assert totals(window) == (0, 0, 0)


def test_time_window_rounds_fractional_durations_up() -> None:
    window = TimeWindow(0.5)
    window.record(True, False, 10.1)
    window.record(True, False, 10.9)
    assert totals(window) == (2, 2, 0)
    window.expire(11.0)
    assert totals(window) == (0, 0, 0)


def test_time_window_add_successes_lands_in_the_current_second() -> None:
    window = TimeWindow(2)
    window.add_successes(5, 50.0)
    window.record(True, False, 50.5)
    assert totals(window) == (6, 1, 0)
    window.expire(52.0)
    assert totals(window) == (0, 0, 0)


def test_time_window_ignores_a_clock_that_steps_back() -> None:
    window = TimeWindow(2)
    window.record(True, False, 10.0)
    window.expire(9.0)
    assert totals(window) == (1, 1, 0)


@pytest.mark.parametrize("size", [1, 10, 1000])
def test_count_window_of_any_size_matches_a_naive_list(size: int) -> None:
    import random

    rng = random.Random(size)
    window = CountWindow(size)
    history: list[tuple[bool, bool]] = []
    for _ in range(3 * size + 7):
        if rng.random() < 0.3:
            k = rng.randint(1, size + 2)
            window.add_successes(k, 0.0)
            history.extend([(False, False)] * k)
        else:
            outcome = (rng.random() < 0.5, rng.random() < 0.5)
            window.record(*outcome, 0.0)
            history.append(outcome)
        recent = history[-size:]
        assert totals(window) == (
            len(recent),
            sum(f for f, _ in recent),
            sum(s for _, s in recent),
        )
