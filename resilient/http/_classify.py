"""Pure rules: which error a status is, and how long Retry-After says to wait.

No httpx, no clock: the wall-clock ``now`` is passed in.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Callable, Mapping
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import Any

from ..errors import CircuitOpenError
from .errors import (
    AuthenticationError,
    HTTPError,
    HTTPTimeoutError,
    RateLimitError,
    ServerError,
    ValidationError,
)

__all__ = [
    "IDEMPOTENT_METHODS",
    "detail",
    "error_class",
    "error_for_status",
    "may_retry",
    "parse_retry_after",
    "retry_after",
]

# RFC 9110 §9.2.2. POST and PATCH are retried only when asked to.
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"})
"""The transports' default ``retry_methods``: a request with one of these is
retried even after it was sent (RFC 9110 §9.2.2); any other only with an
``Idempotency-Key`` header."""


def may_retry(user: Any, max_delay: float, *, sent: bool) -> Callable[[BaseException], bool]:
    """Retry's ``retry_on`` for HTTP: only transient failures (an open breaker
    too, for retry's breaker-aware wait), and for a request that must not be
    repeated, only failures that happened before it was sent; then whatever
    the policy's own ``retry_on`` says."""

    def retryable(error: BaseException) -> bool:
        if isinstance(error, HTTPError):
            if not error.is_retryable or (error.request_sent and not sent):
                return False
            if error.retry_after is not None and error.retry_after > max_delay:
                return False  # the caller, not a sleeping thread, should decide
        elif not isinstance(error, CircuitOpenError):
            # A full bulkhead sheds load on purpose: trying again defeats it.
            return False
        if isinstance(user, tuple):
            return isinstance(error, user)
        return bool(user(error))

    return retryable


_BY_STATUS: dict[int, type[HTTPError]] = {
    400: ValidationError,
    401: AuthenticationError,
    403: AuthenticationError,
    408: HTTPTimeoutError,
    422: ValidationError,
    429: RateLimitError,
}

_DETAIL_CHARS = 200


def error_class(status: int) -> type[HTTPError] | None:
    """The error a response with ``status`` is, or ``None`` below 400."""
    if status < 400:
        return None
    cls = _BY_STATUS.get(status)
    if cls is not None:
        return cls
    return ServerError if status >= 500 else HTTPError


def _seconds(text: str) -> float | None:
    try:
        seconds = float(text)
    except ValueError:
        return None
    return seconds if 0 <= seconds < math.inf else None


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a Retry-After value: delta-seconds or an HTTP-date
    (a date in the past means 0). ``None`` when absent or unreadable."""
    if value is None:
        return None
    text = value.strip()
    seconds = _seconds(text)
    if seconds is not None:
        return seconds
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # the asctime form: HTTP-dates are always GMT
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - now)


def retry_after(headers: Mapping[str, str], now: float) -> float | None:
    """Retry-After, or the finer ``retry-after-ms`` some APIs send with it."""
    ms = headers.get("retry-after-ms")
    if ms is not None:
        seconds = _seconds(ms.strip())
        if seconds is not None:
            return seconds / 1000.0
    return parse_retry_after(headers.get("retry-after"), now)


def _message_of(data: object, depth: int = 0) -> str | None:
    if isinstance(data, str):
        return data
    if isinstance(data, dict) and depth < 3:
        for key in ("message", "detail", "error_description"):
            if isinstance(data.get(key), str):
                return str(data[key])
        return _message_of(data.get("error"), depth + 1)
    return None


def detail(body: bytes) -> str:
    """A short reason from an error body: the message of a JSON error object
    (``{"error": {"message": ...}}``, as LLM providers send it), else the text."""
    text = body.decode("utf-8", "replace").strip()
    with contextlib.suppress(ValueError):
        text = _message_of(json.loads(text)) or text
    text = " ".join(text.split())
    if len(text) > _DETAIL_CHARS:
        text = text[: _DETAIL_CHARS - 3] + "..."
    return text


def error_for_status(
    status: int,
    *,
    reason: str,
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    now: float,
    request_id: str | None = None,
) -> HTTPError | None:
    """The error a response is, or ``None`` for a status below 400."""
    cls = error_class(status)
    if cls is None:
        return None
    message = f"{status} {reason} from {method} {url}".rstrip()
    why = detail(body)
    if why:
        message = f"{message}: {why}"
    return cls(
        message,
        request_id=request_id,
        status_code=status,
        retry_after=retry_after(headers, now),
    )
