"""An async hedged call under asyncio: the first attempt inline, in the
caller's task; hedges as tasks; the delays of one policy behind one timer.

- The first attempt is awaited directly; its delay is an entry on its
  policy's timer (appended; when the call ends in time, marked done, and
  popped if it is still the last one), and a race is built only when a
  hedge is due. (Stepping the first attempt by
  hand before arming, so that a call that never suspends arms nothing,
  cost more than it saved on the calls that await: every later step went
  through a frame of ours.)
- When a hedge decides the race while the first attempt still runs, the
  caller's task is interrupted the way ``asyncio.timeout`` does it (a
  cancellation it takes back). The losers are cancelled; each ends at its
  next step. Cancelling the caller cancels every attempt.
- Under a test clock (``fake_clock``) the delay passes when the test moves
  the clock there, through the clock's ``wake_at``.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any, TypeVar

from .._execution.streams import Args, AsyncFn, Kwargs
from .._runtime import clock as _clock
from .._runtime.async_backend import current_task as _current_task
from .._runtime.async_backend import running_loop as _running_loop
from .._runtime.switch import switch
from ..timeout.deadlines import LoopTimer
from . import trio_race as _hedge_trio
from .state import RAISE, START, Call, RaceCall, Racer

__all__ = ["race"]

R = TypeVar("R")


# Until its delay passes, a hedged call is only an entry on its policy's
# timer: ``[when, race, alarm, fn, name, args, kwargs, caller]``, a list,
# built from locals on every call, where a ``_Race`` would cost an
# ``__init__`` that a call answering in time never needs. ``when`` is None
# once the entry no longer counts (the call ended, or its delay passed);
# ``race`` is None until the call becomes a race, when a hedge is due;
# ``alarm`` is the test clock's waiter, None on the real clock. A race's
# later delays (before its third attempt, ...) are entries
# ``[when, race, alarm]``.
WHEN, RACE, ALARM = 0, 1, 2


async def race(policy: Racer, fn: AsyncFn[R], name: str, args: Args, kwargs: Kwargs) -> R:
    """``fn(*args, **kwargs)``, hedged by ``policy`` (under trio: the trio race)."""
    if not switch.on:
        return await fn(*args, **kwargs)
    loop = _running_loop()
    if loop is None:
        return await _hedge_trio.race(policy, fn, name, args, kwargs)  # type: ignore[no-any-return]
    entry: list[Any] = [0.0, None, None, fn, name, args, kwargs, _current_task(loop)]
    timers: Timers | None = policy._timers
    if timers is None or timers.loop is not loop or _clock.wake_at is not None:
        entries = _arm(policy, loop, entry)  # a loop new to the policy, or a test clock
    else:
        # Timers.arm, inline: this runs on every hedged call.
        entry[WHEN] = when = timers.time() + timers.delay
        entries = timers.entries
        entries.append(entry)
        if timers.handle is None:
            timers.handle = loop.call_at(when, timers.fire)
    try:
        # ``f(*args)`` when there are no keywords: ``f(*args, **kwargs)``
        # builds a dict per call (docs/architecture.md, calls without keywords).
        result = await (fn(*args, **kwargs) if kwargs else fn(*args))
    except BaseException as exc:
        entry[WHEN] = None
        if entries is None:
            _disarm(entry)
        state = entry[RACE]
        if state is None:  # no hedge started: an error of the first attempt alone
            if isinstance(exc, asyncio.CancelledError) or not policy._hedged_on(exc):
                raise
            state = _Race(loop, None, policy, fn, name, args, kwargs)
        state.inline = False
        return await state.after(exc)  # type: ignore[no-any-return]
    entry[WHEN] = None
    if entries:
        if entries[-1] is entry:
            entries.pop()  # calls one after another leave nothing behind
    elif entries is None:
        _disarm(entry)
    state = entry[RACE]
    if state is not None:
        state.inline = False
        state.taken_back()
        state.core.succeeded()
        state.stop()
    return result


def _arm(
    policy: Racer, loop: asyncio.AbstractEventLoop, entry: list[Any]
) -> deque[list[Any]] | None:
    """Put ``entry`` on the timer of ``policy``: its ``delay`` from now. The
    timer's entries, or None on a test clock."""
    if _clock.wake_at is not None:
        _alarm(policy, loop, entry)
        return None
    timers: Timers | None = policy._timers
    if timers is None or timers.loop is not loop:
        timers = policy._timers = Timers(policy, loop)  # the last loop keeps them
    timers.arm(entry)
    return timers.entries


def _alarm(policy: Racer, loop: asyncio.AbstractEventLoop, entry: list[Any]) -> None:
    """``_arm`` on a test clock: due when the test moves the clock there."""
    assert _clock.wake_at is not None
    entry[WHEN] = when = _clock.monotonic() + policy._delay
    alarm = entry[ALARM] = _clock.wake_at(when)
    alarm.on_wake(lambda: _due(policy, loop, entry, when))


def _disarm(entry: list[Any]) -> None:
    """``entry`` no longer counts: off the timer (a test clock's too)."""
    entry[WHEN] = None
    alarm = entry[ALARM]
    if alarm is not None:
        entry[ALARM] = None
        alarm.cancel()


def _due(policy: Racer, loop: asyncio.AbstractEventLoop, entry: list[Any], when: float) -> None:
    """The delay of ``entry`` has passed: the next attempt starts, if it
    still counts."""
    if entry[WHEN] != when:
        return
    entry[WHEN] = entry[ALARM] = None
    state = entry[RACE]
    if state is None:
        fn, name, args, kwargs, caller = entry[3:]
        state = entry[RACE] = _Race(loop, caller, policy, fn, name, args, kwargs)
    if state.core.may_start():
        state.launch()


async def _attempt(fn: AsyncFn[R], args: Args, kwargs: Kwargs) -> R:
    """A hedge, as its task runs it (whatever ``fn`` returns or raises)."""
    return await fn(*args, **kwargs)


class Timers(LoopTimer):
    """The delays of one policy's calls on one event loop, behind one
    ``loop.call_at``.

    Every call of a policy waits the same ``delay``, so deadlines come in
    the order calls arm them: a deque is in deadline order, and one loop
    timer for its head serves them all. Arming is an append; an entry that
    no longer counts (its ``when`` is None) is dropped from the tail when
    its call ends, or from the head when the timer gets there. Why: a
    ``TimerHandle`` per call (made, pushed on the loop's heap, cancelled)
    was a third of what hedging added to a call that awaits.
    """

    __slots__ = ("delay", "policy")

    def __init__(self, policy: Racer, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(loop)
        self.policy = policy
        self.delay = policy._delay

    def arm(self, entry: list[Any]) -> None:
        when = entry[WHEN] = self.time() + self.delay
        self.entries.append(entry)
        if self.handle is None:
            self.handle = self.loop.call_at(when, self.fire)

    def expire(self, entry: list[Any], when: float) -> None:
        """A hedge is due: start it (a hedge started here arms the next)."""
        _due(self.policy, self.loop, entry, when)


class _Race(RaceCall):
    """One async hedged call once a hedge is due, or its first attempt
    failed with an error hedged on."""

    __slots__ = ("caller", "entry", "inline", "interrupting", "loop", "tasks", "waiter")

    def __init__(
        self, loop: asyncio.AbstractEventLoop, caller: asyncio.Task[Any] | None, *call: *Call
    ) -> None:
        super().__init__(*call)
        self.core.start()  # the first attempt
        self.loop = loop
        self.caller = caller  # the task the first attempt runs in
        self.tasks: list[asyncio.Task[Any]] = []
        self.entry: list[Any] | None = None  # on the timer, for the next attempt
        self.waiter: asyncio.Future[None] | None = None
        self.inline = True  # the first attempt still runs
        self.interrupting = False

    async def after(self, error: BaseException) -> Any:
        """The first attempt ended with ``error`` (a cancellation, perhaps
        ours): the race's outcome."""
        core = self.core
        try:
            if isinstance(error, asyncio.CancelledError):
                if not self.taken_back():
                    raise error
                return await self.outcome()  # a hedge decided: its outcome is ours
            self.taken_back()
            if not core.done:  # else a hedge decided it meanwhile
                action = core.failed(error, self.policy._hedged_on(error))
                if action == RAISE:
                    raise error
                if action == START:
                    self.launch()
            del error
            return await self.outcome()
        finally:
            self.stop()

    def taken_back(self) -> bool:
        """Undo our interruption of the caller, if any: True when it was the
        only cancellation asked of it."""
        if not self.interrupting:
            return False
        self.interrupting = False
        caller = self.caller
        return caller is None or caller.uncancel() == 0

    async def outcome(self) -> Any:
        """The race's outcome, once an attempt decides it."""
        if not self.core.done:
            waiter = self.waiter = self.loop.create_future()
            await waiter
        error = self.core.error
        if error is not None:
            try:
                raise error
            finally:
                error = None
        result, self.result = self.result, None
        return result

    def launch(self) -> None:
        """Start the next attempt now, and time the one after it."""
        number = self.core.start()
        self.policy._started(self.name, number)
        task = self.loop.create_task(_attempt(self.fn, self.args, self.kwargs))
        self.tasks.append(task)
        task.add_done_callback(self._landed)
        self.disarm()
        if self.core.may_start():
            entry = self.entry = [0.0, self, None]
            _arm(self.policy, self.loop, entry)

    def disarm(self) -> None:
        entry = self.entry
        if entry is not None:
            self.entry = None
            _disarm(entry)

    def _landed(self, task: asyncio.Task[Any]) -> None:
        core = self.core
        if task.cancelled():
            if not core.done:  # cancelled by someone else: the race is lost
                core.failed(asyncio.CancelledError(), False)
                self._decided()
            return
        error = task.exception()  # retrieved: a loser's error is never logged
        if core.done:
            core.running -= 1
            return
        if error is None:
            core.succeeded()
            self.result = task.result()
            self._decided()
            return
        action = core.failed(error, self.policy._hedged_on(error))
        if action == RAISE:
            self._decided()
        elif action == START:
            self.launch()

    def _decided(self) -> None:
        self.disarm()
        if self.inline:
            # The first attempt is still running in the caller's task.
            caller = self.caller
            if caller is not None and not self.interrupting:
                self.interrupting = True
                caller.cancel()
        else:
            waiter = self.waiter
            if waiter is not None and not waiter.done():
                waiter.set_result(None)

    def stop(self) -> None:
        """Cancel what still runs (each ends at its next step)."""
        self.core.done = True
        self.disarm()
        for task in self.tasks:
            if not task.done():
                task.cancel()
