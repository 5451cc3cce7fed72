"""Stackable resilience decorators for sync and async Python."""

from __future__ import annotations

import logging

from ._active import is_active, set_active
from ._breaker_core import CircuitState
from .bulkhead import Bulkhead, BulkheadConfig, BulkheadMetrics
from .chaos import Chaos, with_chaos
from .circuit_breaker import BreakerMetrics, CircuitBreaker, CircuitBreakerConfig
from .decorators import (
    with_bulkhead,
    with_circuit_breaker,
    with_fallback,
    with_resilience,
    with_retry,
    with_timeout,
)
from .errors import (
    BulkheadFullError,
    CallTimeoutError,
    ChaosError,
    CircuitOpenError,
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
from .metrics import MetricsCollector
from .policy import Resilience, ResiliencePolicies, ResiliencePolicy
from .registry import Registry, registry
from .retry import Retry, RetryConfig, RetryPolicies
from .timeout import Timeout, TimeoutConfig

logging.getLogger("resilient").addHandler(logging.NullHandler())

__version__ = "0.1.0"

__all__ = [
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
    "MetricsCollector",
    "RateLimited",
    "Registry",
    "Resilience",
    "ResilienceError",
    "ResiliencePolicies",
    "ResiliencePolicy",
    "RetriesExhausted",
    "Retry",
    "RetryAttempted",
    "RetryConfig",
    "RetryPolicies",
    "StateChanged",
    "StreamInactive",
    "TimedOut",
    "Timeout",
    "TimeoutConfig",
    "get_request_id",
    "is_active",
    "registry",
    "request_context",
    "set_active",
    "subscribe",
    "with_bulkhead",
    "with_chaos",
    "with_circuit_breaker",
    "with_fallback",
    "with_resilience",
    "with_retry",
    "with_timeout",
]
