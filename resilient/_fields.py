"""The keyword settings of every decorator, as ``TypedDict``\\ s.

A decorator's ``**fields`` is typed ``Unpack[...]`` of one of these, so an
editor completes the settings and mypy and pyright reject an unknown one or
a wrong type. Each dict mirrors a config's fields exactly (a test holds them
equal): adding a field to a config means adding it here.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal, TypedDict

if TYPE_CHECKING:
    from ._runtime.workers import WorkerPool
    from .bulkhead.bulkhead import BulkheadConfig
    from .circuit_breaker.breaker import CircuitBreakerConfig
    from .circuit_breaker.storage import BreakerStorage
    from .failover import Failover
    from .fallback import Fallback
    from .hedging.hedging import HedgingConfig
    from .rate_limit.limiter import RateLimitConfig
    from .retry.backoff import JitterStrategy
    from .retry.budget import RetryBudget
    from .retry.retry import RetryConfig, RetryOn
    from .timeout.timeout import TimeoutConfig

__all__ = [
    "CircuitBreakerFields",
    "RateLimitFields",
    "ResilienceOverrides",
    "RetryFields",
    "TimeoutOptions",
]


class CircuitBreakerFields(TypedDict, total=False):
    """The fields of ``CircuitBreakerConfig``."""

    failure_threshold: int
    failure_rate_threshold: float | None
    minimum_calls: int
    window_size: int
    window_duration: float | None
    slow_call_duration: float | None
    slow_call_rate_threshold: float | None
    recovery_timeout: float
    half_open_max_calls: int
    success_threshold: int
    record_on: tuple[type[BaseException], ...]
    ignore_on: tuple[type[BaseException], ...]
    failure_predicate: Callable[[BaseException], bool] | None
    result_predicate: Callable[[Any], bool] | None
    timeout: float | None
    health_check: Callable[[], Any] | None
    health_check_interval: float
    storage: BreakerStorage | None
    recovery_backoff: float
    max_recovery_timeout: float | None
    max_half_open_duration: float | None
    shadow: bool


class RetryFields(TypedDict, total=False):
    """The fields of ``RetryConfig``."""

    max_attempts: int
    initial_delay: float
    max_delay: float
    multiplier: float
    jitter: float | JitterStrategy
    retry_on: RetryOn
    give_up_on: tuple[type[BaseException], ...]
    retry_if_result: Callable[[Any], bool] | None
    on_retry: Callable[[int, BaseException | None, float], object] | None
    wait: Callable[[int, BaseException | None, Any], float | None] | None
    respect_retry_after: bool
    deadline: float | None
    rng: random.Random | None
    budget: RetryBudget | None


class TimeoutOptions(TypedDict, total=False):
    """The options of ``Timeout`` beside its seconds."""

    mode: Literal["thread", "signal", "inline"]
    first_item: float | None
    inactivity: float | None
    name: str | None
    pool: WorkerPool | None


class ResilienceOverrides(TypedDict, total=False):
    """The fields of ``ResiliencePolicy`` (``None`` drops a layer)."""

    circuit_breaker: CircuitBreakerConfig | None
    retry: RetryConfig | None
    timeout: float | TimeoutConfig | None
    bulkhead: BulkheadConfig | None
    fallback: Fallback | None
    rate_limit: RateLimitConfig | None
    hedging: HedgingConfig | None
    failover: Failover | None


class RateLimitFields(TypedDict, total=False):
    """The fields of ``RateLimitConfig``."""

    rate: float
    period: float
    burst: int | None
    max_wait: float
    storage: Any
