"""httpx responses and exceptions to ``resilient.http.errors``."""

from __future__ import annotations

import httpx

from .. import events
from .._runtime import clock as _clock
from ._classify import error_for_status
from .errors import HTTPError, HTTPTimeoutError, NetworkError, StreamError

__all__ = ["classify", "from_exception", "from_response"]

_PHASES: tuple[tuple[type[httpx.TimeoutException], str], ...] = (
    (httpx.ConnectTimeout, "connect"),
    (httpx.ReadTimeout, "read"),
    (httpx.WriteTimeout, "write"),
    (httpx.PoolTimeout, "pool"),
)


def classify(
    outcome: httpx.Response | BaseException, *, request_id: str | None = None
) -> HTTPError | None:
    """The ``HTTPError`` an httpx response or exception amounts to.

    ``None`` for a response below 400 and for exceptions that are not httpx
    errors (a ``HTTPError`` is returned as it is). A response's body is
    used for the message only when it has been read.
    """
    if isinstance(outcome, HTTPError):
        return outcome
    if isinstance(outcome, httpx.Response):
        return from_response(outcome, request_id=request_id)
    if isinstance(outcome, httpx.HTTPStatusError):
        return from_response(outcome.response, request_id=request_id)
    if isinstance(outcome, (httpx.TransportError, httpx.DecodingError, httpx.TooManyRedirects)):
        return from_exception(outcome, None, request_id=request_id)
    return None


def _request_of(owner: httpx.Response | httpx.HTTPError) -> httpx.Request | None:
    try:
        return owner.request
    except RuntimeError:  # built by hand, never sent
        return None


def _request_id(request: httpx.Request | None, request_id: str | None) -> str | None:
    if request_id is not None:
        return request_id
    if request is not None and "x-request-id" in request.headers:
        return request.headers["x-request-id"]
    return events.get_request_id()


def from_response(response: httpx.Response, *, request_id: str | None = None) -> HTTPError | None:
    request = _request_of(response)
    try:
        body = response.content
    except httpx.ResponseNotRead:
        body = b""
    error = error_for_status(
        response.status_code,
        reason=response.reason_phrase,
        method=request.method if request is not None else "",
        url=str(request.url) if request is not None else "",
        headers=response.headers,
        body=body,
        now=_clock.wall(),
        request_id=_request_id(request, request_id),
    )
    if error is not None:
        error.response = response
        error.request = request
    return error


def from_exception(
    exc: httpx.HTTPError, request: httpx.Request | None, *, request_id: str | None = None
) -> HTTPError:
    """``exc`` as an ``HTTPError``; ``request`` when ``exc`` lacks one."""
    if request is None:
        request = _request_of(exc)
    where = f" on {request.method} {request.url}" if request is not None else ""
    rid = _request_id(request, request_id)
    if isinstance(exc, httpx.TimeoutException):
        phase = next((name for cls, name in _PHASES if isinstance(exc, cls)), "read")
        timeouts = request.extensions.get("timeout", {}) if request is not None else {}
        limit = timeouts.get(phase)
        after = f" after {limit:g}s" if limit is not None else ""
        error: HTTPError = HTTPTimeoutError(
            f"{phase} timeout{where}{after}", timeout=limit, request_id=rid, request=request
        )
        error.request_sent = phase not in ("connect", "pool")
        return error
    cls: type[HTTPError]
    if isinstance(exc, httpx.ConnectError):
        cls, what = NetworkError, "could not connect"
    elif isinstance(exc, (httpx.NetworkError, httpx.RemoteProtocolError, httpx.ProxyError)):
        cls, what = NetworkError, "connection failed"
    elif isinstance(exc, httpx.DecodingError):
        cls, what = StreamError, "could not decode the response"
    else:  # a request that can never work: bad URL scheme, protocol misuse, redirect loop
        cls, what = HTTPError, type(exc).__name__
    error = cls(f"{what}{where}: {exc}", request_id=rid, request=request)
    error.request_sent = not isinstance(exc, httpx.ConnectError)
    return error
