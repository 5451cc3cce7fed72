"""Sliding windows of call outcomes with O(1) running totals.

Both windows keep ``calls``, ``failures`` and ``slow`` as running totals, so a
record and a read cost the same whatever the window size.
"""

from __future__ import annotations

import math
from array import array

__all__ = ["MAX_BUCKETS", "CountWindow", "TimeWindow", "Window", "time_buckets"]

#: The most buckets a time window keeps; beyond this many seconds, buckets widen.
MAX_BUCKETS = 128

_FAILURE = 1
_SLOW = 2


def time_buckets(duration: float) -> tuple[int, int]:
    """A time window's ``(width, n)``: ``n`` buckets of ``width`` whole seconds."""
    width = max(1, math.ceil(duration / MAX_BUCKETS))
    return width, max(1, math.ceil(duration / width))


class CountWindow:
    """The last ``size`` outcomes, one byte each in a ring. The ring is made
    with the first failure or slow call: until then every outcome is a
    success (a zero byte), and a breaker that never failed keeps none."""

    __slots__ = ("_pos", "_ring", "_size", "calls", "failures", "slow")

    def __init__(self, size: int) -> None:
        self._ring: bytearray | None = None
        self._size = size
        self._pos = 0
        self.calls = 0
        self.failures = 0
        self.slow = 0

    def record(self, failure: bool, slow: bool, now: float) -> None:
        pos = self._pos
        ring = self._ring
        if ring is None:
            if not (failure or slow):
                if self.calls < self._size:
                    self.calls += 1
                pos += 1
                self._pos = 0 if pos == self._size else pos
                return
            ring = self._ring = bytearray(self._size)
        if self.calls == self._size:
            old = ring[pos]
            self.failures -= old & _FAILURE
            self.slow -= (old & _SLOW) >> 1
        else:
            self.calls += 1
        ring[pos] = failure | (slow << 1)
        self.failures += failure
        self.slow += slow
        pos += 1
        self._pos = 0 if pos == self._size else pos

    def add_successes(self, k: int, now: float) -> None:
        """Record ``k`` fast, successful calls at once (amortized O(1) each)."""
        size = self._size
        if k >= size:
            self._ring = None  # all successes
            self._pos = 0
            self.calls = size
            self.failures = self.slow = 0
            return
        free = size - self.calls
        if free:
            # Slots not yet used are zero already (a success is a zero byte).
            used = min(free, k)
            self.calls += used
            self._pos = (self._pos + used) % size
            k -= used
        ring = self._ring
        if ring is None:
            self._pos = (self._pos + k) % size  # successes over successes
            return
        while k:
            pos = self._pos
            end = min(pos + k, size)
            chunk = ring[pos:end]
            both = chunk.count(3)
            self.failures -= chunk.count(1) + both
            self.slow -= chunk.count(2) + both
            ring[pos:end] = bytes(end - pos)
            k -= end - pos
            self._pos = 0 if end == size else end

    def expire(self, now: float) -> None:
        """Count windows never expire by time."""

    def bucket_end(self, now: float) -> float:
        """Successes may be counted apart for ever: a count has no time."""
        return math.inf

    def clear(self) -> None:
        self._ring = None
        self._pos = self.calls = self.failures = self.slow = 0

    def resized(self, size: int) -> CountWindow:
        """A window of ``size`` calls holding this one's newest outcomes
        (as many as fit)."""
        new = CountWindow(size)
        keep = min(self.calls, size)
        ring = self._ring
        if ring is None:  # all successes
            new.calls = keep
            new._pos = keep % size
            return new
        old_size = self._size
        newest_first = [ring[(self._pos - 1 - i) % old_size] for i in range(keep)]
        for byte in reversed(newest_first):
            new.record(bool(byte & _FAILURE), bool(byte & _SLOW), 0.0)
        return new


class TimeWindow:
    """Outcomes of the last ``duration`` seconds, in buckets of whole seconds.

    A bucket is one second wide while the window is at most ``MAX_BUCKETS``
    seconds long; a longer window has ``MAX_BUCKETS`` buckets of
    ``ceil(duration / MAX_BUCKETS)`` seconds each, so its memory is bounded
    whatever its length (about 1.2 KB at most). An outcome recorded at time
    ``t`` falls in bucket ``t // width`` and counts until its bucket slides
    out: for between ``(n - 1) * width`` and ``n * width`` seconds, where
    ``n = ceil(duration / width)`` (with one-second buckets: the last
    ``ceil(duration)`` whole seconds, the current one included).

    Memory: the counts per bucket are 32-bit (an array is widened to 64-bit
    the first time a bucket would overflow), and the failure and slow-call
    arrays are made with the first failure or slow call. A breaker that
    never saw a slow call (most have no ``slow_call_duration``) keeps two
    arrays of ``4 * n`` bytes: about 1 KB for a one-day window.
    """

    __slots__ = (
        "_calls",
        "_failures",
        "_last",
        "_n",
        "_slow",
        "calls",
        "failures",
        "slow",
        "width",
    )

    def __init__(self, duration: float) -> None:
        self.width, self._n = time_buckets(duration)
        self._calls = _zeros(self._n)
        # Made with the first failure / slow call (see _count).
        self._failures: array[int] | None = None
        self._slow: array[int] | None = None
        self._last: int | None = None  # the newest bucket expired up to
        self.calls = 0
        self.failures = 0
        self.slow = 0

    def bucket_end(self, now: float) -> float:
        """When the bucket holding ``now`` ends: successes counted until
        then may all be added to it at once."""
        width = self.width
        return (now // width + 1) * width

    def _advance(self, bucket: int) -> None:
        last = self._last
        if last is None:
            self._last = bucket
            return
        if bucket <= last:
            return
        n = self._n
        if bucket - last >= n:
            self.clear()
        else:
            calls, failures, slow = self._calls, self._failures, self._slow
            for b in range(last + 1, bucket + 1):
                i = b % n
                self.calls -= calls[i]
                calls[i] = 0
                if failures is not None:
                    self.failures -= failures[i]
                    failures[i] = 0
                if slow is not None:
                    self.slow -= slow[i]
                    slow[i] = 0
        self._last = bucket

    def _now(self, now: float) -> int:
        """The bucket of ``now``. A clock that went back a whole window or
        more (a VM restored, a test's time travel) starts the window afresh
        at ``now``: what it held would otherwise stay counted until the
        clock caught up again. A smaller step back keeps the newest bucket,
        so nothing stays counted longer than the window plus that step."""
        bucket = int(now // self.width)
        last = self._last
        if last is not None and last - bucket >= self._n:
            self.clear()
            self._last = bucket
        return bucket

    def expire(self, now: float) -> None:
        """Drop the buckets that have slid out of the window by ``now``."""
        self._advance(self._now(now))

    def add_successes(self, k: int, at: float) -> None:
        """Record ``k`` fast, successful calls made at time ``at`` (possibly
        earlier than outcomes already recorded: they go to their own bucket,
        or nowhere if it has slid out)."""
        bucket = int(at // self.width)
        self._advance(bucket)
        last = self._last
        assert last is not None
        if last - bucket >= self._n:
            return
        self._calls = _add(self._calls, self._n, bucket % self._n, k)
        self.calls += k

    def record(self, failure: bool, slow: bool, now: float) -> None:
        self._advance(self._now(now))
        # The newest bucket: ``now``'s, or a later one if the clock stepped back.
        n = self._n
        i = self._last % n  # type: ignore[operator]
        self._calls = _add(self._calls, n, i, 1)
        self.calls += 1
        if failure:
            self._failures = _add(self._failures, n, i, 1)
            self.failures += 1
        if slow:
            self._slow = _add(self._slow, n, i, 1)
            self.slow += 1

    def resized(self, duration: float) -> TimeWindow:
        """A window of ``duration`` seconds holding this one's newest buckets
        (as many as fit; buckets of another width are moved whole)."""
        new = TimeWindow(duration)
        last = self._last
        if last is None:
            return new
        new._last = newest = last * self.width // new.width
        n, m = self._n, new._n
        calls = array("q", bytes(8 * m))  # 64-bit: merged buckets may add up
        failures = array("q", bytes(8 * m)) if self._failures is not None else None
        slow = array("q", bytes(8 * m)) if self._slow is not None else None
        for b in range(last - n + 1, last + 1):
            i = b % n
            if not self._calls[i]:
                continue
            target = b * self.width // new.width
            if target <= newest - m:
                continue  # slid out of the new window
            j = target % m
            calls[j] += self._calls[i]
            new.calls += self._calls[i]
            if failures is not None and self._failures is not None:
                failures[j] += self._failures[i]
                new.failures += self._failures[i]
            if slow is not None and self._slow is not None:
                slow[j] += self._slow[i]
                new.slow += self._slow[i]
        new._calls, new._failures, new._slow = calls, failures, slow
        return new

    def clear(self) -> None:
        self._calls = _zeros(self._n)
        self._failures = self._slow = None
        self.calls = self.failures = self.slow = 0


def _zeros(n: int) -> array[int]:
    # 32-bit counts: half the memory of 64-bit ones; widened on overflow.
    return array("I", bytes(4 * n))


def _wide(counts: array[int]) -> array[int]:
    """``counts`` as 64-bit counts (a bucket reached 2**32 calls)."""
    return array("q", counts)


def _add(counts: array[int] | None, n: int, i: int, k: int) -> array[int]:
    """``counts`` (made if ``None``, widened if bucket ``i`` would overflow)
    with ``k`` more in bucket ``i``."""
    if counts is None:
        counts = _zeros(n)
    try:
        counts[i] += k
    except OverflowError:
        counts = _wide(counts)
        counts[i] += k
    return counts


Window = CountWindow | TimeWindow
