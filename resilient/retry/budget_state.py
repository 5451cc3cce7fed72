"""The retry budget's rules as a pure state object: first attempts and
retries counted in time slots, no clock, no lock.

Time is cut into ``SLOTS`` slots per window. When a retry asks at ``now``,
the retries it counts cover the current slot and the ``SLOTS`` before it
(at least a whole window back), and the first attempts it counts cover the
current slot and the ``SLOTS - 1`` before it (at most a window back). So
whenever a retry is allowed, the retries of the last ``window`` seconds,
itself included, number at most ``min_retries_per_second * window + ratio *
first attempts`` of those same seconds: the count of retries can only be
too high and the count of first attempts only too low.
"""

from __future__ import annotations

import math

__all__ = ["SLOTS", "BudgetCore"]

SLOTS = 10


class BudgetCore:
    __slots__ = ("allowance", "firsts", "ratio", "retries", "slot", "width")

    def __init__(self, ratio: float, min_retries_per_second: float, window: float) -> None:
        self.ratio = ratio
        self.allowance = min_retries_per_second * window
        self.width = window / SLOTS
        # Ring of SLOTS + 1 slots; index = slot number % (SLOTS + 1).
        self.firsts = [0] * (SLOTS + 1)
        self.retries = [0] * (SLOTS + 1)
        self.slot = -math.inf  # the slot number last written

    def _advance(self, now: float) -> int:
        """Move to the slot of ``now``, clearing the slots passed over."""
        slot = math.floor(now / self.width)
        last = self.slot
        if slot < last:  # another clock (a test's): start over on it
            last = -math.inf
        if slot != last:
            size = SLOTS + 1
            first = slot - size + 1 if slot - last >= size else int(last) + 1
            for s in range(first, slot + 1):
                self.firsts[s % size] = 0
                self.retries[s % size] = 0
            self.slot = slot
        return int(self.slot)

    def deposit(self, count: int, at: float) -> None:
        """``count`` first attempts made at ``at`` or later (counted at ``at``:
        the earliest, so they leave the window no later than they should)."""
        if count <= 0:
            return
        slot = math.floor(at / self.width)
        current = self._advance(at)
        if current - slot >= SLOTS:
            return  # already out of every window
        self.firsts[min(slot, current) % (SLOTS + 1)] += count

    def withdraw(self, now: float) -> bool:
        """A retry at ``now``: True (and counted) if the budget allows it."""
        current = self._advance(now)
        size = SLOTS + 1
        retries = sum(self.retries)  # the current slot and SLOTS before it
        firsts = sum(self.firsts) - self.firsts[(current + 1) % size]  # the oldest left out
        if retries + 1 > self.allowance + self.ratio * firsts:
            return False
        self.retries[current % size] += 1
        return True

    def available(self, now: float) -> int:
        """Retries the budget would allow at ``now``."""
        current = self._advance(now)
        firsts = sum(self.firsts) - self.firsts[(current + 1) % (SLOTS + 1)]
        return max(0, math.floor(self.allowance + self.ratio * firsts - sum(self.retries)))
