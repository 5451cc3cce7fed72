"""Which async library runs the calling task, and the few things every async
policy needs from it: a sleep, a deadline, a waiter another thread can wake.

asyncio is asked first, with ``asyncio._get_running_loop()`` (one C call);
trio only when no asyncio loop runs in this thread and ``trio`` is already
imported (it is never imported here). anyio runs on one of the two, so it is
covered by both. Policies keep calling asyncio directly on their hot paths
and come here when asyncio is not running (``asyncio.timeout`` raising
``RuntimeError``, say); the queued and waiting paths use these helpers
whatever the library.

- ``current`` names the library (``"asyncio"`` or ``"trio"``).
- ``sleep`` and ``checkpoint`` wait on the running library.
- ``timeout`` / ``timeout_at`` give a deadline scope with the API of
  ``asyncio.Timeout`` (``async with``, ``expired()``, ``reschedule(when)``),
  raising ``TimeoutError`` when it runs out; ``now`` is the time those
  deadlines are measured in.
- ``waiter`` makes a ``Waiter``: ``await w.wait()`` in the task,
  ``w.wake()`` from any thread or task.
- ``wait_or_sleep`` races a waiter against the installed clock's sleep.
- ``in_thread`` awaits a blocking call run on a thread of its own.
- ``running_loop`` and ``current_task`` are asyncio's own, read without the
  checks of the public calls: the one place the package reads asyncio's
  private names (see below for what each one saves).
"""

from __future__ import annotations

import asyncio
import math
import sys
import threading
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, Literal, Protocol, TypeVar

from .exc_info import ExcInfo

T = TypeVar("T")

__all__ = [
    "Deadline",
    "Library",
    "Waiter",
    "checkpoint",
    "current",
    "current_task",
    "in_thread",
    "now",
    "running_loop",
    "sleep",
    "timeout",
    "timeout_at",
    "wait_or_sleep",
    "waiter",
]

Library = Literal["asyncio", "trio"]

# -- asyncio's private names: read here only, used on the async hot paths ----
# Measured (python -m benchmarks --only async; a timeit of each call on
# CPython 3.11): worth keeping while these numbers hold.
#
# The running loop, or None: asyncio._get_running_loop is the C function
# behind asyncio.get_running_loop, without its raise. Inside a loop both
# cost the same; outside one (a trio task, a thread) it answers None in
# about 25 ns where get_running_loop's RuntimeError and its except cost
# about 650 ns. Every async call that asks which library runs it (the
# timeouts, the hedging race, the backend below, redis's async paths) asks
# this first.
running_loop: Callable[[], asyncio.AbstractEventLoop | None] = asyncio._get_running_loop
# The task running on ``loop``: asyncio.current_task is C from Python 3.12;
# on 3.11 it is a Python function around this dict's ``get``, which is read
# directly (about 90 ns less per async timeout, hedge and timed stream).
current_task: Callable[[asyncio.AbstractEventLoop], asyncio.Task[Any] | None] = (
    asyncio.current_task if sys.version_info >= (3, 12) else asyncio.tasks._current_tasks.get  # type: ignore[attr-defined]
)

_running_loop = running_loop
_modules = sys.modules


def _trio() -> Any:
    """The trio module when the calling thread runs a trio task, else None."""
    trio: Any = _modules.get("trio")
    if trio is None:
        return None
    try:
        trio.lowlevel.current_task()
    except RuntimeError:
        return None
    return trio


def _no_library() -> RuntimeError:
    return RuntimeError(
        "no running event loop: resilient's async policies run under asyncio, "
        "trio, or anyio on either"
    )


def current() -> Library:
    """The async library running the calling task; ``RuntimeError`` when none."""
    if _running_loop() is not None:
        return "asyncio"
    if _trio() is not None:
        return "trio"
    raise _no_library()


def _trio_or_raise() -> Any:
    trio = _trio()
    if trio is None:
        raise _no_library()
    return trio


def sleep(seconds: float) -> Awaitable[None]:
    """Sleep ``seconds`` on the running library (a checkpoint when <= 0)."""
    if _running_loop() is not None:
        return asyncio.sleep(seconds)
    return _trio_or_raise().sleep(max(seconds, 0.0))  # type: ignore[no-any-return]


def checkpoint() -> Awaitable[None]:
    """Let the library run others, and notice a cancellation, as ``sleep(0)``."""
    return sleep(0)


def now() -> float:
    """The running library's clock (``loop.time()``, ``trio.current_time()``):
    what ``timeout_at`` deadlines are measured in."""
    loop = _running_loop()
    if loop is not None:
        return loop.time()
    return _trio_or_raise().current_time()  # type: ignore[no-any-return]


class Deadline(Protocol):
    """What ``timeout`` returns: ``asyncio.Timeout``'s API."""

    async def __aenter__(self) -> Any: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None: ...

    def expired(self) -> bool: ...

    def reschedule(self, when: float | None) -> None: ...


class _TrioDeadline:
    """A trio cancel scope dressed as ``asyncio.Timeout``: on expiry the block
    is cancelled (trio's own way) and ``TimeoutError`` is raised from it."""

    __slots__ = ("_scope",)

    def __init__(self, trio: Any, when: float | None) -> None:
        self._scope = trio.CancelScope(deadline=math.inf if when is None else when)

    async def __aenter__(self) -> _TrioDeadline:
        self._scope.__enter__()
        return self

    async def __aexit__(self, *exc_info: *ExcInfo) -> bool | None:
        exc_type, exc, tb = exc_info
        scope = self._scope
        swallowed = scope.__exit__(exc_type, exc, tb)
        if scope.cancelled_caught:
            raise TimeoutError from exc
        return bool(swallowed)

    def expired(self) -> bool:
        return bool(self._scope.cancelled_caught)

    def reschedule(self, when: float | None) -> None:
        self._scope.deadline = math.inf if when is None else when


def timeout_at(when: float | None) -> Deadline:
    """A deadline at ``when`` on ``now``'s clock (``None``: none)."""
    if _running_loop() is not None:
        return asyncio.timeout_at(when)
    return _TrioDeadline(_trio_or_raise(), when)


def timeout(seconds: float | None) -> Deadline:
    """A deadline ``seconds`` from now (``None``: none)."""
    if _running_loop() is not None:
        return asyncio.timeout(seconds)
    trio = _trio_or_raise()
    return _TrioDeadline(trio, None if seconds is None else trio.current_time() + seconds)


# -- waiters ---------------------------------------------------------------------


class Waiter(Protocol):
    """One task waits, anyone wakes it, once."""

    async def wait(self) -> None:
        """Until ``wake``; a cancelled wait marks the waiter done."""

    def wake(self) -> bool:
        """Wake the waiting task, from any thread. False when its event loop
        is gone (the task will never run again)."""

    def done(self) -> bool:
        """Woken, or its wait was cancelled."""

    def woken(self) -> bool:
        """Woken (a cancelled wait is not)."""

    def on_wake(self, callback: Callable[[], object]) -> None:
        """Call ``callback()`` in the waiter's own thread when it is woken."""

    def cancel(self) -> None:
        """Nobody waits any more: done, never woken. From the waiter's thread."""


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class _AsyncioWaiter:
    __slots__ = ("_future", "_loop")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._future: asyncio.Future[None] = loop.create_future()

    @property
    def future(self) -> asyncio.Future[None]:
        return self._future

    async def wait(self) -> None:
        await self._future

    def wake(self) -> bool:
        loop = self._loop
        if _running_loop() is loop:
            _resolve(self._future)
            return True
        try:
            loop.call_soon_threadsafe(_resolve, self._future)
        except RuntimeError:  # its loop is closed
            return False
        return True

    def done(self) -> bool:
        return self._future.done()

    def woken(self) -> bool:
        future = self._future
        return future.done() and not future.cancelled()

    def on_wake(self, callback: Callable[[], object]) -> None:
        def woke(future: asyncio.Future[None]) -> None:
            if not future.cancelled():
                callback()

        self._future.add_done_callback(woke)

    def cancel(self) -> None:
        self._future.cancel()


class _TrioWaiter:
    __slots__ = ("_callbacks", "_cancelled", "_event", "_thread", "_token")

    def __init__(self, trio: Any) -> None:
        self._event = trio.Event()
        self._token = trio.lowlevel.current_trio_token()
        self._thread = threading.get_ident()
        self._cancelled = False
        self._callbacks: list[Callable[[], object]] = []

    async def wait(self) -> None:
        try:
            await self._event.wait()
        except BaseException:
            if not self._event.is_set():
                self._cancelled = True
            raise

    def _set(self) -> None:
        event = self._event
        if event.is_set() or self._cancelled:
            return
        event.set()
        callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback()

    def wake(self) -> bool:
        if threading.get_ident() == self._thread:
            self._set()
            return True
        try:
            self._token.run_sync_soon(self._set)
        except RuntimeError:  # trio.RunFinishedError: its run is over
            return False
        return True

    def done(self) -> bool:
        return self._cancelled or self._event.is_set()

    def woken(self) -> bool:
        return bool(self._event.is_set())

    def on_wake(self, callback: Callable[[], object]) -> None:
        if self._event.is_set():
            callback()
        else:
            self._callbacks.append(callback)

    def cancel(self) -> None:
        if not self._event.is_set():
            self._cancelled = True
            self._callbacks = []


def waiter() -> Waiter:
    """A new waiter for the calling task."""
    loop = _running_loop()
    if loop is not None:
        return _AsyncioWaiter(loop)
    return _TrioWaiter(_trio_or_raise())


async def wait_or_sleep(
    waiter: Waiter, sleep: Callable[[float], Awaitable[None]], seconds: float
) -> bool:
    """Wait for ``waiter`` while ``sleep(seconds)`` runs (a test clock's
    sleep, which moves that clock); True when the waiter was woken first.
    What the sleep raises, other than being cut short, propagates."""
    if isinstance(waiter, _AsyncioWaiter):
        sleeper = asyncio.ensure_future(sleep(seconds))
        try:
            await asyncio.wait((waiter.future, sleeper), return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
        if not waiter.woken():
            sleeper.result()
        return waiter.woken()
    trio = _trio_or_raise()
    with trio.CancelScope() as scope:
        waiter.on_wake(scope.cancel)
        await sleep(seconds)
    return waiter.woken()


async def in_thread(fn: Callable[[], T], abandoned: Callable[[T], object]) -> T:
    """``fn()`` on a thread of its own, awaited by the calling task. A task
    cancelled first does not wait: the call runs to its end, and what it
    returns goes to ``abandoned`` (its error, if any, is dropped)."""
    woken = waiter()
    lock = threading.Lock()
    outcome: list[tuple[bool, Any]] = []
    gone = [False]

    def work() -> None:
        try:
            result: tuple[bool, Any] = (True, fn())
        except BaseException as exc:
            result = (False, exc)
        with lock:
            if not gone[0]:
                outcome.append(result)
                woken.wake()
                return
        if result[0]:
            abandoned(result[1])

    threading.Thread(target=work, name="resilient-in-thread", daemon=True).start()
    try:
        await woken.wait()
    except BaseException:
        with lock:
            gone[0] = True
            late = outcome[:]
        if late and late[0][0]:
            abandoned(late[0][1])  # it finished as we were cancelled
        raise
    ok, value = outcome[0]
    if not ok:
        raise value
    return value  # type: ignore[no-any-return]
