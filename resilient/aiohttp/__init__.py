"""aiohttp client middleware: what ``resilient.http.ResilientTransport``
does for httpx, for ``aiohttp.ClientSession``. Needs the ``aiohttp`` extra
(``pip install 'resilient-kit[aiohttp]'``; aiohttp 3.12 or later):

    async with aiohttp.ClientSession(middlewares=(resilient.aiohttp.middleware(),)) as s:
        async with s.get(url) as response: ...

Each request goes through the policy (retry, breaker, bulkhead, fallback;
the policy's ``timeout`` bounds each attempt until the first byte of the
body arrives). A streamed body is judged by the host's breaker when it
ends: one that breaks off or goes silent after its first byte is a failure
of the host, one that does so before it fails the attempt, which retry
repeats.
Error statuses and connection failures are raised as the
``resilient.http.errors`` classes once the policy is done with them;
429 and 503 carry the server's ``Retry-After``, which retry honours. Only
idempotent methods (or requests with an ``Idempotency-Key``) are retried
after they were sent. Every request carries ``X-Request-ID`` (the caller's,
the current ``resilient.request_context``'s, or a new one), and with
``per_host=True`` each host gets its own breaker, in the per-key group
``name`` (``registry.get("http", key=host)``, labelled ``http:{host}``;
``{host}:{port}`` for a port the URL spells out; at most 1024 of them, by
the LRU rule), and its own bulkhead, registered as ``http:{host}``.
Quota headers are read as the httpx transports read them: while a host's
quota is spent, a request waits for the reset when retry would wait that
long, else fails at once with ``RateLimitExceededError``, unsent
(``quota_headers=False`` turns this off); a 429 never counts as a failure
of the host's breaker.
"""

from __future__ import annotations

import asyncio
import functools
import uuid
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

try:
    import aiohttp
except ImportError as exc:  # pragma: no cover - exercised without the extra
    raise ImportError(
        "resilient.aiohttp needs aiohttp: pip install 'resilient-kit[aiohttp]'"
    ) from exc

from .. import events
from .._execution.collected import end_dropped, set_aside
from .._execution.compose import NEVER
from .._execution.request_id import request_context
from .._registry.registry import Registry
from .._runtime import clock as _clock
from .._runtime.switch import switch
from ..http._classify import (
    IDEMPOTENT_METHODS,
    error_class,
    error_for_status,
    retry_after,
)
from ..http._quota import QuotaState
from ..http._quota_gate import note_quota
from ..http._routing import Route, Routing
from ..http.errors import HTTPError, HTTPTimeoutError, NetworkError, StreamError
from ..policy import ResiliencePolicy
from ..timeout.timeout import timeout_seconds
from ._body import first_byte, judge, pending

__all__ = ["ResilientMiddleware", "middleware"]

_OWNER = "resilient.aiohttp.middleware"

Handler = Callable[[aiohttp.ClientRequest], Awaitable[aiohttp.ClientResponse]]
Send = Callable[[aiohttp.ClientRequest, Handler], Awaitable[aiohttp.ClientResponse]]


def _request_id(request: aiohttp.ClientRequest) -> str | None:
    return request.headers.get("X-Request-ID")


async def _error_of(response: aiohttp.ClientResponse, cls: type[HTTPError]) -> HTTPError:
    """The error an error response is, its body read and the response released."""
    request = response.request_info
    try:
        body = await response.read()
    except aiohttp.ClientError:
        body = b""
    finally:
        response.release()
    error = error_for_status(
        response.status,
        reason=response.reason or "",
        method=request.method,
        url=str(request.url),
        headers=response.headers,
        body=body,
        now=_clock.wall(),
        request_id=request.headers.get("X-Request-ID"),
    )
    assert isinstance(error, cls)
    error.response = response
    error.request = request
    return error


class _NetworkError(NetworkError, aiohttp.ClientConnectionError):
    """A ``NetworkError`` that is also aiohttp's own
    connection error: aiohttp lets its own errors out of a middleware as they
    are (it would wrap any other ``OSError``), and code catching
    ``aiohttp.ClientError`` still catches it."""


def _failure(
    exc: BaseException,
    request: aiohttp.ClientRequest,
    timeout: float | None,
    *,
    started: bool = False,
) -> HTTPError:
    """A connection failure or a timeout as an ``HTTPError``; a body that
    broke off after its first byte (``started``) is a ``StreamError``, one
    that broke off before it a ``NetworkError``, which retry repeats."""
    where = f" on {request.method} {request.url}"
    rid = _request_id(request)
    if isinstance(exc, TimeoutError):
        connecting = isinstance(exc, aiohttp.ConnectionTimeoutError)
        after = f" after {timeout:g}s" if timeout is not None else ""
        error: HTTPError = HTTPTimeoutError(
            f"{'connect' if connecting else 'read'} timeout{where}{after}",
            timeout=timeout,
            request_id=rid,
            request=request,
        )
        error.request_sent = not connecting
        return error
    if isinstance(exc, aiohttp.ClientPayloadError) and started:
        error = StreamError(f"the response broke off{where}: {exc}", request_id=rid)
    elif isinstance(exc, aiohttp.ClientPayloadError):
        error = _NetworkError(
            f"the response broke off before its body{where}: {exc}", request_id=rid
        )
    elif isinstance(exc, aiohttp.ClientConnectorError):
        error = _NetworkError(f"could not connect{where}: {exc}", request_id=rid)
        error.request_sent = False
    else:
        error = _NetworkError(f"connection failed{where}: {exc}", request_id=rid)
    error.request = request
    return error


class _RaiseForStatus:
    """The layer that turns an error response nobody retried into its error."""

    _own_gate = NEVER
    _meters = False  # outermost (no fallback): the chain's plain entry counts

    @staticmethod
    def _wrap_async(fn: Send, name: str) -> Send:
        async def raising(
            request: aiohttp.ClientRequest, handler: Handler
        ) -> aiohttp.ClientResponse:
            response = await fn(request, handler)
            cls = error_class(response.status)
            if cls is not None:
                raise await _error_of(response, cls)
            return response

        return raising


def _body_failure(
    route: Route, request: aiohttp.ClientRequest, exc: BaseException
) -> BaseException:
    """The error of a body that failed after its first byte, for its host's
    breaker: broken off, or silent past aiohttp's read timeout (counted as a
    timeout). What aiohttp set when the consumer released it early is no
    failure, and never reaches here (judged before the release)."""
    if isinstance(exc, TimeoutError):
        route.timed_out(None)
    return _failure(exc, request, None, started=True)


class ResilientMiddleware(Routing):
    """What ``middleware`` returns: an aiohttp client middleware."""

    _owner = f"{_OWNER}: "
    _hold = staticmethod(pending)
    _is_async = True
    _raise_for_status = _RaiseForStatus

    def __repr__(self) -> str:
        return f"<ResilientMiddleware {self.name!r} per_host={self.per_host}>"

    def _key(self, request: aiohttp.ClientRequest) -> str:
        url = request.url
        if not self.per_host:
            return ""
        if url.explicit_port is None:
            return url.host or ""
        return f"{url.host}:{url.explicit_port}"

    def _route_key(self, *args: Any) -> str:
        request: aiohttp.ClientRequest = args[0]
        return self._key(request)

    def _attempt_for(self, route: Route, quota: QuotaState | None) -> Send:
        return functools.partial(self._attempt, quota, route)

    async def _attempt(
        self,
        quota: QuotaState | None,
        route: Route,
        request: aiohttp.ClientRequest,
        handler: Handler,
    ) -> aiohttp.ClientResponse:
        timeout = timeout_seconds(self.policy.timeout) if switch.on else None
        scope = asyncio.timeout(timeout)  # None: no limit
        response: aiohttp.ClientResponse | None = None
        try:
            try:
                async with scope:
                    response = await handler(request)
                    cls = error_class(response.status)
                    failed = None if cls is not None else await first_byte(response)
            except BaseException:
                if response is not None:  # its body timed out or was cancelled
                    response.close()
                raise
        except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as exc:
            if isinstance(exc, TimeoutError):  # aiohttp's own connect or read timeout
                route.timed_out(timeout)
            raise _failure(exc, request, timeout) from exc
        except TimeoutError as exc:
            if timeout is None or not scope.expired():
                raise
            route.timed_out(timeout)
            raise _failure(exc, request, timeout) from exc
        if failed is not None:  # the body broke off or went silent before its first byte
            response.close()
            if isinstance(failed, TimeoutError):  # aiohttp's own read timeout
                route.timed_out(None)
            raise _failure(failed, request, None) from failed
        if quota is not None:
            headers = response.headers
            note_quota(quota, response.status, headers.items(), retry_after(headers, _clock.wall()))
        if cls is None:
            judge(response, functools.partial(_body_failure, route, request))
        elif cls.is_retryable:
            raise await _error_of(response, cls)
        return response

    async def __call__(
        self, request: aiohttp.ClientRequest, handler: Handler
    ) -> aiohttp.ClientResponse:
        if set_aside:
            end_dropped()
        request_id = _request_id(request)
        if request_id is None:
            request_id = events.get_request_id() or uuid.uuid4().hex
            request.headers["X-Request-ID"] = request_id
        route = self._route(self._key(request))
        repeatable = request.method in self.retry_methods or "Idempotency-Key" in request.headers
        send = route.send if repeatable else route.send_once
        with request_context(request_id):
            response: aiohttp.ClientResponse = await send(request, handler)
        return response


def middleware(
    policy: ResiliencePolicy | None = None,
    *,
    per_host: bool = True,
    name: str = "http",
    registry: Registry | None = None,
    retry_methods: Iterable[str] = IDEMPOTENT_METHODS,
    quota_headers: bool = True,
) -> ResilientMiddleware:
    """An aiohttp client middleware applying ``policy`` (default:
    ``ResiliencePolicy()``) to every request; pass it in
    ``ClientSession(middlewares=(...,))`` or per request.
    ``quota_headers=False`` stops it reading the hosts' quota headers."""
    return ResilientMiddleware(
        policy,
        per_host=per_host,
        name=name,
        registry=registry,
        retry_methods=retry_methods,
        quota_headers=quota_headers,
    )
