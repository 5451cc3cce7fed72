"""Helpers shared by the metrics tests: real policies doing what is counted."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any

from resilient import (
    Bulkhead,
    BulkheadFullError,
    CallTimeoutError,
    Retry,
    RetryConfig,
    Timeout,
)


class RateLimitedError(Exception):
    """A failure that says when to try again (a retry honours it)."""

    retry_after = 0.0


def retrying(name: str | None, attempts: int) -> Retry:
    """A retry that never waits."""
    return Retry(
        RetryConfig(max_attempts=attempts, initial_delay=0.0, max_delay=0.0, jitter=0.0), name=name
    )


def failing(*errors: BaseException | None) -> Callable[..., str]:
    """A function raising each of ``errors`` in turn (``None``: returning
    ``"ok"``), then returning ``"ok"``."""
    answers = iter(errors)

    def work(*args: Any, **kwargs: Any) -> str:
        error = next(answers, None)
        if error is not None:
            raise error
        return "ok"

    return work


def time_out(name: str) -> None:
    """One call through a ``Timeout`` called ``name`` that runs out of time."""
    release = threading.Event()
    try:
        with contextlib.suppress(CallTimeoutError):
            Timeout(0.01, name=name).call(release.wait, 10)
    finally:
        release.set()


def go_quiet(name: str) -> None:
    """One stream through a ``Timeout`` called ``name`` that goes quiet for too long."""

    async def ticks() -> AsyncIterator[int]:
        yield 1
        await asyncio.sleep(10)
        yield 2  # pragma: no cover - never reached

    quiet = Timeout(inactivity=0.01, name=name)(ticks)

    async def consume() -> None:
        with contextlib.suppress(CallTimeoutError):
            async for _ in quiet():
                pass

    asyncio.run(consume())


def turn_away(bulkhead: Bulkhead) -> None:
    """One call ``bulkhead`` rejects: its only slot is held by a block meanwhile."""
    assert bulkhead.config.max_concurrent == 1
    assert bulkhead.config.max_queue == 0
    with bulkhead, contextlib.suppress(BulkheadFullError):
        bulkhead.call(lambda: None)
