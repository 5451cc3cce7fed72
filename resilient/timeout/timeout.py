"""``Timeout``: stop waiting for a call that takes too long.

- Coroutines are cancelled the way ``asyncio.timeout`` cancels them, no
  extra task, behind one deadline queue and one loop timer per timeout and
  event loop (``deadlines``); under trio (or anyio on trio), in a trio
  cancel scope. A cancellation from outside passes through untouched.
- Sync functions (``mode="thread"``, the default) run in a worker thread of a
  bounded pool (``resilient._runtime.workers``), in a copy of the caller's
  contextvars; on timeout the caller stops waiting. Python cannot kill a
  thread: the abandoned call keeps running to its end in the background.
- ``mode="signal"`` interrupts the call itself with ``SIGALRM``: no thread,
  and the call really stops, but only in the main thread of a POSIX process.
- ``mode="inline"`` (what a ``with_resilience`` stack's timeout does to a sync
  function unless it asks for a thread) runs the call in the caller's thread,
  where its thread-locals are, and cannot stop it: a call that overruns fails
  with ``CallTimeoutError`` when it returns (its result is dropped), so retry
  and the breaker count the timeout.
- Generator functions and async generator functions (streams) get
  ``first_item=`` (the wait for the first item) and ``inactivity=`` (each
  later wait) besides ``seconds`` (the whole stream).

Timeouts measure real time (the event loop's clock, the OS timer). Under
``resilient.testing.fake_clock()`` an async call's timeout also ends when
the fake clock reaches its deadline; sync calls and streams use real time
only.
"""

from __future__ import annotations

import asyncio
import functools
import math
import signal
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import KW_ONLY, dataclass
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from .. import events
from .._execution import streams as _streams
from .._execution.blocks import BlockStack
from .._execution.compose import forwarding
from .._execution.policy_base import ForwardingPolicy
from .._execution.streams import AOpen, Args, AsyncFn, Kwargs, Open, Opened, SyncFn
from .._runtime import alarm as _alarm
from .._runtime import async_backend as _async_backend
from .._runtime import clock as _clock
from .._runtime import validation as _validate
from .._runtime.async_backend import Deadline, Waiter
from .._runtime.exc_info import ExcInfo
from .._runtime.mapping import FromDict
from .._runtime.switch import switch
from .._runtime.workers import DEFAULT_MAX_WORKERS, Job, WorkerPool, pool_for, shared_pool
from ..errors import CallTimeoutError
from . import deadlines as _deadlines
from .stream_deadline import StreamDeadline, SyncWaits

if TYPE_CHECKING:
    from .._execution.compose import Decoratable
    from .._execution.request import Request

__all__ = ["Timeout", "TimeoutConfig", "TimeoutMode", "WorkerPool", "timeout_seconds"]

R = TypeVar("R")
F = TypeVar("F", bound="Decoratable")

TimeoutMode = Literal["thread", "signal", "inline"]
"""How a sync call is timed out: ``"thread"`` (it runs in a worker thread),
``"signal"`` (SIGALRM, in the main thread only) or ``"inline"`` (in the
caller's thread; an overrun fails when the call returns)."""
_MODES = ("thread", "signal", "inline")

_OWNER = "Timeout"


@dataclass(frozen=True, slots=True)
class TimeoutConfig(FromDict):
    """A per-attempt timeout of a named stack (``ResiliencePolicy(timeout=...)``).

    ``seconds``: the limit per attempt (on a stream: the whole stream).
    ``first_item`` / ``inactivity``: on a stream, the wait for its first
    item / for each later item. ``pool_size``: the most sync calls
    of this dependency that run at once in worker threads, timed-out calls
    still running included (threads start on demand). ``mode``, for sync
    functions: ``"inline"`` (the default: the call runs in the caller's
    thread and fails when it returns late), ``"thread"`` (a worker thread;
    the caller stops waiting in time) or ``"signal"`` (SIGALRM, main thread).
    """

    _durations = frozenset({"seconds", "first_item", "inactivity"})

    seconds: float
    _: KW_ONLY
    first_item: float | None = None
    inactivity: float | None = None
    pool_size: int = DEFAULT_MAX_WORKERS
    mode: TimeoutMode = "inline"

    def __post_init__(self) -> None:
        owner = "TimeoutConfig"
        seconds = _validate.seconds(owner, "seconds", self.seconds, allow_zero=False)
        object.__setattr__(self, "seconds", seconds)
        for field in ("first_item", "inactivity"):
            value = _validate.seconds_or_none(owner, field, getattr(self, field))
            object.__setattr__(self, field, value)
        _validate.int_between(owner, "pool_size", self.pool_size, 1, _validate.MAX_WORKERS)
        if self.mode not in _MODES:
            raise ValueError(
                f"{owner}.mode must be 'inline', 'thread' or 'signal', got {self.mode!r}"
            )

    def for_stack(
        self, name: str, listeners: events.ListenerSet, *, per_wait: bool = False
    ) -> Timeout:
        """The timeout of the stack ``name``, on that dependency's own worker
        pool. ``per_wait`` (a plain float given as the stack's timeout): on a
        stream, ``seconds`` bounds the first item and each later wait, not
        the whole stream."""
        pool = pool_for(name, self.pool_size) if self.mode == "thread" else None
        timeout = Timeout(
            self.seconds,
            mode=self.mode,
            first_item=self.first_item,
            inactivity=self.inactivity,
            name=name,
            pool=pool,
            listeners=listeners,
        )
        if per_wait:
            timeout._per_wait()
        return timeout


def timeout_seconds(value: float | TimeoutConfig | None) -> float | None:
    """The seconds of a policy's ``timeout`` field, whichever form it has."""
    return value.seconds if isinstance(value, TimeoutConfig) else value


class Timeout(ForwardingPolicy):
    """A time limit per call: ``seconds`` for a call (or a whole stream),
    ``first_item`` for the wait for a stream's first item, ``inactivity``
    for each later wait (any of them).

    ``mode`` applies to sync functions: ``"thread"`` (default),
    ``"signal"`` or ``"inline"`` (see the module's docstring). ``pool`` is
    the ``WorkerPool`` sync calls run in (default: one shared pool of 64
    daemon threads; the timeouts of ``with_resilience`` stacks and of
    breakers get one per name). ``name`` names its events (default: the
    name of the function called).
    """

    _kind = "timeout"

    def __init__(
        self,
        seconds: float | None = None,
        *,
        mode: TimeoutMode = "thread",
        first_item: float | None = None,
        inactivity: float | None = None,
        name: str | None = None,
        pool: WorkerPool | None = None,
        listeners: events.ListenerSet | None = None,
    ) -> None:
        self.seconds = _validate.seconds_or_none(_OWNER, "seconds", seconds)
        self.first_item = _validate.seconds_or_none(_OWNER, "first_item", first_item)
        self.inactivity = _validate.seconds_or_none(_OWNER, "inactivity", inactivity)
        if self.seconds is None and self.inactivity is None and self.first_item is None:
            raise ValueError(
                f"{_OWNER} needs seconds, first_item or inactivity (any of them), got none"
            )
        #: What bounds a stream: the whole of it, its first item, each later wait.
        self._stream_bounds = (self.seconds, self.first_item, self.inactivity)
        if mode not in _MODES:
            raise ValueError(f"{_OWNER}.mode must be 'thread', 'signal' or 'inline', got {mode!r}")
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
        self._blocks: BlockStack[Deadline] = BlockStack("resilient_timeout_", id(self))
        # The deadlines of this timeout's coroutine calls on the last loop
        # that ran one (see ``deadlines``).
        self._queue: _deadlines.DeadlineQueue | None = None

    def _per_wait(self) -> None:
        """On a stream, ``seconds`` bounds the first item and each later wait
        (unless set apart), never the whole stream."""
        seconds, first_item, inactivity = self._stream_bounds
        self._stream_bounds = (
            None,
            seconds if first_item is None else first_item,
            seconds if inactivity is None else inactivity,
        )

    def __repr__(self) -> str:
        parts = [f"{self.name!r}"] if self.name else []
        if self.seconds is not None:
            parts.append(f"seconds={self.seconds:g}")
        if self.first_item is not None:
            parts.append(f"first_item={self.first_item:g}")
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
        does, and raises ``CallTimeoutError`` when it runs out."""
        seconds = self.seconds
        if seconds is None:
            raise self._no_seconds()
        scope = _deadline(seconds) if switch.on else None
        if scope is not None:
            await scope.__aenter__()
        self._blocks.push(scope)
        return self

    async def __aexit__(self, *exc_info: *ExcInfo) -> None:
        exc_type, exc, tb = exc_info
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
            f"{self!r} has only an inactivity limit (or a first_item one), which "
            "applies to generator functions and async generator functions; give it "
            "seconds to time other calls"
        )

    # -- execution -----------------------------------------------------------

    # The closures only forward to ``_run`` / ``_arun`` (the shared ones):
    # arming a timeout costs far more than the frame, and it has no per-call
    # events of its own.

    def _wrap_sync(self, fn: SyncFn[R], name: str, entry: Request | None = None) -> SyncFn[R]:
        if self.seconds is None:
            raise self._no_seconds()
        if self.mode == "signal":
            return forwarding(self, fn, name, entry, self._signal_run(fn, name))
        return super()._wrap_sync(fn, name, entry)

    def _signal_run(self, fn: SyncFn[R], name: str) -> Callable[[SyncFn[R], str, Args, Kwargs], R]:
        """``_run`` of a signal-mode chain, made once: its two system calls are
        most of its cost, so it spends no frame of its own (``_run``,
        ``_call_signal``) and makes no function per call (``python -m
        benchmarks``, "sync timeout: resilient (signal)" against "floor: two
        setitimer calls")."""
        call, main_thread, get_ident = _alarm.call, _alarm.main_thread, threading.get_ident
        # (Read at each call, as ``_run`` reads them: ``seconds`` may change.)
        bound: list[float] = [0.0]

        def expired() -> CallTimeoutError:
            return self._timed_out(name or self._event_name(fn), bound[0])

        def run_signal(fn: SyncFn[R], name: str, args: Args, kwargs: Kwargs) -> R:
            seconds = self.seconds
            if seconds is None:
                raise self._no_seconds()
            if not switch.on:
                return fn(*args, **kwargs) if kwargs else fn(*args)
            if get_ident() != main_thread[0]:
                raise self._not_main_thread()
            bound[0] = seconds
            return call(fn, args, kwargs, seconds, expired)

        return run_signal

    def _wrap_async(self, fn: AsyncFn[R], name: str, entry: Request | None = None) -> AsyncFn[R]:
        if self.seconds is None:
            raise self._no_seconds()
        return super()._wrap_async(fn, name, entry)

    def _run(self, fn: SyncFn[R], name: str | None, args: Args, kwargs: Kwargs) -> R:
        seconds = self.seconds
        if seconds is None:
            raise self._no_seconds()
        if not switch.on:
            return fn(*args, **kwargs)
        if self.mode == "signal":
            return self._call_signal(fn, args, kwargs, seconds, name)
        if self.mode == "inline":
            return self._call_inline(fn, args, kwargs, seconds, name)
        return self._call_thread(fn, args, kwargs, seconds, name)

    def _call_inline(
        self,
        fn: SyncFn[R],
        args: Args,
        kwargs: Kwargs,
        seconds: float,
        name: str | None,
    ) -> R:
        """In the caller's thread: nothing can stop the call, so one that
        overran fails as it returns (an error it raised passes as itself)."""
        start = _clock.monotonic()
        # ``f(*args)`` when there are no keywords: ``f(*args, **kwargs)``
        # builds a dict per call (docs/architecture.md, calls without keywords).
        result = fn(*args, **kwargs) if kwargs else fn(*args)
        if _clock.monotonic() - start > seconds:
            raise self._timed_out(name or self._event_name(fn), seconds)
        return result

    def _call_thread(
        self,
        fn: SyncFn[R],
        args: Args,
        kwargs: Kwargs,
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
            name = name or self._event_name(fn)
            if pool.drop(job):
                raise self._never_started(name, seconds, pool)
            timed_out = self._timed_out(name, seconds)
            timed_out._when_finished = functools.partial(pool.after, job)
            raise timed_out
        error = job.error
        if error is not None:
            job.error = None
            try:
                raise error
            finally:
                error = None
        result: R = job.result
        return result

    def _never_started(self, name: str, seconds: float, pool: WorkerPool) -> CallTimeoutError:
        error = self._timed_out(name, seconds)
        error._message = (
            f"call {name!r} could not start within {seconds:g}s: all {pool.max_workers} "
            "workers of its pool were busy (with calls still running, or timed out "
            "and still running)"
        )
        error.started = False
        return error

    def _call_signal(
        self,
        fn: SyncFn[R],
        args: Args,
        kwargs: Kwargs,
        seconds: float,
        name: str | None,
    ) -> R:
        if threading.get_ident() != _alarm.main_thread[0]:
            raise self._not_main_thread()
        return _alarm.call(
            fn,
            args,
            kwargs,
            seconds,
            lambda: self._timed_out(name or self._event_name(fn), seconds),
        )

    def _not_main_thread(self) -> RuntimeError:
        return RuntimeError(
            f"{self!r}: mode='signal' works only in the main thread "
            f"(called from {threading.current_thread().name!r}); use mode='thread'"
        )

    async def _arun(self, fn: AsyncFn[R], name: str | None, args: Args, kwargs: Kwargs) -> R:
        seconds = self.seconds
        if seconds is None:
            raise self._no_seconds()
        if not switch.on:
            return await fn(*args, **kwargs)
        loop = _deadlines.running_loop()
        if loop is None or _clock.wake_at is not None:
            return await self._arun_scoped(fn, name, args, kwargs, seconds)
        task = _deadlines.current_task(loop)
        if task is None:
            return await self._arun_scoped(fn, name, args, kwargs, seconds)
        # DeadlineQueue.arm, inline: this runs on every timed coroutine call.
        queue = self._queue
        if queue is None or queue.loop is not loop:
            queue = self._queue = _deadlines.DeadlineQueue(loop, seconds)
        when = queue.time() + seconds
        entry: list[Any] = [when, task, task.cancelling(), False]
        entries = queue.entries
        entries.append(entry)
        if queue.handle is None:
            queue.handle = loop.call_at(when, queue.fire)
        try:
            result = await (fn(*args, **kwargs) if kwargs else fn(*args))
        except BaseException as exc:
            if _deadlines.settle(entries, entry, exc):
                stdlib = self._stdlib_timeout(exc)
                raise self._timed_out(name or self._event_name(fn), seconds) from stdlib
            raise
        # settle(entries, entry, None), inline.
        if entry[3]:
            task.uncancel()
        else:
            entry[0] = None
            if entries[-1] is entry:
                entries.pop()
        return result

    @staticmethod
    def _stdlib_timeout(cancelled: BaseException) -> TimeoutError:
        """The ``TimeoutError`` ``asyncio.timeout`` would raise from the
        cancellation of a call (chained, it shows where the call was
        interrupted)."""
        try:
            raise TimeoutError from cancelled
        except TimeoutError as stdlib:
            return stdlib

    async def _arun_scoped(
        self,
        fn: AsyncFn[R],
        name: str | None,
        args: Args,
        kwargs: Kwargs,
        seconds: float,
    ) -> R:
        """Under trio, outside a task, or on a test clock: a scope per call."""
        scope: Deadline
        try:
            scope = asyncio.timeout(seconds)
        except RuntimeError:  # no asyncio loop in this thread: trio, say
            scope = _async_backend.timeout(seconds)
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

    # Streams: ``seconds`` bounds the whole stream, ``first_item`` the wait
    # for the first item, ``inactivity`` each later wait; whichever fires
    # raises ``CallTimeoutError`` carrying that bound. The consumer's own
    # time between items is never counted. The first wait is bounded here,
    # around the layers inside; the later ones by the chain's relay, with
    # the waits this gives it (``stream_deadline``).

    def _open_stream(self, open: Open, args: Args, kwargs: Kwargs, name: str) -> Opened:
        """A sync stream runs in the caller's thread and cannot be
        interrupted: a wait that overran fails when its item arrives (the
        item is dropped), as ``mode="inline"`` does for a call."""
        if not switch.on:
            return open(args, kwargs, name)
        total, first, later = self._stream_bounds
        monotonic = _clock.now  # the installed clock's, looked up once per stream
        began = monotonic()
        opened = open(args, kwargs, name)
        if opened.stream is None:
            return opened
        came = monotonic()
        if total is not None and came - began > total:
            error = self._timed_out(name, total)
        elif first is not None and came - began > first:
            error = self._late(name, first, True)
        else:
            if later is None and total is None:
                return opened
            if opened.waits is not None:  # a timeout inside this one: its own relay
                opened = _streams.Opened(*_streams.sealed(opened))
            opened.waits = SyncWaits(self, name, monotonic, began, later, total)
            return opened
        _streams.abandon(opened, error)
        raise error

    async def _aopen_stream(self, open: AOpen, args: Args, kwargs: Kwargs, name: str) -> Opened:
        if not switch.on:
            return await open(args, kwargs, name)
        loop = _deadlines.running_loop()
        if loop is None:  # trio, say: a scope per wait
            return await self._aopen_scoped(open, args, kwargs, name)
        total, first, later = self._stream_bounds
        deadline = StreamDeadline(loop, self, name, later, total)
        when = deadline.ends
        silent = first is not None and deadline.time() + first < when
        if silent:
            when = deadline.time() + first  # type: ignore[operator]
        if when == math.inf:
            opened = await open(args, kwargs, name)
        else:
            deadline.arm(when)
            try:
                opened = await open(args, kwargs, name)
            except asyncio.CancelledError as exc:
                deadline.waiting = False
                deadline.close()
                if not deadline.timed_out():
                    raise
                if silent:
                    assert first is not None
                    raise self._late(name, first, True) from exc
                assert total is not None
                raise self._timed_out(name, total) from exc
            except BaseException:
                deadline.waiting = False
                deadline.close()
                raise
            deadline.waiting = False
        if opened.stream is None or (later is None and total is None):
            deadline.close()
            return opened
        if opened.waits is not None:  # a timeout inside this one: its own relay
            try:
                opened = _streams.Opened(*await _streams.asealed(opened))
            except BaseException:
                deadline.close()
                raise
        if deadline.handle is not None and deadline.when > deadline.time() + deadline.later:
            deadline.close()  # set for a first item due after the next wait's end
        opened.waits = deadline
        opened.ends.append(deadline.ended)
        return opened

    async def _aopen_scoped(self, open: AOpen, args: Args, kwargs: Kwargs, name: str) -> Opened:
        """Under trio (or anyio on trio): each wait in a deadline scope of
        its own; the later ones through ``_Scoped``."""
        now = _async_backend.now
        total, first, later = self._stream_bounds
        ends = None if total is None else now() + total
        quiet_ends = None if first is None else now() + first
        if ends is None or (quiet_ends is not None and quiet_ends < ends):
            when, silent = quiet_ends, True
        else:
            when, silent = ends, False
        scope = _async_backend.timeout_at(when)
        try:
            async with scope:
                opened = await open(args, kwargs, name)
        except TimeoutError as exc:
            if not scope.expired():
                raise
            if silent:
                assert first is not None
                raise self._late(name, first, True) from exc
            assert total is not None
            raise self._timed_out(name, total) from exc
        if opened.stream is None or (later is None and total is None):
            return opened
        if opened.waits is not None:
            opened = _streams.Opened(*await _streams.asealed(opened))
        opened.stream = _Scoped(self, opened.stream, name, later, total, ends)
        return opened

    def _late(self, name: str, bound: float, first: bool) -> CallTimeoutError:
        """A stream's wait for an item ran past ``bound``."""
        if first:
            self._stats_for(name).timeouts += 1
            if self._listeners.events:
                self._listeners.new(events.TimedOut, name, self._kind, bound)
            return CallTimeoutError(
                bound, name=name, message=f"stream {name!r} yielded no first item in {bound:g}s"
            )
        return self._inactive(name, bound)

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
        from .._execution.compose import chain_of, is_stream

        stacked = chain_of(fn)
        target = fn if stacked is None else stacked.fn
        if not is_stream(target) and (self.inactivity is not None or self.first_item is not None):
            raise TypeError(
                f"{self!r}: first_item= and inactivity= apply to generator functions and "
                f"async generator functions, not {fn!r}"
            )
        return super().__call__(fn)


async def _racing_test_clock(scope: Deadline, deadline: Waiter, call: Awaitable[R]) -> R:
    """Await ``call`` inside ``scope``, also ending the scope when a test
    clock reaches ``deadline`` (the real timer keeps running too)."""
    now = _async_backend.now
    inside = True

    def expire() -> None:
        if inside and not scope.expired():
            scope.reschedule(now())

    deadline.on_wake(expire)
    try:
        return await call
    finally:
        inside = False
        deadline.cancel()


def _deadline(seconds: float) -> Deadline:
    try:
        return asyncio.timeout(seconds)
    except RuntimeError:  # no asyncio loop in this thread: trio, say
        return _async_backend.timeout(seconds)


class _Scoped:
    """The later waits of a stream under trio: each in a scope of its own,
    at most ``later`` and never past ``ends``."""

    __slots__ = ("ends", "later", "name", "stream", "timeout", "total")

    def __init__(
        self,
        timeout: Timeout,
        stream: AsyncIterator[Any],
        name: str,
        later: float | None,
        total: float | None,
        ends: float | None,
    ) -> None:
        self.timeout = timeout
        self.stream = stream
        self.name = name
        self.later = later
        self.total = total
        self.ends = ends

    def __aiter__(self) -> _Scoped:
        return self

    async def __anext__(self) -> Any:
        later, ends = self.later, self.ends
        quiet_ends = None if later is None else _async_backend.now() + later
        if ends is None or (quiet_ends is not None and quiet_ends < ends):
            when, silent = quiet_ends, True
        else:
            when, silent = ends, False
        scope = _async_backend.timeout_at(when)
        try:
            async with scope:
                return await anext(self.stream)
        except TimeoutError as exc:
            if not scope.expired():
                raise
            if silent:
                assert later is not None
                raise self.timeout._late(self.name, later, False) from exc
            assert self.total is not None
            raise self.timeout._timed_out(self.name, self.total) from exc

    async def aclose(self) -> None:
        await _streams.aclose(self.stream)
