"""httpx integration: typed errors, Retry-After, request ids, per-host
breakers, stream inactivity, server-sent events that resume. Needs the
``http`` extra for everything that touches httpx (``pip install
'resilient-kit[http]'``); the errors and the event-stream decoder import
without it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._classify import IDEMPOTENT_METHODS, parse_retry_after
from ._sse import ServerSentEvent, SSEDecoder, aiter_sse, iter_sse
from .errors import (
    AuthenticationError,
    HTTPError,
    HTTPTimeoutError,
    NetworkError,
    RateLimitError,
    ServerError,
    StreamError,
    ValidationError,
)

if TYPE_CHECKING:
    from ._map import classify
    from ._resume import AsyncEventSource, EventSource, aconnect_sse, connect_sse
    from ._transport import AsyncResilientTransport, ResilientTransport, async_client, client

__all__ = [
    "IDEMPOTENT_METHODS",
    "AsyncEventSource",
    "AsyncResilientTransport",
    "AuthenticationError",
    "EventSource",
    "HTTPError",
    "HTTPTimeoutError",
    "NetworkError",
    "RateLimitError",
    "ResilientTransport",
    "SSEDecoder",
    "ServerError",
    "ServerSentEvent",
    "StreamError",
    "ValidationError",
    "aconnect_sse",
    "aiter_sse",
    "async_client",
    "classify",
    "client",
    "connect_sse",
    "iter_sse",
    "parse_retry_after",
]

_NEEDS_HTTPX = {
    "classify": "._map",
    "AsyncEventSource": "._resume",
    "EventSource": "._resume",
    "aconnect_sse": "._resume",
    "connect_sse": "._resume",
    "AsyncResilientTransport": "._transport",
    "ResilientTransport": "._transport",
    "async_client": "._transport",
    "client": "._transport",
}


def __getattr__(name: str) -> Any:
    module = _NEEDS_HTTPX.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    try:
        import httpx  # noqa: F401
    except ImportError as exc:
        raise ImportError(
            f"resilient.http.{name} needs httpx: pip install 'resilient-kit[http]'"
        ) from exc
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value
