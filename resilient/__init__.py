"""Stackable resilience decorators for sync and async Python."""

from __future__ import annotations

import logging

from ._registry.registry import Registry, registry
from ._runtime.switch import is_active, set_active
from .bulkhead.adaptive import AdaptiveLimit
from .bulkhead.bulkhead import Bulkhead, BulkheadConfig, BulkheadMetrics
from .chaos import Chaos, with_chaos
from .circuit_breaker.breaker import BreakerMetrics, CircuitBreaker, CircuitBreakerConfig
from .circuit_breaker.state import CircuitState
from .decorators import (
    with_bulkhead,
    with_circuit_breaker,
    with_fallback,
    with_rate_limit,
    with_resilience,
    with_retry,
    with_timeout,
)
from .errors import (
    BulkheadFullError,
    CallTimeoutError,
    ChaosError,
    CircuitOpenError,
    RateLimitExceededError,
    ResilienceError,
)
from .events import (
    BulkheadRejected,
    CallFailed,
    CallRejected,
    CallStarted,
    CallSucceeded,
    ChaosInjected,
    Event,
    FallbackUsed,
    HedgeStarted,
    RateLimited,
    RetriesExhausted,
    RetryAttempted,
    StateChanged,
    StreamInactive,
    TimedOut,
    get_request_id,
    request_context,
    subscribe,
)
from .fallback import Fallback
from .health import DegradationLevel, Feature, HealthReport, HealthStatus
from .hedging.hedging import Hedging, HedgingConfig, with_hedging
from .metrics import MetricsCollector
from .policy import Resilience, ResiliencePolicies, ResiliencePolicy
from .rate_limit.limiter import RateLimitConfig, RateLimiter, RateLimiterMetrics
from .retry.attempts import aretrying, retrying
from .retry.budget import RetryBudget
from .retry.retry import Retry, RetryConfig, RetryPolicies
from .timeout.timeout import Timeout, TimeoutConfig

logging.getLogger("resilient").addHandler(logging.NullHandler())

__version__ = "0.1.0"

__all__ = [
    "AdaptiveLimit",
    "BreakerMetrics",
    "Bulkhead",
    "BulkheadConfig",
    "BulkheadFullError",
    "BulkheadMetrics",
    "BulkheadRejected",
    "CallFailed",
    "CallRejected",
    "CallStarted",
    "CallSucceeded",
    "CallTimeoutError",
    "Chaos",
    "ChaosError",
    "ChaosInjected",
    "CircuitBreaker",
    "CircuitBreakerConfig",
    "CircuitOpenError",
    "CircuitState",
    "DegradationLevel",
    "Event",
    "Fallback",
    "FallbackUsed",
    "Feature",
    "HealthReport",
    "HealthStatus",
    "HedgeStarted",
    "Hedging",
    "HedgingConfig",
    "MetricsCollector",
    "RateLimitConfig",
    "RateLimitExceededError",
    "RateLimited",
    "RateLimiter",
    "RateLimiterMetrics",
    "Registry",
    "Resilience",
    "ResilienceError",
    "ResiliencePolicies",
    "ResiliencePolicy",
    "RetriesExhausted",
    "Retry",
    "RetryAttempted",
    "RetryBudget",
    "RetryConfig",
    "RetryPolicies",
    "StateChanged",
    "StreamInactive",
    "TimedOut",
    "Timeout",
    "TimeoutConfig",
    "aretrying",
    "get_request_id",
    "is_active",
    "registry",
    "request_context",
    "retrying",
    "set_active",
    "subscribe",
    "with_bulkhead",
    "with_chaos",
    "with_circuit_breaker",
    "with_fallback",
    "with_hedging",
    "with_rate_limit",
    "with_resilience",
    "with_retry",
    "with_timeout",
]
