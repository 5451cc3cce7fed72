"""Fake time: a clock that moves only when told to, and waits that never
sleep (``resilient.testing`` re-exports them).

They live here, below the pytest plugin, so that the plugin's fixtures and
``resilient.testing`` (which re-exports the plugin for ``-p
resilient.testing``) both import them, and neither imports the other.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import importlib
import itertools
import math
import sys
import threading
from collections.abc import Iterator
from typing import Any

from . import async_backend as _async_backend
from . import clock as _clock
from . import fork as _fork
from . import validation as _validate
from .async_backend import Waiter

__all__ = ["FakeClock", "WaitRecorder", "fake_clock", "instant_waits"]

# How many times a fake async wait lets the event loop go round, while it
# still has other work ready, before the clock jumps to the wait's end.
_MAX_HOPS = 1000
# Under trio: how long (real seconds) a fake wait waits for every task to be
# blocked before the clock jumps anyway.
_MAX_BUSY = 1.0


class FakeClock:
    """A monotonic (and wall) clock that moves only when told to.

    Under it, every wait a policy makes moves the clock instead of sleeping.
    A sync wait moves it at once. An async wait lets the event loop run
    whatever is ready first, then moves the clock to its own end, the
    earliest-ending wait first: of two racing waits the shorter one ends
    first, as in real time. An async timeout ends when real time runs out or
    when this clock reaches its deadline, whichever comes first.
    """

    def __init__(self, start: float = 0.0, wall_start: float = 1_700_000_000.0) -> None:
        self._now = _validate.number("FakeClock", "start", start, -math.inf)
        wall = _validate.number("FakeClock", "wall_start", wall_start, -math.inf)
        self._wall_offset = wall - self._now
        #: Every wait a policy made under this clock, in seconds, in order.
        self.delays: list[float] = []
        self._lock = threading.Lock()
        _fork.renew_in_child(self, _fork.locks("_lock"))
        self._waiters: list[tuple[float, int, Waiter]] = []
        # Deadlines (async timeouts) wake when the clock gets there, but never
        # move it themselves: a call doing real I/O under a timeout must not
        # see fake time jump to its deadline while the loop waits.
        self._deadlines: list[tuple[float, int, Waiter]] = []
        self._order = itertools.count()
        self._jumping: set[asyncio.AbstractEventLoop] = set()
        self._trio_jumper: Waiter | None = None
        self._trio_handover: Any = None  # a trio.Event while sleepers wait for a jumper

    @property
    def sleeps(self) -> list[float]:
        """The same list as ``delays``."""
        return self.delays

    def now(self) -> float:
        return self._now

    def wall(self) -> float:
        return self._now + self._wall_offset

    def advance(self, seconds: float) -> None:
        """Move the clock forward; async waits that end by then wake up."""
        if not seconds >= 0 or math.isinf(seconds):
            raise ValueError(
                f"FakeClock.advance(seconds) must be a finite number >= 0, got {seconds!r}"
            )
        self._move_to(self._now + seconds)

    def _move_to(self, when: float) -> None:
        with self._lock:
            self._now = max(self._now, when)
            due = []
            while self._waiters and self._waiters[0][0] <= self._now:
                due.append(heapq.heappop(self._waiters)[2])
            while self._deadlines and self._deadlines[0][0] <= self._now:
                due.append(heapq.heappop(self._deadlines)[2])
        for waiter in due:
            waiter.wake()

    def _sleep(self, seconds: float) -> None:
        self.delays.append(seconds)
        self._move_to(self._now + seconds)

    async def _sleep_async(self, seconds: float) -> None:
        self.delays.append(seconds)
        waiter = _async_backend.waiter()
        with self._lock:
            heapq.heappush(self._waiters, (self._now + seconds, next(self._order), waiter))
        if _async_backend.current() == "trio":
            await self._sleep_trio(waiter)
            return
        loop = asyncio.get_running_loop()
        with self._lock:
            start = loop not in self._jumping
            self._jumping.add(loop)
        if start:
            loop.call_soon(self._jump_when_idle, loop, 0)
        # A cancelled wait leaves its waiter done; the jump skips it.
        await waiter.wait()

    def _jump(self) -> bool:
        """Move the clock to the end of the earliest wait (or to a deadline
        before it); False when nobody waits."""
        with self._lock:
            waiters = self._waiters
            while waiters and waiters[0][2].done():
                heapq.heappop(waiters)
            if not waiters:
                return False
            end = waiters[0][0]
            # A deadline before that wait's end is reached on the way there:
            # stop at it first, so the timeout ends the call before the wait.
            deadlines = self._deadlines
            while deadlines and deadlines[0][2].done():
                heapq.heappop(deadlines)
            if deadlines and deadlines[0][0] < end:
                end = deadlines[0][0]
        self._move_to(end)
        return True

    def _jump_when_idle(self, loop: asyncio.AbstractEventLoop, hops: int) -> None:
        # "Idle" means nothing else is ready to run. asyncio has no public way
        # to ask, so look at the base loop's ready queue when there is one.
        if hops < _MAX_HOPS and getattr(loop, "_ready", None):
            loop.call_soon(self._jump_when_idle, loop, hops + 1)
            return
        if not self._jump():
            with self._lock:
                self._jumping.discard(loop)
            return
        # The woken task runs before the next jump.
        loop.call_soon(self._jump_when_idle, loop, 0)

    async def _sleep_trio(self, waiter: Waiter) -> None:
        # Under trio one sleeping task at a time (the jumper) waits until
        # every task is blocked, then moves the clock; the others wait to be
        # woken, or to take the jumper's place when it leaves.
        trio: Any = sys.modules["trio"]
        wait_all_tasks_blocked = importlib.import_module("trio.testing").wait_all_tasks_blocked
        try:
            while not waiter.done():
                if self._trio_jumper is None:
                    self._trio_jumper = waiter
                if self._trio_jumper is waiter:
                    with trio.move_on_after(_MAX_BUSY) as idle:
                        waiter.on_wake(idle.cancel)
                        await wait_all_tasks_blocked()
                    if not waiter.done():
                        self._jump()
                    continue
                handover = self._trio_handover
                if handover is None:
                    handover = self._trio_handover = trio.Event()
                with trio.CancelScope() as woken:
                    waiter.on_wake(woken.cancel)
                    await handover.wait()
        finally:
            waiter.cancel()  # a wait cut short is skipped by the jumps
            if self._trio_jumper is waiter:
                self._trio_jumper = None
                handover, self._trio_handover = self._trio_handover, None
                if handover is not None:
                    handover.set()

    def _wake_at(self, when: float) -> Waiter:
        waiter = _async_backend.waiter()
        with self._lock:
            if when <= self._now:
                waiter.wake()
            else:
                heapq.heappush(self._deadlines, (when, next(self._order), waiter))
        return waiter

    def as_clock(self) -> _clock.Clock:
        return _clock.Clock(
            monotonic=self.now,
            wall=self.wall,
            sleep=self._sleep,
            sleep_async=self._sleep_async,
            wake_at=self._wake_at,
        )


@contextlib.contextmanager
def fake_clock(start: float = 0.0) -> Iterator[FakeClock]:
    """Every policy reads ``clock.now()`` inside the block; waits advance it."""
    clock = FakeClock(start)
    previous = _clock.set_clock(clock.as_clock())
    try:
        yield clock
    finally:
        _clock.set_clock(previous)


class WaitRecorder:
    """What ``instant_waits`` yields."""

    def __init__(self) -> None:
        #: Every wait a policy would have slept, in seconds, in order.
        self.delays: list[float] = []


@contextlib.contextmanager
def instant_waits() -> Iterator[WaitRecorder]:
    """Inside the block, every wait a policy makes returns at once and is
    recorded in ``.delays``. Time is still read from the installed clock;
    nested inside ``fake_clock`` the waits still move the fake clock."""
    recorder = WaitRecorder()
    previous = _clock.get_clock()
    forward = previous is not _clock.REAL

    def sleep(seconds: float) -> None:
        recorder.delays.append(seconds)
        if forward:
            previous.sleep(seconds)

    async def sleep_async(seconds: float) -> None:
        recorder.delays.append(seconds)
        if forward:
            await previous.sleep_async(seconds)
        else:
            await _async_backend.checkpoint()

    _clock.set_clock(
        _clock.Clock(
            monotonic=previous.monotonic,
            wall=previous.wall,
            sleep=sleep,
            sleep_async=sleep_async,
            wake_at=previous.wake_at,
        )
    )
    try:
        yield recorder
    finally:
        _clock.set_clock(previous)
