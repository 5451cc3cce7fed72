"""Response bodies that fail with ``resilient.http.errors``.

The inactivity limit itself is the socket read timeout of the body: httpx's
own transports read ``request.extensions["timeout"]["read"]`` when the body
starts, so lowering it once the headers are in bounds every wait for the next
chunk and nothing before it (a model thinking before its first token is
governed by the ordinary read timeout).
"""

from __future__ import annotations

import weakref
from collections.abc import AsyncIterator, Callable, Iterator

import httpx

from .. import events
from .._execution.collected import end_or_set_aside
from .._execution.streams import End
from .._runtime import clock as _clock
from .errors import HTTPError, HTTPTimeoutError, NetworkError, StreamError

__all__ = [
    "AsyncGuardedStream",
    "GuardedStream",
    "StreamFailure",
    "limit_inactivity",
    "pending",
]


def limit_inactivity(request: httpx.Request, seconds: float) -> None:
    """From now on, a body read waits at most ``seconds`` for the next bytes."""
    timeouts = dict(request.extensions.get("timeout") or {})
    read = timeouts.get("read")
    timeouts["read"] = seconds if read is None else min(read, seconds)
    request.extensions["timeout"] = timeouts


class StreamFailure:
    """Turns an error raised while the body streams into an HTTPError."""

    __slots__ = ("_response", "listeners", "name", "on_timeout", "request", "request_id")

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
        # Weakly: the response holds its body, which holds this. A strong
        # reference would make a cycle, and a body dropped unread would end
        # (its hooks taking its breaker's lock) whenever the cyclic collector
        # ran, even inside that breaker's locked code, instead of at once.
        self._response = weakref.ref(response)
        self.request_id = request_id
        self.listeners = listeners

    @property
    def response(self) -> httpx.Response | None:
        """The response whose body failed (alive while its body is read)."""
        return self._response()

    def __call__(self, exc: httpx.HTTPError, started: bool = True) -> HTTPError:
        """The error of a body that failed with ``exc``; before its first
        byte (``started`` false) a broken body is a ``NetworkError``, which
        retry repeats as any failed attempt."""
        request, response = self.request, self._response()
        where = f"{request.method} {request.url}"
        if not isinstance(exc, httpx.TimeoutException):
            broken = StreamError if started else NetworkError
            return broken(
                f"the response body of {where} broke off"
                f"{'' if started else ' before its first byte'}: {exc}",
                request_id=self.request_id,
                status_code=response.status_code if response is not None else None,
                request=request,
                response=response,
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
            status_code=response.status_code if response is not None else None,
            request=request,
            response=response,
        )


# A body is a stream: its first byte is read inside the attempt (``first``),
# so a body that breaks or stays silent before it fails the attempt, which
# retry repeats and the breaker counts, as any error before a stream's first
# item. What fails after it is the consumer's, and its end is the request's
# end for the host's breaker: ``pending(response)`` hands the breaker the
# body's end hooks (``ends``), run once, ``hook(error, closed)``, when the
# body is exhausted, raises, or is closed by its consumer (``close()``, or
# garbage collected unread: closed).


# A body dropped unread ends when the cyclic collector reaches it: its hooks
# are then set aside and run at the transport's next request (see
# ``_execution.collected``).


def pending(response: httpx.Response) -> list[End] | None:
    """The end hooks of ``response``'s body when it streams on past its
    first byte, else None (nothing is pending: judge the response now)."""
    stream = response.stream
    if type(stream) is GuardedStream or type(stream) is AsyncGuardedStream:
        return stream._ends
    return None


class _Ending:
    """What both flavours of body share: their end hooks, run once."""

    __slots__ = ("_ends",)
    _ends: list[End] | None

    def _end(self, error: BaseException | None, closed: bool) -> None:
        ends, self._ends = self._ends, None
        if ends:
            end_or_set_aside(ends, error, closed)

    def __del__(self) -> None:
        if self._ends:
            self._end(None, True)


class GuardedStream(_Ending, httpx.SyncByteStream):
    __slots__ = ("_chunks", "_failure", "_head", "_stream")

    def __init__(self, stream: httpx.SyncByteStream, failure: StreamFailure) -> None:
        self._stream = stream
        self._failure = failure
        self._chunks: Iterator[bytes] | None = None
        self._head: bytes | None = None
        self._ends: list[End] | None = []

    def first(self) -> None:
        """Read up to the first non-empty chunk (kept for the consumer)."""
        chunks = self._chunks = iter(self._stream)
        try:
            for chunk in chunks:
                if chunk:
                    self._head = chunk
                    return
        except (httpx.TransportError, httpx.DecodingError) as exc:
            raise self._failure(exc, started=False) from exc
        self._ends = None  # empty: it ended in the attempt

    def __iter__(self) -> Iterator[bytes]:
        head, self._head = self._head, None
        if head is not None:
            yield head
        chunks = self._chunks if self._chunks is not None else iter(self._stream)
        try:
            yield from chunks
        except (httpx.TransportError, httpx.DecodingError) as exc:
            error = self._failure(exc)
            self._end(error, False)
            raise error from exc
        except GeneratorExit:
            self._end(None, True)
            raise
        except BaseException as exc:
            self._end(exc, False)
            raise
        if self._ends:
            self._end(None, False)

    def close(self) -> None:
        try:
            self._stream.close()
        finally:
            if self._ends:
                self._end(None, True)


class AsyncGuardedStream(_Ending, httpx.AsyncByteStream):
    __slots__ = ("_chunks", "_failure", "_head", "_stream")

    def __init__(self, stream: httpx.AsyncByteStream, failure: StreamFailure) -> None:
        self._stream = stream
        self._failure = failure
        self._chunks: AsyncIterator[bytes] | None = None
        self._head: bytes | None = None
        self._ends: list[End] | None = []

    async def first(self) -> None:
        chunks = self._chunks = aiter(self._stream)
        try:
            async for chunk in chunks:
                if chunk:
                    self._head = chunk
                    return
        except (httpx.TransportError, httpx.DecodingError) as exc:
            raise self._failure(exc, started=False) from exc
        self._ends = None  # empty: it ended in the attempt

    async def __aiter__(self) -> AsyncIterator[bytes]:
        head, self._head = self._head, None
        if head is not None:
            yield head
        chunks = self._chunks if self._chunks is not None else aiter(self._stream)
        try:
            async for chunk in chunks:
                yield chunk
        except (httpx.TransportError, httpx.DecodingError) as exc:
            error = self._failure(exc)
            self._end(error, False)
            raise error from exc
        except GeneratorExit:
            self._end(None, True)
            raise
        except BaseException as exc:
            self._end(exc, False)
            raise
        if self._ends:
            self._end(None, False)

    async def aclose(self) -> None:
        try:
            await self._stream.aclose()
        finally:
            if self._ends:
                self._end(None, True)
