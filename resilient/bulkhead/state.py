"""The bulkhead's rules as a pure state object: permits and a FIFO of waiters.

No lock, no clock, no waking. Free permits are tokens in a deque, so taking
one (``LimiterCore.take``) and giving one back (``give``) are single
atomic operations that need no lock: a call that finds a free permit, and
its release while nobody waits, cost two deque operations. Everything about
the queue needs the caller's lock.

The hand-over rule closes the race between the two: a waiter tries
``take`` once more after joining the queue (under the lock), and a
release checks ``queued`` after giving its permit back, calling
``hand_over`` (under the lock) when someone waits. Whatever the
interleaving, a free permit and a waiting caller never both stay put.

An adaptive limit moves with ``resize`` (under the caller's lock): a
larger limit adds free permits; a smaller one takes free permits away, and
those it cannot take (they are held) become ``owed``: the next releases
keep their permit instead of giving it back (``settle``, under the
lock, only while something is owed). Always
``len(free) + active == limit + owed``.

A waiter's ``state`` is the single truth about who holds a permit: one that
gives up asks ``cancel``, which says whether a permit reached it first
(then it must give that permit back).
"""

from __future__ import annotations

import functools
import itertools
from collections import deque

__all__ = ["LimiterCore", "Waiter"]

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
        "_done_reads",
        "_waiters",
        "done",
        "finished",
        "free",
        "give",
        "last_rejected_at",
        "limit",
        "max_concurrent",
        "max_queue",
        "owed",
        "queued",
        "rejected",
        "take",
    )

    def __init__(self, max_concurrent: int, max_queue: int, limit: int | None = None) -> None:
        self.max_concurrent = max_concurrent
        self.max_queue = max_queue
        #: The current limit: ``max_concurrent``, or what an adaptive limit set.
        self.limit = max_concurrent if limit is None else limit
        self.owed = 0
        # Free permits. Hot paths call free.pop(), free.append(None) and
        # next(done) themselves, which costs less than take(), give() and
        # finished() (the same operations, named).
        self.free: deque[None] = deque([None] * self.limit)
        self.take = self.free.pop  # lock-free; IndexError when none is free
        self.give = functools.partial(self.free.append, None)  # lock-free; then check ``queued``
        self.queued = 0
        self.rejected = 0
        self.last_rejected_at: float | None = None
        # Waiters that gave up stay here, marked gone, until popped or
        # compacted away: removing from the middle of a deque is O(n).
        self._waiters: deque[Waiter] = deque()
        # Completed calls are counted without the lock (count.__next__ is
        # atomic); reads consume a value each, tracked in _done_reads.
        self.done = itertools.count()
        self._done_reads = 0
        self.finished = self.done.__next__

    @property
    def active(self) -> int:
        """Permits held: by running calls, or handed to waiters not yet running."""
        return self.limit + self.owed - len(self.free)

    def completed(self) -> int:
        value = next(self.done) - self._done_reads
        self._done_reads += 1
        return value

    def resize(self, limit: int) -> None:
        """Set the limit to ``limit`` (under the caller's lock; then hand
        free permits over when someone waits)."""
        delta = limit - self.limit
        self.limit = limit
        free = self.free
        if delta > 0:
            paid = min(self.owed, delta)
            self.owed -= paid
            for _ in range(delta - paid):
                free.append(None)
            return
        for _ in range(-delta):
            try:
                free.pop()
            except IndexError:
                self.owed += 1

    def settle(self) -> bool:
        """A call ends while permits are owed (under the caller's lock): True
        when its permit pays a debt (it is not given back)."""
        if self.owed:
            self.owed -= 1
            return True
        return False

    def can_queue(self) -> bool:
        return self.queued < self.max_queue

    def enqueue(self, wake: object) -> Waiter:
        waiter = Waiter(wake)
        self._waiters.append(waiter)
        self.queued += 1
        return waiter

    def reject(self, now: float) -> None:
        self.rejected += 1
        self.last_rejected_at = now

    def hand_over(self) -> Waiter | None:
        """A free permit goes to the first waiter still waiting, which is
        returned for the caller to wake; None when either is missing."""
        waiters = self._waiters
        while self.queued:
            waiter = waiters.popleft()
            if waiter.state != _WAITING:
                continue
            try:
                self.take()
            except IndexError:
                waiters.appendleft(waiter)
                return None
            waiter.state = _HOLDS_PERMIT
            self.queued -= 1
            return waiter
        return None

    def cancel(self, waiter: Waiter) -> bool:
        """``waiter`` gives up. True when a permit reached it first: it holds
        that permit and must give it back. Asking twice answers False."""
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
