"""The rate limiter's rules as a pure state object: GCRA with reserved turns.

No lock, no clock, no sleeping: the caller passes the time and holds its
lock. GCRA (the generic cell rate algorithm) keeps one number, the
theoretical arrival time ``tat`` of the next call. With ``interval =
period / rate`` and ``tolerance = (burst - 1) * interval``, a call arriving
at ``now`` may start at ``max(tat, now) - tolerance``; starting it moves
``tat`` on by one interval. So in any interval of length ``t`` at most
``burst + t / interval`` calls start: ``burst`` at once after a quiet
spell, then one per ``interval`` (``burst=1`` spaces every call evenly).

A caller that may wait (``max_wait``) reserves its turn: the start time is
fixed when it asks, and its wait is that time minus now. A turn given back
(the waiter was cancelled) is reused: the last one reserved rolls ``tat``
back; an earlier one becomes a hole the next caller takes, at the same
start time, so giving back never lets more calls start than the limit.
A hole whose time has passed unused is dropped.

A clock that goes back (a test's time travel, a stepped clock) leaves
``tat`` far ahead of ``now``: further than any turn could have been
reserved (``tolerance + interval + reach``, ``reach`` being the longest
``max_wait`` asked for). The locked methods then bring it back to that
bound, and drop the holes past it, so a refusal lasts at most one interval
(plus ``reach``) from ``now``, never the time the clock went back.

Every change of ``tat`` reads it and writes it back with no call in
between (only attribute reads, arithmetic and comparisons), so under the
GIL no other thread runs between the two: the rate limiter's fast path
admits a call that way without its lock, while the lock serializes
everything else (holes, waiting turns).
"""

from __future__ import annotations

import bisect
import math

__all__ = ["GcraCore"]


class GcraCore:
    """``acquire`` a turn (a token) or learn how long until one; ``give_back``
    a token whose call never started."""

    __slots__ = ("holes", "interval", "reach", "slack", "tat", "tolerance")

    def __init__(self, rate: float, period: float, burst: int) -> None:
        self.interval = period / rate
        self.tolerance = (burst - 1) * self.interval
        self.tat = -math.inf
        # Float sums drift by a few ulps: a wait this short counts as none.
        self.slack = self.interval * 1e-9
        # Tokens given back out of order, sorted: reusable turns.
        self.holes: list[float] = []
        # The longest max_wait asked for: how far ahead a reserved turn may be.
        self.reach = 0.0

    def _bound(self, now: float) -> None:
        """Bring ``tat`` (and the holes) back within reach of ``now``: they
        are past it only when the clock went back."""
        horizon = now + self.tolerance + self.interval + self.reach
        if self.tat > horizon + self.slack:
            self.tat = horizon
            holes = self.holes
            while holes and holes[-1] >= horizon:
                del holes[-1]

    def start_of(self, token: float) -> float:
        """When the call holding ``token`` may start."""
        return token - self.tolerance

    def acquire(self, now: float, max_wait: float = 0.0) -> float | None:
        """A token for a turn starting within ``max_wait`` of ``now`` (wait
        ``start_of(token) - now``, if positive), or None: no such turn."""
        if max_wait > self.reach:
            self.reach = max_wait
        self._bound(now)
        if self.holes:
            hole = self._take_hole(now, max_wait)
            if hole is not None:
                return hole
        tat = self.tat
        if tat < now:
            tat = now
        if tat - self.tolerance - now > max_wait + self.slack:
            return None
        self.tat = tat + self.interval
        return tat

    def _take_hole(self, now: float, max_wait: float) -> float | None:
        holes = self.holes
        tolerance = self.tolerance
        while holes and holes[0] - tolerance + self.slack < now:
            del holes[0]  # its time passed unused
        if holes and holes[0] - tolerance - now <= max_wait + self.slack:
            return holes.pop(0)
        return None

    def retry_after(self, now: float) -> float:
        """Seconds until a call would be admitted without waiting."""
        self._bound(now)
        left = max(self.tat, now) - self.tolerance - now
        holes = self.holes
        for hole in holes:
            if hole - self.tolerance >= now:
                left = min(left, hole - self.tolerance - now)
                break
        return left if left > self.slack else 0.0

    def give_back(self, token: float) -> None:
        """The call holding ``token`` will not start: its turn is free again."""
        if token + self.interval == self.tat:
            self.tat = token
            holes = self.holes
            # Turns given back before it, now at the end: roll back over them too.
            # (No call between reading ``tat`` and writing it: see the module.)
            while holes and holes[-1] + self.interval == self.tat:
                self.tat = holes[-1]
                del holes[-1]
        else:
            bisect.insort(self.holes, token)

    def retune(self, rate: float, period: float, burst: int, now: float) -> None:
        """New settings in place: the turns already taken stay taken (the
        backlog ahead of ``now`` is the same number of turns, spaced by the
        new interval), and so do the turns given back."""
        old = self.interval
        new = period / rate
        ratio = new / old

        def moved(t: float) -> float:
            return now + (t - now) * ratio if t > now else t

        if self.tat > now:
            # Measured from the start of the burst: the turns owed stay owed.
            self.tat = now + (self.tat - now) * ratio
        self.holes[:] = [moved(hole) for hole in self.holes]
        self.interval = new
        self.tolerance = (burst - 1) * new
        self.slack = new * 1e-9

    def reset(self) -> None:
        self.tat = -math.inf
        self.holes.clear()
        self.reach = 0.0

    def available(self, now: float) -> int:
        """Calls that could start at ``now`` without waiting."""
        self._bound(now)
        tat = max(self.tat, now)
        room = (now + self.tolerance - tat) / self.interval + 1.0
        return max(0, math.floor(room + 1e-9))
