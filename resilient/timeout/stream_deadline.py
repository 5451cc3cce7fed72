"""The bounds of a stream's waits after its first item, as the one relay of
a chain applies them (``resilient._execution.streams``).

A stream waits once per item, and each wait has its own bound (the
inactivity limit, never past the whole stream's end). The consumer's own
time between items is never counted.

- A sync stream (``SyncWaits``) cannot be interrupted: the relay reads the
  clock around each wait, and a wait that overran fails when its item comes.
- An async stream under asyncio (``StreamDeadline``): an ``asyncio.timeout``
  per wait arms and cancels a timer handle per item, and the cancelled
  handles pile up in the loop's heap: most of what a protected stream cost
  per item. Here one timer serves the whole stream, lazily: each wait only
  records its deadline (one clock read); when the timer fires early (the
  deadline moved on since), it is set again for the new deadline; when it
  fires during a wait that is past its deadline, it cancels the waiting
  task, and the relay turns that cancellation into the timeout (any other
  cancellation passes through untouched).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from typing import Any, Protocol

from .._runtime.async_backend import current_task as _current_task

__all__ = ["Bounded", "StreamDeadline", "SyncWaits"]


class Bounded(Protocol):
    """What the waits ask of their timeout: the error of a bound that ran out."""

    def _late(self, name: str, bound: float, first: bool) -> BaseException: ...

    def _timed_out(self, name: str, seconds: float) -> BaseException: ...


class SyncWaits:
    """The later waits of a sync stream begun at ``began``: each at most
    ``later`` (None: unbounded), and none past ``total`` from the start."""

    __slots__ = ("ends", "later", "name", "now", "owner", "total")

    def __init__(
        self,
        owner: Bounded,
        name: str,
        now: Callable[[], float],
        began: float,
        later: float | None,
        total: float | None,
    ) -> None:
        self.owner = owner
        self.name = name
        self.now = now
        self.later = math.inf if later is None else later
        self.total = total
        self.ends = math.inf if total is None else began + total

    def overran(self, asked: float, came: float) -> BaseException:
        """The error of a wait from ``asked`` to ``came`` past a bound."""
        if came > self.ends:
            assert self.total is not None
            return self.owner._timed_out(self.name, self.total)
        return self.owner._late(self.name, self.later, False)


class StreamDeadline:
    """The deadline of the current wait of one stream, on ``loop``: the
    first item's (``arm``), then each later one's, which the relay starts
    itself (``AWaits``): ``when`` at most ``later`` seconds from the wait's
    start, never past ``ends`` (``total`` from the stream's start), the
    waiting ``task``, ``waiting``, and ``schedule()`` when no timer is set
    (``handle`` None)."""

    __slots__ = (
        "cancelling",
        "ends",
        "expired",
        "handle",
        "later",
        "loop",
        "name",
        "owner",
        "task",
        "time",
        "total",
        "waiting",
        "when",
    )

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        owner: Bounded,
        name: str,
        later: float | None,
        total: float | None,
    ) -> None:
        self.loop = loop
        self.owner = owner
        self.name = name
        # The loop's clock: asyncio's own is ``time.monotonic``, read here
        # without the method around it (uvloop keeps its own).
        base = type(loop).time is asyncio.BaseEventLoop.time
        self.time: Callable[[], float] = time.monotonic if base else loop.time
        self.later = math.inf if later is None else later
        self.total = total
        self.ends = math.inf if total is None else self.time() + total
        self.when = 0.0
        self.waiting = False
        self.expired = False
        self.handle: asyncio.Handle | None = None
        self.task: asyncio.Task[Any] | None = None
        self.cancelling = 0

    def arm(self, when: float) -> None:
        """A wait starts, bounded by loop time ``when`` (in the task that waits)."""
        self.task = _current_task(self.loop)
        self.waiting = True
        if self.handle is None:
            self._set(when)
        elif when < self.when:  # a shorter bound than the timer's
            self.handle.cancel()
            self._set(when)
        else:
            self.when = when

    def schedule(self) -> None:
        """Set the timer for ``when`` (the relay, starting a wait with none set)."""
        self._set(self.when)

    def error(self) -> BaseException:
        """The error of the later wait whose deadline this was: the whole
        stream's end, or the inactivity limit."""
        if self.when >= self.ends:
            assert self.total is not None
            return self.owner._timed_out(self.name, self.total)
        return self.owner._late(self.name, self.later, False)

    def _set(self, when: float) -> None:
        self.when = when
        if when <= self.time():
            # Already past (the timer fired between two waits): fire during
            # this wait. A timer set for a past time runs after this task's
            # next step, which may end the wait first, every time: a stream
            # that never timed out.
            self.handle = self.loop.call_soon(self._fire)
        else:
            self.handle = self.loop.call_at(when, self._fire)

    def timed_out(self) -> bool:
        """After a ``CancelledError`` in the wait: whether it was this deadline's
        (then the cancellation is taken back)."""
        task = self.task
        if not self.expired or task is None:
            return False
        self.expired = False
        return task.uncancel() <= self.cancelling

    def close(self) -> None:
        handle, self.handle = self.handle, None
        if handle is not None:
            handle.cancel()

    def ended(self, error: BaseException | None, closed: bool) -> None:
        """The stream ended (its end hook): the timer goes."""
        self.close()

    def _fire(self) -> None:
        self.handle = None
        if not self.waiting:
            return  # the next wait sets the timer again
        if self.time() < self.when:
            self.handle = self.loop.call_at(self.when, self._fire)
            return
        task = self.task
        if task is not None and not task.done():
            self.expired = True
            self.cancelling = task.cancelling()
            task.cancel()
