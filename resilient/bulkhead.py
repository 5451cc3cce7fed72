"""``BulkheadConfig`` and ``Bulkhead``: a concurrency limit with a bounded queue.

One limiter serves threads and asyncio tasks together, on any number of
event loops: the rules live in :mod:`resilient._bulkhead_core` behind one
``threading.Lock``; a queued thread waits on its own lock, a queued task on
a future of its own loop, resolved through ``call_soon_threadsafe`` when the
permit comes from another thread.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import KW_ONLY, dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, NamedTuple, ParamSpec, TypeVar, cast

from . import _clock, _validate, events
from ._active import switch
from ._bulkhead_core import FULL, GRANTED, LimiterCore, Waiter
from ._decorate import athrough, through
from .errors import BulkheadFullError

if TYPE_CHECKING:
    from ._decorate import Decoratable

__all__ = ["Bulkhead", "BulkheadConfig", "BulkheadMetrics"]

P = ParamSpec("P")
R = TypeVar("R")
F = TypeVar("F", bound="Decoratable")

_OWNER = "BulkheadConfig"


@dataclass(frozen=True, slots=True)
class BulkheadConfig:
    """At most ``max_concurrent`` calls at once; up to ``max_queue`` more wait
    for a slot, each at most ``queue_timeout`` seconds (``None``: no limit)."""

    max_concurrent: int
    _: KW_ONLY
    max_queue: int = 0
    queue_timeout: float | None = None

    def __post_init__(self) -> None:
        _validate.int_at_least(_OWNER, "max_concurrent", self.max_concurrent, 1)
        _validate.int_at_least(_OWNER, "max_queue", self.max_queue, 0)
        _validate.seconds_or_none(_OWNER, "queue_timeout", self.queue_timeout)


class BulkheadMetrics(NamedTuple):
    """A snapshot of a bulkhead. ``utilization`` is active / max_concurrent."""

    active: int
    queued: int
    completed: int
    rejected: int
    utilization: float
    max_concurrent: int
    max_queue: int


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


class Bulkhead:
    """A named concurrency limit. Thread-safe, asyncio-safe, loop-agnostic."""

    def __init__(
        self,
        name: str,
        config: BulkheadConfig | None = None,
        *,
        max_concurrent: int | None = None,
        max_queue: int = 0,
        queue_timeout: float | None = None,
        listeners: events.ListenerSet | None = None,
    ) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError(f"Bulkhead name must be a non-empty str, got {name!r}")
        if config is None:
            if max_concurrent is None:
                raise TypeError(f"Bulkhead {name!r} needs a config or max_concurrent")
            config = BulkheadConfig(
                max_concurrent, max_queue=max_queue, queue_timeout=queue_timeout
            )
        elif not isinstance(config, BulkheadConfig):
            raise TypeError(f"Bulkhead config must be a BulkheadConfig, got {config!r}")
        elif max_concurrent is not None or max_queue or queue_timeout is not None:
            raise TypeError(f"Bulkhead {name!r}: pass either a config or limits, not both")
        self.name = name
        self.config = config
        self._core = LimiterCore(config.max_concurrent, config.max_queue)
        self._lock = threading.Lock()
        self._listeners = events.ListenerSet(listeners if listeners is not None else events.GLOBAL)
        self._cm_held: contextvars.ContextVar[tuple[bool, ...]] | None = None

    def __repr__(self) -> str:
        core = self._core
        return (
            f"<Bulkhead {self.name!r} active={core.active}/{core.max_concurrent} "
            f"queued={core.queued}/{core.max_queue}>"
        )

    def metrics(self) -> BulkheadMetrics:
        with self._lock:
            core = self._core
            return BulkheadMetrics(
                active=core.active,
                queued=core.queued,
                completed=core.completed,
                rejected=core.rejected,
                utilization=core.active / core.max_concurrent,
                max_concurrent=core.max_concurrent,
                max_queue=core.max_queue,
            )

    def rejected_since(self, since: float) -> bool:
        """Whether a call was rejected at or after monotonic time ``since``."""
        last = self._core.last_rejected_at
        return last is not None and last >= since

    def subscribe(self, listener: events.Listener) -> Callable[[], None]:
        """Call ``listener`` with every event of this bulkhead; returns the unsubscriber."""
        return self._listeners.subscribe(listener)

    # -- permits -------------------------------------------------------------

    def _full(self) -> BulkheadFullError:
        """Count a rejection (the caller holds no lock) and build its error."""
        with self._lock:
            self._core.reject(_clock.monotonic())
        cfg = self.config
        if events.hub.listening:
            self._listeners.emit(
                events.BulkheadRejected(
                    name=self.name,
                    policy="bulkhead",
                    max_concurrent=cfg.max_concurrent,
                    max_queue=cfg.max_queue,
                    **events.stamp(),  # type: ignore[arg-type]
                )
            )
        return BulkheadFullError(self.name, cfg.max_concurrent, cfg.max_queue)

    def _release(self, *, completed: bool = True) -> None:
        with self._lock:
            waiter = self._core.release(completed=completed)
        while waiter is not None and not self._wake(waiter):
            with self._lock:
                waiter = self._core.undeliverable(waiter)

    @staticmethod
    def _wake(waiter: Waiter) -> bool:
        wake = waiter.wake
        if isinstance(wake, tuple):
            loop, fut = wake
            if asyncio._get_running_loop() is loop:
                _resolve(fut)
                return True
            try:
                loop.call_soon_threadsafe(_resolve, fut)
            except RuntimeError:  # its loop is closed: the task will never run again
                return False
            return True
        cast(threading.Lock, wake).release()
        return True

    def _leave_queue(self, waiter: Waiter) -> bool:
        """``waiter`` stops waiting. True when a permit reached it first: it
        holds that permit now."""
        with self._lock:
            return self._core.cancel(waiter)

    def _acquire(self) -> None:
        """Take a permit for this thread, waiting in the queue if need be."""
        with self._lock:
            decision = self._core.try_enter()
            if decision == GRANTED:
                return
            if decision != FULL:
                signal = threading.Lock()
                signal.acquire()
                waiter = self._core.enqueue(signal)
        if decision == FULL:
            raise self._full()
        timeout = self.config.queue_timeout
        try:
            if timeout is None:
                signal.acquire()
            elif _clock.get_clock() is _clock.REAL:
                signal.acquire(timeout=timeout)
            elif not signal.acquire(blocking=False):
                # A test clock: the wait passes on that clock, not for real.
                _clock.sleep(timeout)
        except BaseException:
            if self._leave_queue(waiter):
                self._release(completed=False)
            raise
        if not self._leave_queue(waiter):
            raise self._full()

    async def _aacquire(self) -> None:
        """Take a permit for this task, waiting in the queue if need be."""
        with self._lock:
            decision = self._core.try_enter()
            if decision == GRANTED:
                return
            if decision != FULL:
                loop = asyncio.get_running_loop()
                fut: asyncio.Future[None] = loop.create_future()
                waiter = self._core.enqueue((loop, fut))
        if decision == FULL:
            raise self._full()
        timeout = self.config.queue_timeout
        try:
            if timeout is None:
                await fut
            elif _clock.get_clock() is _clock.REAL:
                async with asyncio.timeout(timeout):
                    await fut
            else:
                await self._wait_on_clock(fut, timeout)
        except TimeoutError:
            if self._leave_queue(waiter):
                return  # granted at the last moment: use it
            raise self._full() from None
        except BaseException:
            # Cancelled: a permit handed over meanwhile goes to the next waiter.
            if self._leave_queue(waiter):
                self._release(completed=False)
            raise

    @staticmethod
    async def _wait_on_clock(fut: asyncio.Future[None], seconds: float) -> None:
        """Wait for ``fut`` at most ``seconds`` of a test clock's time."""
        sleeper = asyncio.ensure_future(_clock.sleep_async(seconds))
        try:
            await asyncio.wait((fut, sleeper), return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
        if not fut.done():
            sleeper.result()  # what the clock's sleep raised, if anything
            raise TimeoutError

    # -- execution -----------------------------------------------------------

    def call(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run ``fn(*args, **kwargs)`` inside the bulkhead."""
        return self._call(fn, args, kwargs)

    async def call_async(
        self, fn: Callable[P, Awaitable[R]], /, *args: P.args, **kwargs: P.kwargs
    ) -> R:
        """Await ``fn(*args, **kwargs)`` inside the bulkhead."""
        return await self._acall(fn, args, kwargs)

    # The decorator installs these closures on plain functions. Without a
    # queue, nobody waits for a permit, so the closure takes and returns one
    # without the lock (see _bulkhead_core): only a rejection locks.

    def _wrap_sync(self, fn: Callable[..., R]) -> Callable[..., R]:
        if self.config.max_queue:
            return through(self._call, fn)
        core = self._core
        take, give_back, tick = core.free.pop, core.free.append, core.tick

        def through_bulkhead(*args: Any, **kwargs: Any) -> R:
            if not switch.on:
                return fn(*args, **kwargs)
            try:
                take()
            except IndexError:
                raise self._full() from None
            try:
                return fn(*args, **kwargs)
            finally:
                give_back(None)
                tick()

        return through_bulkhead

    def _wrap_async(self, fn: Callable[..., Awaitable[R]]) -> Callable[..., Awaitable[R]]:
        if self.config.max_queue:
            return athrough(self._acall, fn)
        core = self._core
        take, give_back, tick = core.free.pop, core.free.append, core.tick

        async def through_bulkhead(*args: Any, **kwargs: Any) -> R:
            if not switch.on:
                return await fn(*args, **kwargs)
            try:
                take()
            except IndexError:
                raise self._full() from None
            try:
                return await fn(*args, **kwargs)
            finally:
                give_back(None)
                tick()

        return through_bulkhead

    def _call(self, fn: Callable[..., R], args: tuple[Any, ...], kwargs: dict[str, Any]) -> R:
        if not switch.on:
            return fn(*args, **kwargs)
        self._acquire()
        try:
            return fn(*args, **kwargs)
        finally:
            self._release()

    async def _acall(
        self, fn: Callable[..., Awaitable[R]], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> R:
        if not switch.on:
            return await fn(*args, **kwargs)
        await self._aacquire()
        try:
            return await fn(*args, **kwargs)
        finally:
            self._release()

    async def _astream(
        self, fn: Callable[..., AsyncIterator[Any]], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> AsyncIterator[Any]:
        """A stream holds its slot until it ends or is closed."""
        if not switch.on:
            async for item in fn(*args, **kwargs):
                yield item
            return
        await self._aacquire()
        try:
            async for item in fn(*args, **kwargs):
                yield item
        finally:
            self._release()

    def __call__(self, fn: F) -> F:
        """Use the bulkhead itself as a decorator."""
        from ._decorate import decorate

        return decorate(self, fn)

    # -- context managers ----------------------------------------------------

    def _held(self) -> contextvars.ContextVar[tuple[bool, ...]]:
        if self._cm_held is None:
            self._cm_held = contextvars.ContextVar(f"resilient_bh_{self.name}", default=())
        return self._cm_held

    def _push(self, held: bool) -> None:
        var = self._held()
        var.set((*var.get(), held))

    def _pop(self) -> None:
        var = self._held()
        stack = var.get()
        if stack:
            var.set(stack[:-1])
            if stack[-1]:
                self._release()

    def __enter__(self) -> Bulkhead:
        held = switch.on
        if held:
            self._acquire()
        self._push(held)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._pop()

    async def __aenter__(self) -> Bulkhead:
        held = switch.on
        if held:
            await self._aacquire()
        self._push(held)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._pop()
