"""httpx transports that run every request through a resilience policy.

Per request, outermost first: fallback -> raise for status -> retry ->
quota -> circuit breaker -> bulkhead -> one attempt on the wrapped
transport. The breaker, bulkhead and quota are per host (``http:{host}`` in
the registry); the policy's timeout bounds each attempt through httpx's own
timeouts.

Quota (``resilient.http._quota``): every answer's quota headers, and a
429's ``Retry-After``, say until when the host refuses; a request to it
before then waits for that time when its retry policy would wait that
long, else fails at once with ``RateLimitExceededError``, unsent. A 429 is
the host's quota speaking: its breaker never counts it. The
per-host breakers are per-key breakers (``resilient.circuit_breaker.keyed``): at most
``MAX_HOSTS`` of them (``_routing``), the least recently used CLOSED one
with no request in flight dropped beyond that (with its route).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from typing import Any, NoReturn

import httpx

from .. import events
from .._execution.collected import end_dropped, set_aside
from .._execution.compose import NEVER
from .._registry.registry import Registry
from .._runtime import clock as _clock
from .._runtime import validation as _validate
from .._runtime.switch import switch
from ..events import request_context
from ..policy import ResiliencePolicy
from ..timeout.timeout import timeout_seconds
from ._classify import IDEMPOTENT_METHODS, error_class, retry_after
from ._map import from_exception, from_response
from ._quota import QuotaState
from ._quota_gate import note_quota
from ._routing import Route, Routing
from ._streams import (
    AsyncGuardedStream,
    GuardedStream,
    StreamFailure,
    limit_inactivity,
    pending,
)
from .errors import HTTPError

__all__ = ["AsyncResilientTransport", "ResilientTransport", "async_client", "client"]

_OWNER = "ResilientTransport"
_PHASES = ("connect", "read", "write", "pool")
# Options of httpx.Client that configure the transport it would have built.
_TRANSPORT_OPTIONS = ("verify", "cert", "http1", "http2", "limits")

RETRY = "resilient.retry"
INACTIVITY = "resilient.inactivity"

Send = Callable[[httpx.Request], Any]


def _raise_for(response: httpx.Response) -> NoReturn:
    error = from_response(response)
    assert error is not None, "only called for a status >= 400"
    raise error


class _RaiseForStatus:
    """The layer that turns an error response nobody retried into its error."""

    _own_gate = NEVER
    _meters = False  # outermost (no fallback), the chain's plain entry counts

    # --- generated from _wrap_async by scripts/unasync.py; do not edit ---
    @staticmethod
    def _wrap_sync(fn: Send, name: str) -> Send:
        def raising(request: httpx.Request) -> httpx.Response:
            response: httpx.Response = fn(request)
            if response.status_code >= 400:
                _raise_for(response)
            return response

        return raising

    # --- end generated ---

    @staticmethod
    def _wrap_async(fn: Send, name: str) -> Send:
        async def raising(request: httpx.Request) -> httpx.Response:
            response: httpx.Response = await fn(request)
            if response.status_code >= 400:
                _raise_for(response)
            return response

        return raising


class _Route(Route):
    """A route whose attempt's httpx errors become ``HTTPError``s."""

    def failed(self, exc: httpx.TransportError, request: httpx.Request) -> HTTPError:
        """``exc`` as an ``HTTPError``, a timeout counted."""
        error = from_exception(exc, request)
        if isinstance(exc, httpx.TimeoutException):
            self.timed_out(getattr(error, "timeout", None))
        return error


class _Base(Routing):
    """What both transports share: everything but the I/O."""

    _owner = f"{_OWNER}."
    _hold = staticmethod(pending)
    _route_class = _Route
    _raise_for_status = _RaiseForStatus

    def __init__(
        self,
        policy: ResiliencePolicy | None,
        *,
        per_host: bool,
        name: str,
        registry: Registry | None,
        retry_methods: Iterable[str],
        inactivity: float | None,
        quota_headers: bool = True,
    ) -> None:
        super().__init__(
            policy,
            per_host=per_host,
            name=name,
            registry=registry,
            retry_methods=retry_methods,
            quota_headers=quota_headers,
        )
        self.inactivity = _validate.seconds_or_none(_OWNER, "inactivity", inactivity)

    # -- routing -------------------------------------------------------------

    def _key(self, url: httpx.URL) -> str:
        if not self.per_host:
            return ""
        return url.host if url.port is None else f"{url.host}:{url.port}"

    def _route_key(self, *args: Any) -> str:
        request: httpx.Request = args[0]
        return self._key(request.url)

    # -- per request -----------------------------------------------------------

    def _prepare(self, request: httpx.Request) -> tuple[str, str, Send]:
        """The request id (sent as X-Request-ID), the route's name, and how to
        send the request."""
        request_id = request.headers.get("x-request-id")
        if request_id is None:
            request_id = events.get_request_id() or uuid.uuid4().hex
            request.headers["X-Request-ID"] = request_id
        route = self._route(self._key(request.url))
        timeout = timeout_seconds(self.policy.timeout)
        if timeout is not None and switch.on:
            timeouts = request.extensions.get("timeout") or {}
            request.extensions["timeout"] = {
                phase: timeout if timeouts.get(phase) is None else min(timeouts[phase], timeout)
                for phase in _PHASES
            }
        if INACTIVITY in request.extensions:
            _validate.seconds_or_none(
                "request", f"extensions[{INACTIVITY!r}]", request.extensions[INACTIVITY]
            )
        asked = request.extensions.get(RETRY)
        if asked is False:
            return request_id, route.name, route.send_no_retry
        repeatable = asked is True or (
            request.method in self.retry_methods or "idempotency-key" in request.headers
        )
        # A body streamed from a generator can be sent only once.
        if repeatable and isinstance(request.stream, httpx.ByteStream):
            return request_id, route.name, route.send
        return request_id, route.name, route.send_once

    def _watch(
        self, route: _Route, request: httpx.Request, response: httpx.Response
    ) -> StreamFailure:
        """How the body of an answered request fails: silent past the
        inactivity limit, or broken off."""
        response.request = request
        if switch.on:
            inactivity = request.extensions.get(INACTIVITY, self.inactivity)
            if inactivity is not None:
                limit_inactivity(request, inactivity)
        # Attempts run inside request_context(the request's id).
        request_id = events.get_request_id() or ""
        return StreamFailure(
            route.name, request, response, request_id, self._listeners, on_timeout=route.timed_out
        )


class ResilientTransport(_Base, httpx.BaseTransport):
    """An httpx transport applying ``policy`` to every request.

    Error responses and transport failures are raised as
    ``HTTPError`` subclasses once the policy is done
    with them (retries spent, fallback not taken).
    """

    def __init__(
        self,
        policy: ResiliencePolicy | None = None,
        *,
        per_host: bool = True,
        transport: httpx.BaseTransport | None = None,
        name: str = "http",
        registry: Registry | None = None,
        retry_methods: Iterable[str] = IDEMPOTENT_METHODS,
        inactivity: float | None = None,
        quota_headers: bool = True,
    ) -> None:
        super().__init__(
            policy,
            per_host=per_host,
            name=name,
            registry=registry,
            retry_methods=retry_methods,
            inactivity=inactivity,
            quota_headers=quota_headers,
        )
        if transport is not None and not isinstance(transport, httpx.BaseTransport):
            raise TypeError(f"{_OWNER}.transport must be an httpx.BaseTransport, got {transport!r}")
        self.transport = transport if transport is not None else httpx.HTTPTransport()

    def _attempt_for(self, route: _Route, quota: QuotaState | None) -> Send:
        def attempt(request: httpx.Request) -> httpx.Response:
            try:
                response = self.transport.handle_request(request)
            except httpx.TransportError as exc:
                raise route.failed(exc, request) from exc
            cls = error_class(response.status_code)
            if quota is not None:
                note_quota(
                    quota,
                    response.status_code,
                    response.headers.multi_items(),
                    retry_after(response.headers, _clock.wall()),
                )
            if cls is None:
                failure = self._watch(route, request, response)
                assert isinstance(response.stream, httpx.SyncByteStream)
                body = GuardedStream(response.stream, failure)
                response.stream = body
                try:
                    body.first()
                except BaseException:
                    response.close()
                    raise
                return response
            response.request = request
            try:
                response.read()
            except httpx.TransportError as exc:
                raise route.failed(exc, request) from exc
            finally:
                response.close()
            if cls.is_retryable:
                _raise_for(response)
            return response

        return attempt

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if set_aside:
            end_dropped()
        request_id, _, send = self._prepare(request)
        with request_context(request_id):
            response: httpx.Response = send(request)
        return response

    def close(self) -> None:
        self.transport.close()


class AsyncResilientTransport(_Base, httpx.AsyncBaseTransport):
    """The asyncio twin of ``ResilientTransport``."""

    def __init__(
        self,
        policy: ResiliencePolicy | None = None,
        *,
        per_host: bool = True,
        transport: httpx.AsyncBaseTransport | None = None,
        name: str = "http",
        registry: Registry | None = None,
        retry_methods: Iterable[str] = IDEMPOTENT_METHODS,
        inactivity: float | None = None,
        quota_headers: bool = True,
    ) -> None:
        super().__init__(
            policy,
            per_host=per_host,
            name=name,
            registry=registry,
            retry_methods=retry_methods,
            inactivity=inactivity,
            quota_headers=quota_headers,
        )
        if transport is not None and not isinstance(transport, httpx.AsyncBaseTransport):
            raise TypeError(
                "AsyncResilientTransport.transport must be an httpx.AsyncBaseTransport, "
                f"got {transport!r}"
            )
        self.transport = transport if transport is not None else httpx.AsyncHTTPTransport()

    _is_async = True

    def _attempt_for(self, route: _Route, quota: QuotaState | None) -> Send:
        async def attempt(request: httpx.Request) -> httpx.Response:
            try:
                response = await self.transport.handle_async_request(request)
            except httpx.TransportError as exc:
                raise route.failed(exc, request) from exc
            cls = error_class(response.status_code)
            if quota is not None:
                note_quota(
                    quota,
                    response.status_code,
                    response.headers.multi_items(),
                    retry_after(response.headers, _clock.wall()),
                )
            if cls is None:
                failure = self._watch(route, request, response)
                assert isinstance(response.stream, httpx.AsyncByteStream)
                body = AsyncGuardedStream(response.stream, failure)
                response.stream = body
                try:
                    await body.first()
                except BaseException:
                    await response.aclose()
                    raise
                return response
            response.request = request
            try:
                await response.aread()
            except httpx.TransportError as exc:
                raise route.failed(exc, request) from exc
            finally:
                await response.aclose()
            if cls.is_retryable:
                _raise_for(response)
            return response

        return attempt

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if set_aside:
            end_dropped()
        request_id, _, send = self._prepare(request)
        with request_context(request_id):
            response: httpx.Response = await send(request)
        return response

    async def aclose(self) -> None:
        await self.transport.aclose()


def _split(kw: dict[str, Any], transport: object) -> dict[str, Any]:
    options = {key: kw.pop(key) for key in _TRANSPORT_OPTIONS if key in kw}
    if options and transport is not None:
        raise TypeError(
            f"{sorted(options)} configure the transport httpx would build; "
            "set them on the transport= you pass instead"
        )
    if "trust_env" in kw:
        options["trust_env"] = kw["trust_env"]
    return options


def client(
    policy: ResiliencePolicy | None = None,
    *,
    per_host: bool = True,
    transport: httpx.BaseTransport | None = None,
    name: str = "http",
    registry: Registry | None = None,
    retry_methods: Iterable[str] = IDEMPOTENT_METHODS,
    inactivity: float | None = None,
    quota_headers: bool = True,
    **kw: Any,
) -> httpx.Client:
    """An ``httpx.Client`` whose requests go through ``ResilientTransport``.

    Other keywords go to ``httpx.Client`` (``verify``, ``http2``, ``limits``
    ... to the transport it wraps). Without a ``timeout=``, the policy's
    per-attempt timeout is the client's.
    """
    options = _split(kw, transport)
    wrapped = ResilientTransport(
        policy,
        per_host=per_host,
        transport=transport if transport is not None else httpx.HTTPTransport(**options),
        name=name,
        registry=registry,
        retry_methods=retry_methods,
        inactivity=inactivity,
        quota_headers=quota_headers,
    )
    if (seconds := timeout_seconds(wrapped.policy.timeout)) is not None:
        kw.setdefault("timeout", seconds)
    return httpx.Client(transport=wrapped, **kw)


def async_client(
    policy: ResiliencePolicy | None = None,
    *,
    per_host: bool = True,
    transport: httpx.AsyncBaseTransport | None = None,
    name: str = "http",
    registry: Registry | None = None,
    retry_methods: Iterable[str] = IDEMPOTENT_METHODS,
    inactivity: float | None = None,
    quota_headers: bool = True,
    **kw: Any,
) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` whose requests go through ``AsyncResilientTransport``."""
    options = _split(kw, transport)
    wrapped = AsyncResilientTransport(
        policy,
        per_host=per_host,
        transport=transport if transport is not None else httpx.AsyncHTTPTransport(**options),
        name=name,
        registry=registry,
        retry_methods=retry_methods,
        inactivity=inactivity,
        quota_headers=quota_headers,
    )
    if (seconds := timeout_seconds(wrapped.policy.timeout)) is not None:
        kw.setdefault("timeout", seconds)
    return httpx.AsyncClient(transport=wrapped, **kw)
