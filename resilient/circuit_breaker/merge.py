"""A fleet's failure-rate window, merged from the outcomes of many processes
in the order they happened: pure rules, no clock, no I/O.

Each process logs its outcomes (``OutcomeLog``) as *segments*: ``count``
outcomes of one kind (a success, a failure, and whether slow) stamped with
the process's own time of the first of them. A shared store sends the
segments with the process's clock offset, so ``stamp + offset`` is a time
comparable across the fleet, and merges them into one window:

- ``FleetCountWindow``: the newest ``size`` outcomes of the whole fleet by
  fleet time, whatever the order in which processes report;
- ``FleetTimeWindow``: the outcomes by fleet-time bucket (the buckets of a
  ``TimeWindow`` of the same duration), those older than the window dropped.

Both are associative: merging streams in any order, in any number of
pieces, gives the window one process seeing every outcome in time order
would hold. Every segment has a number unique to its process, increasing,
so a segment sent twice (a sync that timed out after it was applied) counts
once. ``resilient.redis``'s script is the same algorithm run by Redis; these
classes are its model.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Sequence

from .windows import time_buckets

__all__ = [
    "FAILURE",
    "SLOW",
    "FleetCountWindow",
    "FleetTimeWindow",
    "OutcomeLog",
    "Segment",
    "rates_call_for_open",
]

FAILURE = 1
SLOW = 2

#: Consecutive outcomes of one kind less than this many seconds apart share a
#: segment in a count window's log (stamped with the first one's time).
COUNT_QUANTUM = 0.01
#: A time window's log: a segment spans at most this fraction of a bucket.
TIME_QUANTUM = 1 / 16

# A segment: [number, stamp, kind, count] (a list: its count grows in place).
Segment = list[float]


def rates_call_for_open(
    calls: int,
    failures: int,
    slow: int,
    minimum_calls: int,
    failure_rate: float | None,
    slow_rate: float | None,
) -> bool:
    """Whether a window of ``calls`` outcomes, ``failures`` of them failures
    and ``slow`` slow, calls for opening (a rate at its threshold, once the
    window holds ``minimum_calls``)."""
    if calls < minimum_calls or calls == 0:
        return False
    if failure_rate is not None and failures / calls >= failure_rate:
        return True
    return slow_rate is not None and slow / calls >= slow_rate


class OutcomeLog:
    """The outcomes a process has not yet had acknowledged by the fleet, in
    its own time order. Bounded whatever the traffic or the length of an
    outage: a count window's log keeps the newest ``size`` outcomes (older
    ones can never be among the fleet's newest ``size``), a time window's
    the segments of its last ``duration`` seconds, one per kind per
    ``TIME_QUANTUM`` of a bucket at most."""

    __slots__ = (
        "_duration",
        "_next",
        "_open",
        "_quantum",
        "_sealed",
        "_size",
        "bad",
        "outcomes",
        "segments",
    )

    def __init__(self, size: int | None, duration: float | None, first: int = 1) -> None:
        self._size = size
        self._duration = duration
        if duration is not None:
            self._quantum = time_buckets(duration)[0] * TIME_QUANTUM
        else:
            self._quantum = COUNT_QUANTUM
        self.segments: list[Segment] = []
        self.outcomes = 0
        self.bad = 0  # failures and slow calls among them
        # A time window's newest segment of each kind: outcomes join it
        # whatever came between (order within a bucket does not matter); a
        # count window's only join the last segment (its order does).
        self._open: dict[float, Segment] = {}
        self._next = first
        # Segments numbered below this were handed out: never grown again
        # (the fleet may have applied them already).
        self._sealed = first

    def shaped_for(self, size: int | None, duration: float | None) -> bool:
        return (self._size, self._duration) == (size, duration)

    def reshaped(self, size: int | None, duration: float | None) -> OutcomeLog:
        """An empty log for another window, numbering on from this one."""
        return OutcomeLog(size, duration, self._next)

    def add(self, at: float, kind: int, count: int = 1) -> None:
        segments = self.segments
        if self._duration is not None:
            last = self._open.get(kind)
        else:
            last = segments[-1] if segments else None
        if (
            last is not None
            and last[2] == kind
            and last[0] >= self._sealed
            and last[1] <= at < last[1] + self._quantum
        ):
            last[3] += count
            self._count(kind, count)
            self._bound(at)
            return
        segment = [self._next, at, kind, count]
        segments.append(segment)
        if self._duration is not None:
            self._open[kind] = segment
        self._next += 1
        self._count(kind, count)
        self._bound(at)

    def _count(self, kind: float, count: int) -> None:
        self.outcomes += count
        if kind:
            self.bad += count

    def _bound(self, now: float) -> None:
        segments = self.segments
        if self._size is not None:
            excess = self.outcomes - self._size
            while excess > 0:
                oldest = segments[0]
                drop = min(int(oldest[3]), excess)
                self._count(oldest[2], -drop)
                excess -= drop
                if drop == oldest[3]:
                    del segments[0]
                else:
                    oldest[3] -= drop
        elif self._duration is not None:
            horizon = now - self._duration - self._quantum * 16
            while segments and segments[0][1] < horizon:
                self._count(segments[0][2], -int(segments[0][3]))
                del segments[0]

    def take(self) -> list[Segment]:
        """Hand every segment out (for a sync); ``give_back`` if it failed."""
        taken = self.segments
        self.clear()
        return taken

    def give_back(self, taken: Sequence[Segment]) -> None:
        """Segments a sync could not deliver: before the newer ones, bounded again."""
        if not taken:
            return
        self.segments[:0] = taken
        for segment in taken:
            self._count(segment[2], int(segment[3]))
        self._bound(self.segments[-1][1])

    def clear(self) -> None:
        self.segments = []
        self._open = {}
        self.outcomes = self.bad = 0
        self._sealed = self._next


def _member(instance: str, number: float, kind: int) -> str:
    # Redis orders equal scores by member, bytewise: so does the model.
    return f"{instance}:{int(number)}:{kind}"


class FleetCountWindow:
    """The newest ``size`` outcomes of the fleet, by fleet time (ties by
    member, as Redis orders a sorted set)."""

    def __init__(self, size: int) -> None:
        self.size = size
        # (fleet time, member, kind, count), sorted
        self.entries: list[tuple[float, str, int, int]] = []
        self.applied: dict[str, int] = {}
        self.calls = self.failures = self.slow = 0

    def merge(self, instance: str, offset: float, segments: Iterable[Segment]) -> None:
        for number, stamp, kind, count in segments:
            if number <= self.applied.get(instance, 0):
                continue  # sent before
            self.applied[instance] = int(number)
            k, n = int(kind), int(count)
            bisect.insort(self.entries, (stamp + offset, _member(instance, number, k), k, n))
            self._count(k, n)
        self._trim()

    def _count(self, kind: int, n: int) -> None:
        self.calls += n
        self.failures += n if kind & FAILURE else 0
        self.slow += n if kind & SLOW else 0

    def _trim(self) -> None:
        excess = self.calls - self.size
        while excess > 0:
            at, member, kind, n = self.entries[0]
            drop = min(n, excess)
            self._count(kind, -drop)
            excess -= drop
            if drop == n:
                del self.entries[0]
            else:
                self.entries[0] = (at, member, kind, n - drop)

    def oldest(self) -> float:
        """The fleet time of the oldest outcome held (inf: none)."""
        return self.entries[0][0] if self.entries else math.inf


class FleetTimeWindow:
    """The fleet's outcomes by fleet-time bucket, for a window of
    ``duration`` seconds (buckets as a ``TimeWindow``'s)."""

    def __init__(self, duration: float) -> None:
        self.width, self.n = time_buckets(duration)
        self.buckets: dict[int, list[int]] = {}
        self.newest: int | None = None
        self.applied: dict[str, int] = {}
        self.calls = self.failures = self.slow = 0

    def merge(self, instance: str, offset: float, segments: Iterable[Segment], now: float) -> None:
        """Add ``segments`` (stamps + ``offset`` are fleet times) at fleet
        time ``now``; what has slid out of the window by then is dropped."""
        self.expire(now)
        for number, stamp, kind, count in segments:
            if number <= self.applied.get(instance, 0):
                continue
            self.applied[instance] = int(number)
            bucket = math.floor((stamp + offset) / self.width)
            if self.newest is not None and bucket <= self.newest - self.n:
                continue  # slid out already
            k, n = int(kind), int(count)
            counts = self.buckets.setdefault(bucket, [0, 0, 0])
            counts[0] += n
            self.calls += n
            if k & FAILURE:
                counts[1] += n
                self.failures += n
            if k & SLOW:
                counts[2] += n
                self.slow += n
            if self.newest is None or bucket > self.newest:
                self.newest = bucket
                self._drop_before(bucket - self.n + 1)

    def expire(self, now: float) -> None:
        bucket = math.floor(now / self.width)
        if self.newest is None or bucket > self.newest:
            self.newest = bucket
        self._drop_before(self.newest - self.n + 1)

    def _drop_before(self, first: int) -> None:
        for bucket in [b for b in self.buckets if b < first]:
            calls, failures, slow = self.buckets.pop(bucket)
            self.calls -= calls
            self.failures -= failures
            self.slow -= slow

    def oldest(self) -> float:
        """The fleet time the oldest bucket held starts at (inf: none)."""
        if self.newest is None:
            return math.inf
        return (self.newest - self.n + 1) * self.width
