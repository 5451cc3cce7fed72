"""The one clock and the one sleep every policy goes through.

Everything is looked up at call time (``time.monotonic``, not a reference
captured at import), so freezegun moves it, and tests can swap the whole
clock with ``set_clock`` (see ``resilient.testing``). time-machine leaves
``time.monotonic`` alone, so while it travels the clock follows ``time.time``.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from . import async_backend as _async_backend
from .async_backend import Waiter
from .validation import MAX_SECONDS

__all__ = [
    "Clock",
    "get_clock",
    "monotonic",
    "now",
    "set_clock",
    "sleep",
    "sleep_async",
    "wall",
    "wake_at",
    "wall_now",
]


# The travel being followed: (its outermost traveller, time.monotonic() and
# time.time() when first seen).
_travel: list[tuple[object, float, float] | None] = [None]


def _real_monotonic(_loaded: Callable[[str], object] = sys.modules.get) -> float:
    machine: Any = _loaded("time_machine")
    if machine is None or not machine.traveller_stack:
        return time.monotonic()
    # time-machine moves time.time() only: while it travels, the clock moves
    # as time.time() does, from where time.monotonic() stood when the travel
    # began. One source for the whole travel, and no jump at either end: a
    # breaker tripped during a travel to 1970 is not half-open after it.
    traveller = machine.traveller_stack[0]
    seen = _travel[0]
    if seen is None or seen[0] is not traveller:
        seen = _travel[0] = (traveller, time.monotonic(), time.time())
    return seen[1] + (time.time() - seen[2])


def _real_wall() -> float:
    return time.time()


def _real_sleep(seconds: float) -> None:
    time.sleep(seconds)


def _real_sleep_async(seconds: float) -> Awaitable[None]:
    return _async_backend.sleep(seconds)  # asyncio.sleep, or trio's under trio


@dataclass(frozen=True, slots=True)
class Clock:
    """How a policy reads time and waits. Replaced as a whole in tests."""

    monotonic: Callable[[], float] = _real_monotonic
    wall: Callable[[], float] = _real_wall
    sleep: Callable[[float], None] = _real_sleep
    sleep_async: Callable[[float], Awaitable[None]] = _real_sleep_async
    #: Test clocks only: a waiter (of the running task's library) woken once
    #: the clock reaches the given ``monotonic`` time, so async timeouts can
    #: end when a test moves the clock past them. ``None``: real time only.
    wake_at: Callable[[float], Waiter] | None = None


REAL = Clock()
_current: list[Clock] = [REAL]


def get_clock() -> Clock:
    return _current[0]


#: The clock's monotonic read with no frame of ours around it: the builtin
#: ``time.monotonic`` itself while the real clock is in use and time-machine
#: is not loaded, else the installed clock's read. Hot paths call
#: ``_clock.now()`` (a module attribute, looked up per call, so a swap takes
#: effect at once); ``set_clock`` and every ``monotonic`` call keep
#: it right.
now: Callable[[], float] = time.monotonic
#: The wall clock's read, likewise (``time.time`` itself with the real clock).
wall_now: Callable[[], float] = time.time


#: The installed clock's ``wake_at`` (None with the real clock), likewise.
wake_at: Callable[[float], Waiter] | None = None


def _pick(_modules: Mapping[str, object] = sys.modules) -> None:
    global now, wall_now, wake_at
    clock = _current[0]
    wake_at = clock.wake_at
    if clock is not REAL:
        now, wall_now = clock.monotonic, clock.wall
    elif "time_machine" in _modules:
        now, wall_now = _real_monotonic, time.time
    else:
        now, wall_now = time.monotonic, time.time


def set_clock(clock: Clock | None) -> Clock:
    """Install ``clock`` (``None``: the real one) and return the previous one."""
    previous = _current[0]
    _current[0] = clock if clock is not None else REAL
    _pick()
    return previous


def monotonic(_modules: Mapping[str, object] = sys.modules) -> float:
    clock = _current[0]
    if clock is REAL and "time_machine" not in _modules:
        # The real clock without its wrapper, which policies' hot paths
        # (a rejection, a timed call) would feel.
        return time.monotonic()
    if now is time.monotonic:
        _pick()  # time-machine was loaded after us: follow it from now on
    return clock.monotonic()


_pick()


def wall() -> float:
    return _current[0].wall()


# Every wait is cut at MAX_SECONDS (threading.TIMEOUT_MAX): what time.sleep,
# a thread and the event loop can all wait for. A longer one, had it got this
# far, would be an OverflowError (time.sleep) or a sleep forever (asyncio).


def sleep(seconds: float) -> None:
    if seconds > 0:
        _current[0].sleep(seconds if seconds <= MAX_SECONDS else MAX_SECONDS)


async def sleep_async(seconds: float) -> None:
    if seconds > 0:
        await _current[0].sleep_async(seconds if seconds <= MAX_SECONDS else MAX_SECONDS)
    else:
        # Still a checkpoint: a cancelled task notices here, as with asyncio.sleep(0).
        await _async_backend.checkpoint()
