"""``HedgingConfig`` and ``Hedging``: when an attempt is slow, start another
and take whichever answers first. For idempotent calls only.

The rules live in ``resilient.hedging.state``; the two paths drive it.

- Coroutines: under asyncio, ``resilient.hedging.asyncio_race`` (the first
  attempt inline in the caller's task, hedges as tasks, one timer per
  policy and loop); under trio (and anyio on trio),
  ``resilient.hedging.trio_race`` (a nursery). Cancelling the caller cancels
  every attempt.
- Sync functions: every attempt runs on a worker thread of a bounded pool
  of daemon threads, one pool per dependency (the policy's name, or the
  function's), so a dependency that hangs never delays another; the caller
  waits (real time) for the first answer. A thread cannot be stopped:
  losers are abandoned and run to their end in the background; an attempt
  not yet started never starts.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from .. import events
from .._execution.collected import Held, end_dropped, set_aside
from .._execution.compose import decorate
from .._execution.policy_base import ForwardingPolicy
from .._execution.streams import AOpen, Args, Kwargs, Open, Opened, SyncFn
from .._runtime import fork as _fork
from .._runtime import validation as _validate
from .._runtime.mapping import FromDict
from .._runtime.switch import switch
from .._runtime.workers import Job, WorkerPool
from . import asyncio_race as _hedge_asyncio
from .state import RAISE, START, HedgeCore

if TYPE_CHECKING:
    from .._execution.compose import Decoratable

__all__ = ["MAX_HEDGES", "Hedging", "HedgingConfig", "with_hedging"]

R = TypeVar("R")
F = TypeVar("F", bound="Decoratable")

_OWNER = "HedgingConfig"

MAX_HEDGES = 16
"""The most hedges one call may start (each may hold a thread)."""
#: Threads of each dependency's pool sync hedged attempts run on.
POOL_SIZE = 64

HedgeOn = tuple[type[BaseException], ...] | Callable[[BaseException], bool]


@dataclass(frozen=True, slots=True)
class HedgingConfig(FromDict):
    """Start another attempt when one has no answer after ``delay`` seconds,
    up to ``max_hedges`` extra; an attempt failing with an ``on`` error
    (exception types or a predicate) starts the next at once."""

    _durations = frozenset({"delay"})

    delay: float
    max_hedges: int = 1
    on: HedgeOn = (Exception,)

    def __post_init__(self) -> None:
        delay = _validate.seconds(_OWNER, "delay", self.delay)
        if delay > threading.TIMEOUT_MAX:
            raise ValueError(
                f"{_OWNER}.delay must be <= {threading.TIMEOUT_MAX:g} seconds (the most a "
                f"thread can wait), got {self.delay!r}"
            )
        object.__setattr__(self, "delay", delay)
        _validate.int_at_least(_OWNER, "max_hedges", self.max_hedges, 1)
        if self.max_hedges > MAX_HEDGES:
            raise ValueError(
                f"{_OWNER}.max_hedges must be <= {MAX_HEDGES}, got {self.max_hedges!r}"
            )
        on = self.on
        if isinstance(on, (type, tuple)):
            object.__setattr__(self, "on", _validate.exception_types(_OWNER, "on", on))
        elif not callable(on):
            raise TypeError(f"{_OWNER}.on must be exception types or a predicate, got {on!r}")


_pools: dict[str, WorkerPool] = {}
_pool_lock = threading.Lock()
_fork.renew_module_locks(__name__, "_pool_lock")


def _workers(name: str) -> WorkerPool:
    """The pool the sync attempts of the dependency ``name`` run on: one per
    dependency, so one that hangs never holds the threads another needs,
    and apart from the timeouts' pools, so a hedged attempt that waits on a
    timeout's worker never waits on itself."""
    pool = _pools.get(name)
    if pool is None:
        with _pool_lock:  # made once, by the first thread to get here
            if name not in _pools:
                _pools[name] = WorkerPool(POOL_SIZE)
            pool = _pools[name]
    return pool


def _no_timers(policy: Hedging) -> None:
    policy._timers = None


class Hedging(ForwardingPolicy):
    """Hedged calls. Stateless between calls: one instance serves any number
    of threads and tasks. ``name`` names its events; without one, the name of
    the function called is used.

    Args:
        config: a ``HedgingConfig``, or its fields instead:
        delay: seconds without a result before another attempt starts.
        max_hedges: extra attempts at most.
    """

    _kind = "hedging"

    def __init__(
        self,
        config: HedgingConfig | None = None,
        *,
        delay: float | None = None,
        max_hedges: int = 1,
        on: HedgeOn = (Exception,),
        name: str | None = None,
        listeners: events.ListenerSet | None = None,
    ) -> None:
        if config is None:
            if delay is None:
                raise TypeError("Hedging needs a config or a delay")
            config = HedgingConfig(delay, max_hedges, on)
        elif not isinstance(config, HedgingConfig):
            raise TypeError(f"Hedging config must be a HedgingConfig, got {config!r}")
        elif delay is not None:
            raise TypeError("Hedging: pass either a config or a delay, not both")
        if name is not None and (not isinstance(name, str) or not name):
            raise ValueError(f"Hedging name must be a non-empty str or None, got {name!r}")
        self.config = config
        self.name = name
        self._listeners = events.ListenerSet(listeners if listeners is not None else events.GLOBAL)
        self._delay = config.delay
        self._attempts = config.max_hedges + 1
        #: The shared timer of its races on the last event loop it ran on.
        self._timers: _hedge_asyncio.Timers | None = None
        # A child of fork starts its timers over (on the loop it runs).
        _fork.renew_in_child(self, _no_timers)

    def __repr__(self) -> str:
        named = f" {self.name!r}" if self.name else ""
        cfg = self.config
        return f"<Hedging{named} delay={cfg.delay} max_hedges={cfg.max_hedges}>"

    # -- the rules both paths share ----------------------------------------------

    def _hedged_on(self, error: BaseException) -> bool:
        if not isinstance(error, Exception):
            return False  # cancellation, interrupts: never hedged on
        on = self.config.on
        if isinstance(on, tuple):
            return isinstance(error, on)
        return bool(on(error))

    def _started(self, name: str, attempt: int) -> None:
        """Attempt ``attempt`` (2 or more) starts: count it, announce it."""
        self._stats_for(name).hedges += 1
        listeners = self._listeners
        if listeners.events:
            listeners.new(events.HedgeStarted, name, self._kind, attempt)

    # -- execution -----------------------------------------------------------

    #: The async path, a method so the closure calls it bound (cheaper than a partial).
    _arun = _hedge_asyncio.race

    def _run(self, fn: SyncFn[R], name: str, args: Args, kwargs: Kwargs) -> R:
        if not switch.on:
            return fn(*args, **kwargs)
        core = HedgeCore(self._attempts)
        answers: queue.SimpleQueue[tuple[bool, Any]] = queue.SimpleQueue()
        pool = _workers(name)
        jobs: list[Job] = []

        def attempt() -> None:
            try:
                # ``f(*args)`` when there are no keywords: ``f(*args, **kwargs)``
                # builds a dict per call (docs/architecture.md, calls without keywords).
                result = fn(*args, **kwargs) if kwargs else fn(*args)
            except BaseException as exc:
                answers.put((False, exc))
            else:
                answers.put((True, result))

        def launch() -> None:
            number = core.start()
            if number > 1:
                self._started(name, number)
            job = Job(attempt, (), {})
            jobs.append(job)
            pool.submit(job)

        delay = self._delay
        try:
            launch()
            while True:
                try:
                    ok, value = answers.get(timeout=delay if core.may_start() else None)
                except queue.Empty:
                    launch()
                    continue
                if ok:
                    core.succeeded()
                    return value  # type: ignore[no-any-return]
                action = core.failed(value, self._hedged_on(value))
                if action == RAISE:
                    try:
                        raise value
                    finally:
                        value = None
                if action == START:
                    launch()
        finally:
            # Attempts not started yet never start; running ones are abandoned.
            core.done = True
            for job in jobs:
                pool.drop(job)

    # A stream is hedged by its first item: each attempt opens the stream
    # up to its first item (a call the race above runs as any other); the
    # first to get one wins, and the others are closed. Each attempt's
    # stream is ``Held``: a loser that got its item after the race was
    # decided is dropped, and dropping it ends it. The winner's stream is
    # then relayed to its end: what fails after is not hedged.

    def _open_stream(self, open: Open, args: Args, kwargs: Kwargs, name: str) -> Opened:
        if set_aside:
            end_dropped()
        if not switch.on:
            return open(args, kwargs, name)
        held: Held = self._run(_first_item, name, (open, args, kwargs, name), {})
        held.taken = True
        return held

    async def _aopen_stream(self, open: AOpen, args: Args, kwargs: Kwargs, name: str) -> Opened:
        if set_aside:
            end_dropped()
        if not switch.on:
            return await open(args, kwargs, name)
        held: Held = await self._arun(_afirst_item, name, (open, args, kwargs, name), {})
        held.taken = True
        return held


def _first_item(open: Open, args: Args, kwargs: Kwargs, name: str) -> Held:
    """One attempt of a hedged stream: the stream opened up to its first item."""
    return Held(open(args, kwargs, name))


async def _afirst_item(open: AOpen, args: Args, kwargs: Kwargs, name: str) -> Held:
    # A losing attempt is cancelled while it opens: each layer inside
    # undoes its own step, and the stream is closed (with aclose(), so a
    # connection it holds goes back).
    return Held(await open(args, kwargs, name))


def with_hedging(
    delay: float | Hedging,
    *,
    max_hedges: int = 1,
    on: HedgeOn = (Exception,),
    name: str | None = None,
) -> Callable[[F], F]:
    """Hedge a function, coroutine function or method: when an attempt has
    no answer after ``delay`` seconds, start another (up to ``max_hedges``
    extra) and return the first success. For idempotent calls only. A ready
    ``Hedging`` may be passed instead of a delay.

    Args:
        delay: seconds without an answer before the next attempt starts.
        max_hedges: extra attempts at most.
        on: the errors that start the next attempt at once (others are raised).
        name: what its events are called (default: the function's name).
    """
    if isinstance(delay, Hedging):
        if max_hedges != 1 or on != (Exception,) or name is not None:
            raise TypeError("with_hedging: pass either a Hedging or a delay with options, not both")
        policy = delay
    else:
        policy = Hedging(HedgingConfig(delay, max_hedges, on), name=name)

    def decorator(fn: F) -> F:
        return decorate(policy, fn)

    return decorator
