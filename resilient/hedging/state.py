"""Hedging's rules as a pure state object: when another attempt starts, and
when the race is decided.

No clock, no threads, no tasks. The sync and async paths tell it what
happened (a delay passed, an attempt answered) and do what it answers.
"""

from __future__ import annotations

from typing import Any, Protocol

from .._execution.streams import Args, AsyncFn, Kwargs

__all__ = ["RAISE", "START", "WAIT", "Call", "HedgeCore", "RaceCall"]

#: What to do after an attempt failed.
START = "start"  # start another attempt at once
WAIT = "wait"  # other attempts still run: wait for them
RAISE = "raise"  # the race is lost: raise ``core.error``


class HedgeCore:
    """One hedged call: at most ``attempts`` attempts (the first plus the hedges).

    ``started`` counts attempts started (the next one's number is
    ``started + 1``), ``running`` those without an answer yet. The race is
    ``done`` once an attempt succeeded, an error the policy does not hedge on
    came back, or every attempt failed; ``error`` is then what to raise (the
    last error), or None when an attempt won.
    """

    __slots__ = ("attempts", "done", "error", "running", "started")

    def __init__(self, attempts: int) -> None:
        self.attempts = attempts
        self.started = 0
        self.running = 0
        self.done = False
        self.error: BaseException | None = None

    def may_start(self) -> bool:
        """Whether another attempt may start (when its delay passes)."""
        return not self.done and self.started < self.attempts

    def start(self) -> int:
        """An attempt starts: its number (1 for the first)."""
        self.started += 1
        self.running += 1
        return self.started

    def succeeded(self) -> bool:
        """An attempt answered: True when it wins (the race was still open)."""
        self.running -= 1
        if self.done:
            return False
        self.done = True
        self.error = None
        return True

    def failed(self, error: BaseException, hedged_on: bool) -> str:
        """An attempt failed with ``error`` (``hedged_on``: an error the policy
        hedges on). Answers ``START``, ``WAIT`` or ``RAISE``."""
        self.running -= 1
        if self.done:
            return WAIT  # a loser's late answer: nothing to do
        self.error = error
        if not hedged_on:
            self.done = True
            return RAISE
        if self.started < self.attempts:
            return START
        if self.running:
            return WAIT
        self.done = True
        return RAISE


class Racer(Protocol):
    """What a race (``asyncio_race``, ``trio_race``) reads of its policy: a ``Hedging``."""

    _delay: float
    _attempts: int
    _timers: Any  # the asyncio race's timers of the loop it last ran on

    def _hedged_on(self, error: BaseException) -> bool: ...
    def _started(self, name: str, attempt: int) -> None: ...


#: What a race is handed: the policy, the function, its name and arguments.
Call = tuple[Racer, AsyncFn[Any], str, Args, Kwargs]


class RaceCall:
    """One hedged call, as both races (asyncio, trio) hold it: what is
    called, under which name, its core and its outcome."""

    __slots__ = ("args", "core", "fn", "kwargs", "name", "policy", "result")

    def __init__(self, *call: *Call) -> None:
        self.policy, self.fn, self.name, self.args, self.kwargs = call
        self.core = HedgeCore(call[0]._attempts)
        self.result: Any = None
