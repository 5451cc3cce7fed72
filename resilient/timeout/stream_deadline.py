"""The deadlines of an async stream's waits under asyncio, one timer per stream.

A stream waits once per item, and each wait has its own bound (the first
item's, then the inactivity limit's, never past the whole stream's end). An
``asyncio.timeout`` per wait arms and cancels a timer handle per item, and
the cancelled handles pile up in the loop's heap: most of what a protected
stream cost per item. Here one timer serves the whole stream, lazily: each
wait only records its deadline; when the timer fires early (the deadline
moved on since), it is set again for the new deadline; when it fires during
a wait that is past its deadline, it cancels the waiting task, and the
stream turns that cancellation into its timeout (any other cancellation
passes through untouched).
"""

from __future__ import annotations

import asyncio
from typing import Any

from .._runtime.async_backend import current_task as _current_task

__all__ = ["StreamDeadline"]


class StreamDeadline:
    """The deadline of the current wait of one stream, on ``loop``."""

    __slots__ = ("cancelling", "expired", "handle", "loop", "task", "waiting", "when")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
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

    def _set(self, when: float) -> None:
        self.when = when
        if when <= self.loop.time():
            # Already past (the timer fired between two waits): fire during
            # this wait. A timer set for a past time runs after this task's
            # next step, which may end the wait first, every time: a stream
            # that never timed out.
            self.handle = self.loop.call_soon(self._fire)
        else:
            self.handle = self.loop.call_at(when, self._fire)

    def disarm(self) -> None:
        """The wait ended (an item, the end, or an error)."""
        self.waiting = False

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

    def _fire(self) -> None:
        self.handle = None
        if not self.waiting:
            return  # the next wait sets the timer again
        if self.loop.time() < self.when:
            self.handle = self.loop.call_at(self.when, self._fire)
            return
        task = self.task
        if task is not None and not task.done():
            self.expired = True
            self.cancelling = task.cancelling()
            task.cancel()
