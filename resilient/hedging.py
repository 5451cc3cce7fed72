"""``HedgingConfig`` and ``Hedging``: when an attempt is slow, start another
and take whichever answers first. For idempotent calls only.

The rules live in :mod:`resilient._hedge_core`; the two paths drive it.

- Coroutines: the first attempt runs inline, in the caller's task. A call
  that answers without suspending costs no timer; one that suspends arms a
  timer (``loop.call_later``) for ``delay``. Hedges are tasks. When a hedge decides the race while
  the first attempt still runs, the caller's task is interrupted the way
  ``asyncio.timeout`` does it (a cancellation it takes back). The losers
  are cancelled and awaited; cancelling the caller cancels every attempt.
- Sync functions: every attempt runs on a worker thread of a bounded pool
  of daemon threads of its own, the caller waits (real time) for the first
  answer. A thread cannot be stopped: losers are abandoned and run to their
  end in the background; an attempt not yet started never starts.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import types
from collections.abc import Awaitable, Callable, Coroutine, Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, cast

from . import _clock, _validate, events
from ._active import switch
from ._compose import aforwarding, decorate, forwarding
from ._hedge_core import RAISE, START, HedgeCore
from ._policy import PolicyBase
from ._workers import Job, WorkerPool

if TYPE_CHECKING:
    from ._async_backend import Waiter
    from ._compose import Decoratable
    from ._requests import Request

__all__ = ["MAX_HEDGES", "Hedging", "HedgingConfig", "with_hedging"]

P = ParamSpec("P")
R = TypeVar("R")
F = TypeVar("F", bound="Decoratable")

_OWNER = "HedgingConfig"

#: The most hedges one call may start (each may hold a thread).
MAX_HEDGES = 16
#: Threads of the pool sync hedged attempts run on.
POOL_SIZE = 64

HedgeOn = tuple[type[BaseException], ...] | Callable[[BaseException], bool]


@dataclass(frozen=True, slots=True)
class HedgingConfig:
    """Start another attempt when one has no answer after ``delay`` seconds,
    up to ``max_hedges`` extra; an attempt failing with an ``on`` error
    (exception types or a predicate) starts the next at once."""

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


_pool: list[WorkerPool | None] = [None]
_pool_lock = threading.Lock()


def _workers() -> WorkerPool:
    """The pool sync attempts run on: its own, so a hedged attempt that waits
    on a timeout's worker never waits on itself."""
    pool = _pool[0]
    if pool is None:
        with _pool_lock:
            pool = _pool[0]
            if pool is None:
                pool = _pool[0] = WorkerPool(POOL_SIZE)
    return pool


class Hedging(PolicyBase):
    """Hedged calls. Stateless between calls: one instance serves any number
    of threads and tasks. ``name`` names its events; without one, the name of
    the function called is used.

    Args:
        config: a :class:`HedgingConfig`, or its fields instead:
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

    def _wrap_sync(
        self, fn: Callable[..., R], name: str, entry: Request | None = None
    ) -> Callable[..., R]:
        return forwarding(self, fn, name, entry, self._run)

    def _wrap_async(
        self, fn: Callable[..., Awaitable[R]], name: str, entry: Request | None = None
    ) -> Callable[..., Awaitable[R]]:
        return aforwarding(self, fn, name, entry, self._arun)

    def _run(
        self, fn: Callable[..., R], name: str, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> R:
        if not switch.on:
            return fn(*args, **kwargs)
        core = HedgeCore(self._attempts)
        answers: queue.SimpleQueue[tuple[bool, Any]] = queue.SimpleQueue()
        pool = _workers()
        jobs: list[Job] = []

        def attempt() -> None:
            try:
                result = fn(*args, **kwargs)
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

    async def _arun(
        self,
        fn: Callable[..., Awaitable[R]],
        name: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> R:
        if not switch.on:
            return await fn(*args, **kwargs)
        # The first step of the first attempt runs here, before any timer is
        # armed: a call that answers without suspending (a cache hit) cannot
        # be slow to answer, and costs no timer.
        first = fn(*args, **kwargs)
        coro = first if isinstance(first, types.CoroutineType) else _awaiting(first)
        try:
            yielded = coro.send(None)
        except StopIteration as stop:
            return stop.value  # type: ignore[no-any-return]
        except BaseException as exc:
            if not self._hedged_on(exc):
                raise
            race = _Race(self, fn, name, args, kwargs)
            return await race.run(None, None, exc)  # type: ignore[no-any-return]
        race = _Race(self, fn, name, args, kwargs)
        return await race.run(coro, yielded, None)  # type: ignore[no-any-return]


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
    :class:`Hedging` may be passed instead of a delay.

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


class _Race:
    """One async hedged call: the first attempt inline, hedges as tasks."""

    __slots__ = (
        "args",
        "caller",
        "core",
        "fn",
        "inline",
        "interrupting",
        "kwargs",
        "loop",
        "name",
        "policy",
        "result",
        "tasks",
        "timer",
        "waiter",
    )

    def __init__(
        self,
        policy: Hedging,
        fn: Callable[..., Awaitable[Any]],
        name: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> None:
        self.policy = policy
        self.fn = fn
        self.name = name
        self.args = args
        self.kwargs = kwargs
        self.core = HedgeCore(policy._attempts)
        self.loop = asyncio.get_running_loop()
        self.caller = asyncio.current_task()
        self.tasks: list[asyncio.Task[Any]] = []
        self.timer: asyncio.TimerHandle | Waiter | None = None
        self.waiter: asyncio.Future[None] | None = None
        self.inline = True
        self.interrupting = False
        self.result: Any = None

    async def run(
        self, coro: Coroutine[Any, Any, Any] | None, yielded: Any, failed: BaseException | None
    ) -> Any:
        """The race, from the first attempt already started: suspended
        (``coro`` has yielded ``yielded``) or already ``failed`` with an
        error hedged on."""
        core = self.core
        core.start()
        try:
            if coro is None:
                assert failed is not None
                self.inline = False
                core.failed(failed, True)
                del failed
                self._launch()
                return await self._wait()
            self._arm()
            try:
                result = await _resume(coro, yielded)
            except asyncio.CancelledError:
                self.inline = False
                if not self._taken_back():
                    raise
                # A hedge decided the race: its outcome is ours.
                return self._outcome()
            except BaseException as exc:
                self.inline = False
                self._taken_back()
                if core.done:  # a hedge decided it meanwhile
                    return self._outcome()
                action = core.failed(exc, self.policy._hedged_on(exc))
                if action == RAISE:
                    raise
                del exc
                if action == START:
                    self._launch()
                return await self._wait()
            self.inline = False
            self._taken_back()
            core.succeeded()
            return result
        finally:
            self._stop()

    def _taken_back(self) -> bool:
        """Undo our interruption of the caller, if any: True when it was the
        only cancellation asked of it."""
        if not self.interrupting:
            return False
        self.interrupting = False
        caller = self.caller
        return caller is None or caller.uncancel() == 0

    async def _wait(self) -> Any:
        """The first attempt has failed: wait for a hedge to decide."""
        if not self.core.done:
            waiter = self.waiter = self.loop.create_future()
            await waiter
        return self._outcome()

    def _outcome(self) -> Any:
        error = self.core.error
        if error is not None:
            try:
                raise error
            finally:
                error = None
        result, self.result = self.result, None
        return result

    def _launch(self) -> None:
        number = self.core.start()
        self.policy._started(self.name, number)
        task = self.loop.create_task(_attempt(self.fn, self.args, self.kwargs))
        self.tasks.append(task)
        task.add_done_callback(self._landed)
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.core.may_start():
            self._arm()

    def _arm(self) -> None:
        """Start the next attempt ``delay`` seconds from now (on a test
        clock, when it gets there)."""
        wake_at = _clock.get_clock().wake_at
        if wake_at is None:
            self.timer = self.loop.call_later(self.policy._delay, self._on_timer)
        else:
            timer = self.timer = wake_at(_clock.monotonic() + self.policy._delay)
            timer.on_wake(lambda: self._on_test_clock(timer))

    def _on_test_clock(self, timer: Waiter) -> None:
        if timer.woken() and timer is self.timer:
            self._on_timer()

    def _on_timer(self) -> None:
        self.timer = None
        if self.core.may_start():
            self._launch()

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
            self._launch()

    def _decided(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
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

    def _stop(self) -> None:
        """Cancel what still runs (not awaited: each ends at its next step)."""
        self.core.done = True
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        for task in self.tasks:
            if not task.done():
                task.cancel()
