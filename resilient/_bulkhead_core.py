"""The bulkhead's rules as a pure state object: permits and a FIFO of waiters.

No lock, no clock, no waking. The caller holds one lock around every method
and wakes the waiter that :meth:`LimiterCore.release` hands a permit to. The
waiter's ``state`` here is the single truth about who holds a permit: a
waiter that gives up asks :meth:`LimiterCore.cancel`, which says whether a
permit reached it first (then the waiter must release it, passing it on).

Free permits are tokens in the list ``free``. A limiter that nobody may
wait for (``max_queue == 0``) has no waiters to hand permits to, so its
driver may take and return tokens without the lock: ``list.pop()`` and
``list.append()`` are atomic under the GIL, and ``tick()`` counts those
calls' completions.
"""

from __future__ import annotations

import itertools
from collections import deque

__all__ = ["FULL", "GRANTED", "QUEUE", "LimiterCore", "Waiter"]

# What try_enter() answers.
GRANTED = 0  # a permit is taken
QUEUE = 1  # no permit free, but room to wait: enqueue()
FULL = 2  # no permit and no room: reject

_WAITING = 0
_HOLDS_PERMIT = 1
_GONE = 2


class Waiter:
    """One queued caller. ``wake`` is whatever the driver needs to wake it."""

    __slots__ = ("state", "wake")

    def __init__(self, wake: object) -> None:
        self.wake = wake
        self.state = _WAITING


class LimiterCore:
    __slots__ = (
        "_completed",
        "_reads",
        "_ticks",
        "_waiters",
        "free",
        "last_rejected_at",
        "max_concurrent",
        "max_queue",
        "queued",
        "rejected",
        "tick",
    )

    def __init__(self, max_concurrent: int, max_queue: int) -> None:
        self.max_concurrent = max_concurrent
        self.max_queue = max_queue
        self.free: list[None] = [None] * max_concurrent
        self.queued = 0
        self.rejected = 0
        self.last_rejected_at: float | None = None
        # Waiters that gave up stay here, marked gone, until popped or
        # compacted away: removing from the middle of a deque is O(n).
        self._waiters: deque[Waiter] = deque()
        self._completed = 0
        self._ticks = itertools.count()
        self._reads = 0
        self.tick = self._ticks.__next__

    @property
    def active(self) -> int:
        """Permits held (and handed to woken waiters)."""
        return self.max_concurrent - len(self.free)

    @property
    def completed(self) -> int:
        """Calls that ended holding a permit."""
        # Reading the tick count consumes one of its values; each read is
        # remembered and subtracted.
        ticks = next(self._ticks) - self._reads
        self._reads += 1
        return self._completed + ticks

    def try_enter(self) -> int:
        # Free permits exist only when nobody waits (release hands permits to
        # waiters first), so a newcomer never overtakes the queue. The pop
        # may find the list emptied by a lock-free caller since it was
        # looked at: taking is the test.
        try:
            self.free.pop()
        except IndexError:
            pass
        else:
            return GRANTED
        if self.queued < self.max_queue:
            return QUEUE
        return FULL

    def enqueue(self, wake: object) -> Waiter:
        waiter = Waiter(wake)
        self._waiters.append(waiter)
        self.queued += 1
        return waiter

    def reject(self, now: float) -> None:
        self.rejected += 1
        self.last_rejected_at = now

    def release(self, *, completed: bool = True) -> Waiter | None:
        """A permit comes back; it goes to the first waiter still waiting
        (returned, for the caller to wake), else it is freed.

        ``completed=False``: the permit was never used for a call (its
        waiter gave up after being granted it, or could not be woken).
        """
        if completed:
            self._completed += 1
        waiters = self._waiters
        while waiters:
            waiter = waiters.popleft()
            if waiter.state == _WAITING:
                waiter.state = _HOLDS_PERMIT
                self.queued -= 1
                return waiter
        self.free.append(None)
        return None

    def cancel(self, waiter: Waiter) -> bool:
        """``waiter`` gives up. True when a permit reached it first: it holds
        that permit and must release it. Asking twice answers False."""
        state = waiter.state
        waiter.state = _GONE
        if state == _HOLDS_PERMIT:
            return True
        if state == _WAITING:
            self.queued -= 1
            waiters = self._waiters
            if len(waiters) > 2 * self.queued + 16:
                self._waiters = deque(w for w in waiters if w.state == _WAITING)
        return False

    def undeliverable(self, waiter: Waiter) -> Waiter | None:
        """The permit handed to ``waiter`` cannot reach it (its event loop is
        closed): it goes to the next waiter, as :meth:`release` does."""
        waiter.state = _GONE
        return self.release(completed=False)
