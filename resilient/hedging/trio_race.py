"""An async hedged call under trio (and anyio on trio): the race as a nursery.

The first attempt goes on in the caller's task, in the body of a nursery;
the hedges, and the timer that starts them, are that nursery's children.
Whoever decides the race cancels the nursery: the first attempt (if it still
runs), the other hedges and the timer stop at their next checkpoint, as trio
stops anything. Cancelling the caller cancels them all, being trio's own
cancellation.

An error ends the race as an outcome recorded in the ``HedgeCore``, never
by crossing the nursery (which would wrap it in an exception group): the
nursery only ever sees trio's ``Cancelled``, which it handles itself.
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from typing import Any

from .._execution.streams import Args, Kwargs
from .._runtime import async_backend as _async_backend
from .._runtime import clock as _clock
from .state import RAISE, START, Call, RaceCall, Racer

__all__ = ["race"]


async def race(
    policy: Racer,
    fn: Callable[..., Awaitable[Any]],
    name: str,
    args: Args,
    kwargs: Kwargs,
) -> Any:
    """``fn(*args, **kwargs)``, hedged: its first attempt in the calling task."""
    trio: Any = sys.modules["trio"]
    state = _Race(trio, policy, fn, name, args, kwargs)
    core = state.core
    core.start()
    async with trio.open_nursery() as nursery:
        state.nursery = nursery
        nursery.start_soon(state.timer)
        try:
            # ``f(*args)`` when there are no keywords: ``f(*args, **kwargs)``
            # builds a dict per call (docs/architecture.md, calls without keywords).
            result = await (fn(*args, **kwargs) if kwargs else fn(*args))
        except trio.Cancelled:
            raise  # a hedge decided the race (the nursery takes it), or the caller's
        except BaseException as exc:
            state.answered(exc)
        else:
            state.won(result)
    # Out of the nursery: every attempt has ended, and the race is decided
    # (a cancellation from outside the call would have been raised instead).
    error = core.error
    if error is not None:
        try:
            raise error
        finally:
            error = None
    return state.result


class _Race(RaceCall):
    """One hedged call's shared state: what the attempts and the timer tell
    the core, and the decision they act on."""

    __slots__ = ("kick", "nursery", "trio")

    def __init__(self, trio: Any, *call: *Call) -> None:
        super().__init__(*call)
        self.trio = trio
        self.nursery: Any = None
        self.kick: _async_backend.Waiter | None = None  # wakes the timer early

    # -- what an attempt tells ----------------------------------------------------

    def won(self, result: Any) -> None:
        if self.core.succeeded():
            self.result = result
            self.decided()

    def answered(self, error: BaseException) -> None:
        """An attempt failed (an ``Exception``, or an interrupt that ends the
        race as an error not hedged on)."""
        action = self.core.failed(error, self.policy._hedged_on(error))
        if action == RAISE:
            self.decided()
        elif action == START:
            self.launch()

    def decided(self) -> None:
        self.nursery.cancel_scope.cancel()

    # -- attempts and the timer ---------------------------------------------------

    def launch(self) -> None:
        """Start the next attempt now; the timer counts ``delay`` from here."""
        number = self.core.start()
        self.policy._started(self.name, number)
        self.nursery.start_soon(self.hedge)
        kick = self.kick
        if kick is not None:
            kick.wake()

    async def hedge(self) -> None:
        try:
            result = await self.fn(*self.args, **self.kwargs)
        except self.trio.Cancelled:
            raise
        except BaseException as exc:
            self.answered(exc)
        else:
            self.won(result)

    async def timer(self) -> None:
        """Start an attempt each time ``delay`` passes with none started."""
        core = self.core
        delay = self.policy._delay
        trio = self.trio
        while core.may_start():
            started = core.started  # an attempt started meanwhile restarts the delay
            kick = self.kick = _async_backend.waiter()
            wake_at = _clock.get_clock().wake_at
            if wake_at is None:
                with trio.move_on_after(delay):
                    await kick.wait()
                fired = not kick.woken()
            else:
                # A test clock: the delay passes when the test moves it there.
                alarm = wake_at(_clock.monotonic() + delay)
                alarm.on_wake(kick.wake)
                try:
                    await kick.wait()
                finally:
                    alarm.cancel()
                fired = alarm.woken()
            self.kick = None
            if fired and core.started == started and core.may_start():
                self.launch()
