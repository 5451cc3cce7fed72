"""Deadlines of coroutines under asyncio: one queue and one loop timer per
limit and event loop, instead of a timer handle per call.

Every call timed by the same limit on one loop gets a deadline no earlier
than those armed before it, so a deque is in deadline order and one
``loop.call_at`` for its head serves all of them. Arming is an append (an
entry ``[when, task, cancelling, fired]``, a list built from locals); a call
that ends in time sets ``when`` to None and pops its entry when it is the
last one (calls one after another leave nothing behind); an entry that no
longer counts is dropped from the head when the timer gets there. Why: the
``TimerHandle`` that ``asyncio.timeout`` makes, pushes on the loop's heap
and cancels on every call was most of what an async timeout cost.

When the timer reaches an entry that still counts, it cancels the entry's
task and marks it ``fired``, exactly as ``asyncio.timeout`` does; the call
takes its cancellation back with ``Task.uncancel()`` and turns it into a
timeout only when no other cancellation was asked of the task meanwhile
(``Task.cancelling()`` as it was when the call started), so a caller's own
cancellation, and an outer timeout's, pass through untouched.

``within(queue, awaitable)`` awaits anything under a queue's limit (what a
stream's per-item waits can reuse); ``Timeout`` inlines the same steps on
its hot path.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from .._runtime.async_backend import current_task, running_loop

__all__ = [
    "CANCELLING",
    "FIRED",
    "WHEN",
    "DeadlineQueue",
    "LoopTimer",
    "current_task",
    "running_loop",
    "settle",
    "within",
]

R = TypeVar("R")

# How early asyncio runs a timer (it takes those due within its clock's
# resolution): a timer waking that early still counts its deadline as due.
_RESOLUTION = time.get_clock_info("monotonic").resolution

# An entry: [when, task, the task's cancelling() when armed, fired].
WHEN, TASK, CANCELLING, FIRED = 0, 1, 2, 3


class LoopTimer:
    """Entries (lists, their deadline first) in deadline order on one event
    loop, behind one ``loop.call_at`` for the first: arming is an append,
    and an entry whose deadline is None no longer counts (dropped when the
    timer gets there). ``fire`` hands each due entry to ``expire``."""

    __slots__ = ("entries", "handle", "loop", "time")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        # The loop's clock: asyncio's own is ``time.monotonic``, read here
        # without the method around it (uvloop keeps its own).
        base = type(loop).time is asyncio.BaseEventLoop.time
        self.time: Callable[[], float] = time.monotonic if base else loop.time
        self.entries: deque[list[Any]] = deque()
        self.handle: asyncio.Handle | None = None

    def expire(self, entry: list[Any], when: float) -> None:
        """``entry``'s deadline ``when`` has come (it is off the queue)."""
        raise NotImplementedError

    def fire(self) -> None:
        """The loop timer: expire every entry due by now, and set the timer
        for the first one that is not. ``handle`` stays set meanwhile, so
        entries armed by an expiry add no timer of their own."""
        entries = self.entries
        due = self.time() + _RESOLUTION
        try:
            while entries:
                when = entries[0][WHEN]
                if when is None:
                    entries.popleft()
                elif when <= due:
                    self.expire(entries.popleft(), when)
                else:
                    self.handle = self.loop.call_at(when, self.fire)
                    return
        except BaseException:
            # An interrupt out of an expiry: the others still get theirs.
            self.handle = self.loop.call_soon(self.fire)
            raise
        self.handle = None


class DeadlineQueue(LoopTimer):
    """The deadlines of the calls timed by ``seconds`` on ``loop``, behind
    one ``loop.call_at``. Used from the loop's own thread only."""

    __slots__ = ("seconds",)

    def __init__(self, loop: asyncio.AbstractEventLoop, seconds: float) -> None:
        super().__init__(loop)
        self.seconds = seconds

    def __repr__(self) -> str:
        return f"<DeadlineQueue {self.seconds:g}s entries={len(self.entries)}>"

    def arm(self, task: asyncio.Task[Any]) -> list[Any]:
        """A new entry for ``task``: its deadline is ``seconds`` from now."""
        when = self.time() + self.seconds
        entry: list[Any] = [when, task, task.cancelling(), False]
        self.entries.append(entry)
        if self.handle is None:
            self.handle = self.loop.call_at(when, self.fire)
        return entry

    def expire(self, entry: list[Any], when: float) -> None:
        """Cancel the task of ``entry``: its deadline has come."""
        entry[WHEN] = None
        entry[FIRED] = True
        entry[TASK].cancel()


def settle(entries: deque[list[Any]], entry: list[Any], error: BaseException | None) -> bool:
    """The call of ``entry`` ended (with ``error``, or None): True when it is
    its deadline that ended it (the caller raises its timeout then)."""
    if entry[FIRED]:
        task: asyncio.Task[Any] = entry[TASK]
        return task.uncancel() <= entry[CANCELLING] and isinstance(error, asyncio.CancelledError)
    entry[WHEN] = None
    if entries and entries[-1] is entry:
        entries.pop()
    return False


async def within(queue: DeadlineQueue, awaitable: Awaitable[R]) -> R:
    """Await ``awaitable`` under ``queue``'s limit, in the current task of
    ``queue.loop``; past it, ``TimeoutError`` (chained to the cancellation),
    as ``asyncio.timeout`` raises."""
    task = current_task(queue.loop)
    if task is None:
        raise RuntimeError("a deadline needs to run inside an asyncio task")
    entry = queue.arm(task)
    try:
        result = await awaitable
    except BaseException as exc:
        if settle(queue.entries, entry, exc):
            raise TimeoutError from exc
        raise
    settle(queue.entries, entry, None)
    return result
