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
``MAX_HOSTS`` of them, the least recently used CLOSED one with no request
in flight dropped beyond that (with its route).
"""

from __future__ import annotations

import dataclasses
import threading
import uuid
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple, NoReturn

import httpx

from .. import events
from .._execution.collected import end_dropped, set_aside
from .._execution.compose import NEVER, compose
from .._execution.policy_base import PolicyBase
from .._registry.registry import Registry, resolve
from .._runtime import clock as _clock
from .._runtime import fork as _fork
from .._runtime import validation as _validate
from .._runtime.switch import switch
from ..circuit_breaker.keyed import KeyedBreakers
from ..events import request_context
from ..policy import ResiliencePolicy
from ..retry.retry import Retry, RetryConfig
from ..timeout.timeout import timeout_seconds
from ._classify import IDEMPOTENT_METHODS, error_class, retry_after
from ._classify import may_retry as _may_retry
from ._map import from_exception, from_response
from ._quota import QuotaState
from ._quota_gate import QuotaGate, breaker_config, note_quota
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

MAX_HOSTS = 1024  # per-host breakers kept by one transport (the LRU rule)

RETRY = "resilient.retry"
INACTIVITY = "resilient.inactivity"

Send = Callable[[httpx.Request], Any]


def _names(methods: Any) -> tuple[str, ...] | None:
    if isinstance(methods, str):
        return None
    try:
        names = tuple(methods)
    except TypeError:
        return None
    return names if all(isinstance(m, str) for m in names) else None


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


class _Route(PolicyBase):
    """Who the requests of one route (one host) are counted for."""

    _kind = "http"

    def __init__(self, name: str, listeners: events.ListenerSet) -> None:
        self.name = name
        self._listeners = listeners

    def timed_out(self, seconds: float | None, *, inactive: bool = False) -> None:
        """Count a timeout of httpx's (connect, read, write, pool, or a body
        gone silent) as ``Timeout`` counts its own."""
        self._stats_for(self.name).timeouts += 1
        if not inactive and self._listeners.events:
            self._listeners.new(events.TimedOut, self.name, self._kind, seconds or 0.0)

    def failed(self, exc: httpx.TransportError, request: httpx.Request) -> HTTPError:
        """``exc`` as an ``HTTPError``, a timeout counted."""
        error = from_exception(exc, request)
        if isinstance(exc, httpx.TimeoutException):
            self.timed_out(getattr(error, "timeout", None))
        return error


class _Sends(NamedTuple):
    name: str
    send: Send  # for requests that may be repeated
    send_once: Send  # for the others
    send_no_retry: Send  # for requests that asked not to be retried


class _Base:
    """What both transports share: everything but the I/O."""

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
        if policy is not None and not isinstance(policy, ResiliencePolicy):
            raise TypeError(f"{_OWNER}.policy must be a ResiliencePolicy or None, got {policy!r}")
        if not isinstance(name, str) or not name:
            raise ValueError(f"{_OWNER}.name must be a non-empty str, got {name!r}")
        methods = _names(retry_methods)
        if methods is None:
            raise TypeError(
                f"{_OWNER}.retry_methods must be an iterable of method names, got {retry_methods!r}"
            )
        registry = resolve(_OWNER, registry)
        self.policy = policy if policy is not None else ResiliencePolicy()
        self.per_host = bool(per_host)
        self.name = name
        self.registry = registry
        self.retry_methods = frozenset(m.upper() for m in methods)
        self.inactivity = _validate.seconds_or_none(_OWNER, "inactivity", inactivity)
        if not isinstance(quota_headers, bool):
            raise TypeError(f"{_OWNER}.quota_headers must be a bool, got {quota_headers!r}")
        self.quota_headers = quota_headers
        self._listeners = events.ListenerSet(registry.listeners)
        self._routes: dict[str, _Sends] = {}
        self._lock = threading.Lock()
        _fork.renew_in_child(self, _fork.locks("_lock"))
        self._breakers = (
            None
            if self.policy.circuit_breaker is None
            else KeyedBreakers(
                name,
                self._route_key,
                config=breaker_config(self.policy),
                max_keys=MAX_HOSTS,
                registry=registry,
                label=self._route_name,
                on_drop=self._drop_route,
                hold=pending,  # a streamed body is judged when it ends
            )
        )

    def subscribe(self, listener: events.Listener | events.Reader) -> Callable[[], None]:
        """Listen to this transport's own events (``StreamInactive``, and its retries')."""
        return self._listeners.subscribe(listener)

    # -- routing -------------------------------------------------------------

    def _key(self, url: httpx.URL) -> str:
        if not self.per_host:
            return ""
        return url.host if url.port is None else f"{url.host}:{url.port}"

    def _route_key(self, request: httpx.Request) -> str:
        return self._key(request.url)

    def _route_name(self, key: str) -> str:
        return f"{self.name}:{key}" if key else self.name

    def _drop_route(self, key: str) -> None:
        """The host's breaker was dropped (the LRU rule): its route goes too."""
        self._routes.pop(key, None)

    def _route(self, url: httpx.URL) -> _Sends:
        key = self._key(url)
        route = self._routes.get(key)
        if route is None:
            with self._lock:
                route = self._routes.get(key)
                if route is None:
                    route = self._routes[key] = self._build(self._route_name(key))
        return route

    def _build(self, name: str) -> _Sends:
        policy = self.policy
        inner: list[Any] = []
        if self._breakers is not None:
            inner.append(self._breakers)  # the request's host picks its breaker
        if policy.bulkhead is not None:
            inner.append(self.registry.bulkhead(name, config=policy.bulkhead))
        outer: list[Any] = [] if policy.fallback is None else [policy.fallback]
        outer.append(_RaiseForStatus)
        owner = _Route(name, self._listeners)
        quota = QuotaState() if self.quota_headers else None
        attempt = self._attempt_for(owner, quota)

        def chain(retry: RetryConfig | None) -> Send:
            layers = [*outer]
            if retry is not None:
                layers.append(Retry(retry, name=name, listeners=self._listeners))
            if quota is not None:
                layers.append(QuotaGate(name, quota, retry))
            layers.extend(inner)
            # One request per HTTP request, whatever the layers inside do.
            return compose(owner, layers, attempt, is_async=self._is_async)

        cfg = policy.retry
        if cfg is None:
            send = chain(None)
            return _Sends(name, send, send, send)
        replace = dataclasses.replace
        return _Sends(
            name,
            chain(replace(cfg, retry_on=_may_retry(cfg.retry_on, cfg.max_delay, sent=True))),
            chain(replace(cfg, retry_on=_may_retry(cfg.retry_on, cfg.max_delay, sent=False))),
            chain(None),
        )

    _is_async = False

    def _attempt_for(self, route: _Route, quota: QuotaState | None) -> Send:
        raise NotImplementedError

    # -- per request -----------------------------------------------------------

    def _prepare(self, request: httpx.Request) -> tuple[str, str, Send]:
        """The request id (sent as X-Request-ID), the route's name, and how to
        send the request."""
        request_id = request.headers.get("x-request-id")
        if request_id is None:
            request_id = events.get_request_id() or uuid.uuid4().hex
            request.headers["X-Request-ID"] = request_id
        route = self._route(request.url)
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
