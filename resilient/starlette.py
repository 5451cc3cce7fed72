"""Starlette and FastAPI: resilience errors as HTTP answers, request ids in
and out, and a health endpoint. Needs the ``starlette`` extra
(``pip install 'resilient-kit[starlette]'``); FastAPI uses it as it is.

- ``install`` ``(app)`` answers ``CircuitOpenError`` and
  ``BulkheadFullError`` with 503 and ``RateLimitExceededError`` with 429,
  each with ``Retry-After`` (whole seconds, rounded up) when the wait is
  known and finite, and runs every request inside
  ``resilient.request_context`` with the caller's ``X-Request-ID`` (or a
  new one), which the response carries back.
- ``health_endpoint`` ``(registry=None, *, fail_on="unhealthy")`` is an
  endpoint answering ``registry.health().to_dict()``: 503 at ``fail_on`` or
  worse (``"unhealthy"``, ``"critical"``, or ``"never"`` for a liveness
  probe), else 200.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Literal, TypeVar

try:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
except ImportError as exc:  # pragma: no cover - exercised without the extra
    raise ImportError(
        "resilient.starlette needs starlette: pip install 'resilient-kit[starlette]'"
    ) from exc

from . import errors
from ._execution.request_id import request_context
from ._registry.registry import Registry
from .health import HealthStatus

__all__ = ["RequestIdMiddleware", "error_response", "health_endpoint", "install"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

App = TypeVar("App", bound=Starlette)

HEADER = "X-Request-ID"
_HEADER_KEY = HEADER.lower().encode("latin-1")
# A caller's id is echoed only when it is short printable ASCII; anything
# else is replaced by a new id, so a header can never carry junk back out.
_MAX_ID = 200


def _caller_id(value: bytes | None) -> str | None:
    if value is None or not 0 < len(value) <= _MAX_ID:
        return None
    if not all(0x21 <= byte <= 0x7E for byte in value):
        return None
    return value.decode("ascii")


class RequestIdMiddleware:
    """Pure ASGI middleware: each HTTP request runs in
    ``request_context(X-Request-ID)`` and its response carries that id."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = None
        for key, value in scope.get("headers", ()):
            if key.lower() == _HEADER_KEY:
                given = _caller_id(value)
                break
        with request_context(given) as request_id:
            encoded = request_id.encode("ascii")

            async def send_with_id(message: Message) -> None:
                if message["type"] == "http.response.start":
                    headers = [
                        (key, value)
                        for key, value in message.get("headers", ())
                        if key.lower() != _HEADER_KEY
                    ]
                    headers.append((_HEADER_KEY, encoded))
                    message["headers"] = headers
                await send(message)

            await self.app(scope, receive, send_with_id)


def _wait_of(error: BaseException) -> float | None:
    """Seconds until trying again can work, when the error knows."""
    if isinstance(error, errors.CircuitOpenError):
        return error.remaining
    wait = getattr(error, "retry_after", None)
    return wait if isinstance(wait, (int, float)) else None


def _rejections() -> dict[type[Exception], tuple[int, str]]:
    """Error class -> (status, code). The rate limiter's error is mapped when
    this version has it."""
    mapped: dict[type[Exception], tuple[int, str]] = {
        errors.CircuitOpenError: (503, "circuit_open"),
        errors.BulkheadFullError: (503, "bulkhead_full"),
    }
    limited = getattr(errors, "RateLimitExceededError", None)
    if isinstance(limited, type) and issubclass(limited, Exception):
        mapped[limited] = (429, "rate_limited")
    return mapped


def error_response(error: Exception) -> Response:
    """The answer for a rejection: 503 (or 429 for a rate limit), a JSON body
    naming the error and the policy, and ``Retry-After`` when finite."""
    status, code = 503, "unavailable"
    for cls, (cls_status, cls_code) in _rejections().items():
        if isinstance(error, cls):
            status, code = cls_status, cls_code
            break
    headers = {}
    wait = _wait_of(error)
    if wait is not None and math.isfinite(wait):
        headers["Retry-After"] = str(max(0, math.ceil(wait)))
    body = {"error": code, "name": getattr(error, "name", None), "detail": str(error)}
    return JSONResponse(body, status_code=status, headers=headers)


async def _handle(request: Request, error: Exception) -> Response:
    return error_response(error)


def install(app: App) -> App:
    """Map resilience rejections to 503/429 and carry ``X-Request-ID`` on
    ``app`` (a Starlette or FastAPI application, before it starts). Returns
    ``app``."""
    if not isinstance(app, Starlette):
        raise TypeError(f"install(app) needs a Starlette or FastAPI application, got {app!r}")
    for cls in _rejections():
        app.add_exception_handler(cls, _handle)
    app.add_middleware(RequestIdMiddleware)
    return app


_FAILING = {
    "unhealthy": frozenset({HealthStatus.UNHEALTHY, HealthStatus.CRITICAL}),
    "critical": frozenset({HealthStatus.CRITICAL}),
    "never": frozenset(),
}


def health_endpoint(
    registry: Registry | None = None,
    *,
    fail_on: Literal["unhealthy", "critical", "never"] = "unhealthy",
) -> Callable[[Request], Awaitable[Response]]:
    """An endpoint answering ``registry.health().to_dict()`` (the global
    registry by default): 503 when the status is ``fail_on`` or worse, else
    200. ``fail_on``: ``"unhealthy"`` (a breaker open), ``"critical"`` (half
    or more of the breakers open), or ``"never"`` (always 200: a liveness
    probe, which must not restart a process for a dependency's outage).
    ``Route("/health", health_endpoint())`` in Starlette,
    ``app.add_api_route("/health", health_endpoint())`` in FastAPI."""
    if registry is not None and not isinstance(registry, Registry):
        raise TypeError(f"health_endpoint(registry) must be a Registry or None, got {registry!r}")
    failing = _FAILING.get(fail_on) if isinstance(fail_on, str) else None
    if failing is None:
        raise ValueError(
            f"health_endpoint(fail_on) must be 'unhealthy', 'critical' or 'never', got {fail_on!r}"
        )

    async def health(request: Request) -> Response:
        if registry is None:
            from ._registry.registry import registry as current
        else:
            current = registry
        report = current.health()
        status = 503 if report.status in failing else 200
        return JSONResponse(report.to_dict(), status_code=status)

    return health
