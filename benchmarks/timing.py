"""How a case is timed: ``loops`` iterations, returning the elapsed seconds.

The plain loops call ten times per iteration (``INNER`` calls, pyperf's
``inner_loops``) so the loop's own cost stays out of the floor's time; the
guarded loops catch an exception per call, which costs far more than the
loop. Async loops time inside one running event loop.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections.abc import Awaitable, Callable
from time import perf_counter
from typing import Any

__all__ = ["INNER", "time_async", "time_async_guarded", "time_guarded", "time_sync", "time_threads"]

INNER = 10
_loop: asyncio.AbstractEventLoop | None = None


def event_loop() -> asyncio.AbstractEventLoop:
    """One event loop per process, created on first use and kept."""
    global _loop
    if _loop is None:
        _loop = asyncio.new_event_loop()
    return _loop


def time_sync(loops: int, call: Callable[[int], Any]) -> float:
    it = itertools.repeat(None, loops)
    start = perf_counter()
    for _ in it:
        call(1)
        call(1)
        call(1)
        call(1)
        call(1)
        call(1)
        call(1)
        call(1)
        call(1)
        call(1)
    return perf_counter() - start


def time_guarded(loops: int, call: Callable[[int], Any]) -> float:
    it = itertools.repeat(None, loops)
    start = perf_counter()
    for _ in it:
        try:  # noqa: SIM105 - contextlib.suppress costs a call of its own
            call(1)
        except Exception:
            pass
    return perf_counter() - start


async def _drive(loops: int, call: Callable[[int], Awaitable[Any]]) -> float:
    it = itertools.repeat(None, loops)
    start = perf_counter()
    for _ in it:
        await call(1)
        await call(1)
        await call(1)
        await call(1)
        await call(1)
        await call(1)
        await call(1)
        await call(1)
        await call(1)
        await call(1)
    return perf_counter() - start


async def _drive_guarded(loops: int, call: Callable[[int], Awaitable[Any]]) -> float:
    it = itertools.repeat(None, loops)
    start = perf_counter()
    for _ in it:
        try:  # noqa: SIM105 - contextlib.suppress costs a call of its own
            await call(1)
        except Exception:
            pass
    return perf_counter() - start


def time_async(loops: int, call: Callable[[int], Awaitable[Any]]) -> float:
    return event_loop().run_until_complete(_drive(loops, call))


def time_async_guarded(loops: int, call: Callable[[int], Awaitable[Any]]) -> float:
    return event_loop().run_until_complete(_drive_guarded(loops, call))


def time_threads(loops: int, call: Callable[[int], Any], threads: int) -> float:
    """``loops`` iterations of ``time_sync`` shared among ``threads`` threads,
    all started together: the wall time for the whole batch."""
    share, extra = divmod(loops, threads)
    ready = threading.Barrier(threads + 1)

    def work(n: int) -> None:
        ready.wait()
        time_sync(n, call)

    workers = [threading.Thread(target=work, args=(share + (i < extra),)) for i in range(threads)]
    for worker in workers:
        worker.start()
    ready.wait()
    start = perf_counter()
    for worker in workers:
        worker.join()
    return perf_counter() - start
