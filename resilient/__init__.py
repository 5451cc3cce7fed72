"""Stackable resilience decorators for sync and async Python.

Every public name is importable from here. The modules behind them load on
first use (``import resilient`` costs almost nothing; the names a program
uses bring in what they need), so the pytest plugin and a CLI that only asks
for ``--version`` stay quick.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from . import config as config  # the environment is read at import: a bad value fails here

__version__ = "0.1.0"

if TYPE_CHECKING:
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
        FailoverUsed,
        FallbackUsed,
        HedgeStarted,
        RateLimited,
        Reconfigured,
        RetriesExhausted,
        RetryAttempted,
        StateChanged,
        StreamInactive,
        TimedOut,
        get_request_id,
        request_context,
        subscribe,
    )
    from .failover import Failover, FailoverMetrics, with_failover
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

# Where each public name lives: loaded on first access (PEP 562).
_WHERE: dict[str, str] = {
    "AdaptiveLimit": ".bulkhead.adaptive",
    "aretrying": ".retry.attempts",
    "BreakerMetrics": ".circuit_breaker.breaker",
    "Bulkhead": ".bulkhead.bulkhead",
    "BulkheadConfig": ".bulkhead.bulkhead",
    "BulkheadFullError": ".errors",
    "BulkheadMetrics": ".bulkhead.bulkhead",
    "BulkheadRejected": ".events",
    "CallFailed": ".events",
    "CallRejected": ".events",
    "CallStarted": ".events",
    "CallSucceeded": ".events",
    "CallTimeoutError": ".errors",
    "Chaos": ".chaos",
    "ChaosError": ".errors",
    "ChaosInjected": ".events",
    "CircuitBreaker": ".circuit_breaker.breaker",
    "CircuitBreakerConfig": ".circuit_breaker.breaker",
    "CircuitOpenError": ".errors",
    "CircuitState": ".circuit_breaker.state",
    "DegradationLevel": ".health",
    "Event": ".events",
    "Failover": ".failover",
    "FailoverMetrics": ".failover",
    "FailoverUsed": ".events",
    "Fallback": ".fallback",
    "FallbackUsed": ".events",
    "Feature": ".health",
    "get_request_id": ".events",
    "HealthReport": ".health",
    "HealthStatus": ".health",
    "HedgeStarted": ".events",
    "Hedging": ".hedging.hedging",
    "HedgingConfig": ".hedging.hedging",
    "is_active": "._runtime.switch",
    "MetricsCollector": ".metrics",
    "RateLimitConfig": ".rate_limit.limiter",
    "RateLimited": ".events",
    "Reconfigured": ".events",
    "RateLimiter": ".rate_limit.limiter",
    "RateLimiterMetrics": ".rate_limit.limiter",
    "RateLimitExceededError": ".errors",
    "Registry": "._registry.registry",
    "registry": "._registry.registry",
    "request_context": ".events",
    "Resilience": ".policy",
    "ResilienceError": ".errors",
    "ResiliencePolicies": ".policy",
    "ResiliencePolicy": ".policy",
    "RetriesExhausted": ".events",
    "Retry": ".retry.retry",
    "RetryAttempted": ".events",
    "RetryBudget": ".retry.budget",
    "RetryConfig": ".retry.retry",
    "retrying": ".retry.attempts",
    "RetryPolicies": ".retry.retry",
    "set_active": "._runtime.switch",
    "StateChanged": ".events",
    "StreamInactive": ".events",
    "subscribe": ".events",
    "TimedOut": ".events",
    "Timeout": ".timeout.timeout",
    "TimeoutConfig": ".timeout.timeout",
    "with_bulkhead": ".decorators",
    "with_chaos": ".chaos",
    "with_circuit_breaker": ".decorators",
    "with_failover": ".failover",
    "with_fallback": ".decorators",
    "with_hedging": ".hedging.hedging",
    "with_rate_limit": ".decorators",
    "with_resilience": ".decorators",
    "with_retry": ".decorators",
    "with_timeout": ".decorators",
}


def __getattr__(name: str) -> Any:
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module 'resilient' has no attribute {name!r}")
    value = getattr(importlib.import_module(where, __name__), name)
    globals()[name] = value  # the next access is an ordinary global
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


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
    "Failover",
    "FailoverMetrics",
    "FailoverUsed",
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
    "Reconfigured",
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
    "with_failover",
    "with_fallback",
    "with_hedging",
    "with_rate_limit",
    "with_resilience",
    "with_retry",
    "with_timeout",
]
