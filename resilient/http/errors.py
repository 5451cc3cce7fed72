"""The HTTP errors: what went wrong, whether trying again can help, and which
request it was. Importable without httpx."""

from __future__ import annotations

from typing import Any, ClassVar

from ..errors import CallTimeoutError, ResilienceError

__all__ = [
    "AuthenticationError",
    "HTTPError",
    "HTTPTimeoutError",
    "NetworkError",
    "RateLimitError",
    "ServerError",
    "StreamError",
    "ValidationError",
]


class HTTPError(ResilienceError):
    """Base of every HTTP error; also raised as is for a status >= 400 that no
    subclass covers (404, 409, ...).

    ``status_code`` is ``None`` when no response arrived. ``retry_after`` is
    the server's Retry-After in seconds (429 and 503), which retry honours.
    ``response`` (its body already read) and ``request`` are the httpx objects.
    """

    is_retryable: ClassVar[bool] = False

    def __init__(
        self,
        message: str,
        *,
        request_id: str | None = None,
        status_code: int | None = None,
        retry_after: float | None = None,
        response: Any = None,
        request: Any = None,
    ) -> None:
        self.message = message
        self.request_id = request_id
        self.status_code = status_code
        self.retry_after = retry_after
        self.response = response
        self.request = request
        # A failure before the request left the machine (refused connection,
        # no pool slot) is safe to repeat whatever the method.
        self.request_sent = True
        super().__init__(message)

    def __str__(self) -> str:
        if self.request_id is None:
            return self.message
        return f"{self.message} [request id {self.request_id}]"

    def __reduce__(self) -> tuple[Any, ...]:
        # The httpx objects stay behind: they do not pickle.
        state = {k: v for k, v in self.__dict__.items() if k not in ("request", "response")}
        return (_rebuild, (type(self), self.message), state)


def _rebuild(cls: type[HTTPError], message: str) -> HTTPError:
    return cls(message)


class NetworkError(HTTPError, ConnectionError):
    """No usable response: DNS failure, refused or dropped connection. Also a
    builtin ``ConnectionError``, so ``RetryPolicies.network()`` retries it."""

    is_retryable = True


class HTTPTimeoutError(HTTPError, CallTimeoutError):
    """Connecting, sending, waiting for or streaming the response took too
    long (or the server answered 408). Also a ``CallTimeoutError``."""

    is_retryable = True

    def __init__(self, message: str, *, timeout: float | None = None, **fields: Any) -> None:
        HTTPError.__init__(self, message, **fields)
        self.timeout = timeout if timeout is not None else 0.0
        self.name = ""
        self._message = message

    def __str__(self) -> str:
        return HTTPError.__str__(self)


class AuthenticationError(HTTPError):
    """401 or 403: the credentials are missing, wrong or not enough."""


class RateLimitError(HTTPError):
    """429: slow down. ``retry_after`` says for how long, when the server said."""

    is_retryable = True


class ValidationError(HTTPError):
    """400 or 422: the request itself is wrong; sending it again cannot help."""


class ServerError(HTTPError):
    """A 5xx status: the server failed."""

    is_retryable = True


class StreamError(HTTPError):
    """A streamed body broke off or could not be decoded (SSE, UTF-8, gzip).
    Not retryable: part of it has already been consumed."""
