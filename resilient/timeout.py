"""``Timeout``: stop waiting for a call that takes too long.

- Coroutines run under ``asyncio.timeout``: asyncio's own cancellation, no
  extra task. A cancellation from outside passes through untouched.
- Sync functions (``mode="thread"``, the default) run in a worker thread of a
  bounded pool (:mod:`resilient._workers`), in a copy of the caller's
  contextvars; on timeout the caller stops waiting. Python cannot kill a
  thread: the abandoned call keeps running to its end in the background.
- ``mode="signal"`` interrupts the call itself with ``SIGALRM``: no thread,
  and the call really stops, but only in the main thread of a POSIX process.
- Async generator functions get an inactivity timeout
  (``inactivity=seconds``): a stream that yields nothing for that long fails.

Timeouts measure real time (the event loop's clock, the OS timer). Under
``resilient.testing.fake_clock()`` an async call's timeout also ends when
the fake clock reaches its deadline; sync calls and streams use real time
only.
"""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, ParamSpec, TypeVar

from . import _alarm, _clock, _validate, events
from ._active import switch
from ._blocks import BlockStack
from ._compose import watching
from ._policy import PolicyBase
from ._workers import Job, WorkerPool, shared_pool
from .errors import CallTimeoutError
from .events import METERED

if TYPE_CHECKING:
    from ._compose import Decoratable
    from ._requests import Request

__all__ = ["Timeout", "TimeoutMode", "WorkerPool"]

P = ParamSpec("P")
R = TypeVar("R")
F = TypeVar("F", bound="Decoratable")

TimeoutMode = Literal["thread", "signal"]

_OWNER = "Timeout"


class Timeout(PolicyBase):
    """A time limit per call: ``seconds`` for a call, ``inactivity`` for the
    gaps between the items of an async stream (either or both).

    ``mode`` applies to sync functions: ``"thread"`` (default) or
    ``"signal"``. ``pool`` is the :class:`WorkerPool` sync calls run in
    (default: one shared pool of 64 daemon threads).
    """

    _kind = "timeout"

    def __init__(
        self,
        seconds: float | None = None,
        *,
        mode: TimeoutMode = "thread",
        inactivity: float | None = None,
        name: str | None = None,
        pool: WorkerPool | None = None,
        listeners: events.ListenerSet | None = None,
    ) -> None:
        self.seconds = _validate.seconds_or_none(_OWNER, "seconds", seconds)
        self.inactivity = _validate.seconds_or_none(_OWNER, "inactivity", inactivity)
        if self.seconds is None and self.inactivity is None:
            raise ValueError(f"{_OWNER} needs seconds or inactivity (or both), got neither")
        if mode not in ("thread", "signal"):
            raise ValueError(f"{_OWNER}.mode must be 'thread' or 'signal', got {mode!r}")
        if mode == "signal" and not hasattr(signal, "SIGALRM"):
            raise ValueError(f"{_OWNER}.mode='signal' needs SIGALRM, which this platform lacks")
        if name is not None and (not isinstance(name, str) or not name):
            raise ValueError(f"{_OWNER} name must be a non-empty str or None, got {name!r}")
        if pool is not None and not isinstance(pool, WorkerPool):
            raise TypeError(f"{_OWNER}.pool must be a WorkerPool or None, got {pool!r}")
        self.mode: TimeoutMode = mode
        self.name = name
        self._pool = pool
        self._listeners = events.ListenerSet(listeners if listeners is not None else events.GLOBAL)
        self._blocks: BlockStack[asyncio.Timeout] = BlockStack(f"resilient_timeout_{id(self)}")

    def __repr__(self) -> str:
        parts = [f"{self.name!r}"] if self.name else []
        if self.seconds is not None:
            parts.append(f"seconds={self.seconds:g}")
        if self.inactivity is not None:
            parts.append(f"inactivity={self.inactivity:g}")
        if self.mode != "thread":
            parts.append(f"mode={self.mode!r}")
        return f"<Timeout {' '.join(parts)}>"

    def _timed_out(self, name: str | None, seconds: float) -> CallTimeoutError:
        name = name or self.name or "async with block"
        self._stats_for(name).timeouts += 1
        if self._listeners.events:
            self._listeners.new(events.TimedOut, name, self._kind, seconds)
        return CallTimeoutError(seconds, name=name)

    # -- as an async context manager ------------------------------------------

    async def __aenter__(self) -> Timeout:
        """``async with Timeout(5):`` bounds the block, as ``asyncio.timeout``
        does, and raises :class:`CallTimeoutError` when it runs out."""
        seconds = self.seconds
        if seconds is None:
            raise self._no_seconds()
        scope = asyncio.timeout(seconds) if switch.on else None
        if scope is not None:
            await scope.__aenter__()
        self._blocks.push(scope)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        scope = self._blocks.pop()
        if scope is None:
            return
        try:
            await scope.__aexit__(exc_type, exc, tb)
        except TimeoutError as error:
            if not scope.expired():
                raise
            raise self._timed_out(None, self.seconds or 0.0) from error

    def __enter__(self) -> Timeout:
        raise TypeError(
            f"{self!r}: a sync block cannot be interrupted safely; use "
            "`async with` in a coroutine, or timeout.call(fn, ...) for sync code"
        )

    def __exit__(self, *exc_info: object) -> None:
        """Never reached: ``__enter__`` refuses."""

    def _no_seconds(self) -> TypeError:
        return TypeError(
            f"{self!r} has only an inactivity limit, which applies to async "
            "generator functions; give it seconds to time other calls"
        )

    # -- execution -----------------------------------------------------------

    # The closures only forward to ``_run`` / ``_arun``: arming a timeout
    # costs far more than the frame, and it has no per-call events of its own.

    def _wrap_sync(
        self, fn: Callable[..., R], name: str, entry: Request | None = None
    ) -> Callable[..., R]:
        if self.seconds is None:
            raise self._no_seconds()
        run = self._run
        gate, detour, meter = watching(self, fn, name, entry)
        clock = _clock

        def timed(*args: Any, **kwargs: Any) -> R:
            level = gate.level
            if level:
                if level != METERED:
                    return detour(args, kwargs)  # type: ignore[misc,no-any-return]
                return meter.timed(clock.now(), run, fn, args, kwargs, name)  # type: ignore[union-attr,no-any-return]
            return run(fn, args, kwargs, name)

        return timed

    def _wrap_async(
        self, fn: Callable[..., Awaitable[R]], name: str, entry: Request | None = None
    ) -> Callable[..., Awaitable[R]]:
        if self.seconds is None:
            raise self._no_seconds()
        arun = self._arun
        gate, detour, meter = watching(self, fn, name, entry, is_async=True)
        clock = _clock

        async def timed(*args: Any, **kwargs: Any) -> R:
            level = gate.level
            if level:
                if level != METERED:
                    return await detour(args, kwargs)  # type: ignore[misc,no-any-return]
                return await meter.atimed(clock.now(), arun, fn, args, kwargs, name)  # type: ignore[union-attr]
            return await arun(fn, args, kwargs, name)

        return timed

    def _run(
        self,
        fn: Callable[..., R],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        name: str | None = None,
    ) -> R:
        seconds = self.seconds
        if seconds is None:
            raise self._no_seconds()
        if not switch.on:
            return fn(*args, **kwargs)
        if self.mode == "signal":
            return self._call_signal(fn, args, kwargs, seconds, name)
        return self._call_thread(fn, args, kwargs, seconds, name)

    def _call_thread(
        self,
        fn: Callable[..., R],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        seconds: float,
        name: str | None,
    ) -> R:
        pool = self._pool if self._pool is not None else shared_pool()
        job = Job(fn, args, kwargs)
        pool.submit(job)
        try:
            finished = job.done.acquire(True, seconds)
        except BaseException:
            # Interrupted while waiting (KeyboardInterrupt): don't start it late.
            pool.drop(job)
            raise
        if not finished:
            pool.drop(job)
            raise self._timed_out(name or self._event_name(fn), seconds)
        error = job.error
        if error is not None:
            job.error = None
            try:
                raise error
            finally:
                error = None
        result: R = job.result
        return result

    def _call_signal(
        self,
        fn: Callable[..., R],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        seconds: float,
        name: str | None,
    ) -> R:
        if threading.get_ident() != _alarm.main_thread[0]:
            raise RuntimeError(
                f"{self!r}: mode='signal' works only in the main thread "
                f"(called from {threading.current_thread().name!r}); use mode='thread'"
            )
        return _alarm.call(
            fn,
            args,
            kwargs,
            seconds,
            lambda: self._timed_out(name or self._event_name(fn), seconds),
        )

    async def _arun(
        self,
        fn: Callable[..., Awaitable[R]],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        name: str | None = None,
    ) -> R:
        seconds = self.seconds
        if seconds is None:
            raise self._no_seconds()
        if not switch.on:
            return await fn(*args, **kwargs)
        scope = asyncio.timeout(seconds)
        wake_at = _clock.get_clock().wake_at
        try:
            async with scope:
                if wake_at is None:
                    return await fn(*args, **kwargs)
                return await _racing_test_clock(
                    scope, wake_at(_clock.monotonic() + seconds), fn(*args, **kwargs)
                )
        except TimeoutError as exc:
            if not scope.expired():
                raise  # the call's own TimeoutError
            # Chained, so the traceback shows where the call was interrupted.
            raise self._timed_out(name or self._event_name(fn), seconds) from exc

    async def _astream(
        self,
        fn: Callable[..., AsyncIterator[R]],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        name: str | None = None,
    ) -> AsyncIterator[R]:
        name = name or self._event_name(fn)
        stream = fn(*args, **kwargs)
        try:
            if not switch.on:
                async for item in stream:
                    yield item
                return
            loop = asyncio.get_running_loop()
            inactivity = self.inactivity
            total = self.seconds
            ends = None if total is None else loop.time() + total
            while True:
                quiet_ends = None if inactivity is None else loop.time() + inactivity
                if ends is None or (quiet_ends is not None and quiet_ends < ends):
                    when, silent = quiet_ends, True
                else:
                    when, silent = ends, False
                scope = asyncio.timeout_at(when)
                try:
                    async with scope:
                        item = await anext(stream)
                except StopAsyncIteration:
                    return
                except TimeoutError as exc:
                    if not scope.expired():
                        raise
                    if silent:
                        assert inactivity is not None
                        raise self._inactive(name, inactivity) from exc
                    assert total is not None
                    raise self._timed_out(name, total) from exc
                # Yielded outside the scope: the consumer's time between
                # items is not the stream's silence.
                yield item
        finally:
            await _aclose(stream)

    def _inactive(self, name: str, inactivity: float) -> CallTimeoutError:
        self._stats_for(name).timeouts += 1
        if self._listeners.events:
            self._listeners.new(events.StreamInactive, name, self._kind, inactivity)
        return CallTimeoutError(
            inactivity,
            name=name,
            message=f"stream {name!r} yielded nothing for {inactivity:g}s",
        )

    def __call__(self, fn: F) -> F:
        """Use the timeout itself as a decorator."""
        from ._compose import _is_async_gen

        if not _is_async_gen(fn) and self.inactivity is not None:
            raise TypeError(
                f"{self!r}: inactivity= applies to async generator functions, not {fn!r}"
            )
        return super().__call__(fn)


async def _racing_test_clock(
    scope: asyncio.Timeout, deadline: asyncio.Future[None], call: Awaitable[R]
) -> R:
    """Await ``call`` inside ``scope``, also ending the scope when a test
    clock reaches ``deadline`` (the real timer keeps running too)."""
    loop = asyncio.get_running_loop()
    inside = True

    def expire(_: asyncio.Future[None]) -> None:
        if inside and not deadline.cancelled() and not scope.expired():
            scope.reschedule(loop.time())

    deadline.add_done_callback(expire)
    try:
        return await call
    finally:
        inside = False
        deadline.cancel()


async def _aclose(stream: AsyncIterator[Any]) -> None:
    aclose = getattr(stream, "aclose", None)
    if aclose is not None:
        await aclose()
