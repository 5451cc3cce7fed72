"""Server-sent events that resume: ``connect_sse`` / ``aconnect_sse``.

An event source opens the stream through the client (so its transport's
policy applies to every connection: retries before the first byte, the
host's breaker, inactivity) and decodes it. When the stream breaks (a
network error, silence past the inactivity limit, a retryable status when
reconnecting) and the server has sent event ids, it reconnects with
``Last-Event-ID``, after the server's ``retry:`` field when it sent one
(else the client policy's backoff), within the policy's retry attempts,
and goes on without repeating an event. Without ids, a break after the
first event raises: where to resume is unknown, and the events already
given cannot be taken back.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx

from .._runtime import clock as _clock
from ..retry.retry import RetryConfig
from ._sse import ServerSentEvent, aiter_sse, iter_sse
from .errors import HTTPError, StreamError

__all__ = ["AsyncEventSource", "EventSource", "aconnect_sse", "connect_sse"]


def _config(client: Any) -> RetryConfig:
    """The retry settings of ``client``'s resilient transport (defaults otherwise)."""
    # httpx gives a client's transport no public name.
    transport = getattr(client, "_transport", None)
    policy = getattr(transport, "policy", None)
    retry = getattr(policy, "retry", None)
    if isinstance(retry, RetryConfig):
        return retry
    return RetryConfig() if policy is None else RetryConfig(max_attempts=1)


def _resumable(error: BaseException) -> bool:
    """A break the stream may be resumed after."""
    if isinstance(error, HTTPError):
        return error.is_retryable or isinstance(error, StreamError)
    return isinstance(error, httpx.TransportError)


class _Source:
    """What both event sources share: the request, the resume state, the waits."""

    def __init__(self, client: Any, method: str, url: Any, kwargs: dict[str, Any]) -> None:
        self.client = client
        self.method = method
        self.url = url
        headers = httpx.Headers(kwargs.pop("headers", None))
        headers.setdefault("Accept", "text/event-stream")
        headers.setdefault("Cache-Control", "no-store")
        # One request id for the stream and every reconnection of it.
        headers.setdefault("X-Request-ID", uuid.uuid4().hex)
        self.headers = headers
        self.kwargs = kwargs
        self.config = _config(client)
        #: The id of the last event given (what ``Last-Event-ID`` resumes from).
        self.last_event_id: str | None = None
        #: The server's reconnection time (``retry:``), in milliseconds.
        self.retry: int | None = None
        self.response: httpx.Response | None = None
        self._given = False
        self._attempt = 1

    def _request_headers(self) -> httpx.Headers:
        headers = self.headers.copy()
        if self.last_event_id is not None:
            headers["Last-Event-ID"] = self.last_event_id
        return headers

    def _seen(self, event: ServerSentEvent) -> None:
        self._given = True
        if event.id is not None:
            self.last_event_id = event.id
        if event.retry is not None:
            self.retry = event.retry

    def _wait_before_reconnecting(self, error: BaseException) -> float | None:
        """Seconds to wait before the next connection, or None: raise ``error``."""
        if not _resumable(error):
            return None
        if self._given and self.last_event_id is None:
            error.add_note("resilient: the event stream broke and sent no event ids to resume from")
            return None
        cfg = self.config
        if self._attempt >= cfg.max_attempts:
            error.add_note(f"resilient: gave up resuming after {self._attempt} connections")
            return None
        self._attempt += 1
        if self.retry is not None:
            return self.retry / 1000.0
        delay = cfg.initial_delay * cfg.multiplier ** (self._attempt - 2)
        return min(delay, cfg.max_delay)


class EventSource(_Source):
    """The events of a server-sent event stream, resumed when it breaks."""

    def _open(self) -> httpx.Response:
        request = self.client.build_request(
            self.method, self.url, headers=self._request_headers(), **self.kwargs
        )
        response: httpx.Response = self.client.send(request, stream=True)
        self.response = response
        return response

    def iter_sse(self) -> Iterator[ServerSentEvent]:
        """Every event, across reconnections."""
        response = self.response
        while True:
            try:
                if response is None:
                    response = self._open()
                for event in iter_sse(response):
                    self._seen(event)
                    yield event
                return
            except (HTTPError, httpx.TransportError) as error:
                wait = self._wait_before_reconnecting(error)
                if wait is None:
                    raise
            finally:
                if response is not None:
                    response.close()
            response = None
            _clock.sleep(wait)

    def close(self) -> None:
        if self.response is not None:
            self.response.close()


class AsyncEventSource(_Source):
    """``EventSource`` for an ``httpx.AsyncClient``."""

    async def _open(self) -> httpx.Response:
        request = self.client.build_request(
            self.method, self.url, headers=self._request_headers(), **self.kwargs
        )
        response: httpx.Response = await self.client.send(request, stream=True)
        self.response = response
        return response

    async def aiter_sse(self) -> AsyncIterator[ServerSentEvent]:
        """Every event, across reconnections."""
        response = self.response
        while True:
            try:
                if response is None:
                    response = await self._open()
                async for event in aiter_sse(response):
                    self._seen(event)
                    yield event
                return
            except (HTTPError, httpx.TransportError) as error:
                wait = self._wait_before_reconnecting(error)
                if wait is None:
                    raise
            finally:
                if response is not None:
                    await response.aclose()
            response = None
            await _clock.sleep_async(wait)

    async def aclose(self) -> None:
        if self.response is not None:
            await self.response.aclose()


@contextlib.contextmanager
def connect_sse(
    client: httpx.Client, method: str, url: Any, **kwargs: Any
) -> Iterator[EventSource]:
    """An ``EventSource`` for ``client.stream(method, url, **kwargs)``, closed on exit.

    The first connection is made on entry (its errors are raised there);
    ``source.iter_sse()`` gives the events, reconnecting with
    ``Last-Event-ID`` when the stream breaks (see the module's docstring).
    """
    source = EventSource(client, method, url, kwargs)
    source._open()
    try:
        yield source
    finally:
        source.close()


@contextlib.asynccontextmanager
async def aconnect_sse(
    client: httpx.AsyncClient, method: str, url: Any, **kwargs: Any
) -> AsyncIterator[AsyncEventSource]:
    """``connect_sse`` for an ``httpx.AsyncClient``."""
    source = AsyncEventSource(client, method, url, kwargs)
    await source._open()
    try:
        yield source
    finally:
        await source.aclose()
