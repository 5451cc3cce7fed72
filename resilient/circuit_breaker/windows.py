"""Sliding windows of call outcomes with O(1) running totals.

Both windows keep ``calls``, ``failures`` and ``slow`` as running totals, so a
record and a read cost the same whatever the window size.
"""

from __future__ import annotations

import math
from array import array

__all__ = ["MAX_BUCKETS", "CountWindow", "TimeWindow", "Window"]

#: The most buckets a time window keeps; beyond this many seconds, buckets widen.
MAX_BUCKETS = 128

_FAILURE = 1
_SLOW = 2


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
    whatever its length (about 3 KB at most). An outcome recorded at time
    ``t`` falls in bucket ``t // width`` and counts until its bucket slides
    out: for between ``(n - 1) * width`` and ``n * width`` seconds, where
    ``n = ceil(duration / width)`` (with one-second buckets: the last
    ``ceil(duration)`` whole seconds, the current one included).
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
        self.width = max(1, math.ceil(duration / MAX_BUCKETS))
        self._n = max(1, math.ceil(duration / self.width))
        self._calls = _zeros(self._n)
        self._failures = _zeros(self._n)
        self._slow = _zeros(self._n)
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
                self.failures -= failures[i]
                self.slow -= slow[i]
                calls[i] = failures[i] = slow[i] = 0
        self._last = bucket

    def expire(self, now: float) -> None:
        """Drop the buckets that have slid out of the window by ``now``."""
        self._advance(int(now // self.width))

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
        self._calls[bucket % self._n] += k
        self.calls += k

    def record(self, failure: bool, slow: bool, now: float) -> None:
        self._advance(int(now // self.width))
        # The newest bucket: ``now``'s, or a later one if the clock stepped back.
        i = self._last % self._n  # type: ignore[operator]
        self._calls[i] += 1
        self._failures[i] += failure
        self._slow[i] += slow
        self.calls += 1
        self.failures += failure
        self.slow += slow

    def resized(self, duration: float) -> TimeWindow:
        """A window of ``duration`` seconds holding this one's newest buckets
        (as many as fit; buckets of another width are moved whole)."""
        new = TimeWindow(duration)
        last = self._last
        if last is None:
            return new
        new._last = newest = last * self.width // new.width
        n, m = self._n, new._n
        for b in range(last - n + 1, last + 1):
            i = b % n
            if not self._calls[i]:
                continue
            target = b * self.width // new.width
            if target <= newest - m:
                continue  # slid out of the new window
            j = target % m
            new._calls[j] += self._calls[i]
            new._failures[j] += self._failures[i]
            new._slow[j] += self._slow[i]
            new.calls += self._calls[i]
            new.failures += self._failures[i]
            new.slow += self._slow[i]
        return new

    def clear(self) -> None:
        n = self._n
        self._calls = _zeros(n)
        self._failures = _zeros(n)
        self._slow = _zeros(n)
        self.calls = self.failures = self.slow = 0


def _zeros(n: int) -> array[int]:
    return array("q", bytes(8 * n))


Window = CountWindow | TimeWindow
