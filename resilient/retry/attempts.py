"""Retrying a block of code: ``retrying`` and ``aretrying``.

::

    for attempt in resilient.retrying(max_attempts=3, retry_on=(ConnectionError,)):
        with attempt:
            reply = client.get(url)

    async for attempt in resilient.aretrying(max_attempts=3):
        with attempt:
            reply = await client.get(url)

Each ``with attempt:`` block is one attempt (``attempt.number`` starts at 1).
An error that ``retry_on`` accepts ends the block; the loop waits as a
decorated function would and runs the block again. When no attempt is left
(or the deadline or an open breaker says stop) the last error is re-raised
with the same note as ``with_retry`` adds; an error that is
not retried is re-raised at once; success ends the loop. The rules are
those of ``Retry``, the waits go through the same clock
(so ``instant_waits()`` and ``fake_clock()`` apply), and the same
``RetryAttempted`` / ``RetriesExhausted`` events and retry counters are
emitted.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Unpack

from .._fields import RetryFields
from .._runtime import clock as _clock
from .._runtime.exc_info import ExcInfo
from .._runtime.switch import switch
from .retry import Retry, RetryConfig, retry_of

__all__ = ["AsyncRetrying", "Attempt", "Retrying", "aretrying", "retrying"]

_UNUSED = "resilient.retrying: use each attempt as `with attempt:` around the block to retry"


class Attempt:
    """One run of the block: use it as ``with attempt:``.

    Attributes:
        number: this attempt's number, from 1.
    """

    __slots__ = ("_loop", "number")

    def __init__(self, loop: _Loop, number: int) -> None:
        self._loop = loop
        self.number = number

    def __repr__(self) -> str:
        return f"<Attempt {self.number}>"

    def __enter__(self) -> Attempt:
        return self

    def __exit__(self, *exc_info: *ExcInfo) -> bool:
        error = exc_info[1]
        return self._loop._ended(self.number, error)


class _Loop:
    """What both loops share: the rules of a ``Retry`` over attempts."""

    __slots__ = ("_delay", "_done", "_name", "_number", "_previous", "_retry", "_start")

    def __init__(self, config: RetryConfig | Retry | None, fields: RetryFields) -> None:
        retry = retry_of("retrying", config, fields)
        if retry.config.retry_if_result is not None:
            raise ValueError(
                "retrying: retry_if_result has no result to look at in a block; "
                "check the result inside the block and raise to retry"
            )
        self._retry = retry
        self._name = retry.name or "retrying"
        self._number = 0
        self._done = False
        self._delay: float | None = None  # the wait before the next attempt, once planned
        self._previous = 0.0
        self._start = 0.0

    def _next(self) -> Attempt | None:
        """The next attempt, or None when the loop is over (after any wait)."""
        if self._done:
            return None
        if self._number == 0:
            self._start = _clock.monotonic()
        elif self._delay is None:
            raise RuntimeError(_UNUSED)
        self._number += 1
        self._delay = None
        return Attempt(self, self._number)

    def _ended(self, number: int, error: BaseException | None) -> bool:
        """After ``with attempt:``: True to swallow ``error`` and go on."""
        if number != self._number or self._done or self._delay is not None:
            raise RuntimeError(f"resilient.retrying: attempt {number} was already used")
        if error is None:
            self._done = True
            return False
        if not isinstance(error, Exception) or not switch.on:
            self._done = True
            return False  # KeyboardInterrupt, cancellation...: never retried
        planned = self._retry._plan(self._name, number, error, self._start, self._previous)
        if planned is None:
            self._done = True
            return False
        plan, ticket = planned
        if ticket is not None:
            # A block is user code: it cannot carry the breaker's wait ticket
            # into its calls, so the wait is a plain one and the probe slot
            # goes back at once.
            ticket.release()
        self._delay = plan.delay
        self._previous = plan.previous
        return True


class Retrying(_Loop):
    """The attempts of a block, for ``for attempt in ...:`` (see ``retrying``)."""

    __slots__ = ()

    def __iter__(self) -> Iterator[Attempt]:
        while (attempt := self._next()) is not None:
            yield attempt
            if self._delay is not None:
                _clock.sleep(self._delay)


class AsyncRetrying(_Loop):
    """The attempts of a block, for ``async for attempt in ...:`` (see ``aretrying``)."""

    __slots__ = ()

    async def __aiter__(self) -> AsyncIterator[Attempt]:
        while (attempt := self._next()) is not None:
            yield attempt
            if self._delay is not None:
                # A cancellation here ends the loop: no further attempt.
                await _clock.sleep_async(self._delay)


def retrying(config: RetryConfig | Retry | None = None, **fields: Unpack[RetryFields]) -> Retrying:
    """Retry a block: ``for attempt in retrying(...): with attempt: ...``.

    Args:
        config: a ``RetryConfig`` (default: ``RetryConfig()``), or a
            ready ``Retry`` (its name names the events).
        **fields: fields of ``RetryConfig`` replacing those of
            ``config`` (``retry_if_result`` excepted: a block has no result).

    Returns:
        An iterable of ``Attempt``; each is used as ``with attempt:``.
    """
    return Retrying(config, fields)


def aretrying(
    config: RetryConfig | Retry | None = None, **fields: Unpack[RetryFields]
) -> AsyncRetrying:
    """Retry a block in a coroutine: ``async for attempt in aretrying(...): with attempt: ...``.

    Args:
        config: a ``RetryConfig`` (default: ``RetryConfig()``), or a
            ready ``Retry`` (its name names the events).
        **fields: fields of ``RetryConfig`` replacing those of
            ``config`` (``retry_if_result`` excepted: a block has no result).

    Returns:
        An async iterable of ``Attempt``; each is used as ``with attempt:``.
    """
    return AsyncRetrying(config, fields)
