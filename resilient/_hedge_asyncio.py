"""An async hedged call under asyncio: the first attempt inline, in the
caller's task; hedges as tasks; the delays of one policy behind one timer.

- The first step of the first attempt runs before anything is armed: a call
  that answers without suspending (a cache hit) cannot be slow to answer,
  and costs no timer.
- When a hedge decides the race while the first attempt still runs, the
  caller's task is interrupted the way ``asyncio.timeout`` does it (a
  cancellation it takes back). The losers are cancelled; each ends at its
  next step. Cancelling the caller cancels every attempt.
- Under a test clock (``fake_clock``) the delay passes when the test moves
  the clock there, through the clock's ``wake_at``.
"""

from __future__ import annotations

import asyncio
import time
import types
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Generator
from typing import TYPE_CHECKING, Any, TypeVar, cast

from . import _clock, _hedge_trio
from ._active import switch
from ._hedge_core import RAISE, START, HedgeCore

if TYPE_CHECKING:
    from ._async_backend import Waiter
    from .hedging import Hedging

__all__ = ["race"]

R = TypeVar("R")

_running_loop = asyncio._get_running_loop
_current_task = asyncio.current_task
_CoroutineType = types.CoroutineType
# How early asyncio runs a timer (it takes those due within its clock's
# resolution): a shared timer waking that early still counts its deadline as due.
_RESOLUTION = time.get_clock_info("monotonic").resolution


async def race(
    policy: Hedging,
    fn: Callable[..., Awaitable[R]],
    name: str,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> R:
    """``fn(*args, **kwargs)``, hedged by ``policy`` (under trio: the trio race)."""
    if not switch.on:
        return await fn(*args, **kwargs)
    loop = _running_loop()
    if loop is None:
        # trio: a first step taken here could open a cancel scope that the
        # race's nursery would then interleave with; it starts there.
        return await _hedge_trio.race(policy, fn, name, args, kwargs)  # type: ignore[no-any-return]
    first = fn(*args, **kwargs)
    coro = first if type(first) is _CoroutineType else _awaiting(first)
    try:
        yielded = coro.send(None)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]
    except BaseException as exc:
        if not policy._hedged_on(exc):
            raise
        state = _Race(policy, fn, name, args, kwargs, loop)
        try:
            state.inline = False
            state.core.failed(exc, True)
            del exc
            state.launch()
            return await state.outcome()  # type: ignore[no-any-return]
        finally:
            state.stop()
    state = _Race(policy, fn, name, args, kwargs, loop)
    core = state.core
    try:
        state.arm()
        try:
            result = await _resume(coro, yielded)
        except asyncio.CancelledError:
            state.inline = False
            if not state.taken_back():
                raise
            # A hedge decided the race: its outcome is ours.
            return await state.outcome()  # type: ignore[no-any-return]
        except BaseException as exc:
            state.inline = False
            state.taken_back()
            if core.done:  # a hedge decided it meanwhile
                return await state.outcome()  # type: ignore[no-any-return]
            action = core.failed(exc, policy._hedged_on(exc))
            if action == RAISE:
                raise
            del exc
            if action == START:
                state.launch()
            return await state.outcome()  # type: ignore[no-any-return]
        state.inline = False
        state.taken_back()
        core.succeeded()
        return result  # type: ignore[no-any-return]
    finally:
        state.stop()


async def _awaiting(awaitable: Awaitable[R]) -> R:
    return await awaitable


async def _attempt(
    fn: Callable[..., Awaitable[R]], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> R:
    """A hedge, as its task runs it (whatever ``fn`` returns or raises)."""
    return await fn(*args, **kwargs)


@types.coroutine
def _resume(coro: Coroutine[Any, Any, R], yielded: Any) -> Generator[Any, Any, R]:
    """Await the rest of ``coro``, whose first step already ran and yielded
    ``yielded``: hand that to the event loop, then go on as ``await``."""
    while True:
        try:
            sent = yield yielded
        except GeneratorExit:
            coro.close()
            raise
        except BaseException as exc:
            try:
                yielded = coro.throw(exc)
            except StopIteration as stop:
                return cast(R, stop.value)
            continue
        if sent is None:
            return (yield from coro.__await__())
        try:
            yielded = coro.send(sent)
        except StopIteration as stop:
            return cast(R, stop.value)


class Timers:
    """The delays of one policy's races on one event loop, behind one
    ``loop.call_at``.

    Every race of a policy waits the same ``delay``, so deadlines come in
    the order races arm them: a deque is in deadline order, and one loop
    timer for its head serves them all. Arming is an append; a race that
    ends before its deadline leaves its entry, which counts only while the
    race's ``deadline`` is still the entry's, to be dropped when it reaches
    the head. Why: a ``TimerHandle`` per call (made, pushed on the loop's
    heap, cancelled) was a large share of what hedging added to a call
    that suspends.
    """

    __slots__ = ("delay", "entries", "handle", "loop")

    def __init__(self, loop: asyncio.AbstractEventLoop, delay: float) -> None:
        self.loop = loop
        self.delay = delay
        self.entries: deque[tuple[float, _Race]] = deque()
        self.handle: asyncio.TimerHandle | None = None

    def arm(self, state: _Race) -> None:
        when = state.deadline = self.loop.time() + self.delay
        entries = self.entries
        # Ended races at the head go: the deque stays about as long as the
        # calls in flight.
        while entries and entries[0][1].deadline != entries[0][0]:
            entries.popleft()
        entries.append((when, state))
        if self.handle is None:
            self.handle = self.loop.call_at(when, self._fire)

    def _fire(self) -> None:
        # ``handle`` stays set while firing, so races armed meanwhile (a
        # hedge started here re-arms) add no timer of their own.
        entries = self.entries
        due = self.loop.time() + _RESOLUTION
        while entries:
            when, state = entries[0]
            if state.deadline != when:
                entries.popleft()
            elif when <= due:
                entries.popleft()
                state.deadline = None
                state.on_timer()
            else:
                self.handle = self.loop.call_at(when, self._fire)
                return
        self.handle = None


def _timers(policy: Hedging, loop: asyncio.AbstractEventLoop) -> Timers:
    """The policy's timers on ``loop`` (the last loop it ran on keeps them)."""
    timers: Timers | None = policy._timers
    if timers is None or timers.loop is not loop:
        timers = policy._timers = Timers(loop, policy._delay)
    return timers


class _Race:
    """One async hedged call once its first attempt has suspended or failed."""

    __slots__ = (
        "alarm",
        "args",
        "caller",
        "core",
        "deadline",
        "fn",
        "inline",
        "interrupting",
        "kwargs",
        "loop",
        "name",
        "policy",
        "result",
        "tasks",
        "waiter",
    )

    def __init__(
        self,
        policy: Hedging,
        fn: Callable[..., Awaitable[Any]],
        name: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.policy = policy
        self.fn = fn
        self.name = name
        self.args = args
        self.kwargs = kwargs
        self.loop = loop
        self.core = core = HedgeCore(policy._attempts)
        core.start()
        self.caller = _current_task(loop)
        self.tasks: list[asyncio.Task[Any]] = []
        self.deadline: float | None = None  # when the shared timer starts the next
        self.alarm: Waiter | None = None  # the same, on a test clock
        self.waiter: asyncio.Future[None] | None = None
        self.inline = True
        self.interrupting = False
        self.result: Any = None

    def taken_back(self) -> bool:
        """Undo our interruption of the caller, if any: True when it was the
        only cancellation asked of it."""
        if not self.interrupting:
            return False
        self.interrupting = False
        caller = self.caller
        return caller is None or caller.uncancel() == 0

    async def outcome(self) -> Any:
        """The race's outcome, once a hedge decides it."""
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
        number = self.core.start()
        self.policy._started(self.name, number)
        task = self.loop.create_task(_attempt(self.fn, self.args, self.kwargs))
        self.tasks.append(task)
        task.add_done_callback(self._landed)
        self.disarm()
        if self.core.may_start():
            self.arm()

    def arm(self) -> None:
        """Start the next attempt ``delay`` seconds from now (on a test
        clock, when it gets there)."""
        wake_at = _clock.get_clock().wake_at
        if wake_at is None:
            _timers(self.policy, self.loop).arm(self)
        else:
            alarm = self.alarm = wake_at(_clock.monotonic() + self.policy._delay)
            alarm.on_wake(lambda: self._on_test_clock(alarm))

    def disarm(self) -> None:
        self.deadline = None
        alarm = self.alarm
        if alarm is not None:
            self.alarm = None
            alarm.cancel()

    def _on_test_clock(self, alarm: Waiter) -> None:
        if alarm.woken() and alarm is self.alarm:
            self.alarm = None
            self.on_timer()

    def on_timer(self) -> None:
        if self.core.may_start():
            self.launch()

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
