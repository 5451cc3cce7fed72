"""Response bodies judged when they end, for the aiohttp middleware.

A response body is a stream. Its first byte is awaited inside the attempt
(``first_byte``), so a body that breaks or stays silent before it fails
the attempt, which retry repeats and the breaker counts, as any error
before a stream's first item. After it the body is its consumer's, and its
end is the request's end for the host's breaker: ``judge(response, ...)``
gives the response end hooks (``pending(response)`` hands them to the
breaker), run once, ``hook(error, closed)``:

- when the body reaches its end: exhausted;
- when the response is released or closed (``release()``, ``close()``,
  leaving ``async with``, a failed ``read()``): a failure if the body had
  failed by then (broken off, or silent past the session's ``sock_read``
  timeout), else closed by its consumer (the session's ``total`` timeout
  sets no error on the body: a body it cut is judged so too);
- when the response is garbage collected before either: closed by its
  consumer (the hooks run at the middleware's next request, see
  ``_execution.collected``). aiohttp's open connection keeps a response
  it has not released alive, so that is once its connection has ended.

Both use aiohttp's public methods only:

- Waiting for a first byte without taking it: for the wait alone, the
  body's ``StreamReader`` takes a subclass whose ``feed_data``,
  ``feed_eof`` and ``set_exception`` (what aiohttp's parser calls to hand
  it bytes, its end or an error) wake the waiter, then gets its class
  back. The subclass adds no slot, so the swap is allowed and changes
  nothing else.
- A response's end: the response takes a ``ClientResponse`` subclass whose
  ``release``, ``close`` and ``__del__`` judge the body first; its end is
  ``StreamReader.on_eof``. A session with its own ``response_class`` is
  judged when its headers arrive, as a response whose body is already
  complete is.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import aiohttp

from .._execution.collected import end_or_set_aside
from .._execution.streams import End, end

__all__ = ["first_byte", "judge", "pending"]

# The waiter of each body whose first byte is awaited, by the reader's id
# (a StreamReader has slots and no weak references). An entry lives for
# one wait.
_waiters: dict[int, asyncio.Future[None]] = {}


def _wake(reader: aiohttp.StreamReader) -> None:
    waiter = _waiters.get(id(reader))
    if waiter is not None and not waiter.done():
        waiter.set_result(None)


class _Watched(aiohttp.StreamReader):
    """A reader whose first byte, end or error is awaited (see above)."""

    __slots__ = ()

    def feed_data(self, *args: Any, **kwargs: Any) -> Any:
        fed = super().feed_data(*args, **kwargs)
        _wake(self)
        return fed

    def feed_eof(self) -> None:
        super().feed_eof()
        _wake(self)

    def set_exception(self, *args: Any, **kwargs: Any) -> None:
        super().set_exception(*args, **kwargs)
        _wake(self)


def _started(reader: aiohttp.StreamReader) -> bool:
    return bool(reader.total_bytes) or reader.is_eof() or reader.exception() is not None


async def first_byte(response: aiohttp.ClientResponse) -> BaseException | None:
    """Wait until the body has its first byte, its end or an error, taking
    nothing from it; the error, if it failed before its first byte."""
    reader = response.content
    if type(reader) is not aiohttp.StreamReader:  # no body (HEAD, 204), or not aiohttp's
        return None
    while not _started(reader):
        key = id(reader)
        waiter = _waiters[key] = asyncio.get_running_loop().create_future()
        reader.__class__ = _Watched
        try:
            await waiter
        finally:
            reader.__class__ = aiohttp.StreamReader
            del _waiters[key]
    return None if reader.total_bytes else reader.exception()


Failure = Callable[[BaseException], BaseException]


class _Judged(aiohttp.ClientResponse):
    """A response whose body's end its host's breaker awaits."""

    _resilient_ends: list[End] | None
    _resilient_failure: Failure

    def _resilient_end(self) -> None:
        ends, self._resilient_ends = self._resilient_ends, None
        if not ends:
            return
        reader = self.content
        failed = reader.exception()
        error = None if failed is None else self._resilient_failure(failed)
        end(ends, error, failed is None and not reader.is_eof())

    # A hook that raises (a failure_predicate's error) reaches the caller,
    # after aiohttp has released the connection all the same.

    def release(self) -> Any:
        try:
            self._resilient_end()
        finally:
            released = super().release()
        return released

    def close(self) -> None:
        try:
            self._resilient_end()
        finally:
            super().close()

    def __del__(self, *args: Any) -> None:
        # Dropped unread: closed by its consumer, as an httpx body is. (What
        # the body met after it was dropped, the server closing an idle
        # connection, say, is no failure of the host.)
        ends, self._resilient_ends = self.__dict__.get("_resilient_ends"), None
        try:
            if ends:
                end_or_set_aside(ends, None, True)
        finally:
            super().__del__(*args)


def judge(response: aiohttp.ClientResponse, failure: Failure) -> None:
    """Have the host's breaker judge ``response`` when its body ends (see
    the module's docstring); ``failure(exc)`` is the error of a body that
    failed with aiohttp's ``exc``. Nothing to do when the body is already
    complete, has none, or the response is not aiohttp's own class."""
    reader = response.content
    if (
        type(response) is not aiohttp.ClientResponse
        or type(reader) is not aiohttp.StreamReader
        or reader.is_eof()
    ):
        return
    response.__class__ = _Judged
    assert isinstance(response, _Judged)
    response._resilient_ends = []
    response._resilient_failure = failure
    reader.on_eof(response._resilient_end)


def pending(response: object) -> list[End] | None:
    """The end hooks of ``response``'s body when it is judged when it ends,
    else None (judge the response now)."""
    if type(response) is _Judged:
        return response._resilient_ends
    return None
