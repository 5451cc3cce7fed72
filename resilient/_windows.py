"""Sliding windows of call outcomes with O(1) running totals.

Both windows keep ``calls``, ``failures`` and ``slow`` as running totals, so a
record and a read cost the same whatever the window size.
"""

from __future__ import annotations

import math

__all__ = ["CountWindow", "TimeWindow", "Window"]

_FAILURE = 1
_SLOW = 2


class CountWindow:
    """The last ``size`` outcomes, one byte each in a ring."""

    __slots__ = ("_pos", "_ring", "_size", "calls", "failures", "slow")

    def __init__(self, size: int) -> None:
        self._ring = bytearray(size)
        self._size = size
        self._pos = 0
        self.calls = 0
        self.failures = 0
        self.slow = 0

    def record(self, failure: bool, slow: bool, now: float) -> None:
        pos = self._pos
        ring = self._ring
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
            self._ring = bytearray(size)
            self._pos = 0
            self.calls = size
            self.failures = self.slow = 0
            return
        ring = self._ring
        free = size - self.calls
        if free:
            # Slots not yet used are zero already (a success is a zero byte).
            used = min(free, k)
            self.calls += used
            self._pos = (self._pos + used) % size
            k -= used
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

    def clear(self) -> None:
        self._ring = bytearray(self._size)
        self._pos = self.calls = self.failures = self.slow = 0


class TimeWindow:
    """Outcomes of the last ``duration`` seconds, in per-second buckets."""

    __slots__ = ("_calls", "_failures", "_last", "_n", "_slow", "calls", "failures", "slow")

    def __init__(self, duration: float) -> None:
        self._n = max(1, math.ceil(duration))
        self._calls = [0] * self._n
        self._failures = [0] * self._n
        self._slow = [0] * self._n
        self._last: int | None = None
        self.calls = 0
        self.failures = 0
        self.slow = 0

    def expire(self, now: float) -> None:
        """Drop the buckets that have slid out of the window by ``now``."""
        second = int(now)
        last = self._last
        if last is None:
            self._last = second
            return
        if second <= last:
            return
        n = self._n
        if second - last >= n:
            self.clear()
        else:
            for s in range(last + 1, second + 1):
                i = s % n
                self.calls -= self._calls[i]
                self.failures -= self._failures[i]
                self.slow -= self._slow[i]
                self._calls[i] = self._failures[i] = self._slow[i] = 0
        self._last = second

    def add_successes(self, k: int, now: float) -> None:
        self.expire(now)
        self._calls[int(now) % self._n] += k
        self.calls += k

    def record(self, failure: bool, slow: bool, now: float) -> None:
        self.expire(now)
        i = int(now) % self._n
        self._calls[i] += 1
        self._failures[i] += failure
        self._slow[i] += slow
        self.calls += 1
        self.failures += failure
        self.slow += slow

    def clear(self) -> None:
        n = self._n
        self._calls = [0] * n
        self._failures = [0] * n
        self._slow = [0] * n
        self.calls = self.failures = self.slow = 0


Window = CountWindow | TimeWindow
