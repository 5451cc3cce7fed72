"""The exceptions `resilient` raises itself. All subclass ``ResilienceError``."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ._execution import request_id as _request

__all__ = [
    "BulkheadFullError",
    "CallTimeoutError",
    "ChaosError",
    "CircuitOpenError",
    "RateLimitExceededError",
    "ResilienceError",
]


class ResilienceError(Exception):
    """Base class of every error raised by a resilience policy itself.

    ``request_id`` is the request id current where the error was raised (see
    ``resilient.request_context``), or ``None``.
    """

    request_id: str | None

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        # A subclass may have set its own (an HTTP error names its request).
        if getattr(self, "request_id", None) is None:
            self.request_id = _request.current.get()


class CircuitOpenError(ResilienceError):
    """The breaker rejected the call without running it:
    ``CircuitOpenError(name, state, remaining, request_id=None)``.

    One is built for every rejected call, so it has no Python ``__init__``,
    which would double the cost of a rejection: its fields live in ``args``,
    stored by the builtin constructor, and the breaker passes the request id
    current where it rejects, and itself (``args[4]``, dropped when pickled):
    the breaker a retry asks for a wait ticket.
    """

    if TYPE_CHECKING:

        def __init__(
            self,
            name: str,
            state: str,
            remaining: float,
            request_id: str | None = None,
            breaker: Any = None,
        ) -> None: ...

    else:
        __init__ = Exception.__init__

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), self.args[:4], self.__dict__ or None)

    def __repr__(self) -> str:
        return f"{type(self).__name__}{self.args[:4]!r}"

    @property
    def breaker(self) -> Any:
        """The breaker that rejected the call (None when built elsewhere)."""
        args = self.args
        return args[4] if len(args) > 4 else None

    @property
    def name(self) -> str:
        name: str = self.args[0]
        return name

    @property
    def state(self) -> str:
        """The breaker's state when it rejected the call (``CircuitState`` value)."""
        state: str = self.args[1]
        return state

    @property
    def remaining(self) -> float:
        """Seconds until the breaker lets a probe through (``inf`` when forced open)."""
        remaining: float = self.args[2]
        return remaining

    @property
    def request_id(self) -> str | None:
        args = self.args
        request_id: str | None = args[3] if len(args) > 3 else None
        return request_id

    @request_id.setter
    def request_id(self, value: str | None) -> None:
        self.args = (*self.args[:3], value, *self.args[4:])

    def __str__(self) -> str:
        if self.remaining == float("inf"):
            return f"circuit {self.name!r} is {self.state}; calls are rejected until released"
        if self.state == "half_open":
            return (
                f"circuit {self.name!r} is half_open and every probe slot is taken; "
                "calls are admitted again when the probes in flight succeed"
            )
        return f"circuit {self.name!r} is {self.state}; next probe allowed in {self.remaining:.3f}s"


class BulkheadFullError(ResilienceError):
    """The bulkhead had no free slot and no room (or time) left in its queue."""

    def __init__(self, name: str, max_concurrent: int, max_queue: int) -> None:
        self.name = name
        self.max_concurrent = max_concurrent
        self.max_queue = max_queue
        super().__init__(name, max_concurrent, max_queue)

    def __str__(self) -> str:
        return (
            f"bulkhead {self.name!r} is full "
            f"(max_concurrent={self.max_concurrent}, max_queue={self.max_queue})"
        )


class RateLimitExceededError(ResilienceError):
    """The rate limiter had no turn for the call within its ``max_wait``:
    ``.name``, ``.retry_after`` (seconds until a call would be admitted).

    Recognised as a rejection (not a failure) by request accounting, and
    never counted by a circuit breaker; a retry honours ``retry_after``.
    """

    def __init__(self, name: str, retry_after: float) -> None:
        self.name = name
        self.retry_after = retry_after
        super().__init__(name, retry_after)

    @property
    def _rejected_for(self) -> float:
        # What request accounting reads to tell a rejection (see _requests).
        return self.retry_after

    def __str__(self) -> str:
        return f"rate limit {self.name!r} exceeded; next call admitted in {self.retry_after:.3f}s"


class CallTimeoutError(ResilienceError, TimeoutError):
    """The call took longer than its timeout. Also a builtin ``TimeoutError``.

    ``started`` is False when a sync call never began: every worker of its
    dependency's pool was busy for the whole timeout.
    """

    started: bool = True
    # Set on a sync call abandoned while its worker still runs it: hands a
    # callback to that worker, to run when the call really ends (False when
    # it already has). A bulkhead keeps its permit until then.
    _when_finished: Callable[[Callable[[], object]], bool] | None = None

    def __init__(self, timeout: float, name: str = "", message: str | None = None) -> None:
        self.timeout = timeout
        self.name = name
        self._message = message
        super().__init__(timeout)

    def __str__(self) -> str:
        if self._message is not None:
            return self._message
        where = f" {self.name!r}" if self.name else ""
        return f"call{where} timed out after {self.timeout:g}s"


class ChaosError(ResilienceError, ConnectionError):
    """The fault ``with_chaos`` injects by default: a dependency that could not
    be reached. Also a builtin ``ConnectionError``, so policies that handle
    network trouble (``RetryPolicies.network()``) treat it as the real thing."""

    def __init__(self, message: str = "fault injected by resilient.chaos") -> None:
        super().__init__(message)
