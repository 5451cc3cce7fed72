"""A model of the fleet's failure-rate window: three processes' outcome
streams merged in random sync orders hold what one window seeing every
outcome in time order holds (pure: no Redis, no clock)."""

from __future__ import annotations

import random

import pytest

from resilient.circuit_breaker.merge import (
    FAILURE,
    SLOW,
    FleetCountWindow,
    FleetTimeWindow,
    OutcomeLog,
    rates_call_for_open,
)
from resilient.circuit_breaker.windows import CountWindow, TimeWindow

PROCESSES = ("host-a:1:aa", "host-b:2:bb", "host-c:3:cc")

# (fleet time, kind, count) outcomes of one process, in its time order.
Stream = list[tuple[float, int, int]]


def _streams(rng: random.Random, events: int) -> tuple[list[float], list[Stream]]:
    """Three processes' outcomes: one fleet-time grid (1 s apart, so no two
    segments of a process share a quantum), a batch of one kind per event;
    each process's clock is off from the fleet's by its own offset."""
    offsets = [rng.uniform(-500.0, 500.0) for _ in PROCESSES]
    streams: list[Stream] = [[], [], []]
    at = 10_000.0
    for _ in range(events):
        at += rng.choice((1.0, 1.0, 2.0, 7.0))
        who = rng.randrange(3)
        kind = rng.choice((0, 0, 0, FAILURE, SLOW, FAILURE | SLOW))
        streams[who].append((at, kind, rng.choice((1, 1, 1, 3, 12))))
    return offsets, streams


def _merge_randomly(
    rng: random.Random,
    offsets: list[float],
    streams: list[Stream],
    make_log: type[OutcomeLog] | None,
    log_shape: tuple[int | None, float | None],
    merge,  # (process, offset, segments, fleet now) -> None
) -> float:
    """Feed each process's outcomes to its log in fleet-time order; at random
    moments a process syncs: delivered, lost (given back), or applied with
    its reply lost (given back and sent again: counted once)."""
    logs = [OutcomeLog(*log_shape) for _ in PROCESSES]
    timeline = sorted((at, p, kind, n) for p, s in enumerate(streams) for at, kind, n in s)
    now = 0.0
    for at, p, kind, n in timeline:
        now = at
        logs[p].add(at - offsets[p], kind, n)  # the process's own clock
        if rng.random() < 0.3:
            q = rng.randrange(3)
            taken = logs[q].take()
            fate = rng.random()
            if fate < 0.6:
                merge(PROCESSES[q], offsets[q], taken, now)
            elif fate < 0.8:
                logs[q].give_back(taken)  # lost on the way
            else:
                merge(PROCESSES[q], offsets[q], taken, now)
                logs[q].give_back(taken)  # applied; the reply was lost
    for q in rng.sample(range(3), 3):
        merge(PROCESSES[q], offsets[q], logs[q].take(), now)
    return now


@pytest.mark.parametrize("seed", range(15))
@pytest.mark.parametrize("size", [1, 7, 50])
def test_a_merged_count_window_holds_the_fleets_newest_outcomes(seed, size) -> None:
    rng = random.Random(seed * 1000 + size)
    offsets, streams = _streams(rng, 80)
    fleet = FleetCountWindow(size)
    _merge_randomly(
        rng,
        offsets,
        streams,
        OutcomeLog,
        (size, None),
        lambda p, offset, segments, now: fleet.merge(p, offset, segments),
    )
    alone = CountWindow(size)
    everything = sorted((at, kind) for s in streams for at, kind, n in s for _ in range(n))
    for at, kind in everything:
        alone.record(bool(kind & FAILURE), bool(kind & SLOW), at)
    assert (fleet.calls, fleet.failures, fleet.slow) == (alone.calls, alone.failures, alone.slow)
    held = sorted((round(at, 6), kind) for at, _, kind, n in fleet.entries for _ in range(n))
    newest = sorted((round(at, 6), kind) for at, kind in everything[-size:])
    assert held == newest


@pytest.mark.parametrize("seed", range(15))
@pytest.mark.parametrize("duration", [5.0, 60.0, 300.0])
def test_a_merged_time_window_holds_the_fleets_buckets(seed, duration) -> None:
    rng = random.Random(seed * 1000 + int(duration))
    offsets, streams = _streams(rng, 80)
    fleet = FleetTimeWindow(duration)
    end = _merge_randomly(
        rng,
        offsets,
        streams,
        OutcomeLog,
        (None, duration),
        lambda p, offset, segments, now: fleet.merge(p, offset, segments, now),
    )
    fleet.expire(end)
    alone = TimeWindow(duration)
    for at, kind in sorted((at, kind) for s in streams for at, kind, n in s for _ in range(n)):
        alone.record(bool(kind & FAILURE), bool(kind & SLOW), at)
    alone.expire(end)
    assert (fleet.calls, fleet.failures, fleet.slow) == (alone.calls, alone.failures, alone.slow)


def test_one_process_alone_would_not_open_but_the_fleet_does() -> None:
    # Two processes each see 3 failures in 10 calls (30 %); together the
    # fleet's window of 20 holds 6 in 20: still 30 %. With a 25 % threshold
    # and minimum_calls=15, neither window alone has enough calls.
    fleet = FleetCountWindow(20)
    for p, offset in (("a", 0.0), ("b", 0.5)):
        log = OutcomeLog(20, None)
        for i in range(10):
            log.add(float(i), FAILURE if i % 3 == 0 and i < 9 else 0)
        alone = (log.outcomes, sum(int(s[3]) for s in log.segments if int(s[2]) & FAILURE))
        assert not rates_call_for_open(alone[0], alone[1], 0, 15, 0.25, None)
        fleet.merge(p, offset, log.take())
    assert (fleet.calls, fleet.failures) == (20, 6)
    assert rates_call_for_open(fleet.calls, fleet.failures, fleet.slow, 15, 0.25, None)


def test_a_log_keeps_a_count_windows_newest_outcomes_only() -> None:
    log = OutcomeLog(5, None)
    for i in range(4):
        log.add(float(i), FAILURE)
    log.add(4.0, 0, 10)  # a batch of successes: the failures are pushed out
    assert log.outcomes == 5
    assert [s[1:] for s in log.segments] == [[4.0, 0, 5]]


def test_a_log_stamps_a_segment_with_its_first_outcome_and_never_grows_a_sent_one() -> None:
    log = OutcomeLog(100, None)
    log.add(1.0, 0)
    log.add(1.005, 0)  # within the quantum: the same segment, at its first time
    assert [s[1:] for s in log.segments] == [[1.0, 0, 2]]
    taken = log.take()
    log.give_back(taken)  # not delivered: the fleet may have applied it
    log.add(1.006, 0)
    assert [s[1:] for s in log.segments] == [[1.0, 0, 2], [1.006, 0, 1]]
    assert [s[0] for s in log.segments] == [1, 2]


def test_a_time_windows_log_forgets_what_slid_out() -> None:
    log = OutcomeLog(None, 10.0)
    log.add(0.0, FAILURE)
    log.add(5.0, FAILURE)
    log.add(30.0, 0)
    assert [s[1] for s in log.segments] == [30.0]
    assert log.outcomes == 1


def test_a_time_windows_log_stays_small_whatever_the_mix_of_outcomes() -> None:
    # Alternating successes and failures, 1,000 a second for a minute: the
    # log keeps one segment per kind per sixteenth of a bucket at most.
    log = OutcomeLog(None, 10.0)
    for i in range(60_000):
        log.add(i / 1000, FAILURE if i % 2 else 0)
    assert len(log.segments) <= 2 * 16 * 12
    assert log.outcomes == sum(int(s[3]) for s in log.segments)
    assert all(s[1] >= 60.0 - 10.0 - 2.0 for s in log.segments)


def test_a_segment_sent_twice_counts_once() -> None:
    fleet = FleetTimeWindow(60.0)
    log = OutcomeLog(None, 60.0)
    log.add(100.0, FAILURE, 3)
    taken = log.take()
    fleet.merge("a", 0.0, taken, 100.0)
    log.give_back(taken)
    fleet.merge("a", 0.0, log.take(), 101.0)
    assert (fleet.calls, fleet.failures) == (3, 3)
