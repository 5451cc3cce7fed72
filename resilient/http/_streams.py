"""Response bodies that fail with ``resilient.http.errors``.

The inactivity limit itself is the socket read timeout of the body: httpx's
own transports read ``request.extensions["timeout"]["read"]`` when the body
starts, so lowering it once the headers are in bounds every wait for the next
chunk and nothing before it (a model thinking before its first token is
governed by the ordinary read timeout).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Generator, Iterator

import httpx

from .. import events
from .._runtime import clock as _clock
from .errors import HTTPError, HTTPTimeoutError, NetworkError, StreamError

__all__ = [
    "AsyncGuardedStream",
    "GuardedStream",
    "StreamFailure",
    "Unread",
    "limit_inactivity",
]


def limit_inactivity(request: httpx.Request, seconds: float) -> None:
    """From now on, a body read waits at most ``seconds`` for the next bytes."""
    timeouts = dict(request.extensions.get("timeout") or {})
    read = timeouts.get("read")
    timeouts["read"] = seconds if read is None else min(read, seconds)
    request.extensions["timeout"] = timeouts


class StreamFailure:
    """Turns an error raised while the body streams into an HTTPError."""

    __slots__ = ("listeners", "name", "on_timeout", "request", "request_id", "response")

    def __init__(
        self,
        name: str,
        request: httpx.Request,
        response: httpx.Response,
        request_id: str,
        listeners: events.ListenerSet,
        *,
        on_timeout: Callable[..., None] | None = None,
    ) -> None:
        self.name = name
        self.on_timeout = on_timeout  # counts a silent body as a timeout
        self.request = request
        self.response = response
        self.request_id = request_id
        self.listeners = listeners

    def __call__(self, exc: httpx.HTTPError, started: bool = True) -> HTTPError:
        """The error of a body that failed with ``exc``; before its first
        byte (``started`` false) a broken body is a ``NetworkError``, which
        retry repeats as any failed attempt."""
        request = self.request
        where = f"{request.method} {request.url}"
        if not isinstance(exc, httpx.TimeoutException):
            broken = StreamError if started else NetworkError
            return broken(
                f"the response body of {where} broke off"
                f"{'' if started else ' before its first byte'}: {exc}",
                request_id=self.request_id,
                status_code=self.response.status_code,
                request=request,
                response=self.response,
            )
        silent = (request.extensions.get("timeout") or {}).get("read") or 0.0
        if self.on_timeout is not None:
            self.on_timeout(silent, inactive=True)
        if self.listeners.events:
            self.listeners.emit(
                events.StreamInactive(
                    name=self.name,
                    policy="http",
                    timestamp=_clock.wall(),
                    monotonic=_clock.monotonic(),
                    request_id=self.request_id,
                    inactivity=silent,
                )
            )
        return HTTPTimeoutError(
            f"the response body of {where} went silent for {silent:g}s",
            timeout=silent,
            request_id=self.request_id,
            status_code=self.response.status_code,
            request=request,
            response=self.response,
        )


# A body is a stream, and its request one call: the host's layers (breaker,
# bulkhead) see it through their stream paths (``_stream`` / ``_astream``),
# whose items are the response with its body's first chunk (read within the
# attempt, so a body that breaks or stays silent before it fails the
# attempt, which retry repeats and the breaker counts, as any error before a
# stream's first item) and then the body's other chunks. The call ends with
# the body: read to the end, or closed by its consumer after a chunk, it
# succeeded; raised (broken off, silent past ``inactivity``), it failed, and
# its error goes to the consumer as it is, never retried; closed before a
# chunk of it was read, it is neither (``Unread`` is thrown into it, a
# ``BaseException`` no breaker counts). A bulkhead's permit is held until
# then.


class Unread(BaseException):
    """Thrown into the stream of a body closed before a chunk of it was read."""


class GuardedStream(httpx.SyncByteStream):
    """The body of an answered request: its first chunk, read ahead, then
    the rest of its stream through the host's layers."""

    __slots__ = ("_body", "_head", "_read")

    def __init__(self, body: Generator[bytes, None, None], head: bytes) -> None:
        self._body = body
        self._head = head
        self._read = False

    def __iter__(self) -> Iterator[bytes]:
        self._read = True
        head, self._head = self._head, b""
        if head:
            yield head
        yield from self._body

    def close(self) -> None:
        if self._read:
            self._body.close()
            return
        self._read = True  # closing twice closes once
        with contextlib.suppress(Unread, StopIteration):
            self._body.throw(Unread())


class AsyncGuardedStream(httpx.AsyncByteStream):
    __slots__ = ("_body", "_head", "_read")

    def __init__(self, body: AsyncGenerator[bytes, None], head: bytes) -> None:
        self._body = body
        self._head = head
        self._read = False

    # An iterator of its own, not an async generator: one async generator
    # less per request (each costs the event loop's hooks).
    def __aiter__(self) -> AsyncIterator[bytes]:
        self._read = True
        return self

    async def __anext__(self) -> bytes:
        head = self._head
        if head:
            self._head = b""
            return head
        return await anext(self._body)

    async def aclose(self) -> None:
        if self._read:
            await self._body.aclose()
            return
        self._read = True
        with contextlib.suppress(Unread, StopAsyncIteration):
            await self._body.athrow(Unread())
