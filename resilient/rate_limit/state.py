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

A turn may weigh more than one call: a call of ``cost`` c takes c
intervals of ``tat`` and may start at ``max(tat, now) + (c - 1) * interval
- tolerance`` (GCRA with a quantity; ``cost`` 1 is the rule above). A
weighed turn given back rolls ``tat`` back when it was the last handed
out; an earlier one stays spent (strict, never loose). ``adjust`` charges
units after the fact (``tat`` moves on) or refunds them (``tat`` moves
back, never behind ``now``: a refund gives back turns, never more than a
full burst). A debt charged beyond the burst widens ``reach`` as a long
wait does.

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

    def start_of(self, token: float, cost: float = 1.0) -> float:
        """When the call holding ``token`` (of ``cost``) may start."""
        return token + (cost - 1.0) * self.interval - self.tolerance

    def acquire(self, now: float, max_wait: float = 0.0, cost: float = 1.0) -> float | None:
        """A token for a turn of ``cost`` starting within ``max_wait`` of
        ``now`` (wait ``start_of(token, cost) - now``, if positive), or None:
        no such turn."""
        if max_wait > self.reach:
            self.reach = max_wait
        self._bound(now)
        if cost != 1.0:
            return self._acquire_weighed(now, max_wait, cost)
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

    def _acquire_weighed(self, now: float, max_wait: float, cost: float) -> float | None:
        tat = self.tat
        if tat < now:
            tat = now
        if tat + (cost - 1.0) * self.interval - self.tolerance - now > max_wait + self.slack:
            return None
        self.tat = tat + cost * self.interval
        return tat

    def _take_hole(self, now: float, max_wait: float) -> float | None:
        holes = self.holes
        tolerance = self.tolerance
        while holes and holes[0] - tolerance + self.slack < now:
            del holes[0]  # its time passed unused
        if holes and holes[0] - tolerance - now <= max_wait + self.slack:
            return holes.pop(0)
        return None

    def retry_after(self, now: float, cost: float = 1.0) -> float:
        """Seconds until a call (of ``cost``) would be admitted without waiting."""
        self._bound(now)
        left = max(self.tat, now) + (cost - 1.0) * self.interval - self.tolerance - now
        if cost != 1.0:
            return left if left > self.slack else 0.0
        holes = self.holes
        for hole in holes:
            if hole - self.tolerance >= now:
                left = min(left, hole - self.tolerance - now)
                break
        return left if left > self.slack else 0.0

    def give_back(self, token: float, cost: float = 1.0) -> None:
        """The call holding ``token`` (of ``cost``) will not start: its turn
        is free again."""
        if cost != 1.0:
            if token + cost * self.interval == self.tat:
                self.tat = token
            return  # an earlier weighed turn stays spent
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

    def adjust(self, now: float, units: float) -> None:
        """Charge ``units`` more (or, negative, refund them) after the fact."""
        tat = self.tat
        if units >= 0.0:
            tat = (tat if tat > now else now) + units * self.interval
            self.tat = tat
            # A debt beyond the burst is no clock gone back: in reach.
            owed = tat - now - self.tolerance - self.interval
            if owed > self.reach:
                self.reach = owed
            return
        if tat <= now:
            return  # nothing owed: a full burst is there already
        tat += units * self.interval
        if tat < now:
            tat = now
        self.tat = tat
        holes = self.holes
        while holes and holes[-1] >= tat:
            del holes[-1]

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
