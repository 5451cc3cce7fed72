from __future__ import annotations

import math
import sys

import pytest

from resilient.circuit_breaker.windows import MAX_BUCKETS, CountWindow, TimeWindow


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


@pytest.mark.parametrize("bad", [0.5, 0.01], ids=["often-bad", "rarely-bad"])
@pytest.mark.parametrize("size", [1, 10, 1000])
def test_count_window_of_any_size_matches_a_naive_list(size: int, bad: float) -> None:
    # Rarely bad: long runs of successes before the first failure (the ring
    # is made then) and after a clear (it is dropped).
    import random

    rng = random.Random(size)
    window = CountWindow(size)
    history: list[tuple[bool, bool]] = []
    for _ in range(6 * size + 7):
        roll = rng.random()
        if roll < 0.01:
            window.clear()
            history = []
        elif roll < 0.3:
            k = rng.randint(1, size + 2)
            window.add_successes(k, 0.0)
            history.extend([(False, False)] * k)
        else:
            outcome = (rng.random() < bad, rng.random() < bad)
            window.record(*outcome, 0.0)
            history.append(outcome)
        recent = history[-size:]
        assert totals(window) == (
            len(recent),
            sum(f for f, _ in recent),
            sum(s for _, s in recent),
        )


# -- bounded memory: per-second buckets up to MAX_BUCKETS s, wider beyond ----------


@pytest.mark.parametrize(
    ("duration", "width", "buckets"),
    [
        (1, 1, 1),
        (60, 1, 60),
        (MAX_BUCKETS, 1, MAX_BUCKETS),
        (MAX_BUCKETS + 1, 2, (MAX_BUCKETS + 2) // 2),
        (86_400, 675, MAX_BUCKETS),
        (1e9, 7_812_500, MAX_BUCKETS),
    ],
)
def test_time_window_buckets_are_seconds_up_to_the_boundary_then_wider(
    duration: float, width: int, buckets: int
) -> None:
    window = TimeWindow(duration)
    assert window.width == width
    assert len(window._calls) == buckets
    assert width * (buckets - 1) < duration <= width * buckets


@pytest.mark.parametrize("duration", [86_400.0, 1e8, 1e9, 1e15])
def test_a_long_time_window_is_small_and_works(duration: float) -> None:
    window = TimeWindow(duration)
    size = sys.getsizeof(window._calls)
    assert size < 1024
    window.record(True, False, 5.0)
    window.add_successes(3, 6.0)
    assert totals(window) == (4, 1, 0)
    arrays = (window._calls, window._failures, window._slow)
    assert sum(sys.getsizeof(a) for a in arrays) < 2048  # no slow call: no slow array
    window.expire(5.0 + duration * 2)
    assert totals(window) == (0, 0, 0)


def test_a_one_day_window_forgets_an_outcome_within_one_bucket_of_a_day() -> None:
    window = TimeWindow(86_400)  # buckets of 675 s
    window.record(True, False, 675.0 * 10 + 100.0)  # in bucket 10, 100 s after its start
    window.expire(675.0 * 10 + 86_400 - 1)  # bucket 137: bucket 10 is 127 buckets back
    assert totals(window) == (1, 1, 0)
    window.expire(675.0 * 138)  # bucket 138: bucket 10 slid out
    assert totals(window) == (0, 0, 0)  # after 86,300 s: within 675 s of a day


def test_time_window_add_successes_goes_to_the_bucket_of_its_time() -> None:
    window = TimeWindow(3)
    window.record(False, False, 11.0)
    window.add_successes(4, 10.5)  # made in second 10, folded later
    window.record(True, False, 12.0)
    assert totals(window) == (6, 1, 0)
    window.expire(13.0)  # second 10 slides out, with its successes
    assert totals(window) == (2, 1, 0)
    window.add_successes(7, 9.0)  # made in a second already gone: not counted
    assert totals(window) == (2, 1, 0)


@pytest.mark.parametrize("duration", [1.0, 2.5, 7.0, 200.0, 1000.0])
def test_time_window_of_any_width_matches_a_naive_list(duration: float) -> None:
    import random

    rng = random.Random(int(duration * 10))
    window = TimeWindow(duration)
    width = window.width
    buckets = math.ceil(duration / width)
    history: list[tuple[float, bool, bool]] = []
    now = 1000.0
    for _ in range(600):
        now += rng.choice([0.0, 0.3, 1.0, width / 2, width * 3])
        if rng.random() < 0.3:
            k = rng.randint(1, 5)
            window.add_successes(k, now)
            history.extend([(now, False, False)] * k)
        else:
            outcome = (rng.random() < 0.5, rng.random() < 0.5)
            window.record(*outcome, now)
            history.append((now, *outcome))
        if rng.random() < 0.2:
            window.expire(now)
        current = now // width
        kept = [(f, s) for t, f, s in history if current - t // width < buckets]
        window.expire(now)
        assert totals(window) == (len(kept), sum(f for f, _ in kept), sum(s for _, s in kept))


def test_a_bucket_past_32_bits_widens_its_counts_and_keeps_them() -> None:
    window = TimeWindow(60)
    window.add_successes(2**32 - 1, 5.0)  # a 32-bit bucket's most
    window.record(True, True, 5.0)  # one more: every array it touches must widen
    window.add_successes(2**32, 5.0)
    assert totals(window) == (2 * 2**32 + 0, 1, 1)
    window.record(True, False, 6.0)
    assert totals(window) == (2 * 2**32 + 1, 2, 1)
    window.expire(5.0 + 60.0)  # second 5 slides out, second 6 stays
    assert totals(window) == (1, 1, 0)


def test_a_clock_gone_back_a_whole_window_starts_the_window_afresh() -> None:
    window = TimeWindow(60)
    window.record(True, False, 1_000.0)
    window.record(True, False, 100.0)  # the clock went back 900 s: more than the window
    assert totals(window) == (1, 1, 0)  # the outcome "from the future" is gone
    window.expire(161.0)  # and the new one slides out a window after it
    assert totals(window) == (0, 0, 0)


def test_a_clock_gone_back_less_than_a_window_keeps_the_newest_bucket() -> None:
    window = TimeWindow(60)
    window.record(True, False, 1_000.0)
    window.record(False, False, 990.0)  # 10 s back: counted in the newest bucket
    assert totals(window) == (2, 1, 0)
    window.expire(1_060.0)  # a window after the newest bucket: both slide out
    assert totals(window) == (0, 0, 0)
