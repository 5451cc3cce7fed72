"""``CircuitBreakerConfig``: how a breaker decides to open and to close.

Its own module, so the pure rules (``resilient.circuit_breaker.state``) can name
it without importing the breaker that drives them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from .._runtime import validation as _validate
from .._runtime.environment import defaults
from .._runtime.mapping import FromDict

if TYPE_CHECKING:
    from .storage import BreakerStorage

__all__ = ["CircuitBreakerConfig"]

_OWNER = "CircuitBreakerConfig"


@dataclass(frozen=True, slots=True, kw_only=True)
class CircuitBreakerConfig(FromDict):
    """How a breaker decides to open and to close. Validated at construction.

    Attributes:
        failure_threshold: consecutive failures that open the breaker.
        failure_rate_threshold: open when failures / calls in the window
            reach this (0 < r <= 1); ``None``: no rate.
        minimum_calls: calls the window must hold before a rate can trip.
        window_size: calls in the count window.
        window_duration: seconds: a time window of per-second buckets instead.
        slow_call_duration: seconds from which a call counts as slow.
        slow_call_rate_threshold: open when slow calls / calls reach this.
        recovery_timeout: seconds OPEN before a probe is allowed.
        half_open_max_calls: concurrent probes in HALF_OPEN.
        success_threshold: successful probes that close the breaker.
        record_on: exception types counted as failures.
        ignore_on: exception types re-raised and never counted.
        failure_predicate: ``error -> bool``: which ``record_on`` errors fail.
        result_predicate: ``result -> bool``: a returned value counted as a
            failure (still returned).
        timeout: per-call time limit in seconds.
        health_check: polled while OPEN (sync or async); truthy moves the
            breaker to HALF_OPEN early.
        health_check_interval: seconds between health checks.
        storage: a shared store of the breaker's state (e.g. ``RedisStorage``).
        recovery_backoff: each opening in a row stays open this many times
            longer than the one before (>= 1); a close starts over.
        max_recovery_timeout: the cap of that growth, in seconds (``None``: none).
        max_half_open_duration: seconds half-open may last before it reopens
            and frees the permits of probes still running (``None``: no limit).
        shadow: apply every rule, move through the states and emit the
            events and metrics, but never reject a call: what the breaker
            would do. Its ``StateChanged`` and ``CallRejected`` events say
            ``shadow=True`` (a rejection it would have made), its metrics
            carry ``circuit_breaker_shadow``, and it leaves the health
            report alone.
    """

    _durations = frozenset(
        {
            "window_duration",
            "slow_call_duration",
            "recovery_timeout",
            "timeout",
            "health_check_interval",
            "max_recovery_timeout",
            "max_half_open_duration",
        }
    )

    failure_threshold: int = field(default_factory=lambda: defaults.cb_failure_threshold)
    failure_rate_threshold: float | None = None
    minimum_calls: int = 10
    window_size: int = 100
    window_duration: float | None = None
    slow_call_duration: float | None = None
    slow_call_rate_threshold: float | None = None
    recovery_timeout: float = field(default_factory=lambda: defaults.cb_recovery_timeout)
    half_open_max_calls: int = 1
    success_threshold: int = 2
    record_on: tuple[type[BaseException], ...] = (Exception,)
    ignore_on: tuple[type[BaseException], ...] = ()
    failure_predicate: Callable[[BaseException], bool] | None = None
    result_predicate: Callable[[Any], bool] | None = None
    timeout: float | None = None
    health_check: Callable[[], Any] | None = None
    health_check_interval: float = 30.0
    storage: BreakerStorage | None = None
    recovery_backoff: float = 1.0
    max_recovery_timeout: float | None = None
    max_half_open_duration: float | None = None
    shadow: bool = False

    DEFAULT: ClassVar[CircuitBreakerConfig]
    LENIENT: ClassVar[CircuitBreakerConfig]
    STRICT: ClassVar[CircuitBreakerConfig]
    AI_SERVICE: ClassVar[CircuitBreakerConfig]

    def __post_init__(self) -> None:
        v = _validate
        v.int_at_least(_OWNER, "failure_threshold", self.failure_threshold, 1)
        v.fraction_or_none(_OWNER, "failure_rate_threshold", self.failure_rate_threshold)
        v.int_at_least(_OWNER, "minimum_calls", self.minimum_calls, 1)
        v.int_between(_OWNER, "window_size", self.window_size, 1, v.MAX_WINDOW)
        v.seconds_or_none(_OWNER, "window_duration", self.window_duration)
        if self.window_duration is not None and self.window_duration > v.MAX_WINDOW:
            # One bucket per second, allocated up front.
            raise ValueError(
                f"{_OWNER}.window_duration must be at most {v.MAX_WINDOW:_} seconds "
                f"(one bucket per second), got {self.window_duration!r}"
            )
        v.seconds_or_none(_OWNER, "slow_call_duration", self.slow_call_duration)
        v.fraction_or_none(_OWNER, "slow_call_rate_threshold", self.slow_call_rate_threshold)
        v.seconds(_OWNER, "recovery_timeout", self.recovery_timeout)
        v.int_at_least(_OWNER, "half_open_max_calls", self.half_open_max_calls, 1)
        v.int_at_least(_OWNER, "success_threshold", self.success_threshold, 1)
        object.__setattr__(
            self, "record_on", v.exception_types(_OWNER, "record_on", self.record_on)
        )
        object.__setattr__(
            self, "ignore_on", v.exception_types(_OWNER, "ignore_on", self.ignore_on)
        )
        v.callable_or_none(_OWNER, "failure_predicate", self.failure_predicate)
        v.callable_or_none(_OWNER, "result_predicate", self.result_predicate)
        v.seconds_or_none(_OWNER, "timeout", self.timeout)
        v.callable_or_none(_OWNER, "health_check", self.health_check)
        v.seconds(_OWNER, "health_check_interval", self.health_check_interval, allow_zero=False)
        if self.storage is not None and not callable(getattr(self.storage, "attach", None)):
            raise TypeError(
                f"{_OWNER}.storage must be a breaker storage (with an attach() method, "
                f"e.g. resilient.redis.RedisStorage), got {self.storage!r}"
            )
        backoff = v.number(_OWNER, "recovery_backoff", self.recovery_backoff, 1)
        object.__setattr__(self, "recovery_backoff", backoff)
        cap = v.seconds_or_none(_OWNER, "max_recovery_timeout", self.max_recovery_timeout)
        if cap is not None and cap < self.recovery_timeout:
            raise ValueError(
                f"{_OWNER}.max_recovery_timeout must be >= recovery_timeout "
                f"({self.recovery_timeout!r}), got {self.max_recovery_timeout!r}"
            )
        v.seconds_or_none(_OWNER, "max_half_open_duration", self.max_half_open_duration)
        if not isinstance(self.shadow, bool):
            raise TypeError(f"{_OWNER}.shadow must be a bool, got {self.shadow!r}")
        if self.slow_call_rate_threshold is not None and self.slow_call_duration is None:
            raise ValueError(
                f"{_OWNER}.slow_call_rate_threshold={self.slow_call_rate_threshold!r} "
                "needs slow_call_duration to say what a slow call is"
            )
        uses_rate = (
            self.failure_rate_threshold is not None or self.slow_call_rate_threshold is not None
        )
        if uses_rate and self.window_duration is None and self.minimum_calls > self.window_size:
            raise ValueError(
                f"{_OWNER}.minimum_calls={self.minimum_calls!r} can never be reached "
                f"in a window of window_size={self.window_size!r} calls"
            )


CircuitBreakerConfig.DEFAULT = CircuitBreakerConfig(failure_threshold=5, recovery_timeout=30.0)
CircuitBreakerConfig.LENIENT = CircuitBreakerConfig(failure_threshold=10, recovery_timeout=60.0)
CircuitBreakerConfig.STRICT = CircuitBreakerConfig(failure_threshold=3, recovery_timeout=15.0)
CircuitBreakerConfig.AI_SERVICE = CircuitBreakerConfig(failure_threshold=3, recovery_timeout=60.0)
