"""``ResiliencePolicy``, its presets in ``ResiliencePolicies``, and
``Resilience``: every layer composed into one policy.

The order, outermost first: fallback → retry → failover → hedging →
circuit breaker → rate limiter → bulkhead → timeout → function (each hedged
attempt passes the breaker, the rate limiter, the bulkhead and the timeout;
the failover's alternates carry their own policies, and a retry tries the
whole failover again). So the timeout
bounds each attempt, the breaker counts each attempt, a full bulkhead or a
spent rate limit is not the dependency's failure, retry waits out (or gives
up on) an open breaker and honours a rate limit's ``retry_after``, and the
fallback answers only once retry has given up.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar, cast

from . import events
from ._execution.policy_base import PolicyBase
from ._runtime import validation as _validate
from ._runtime.environment import defaults
from ._runtime.mapping import FromDict
from .bulkhead.bulkhead import Bulkhead, BulkheadConfig
from .circuit_breaker.breaker import CircuitBreaker, CircuitBreakerConfig
from .failover import Failover
from .fallback import Fallback
from .hedging.hedging import Hedging, HedgingConfig
from .rate_limit.limiter import RateLimitConfig, RateLimiter
from .retry.retry import Retry, RetryConfig, RetryPolicies
from .timeout.timeout import Timeout, TimeoutConfig

if TYPE_CHECKING:
    from ._execution.compose import Decoratable, Layer
    from ._registry.registry import Registry

__all__ = ["Resilience", "ResiliencePolicies", "ResiliencePolicy"]

F = TypeVar("F", bound="Decoratable")

_OWNER = "ResiliencePolicy"


def _default_timeout() -> float:
    return defaults.timeout


@dataclass(frozen=True, slots=True, kw_only=True)
class ResiliencePolicy(FromDict):
    """Which layers protect a dependency, and how. ``None`` leaves a layer out.

    The defaults follow the environment (``RESILIENT_*`` variables): a
    breaker ``CircuitBreakerConfig()``, retry ``RetryConfig()``, a timeout
    of 30 s per attempt, no bulkhead, no fallback.

    Attributes:
        circuit_breaker: a ``CircuitBreakerConfig``, or ``None``.
        retry: a ``RetryConfig``, or ``None``.
        timeout: seconds per attempt, or ``None``.
        bulkhead: a ``BulkheadConfig``, or ``None``.
        fallback: a ``Fallback``, or ``None``.
        rate_limit: a ``RateLimitConfig``, or ``None`` (the default).
        hedging: a ``HedgingConfig``, or ``None`` (the default).
        failover: a ``Failover``, or ``None`` (the default): its alternates
            are tried, at once, when the protected call fails.
    """

    _durations = frozenset({"timeout"})

    circuit_breaker: CircuitBreakerConfig | None = field(default_factory=CircuitBreakerConfig)
    retry: RetryConfig | None = field(default_factory=RetryConfig)
    timeout: float | TimeoutConfig | None = field(default_factory=_default_timeout)
    bulkhead: BulkheadConfig | None = None
    fallback: Fallback | None = None
    rate_limit: RateLimitConfig | None = None
    hedging: HedgingConfig | None = None
    failover: Failover | None = None

    def __post_init__(self) -> None:
        for name, kind in (
            ("circuit_breaker", CircuitBreakerConfig),
            ("retry", RetryConfig),
            ("bulkhead", BulkheadConfig),
            ("fallback", Fallback),
            ("rate_limit", RateLimitConfig),
            ("hedging", HedgingConfig),
            ("failover", Failover),
        ):
            value = getattr(self, name)
            if value is not None and not isinstance(value, kind):
                raise TypeError(f"{_OWNER}.{name} must be a {kind.__name__} or None, got {value!r}")
        if not isinstance(self.timeout, TimeoutConfig):
            object.__setattr__(
                self, "timeout", _validate.seconds_or_none(_OWNER, "timeout", self.timeout)
            )

    def replace(self, **overrides: Any) -> ResiliencePolicy:
        """A copy with ``overrides`` (field names only; ``None`` drops a layer)."""
        unknown = sorted(set(overrides) - _FIELDS)
        if unknown:
            raise TypeError(
                f"{_OWNER} has no field {', '.join(map(repr, unknown))}; "
                f"the fields are {', '.join(_FIELD_ORDER)}"
            )
        return dataclasses.replace(self, **overrides)


_FIELD_ORDER = tuple(f.name for f in dataclasses.fields(ResiliencePolicy))
_FIELDS = frozenset(_FIELD_ORDER)


def _recovering(failures: int, recovery: float, *, timeout: float) -> CircuitBreakerConfig:
    """A preset's breaker, set to recover under load (docs/circuit_breaker.md,
    "Recovery under load"): two concurrent probes, both needed to close; a
    probe is taken as hung after twice the per-attempt timeout; each opening
    in a row stays open 1.5 times longer, up to four times ``recovery``."""
    return CircuitBreakerConfig(
        failure_threshold=failures,
        recovery_timeout=recovery,
        half_open_max_calls=2,
        success_threshold=2,
        max_half_open_duration=2 * timeout,
        recovery_backoff=1.5,
        max_recovery_timeout=4 * recovery,
    )


def _preset(
    breaker: tuple[int, float] | None,
    retry: RetryConfig,
    deadline: float,
    timeout: float,
    bulkhead: tuple[int, int],
) -> ResiliencePolicy:
    """A preset: a breaker recovering under load (failures, recovery) or
    none, ``retry`` bounded in all by ``deadline`` seconds, ``timeout`` per
    attempt, and a bulkhead (concurrent, queued)."""
    return ResiliencePolicy(
        circuit_breaker=None if breaker is None else _recovering(*breaker, timeout=timeout),
        retry=dataclasses.replace(retry, deadline=deadline),
        timeout=timeout,
        bulkhead=BulkheadConfig(bulkhead[0], max_queue=bulkhead[1]),
    )


class ResiliencePolicies:
    """Ready-made policies per kind of dependency (the README has the table)."""

    @staticmethod
    def api() -> ResiliencePolicy:
        """An HTTP API: trips after 5 failures for 60 s, 3 attempts with
        exponential backoff within 60 s in all, 30 s per attempt, 50
        concurrent calls + 100 queued."""
        return _preset((5, 60.0), RetryPolicies.exponential(3), 60.0, 30.0, (50, 100))

    @staticmethod
    def ai() -> ResiliencePolicy:
        """An LLM provider: trips after 3 failures for 120 s, rate-limit aware
        retry (``Retry-After`` honoured) within 300 s in all, 120 s per
        attempt, 10 + 50 queued."""
        return _preset((3, 120.0), RetryPolicies.api_rate_limit(), 300.0, 120.0, (10, 50))

    @staticmethod
    def database() -> ResiliencePolicy:
        """A database: trips after 10 failures for 30 s, 3 quick attempts
        (0.1 s, then 0.2 s) within 60 s in all, 30 s per attempt, 100
        concurrent + 200 queued.

        The 30 s timeout cancels a coroutine; a *sync* call runs in the
        caller's thread (its thread-local or scoped session is there) and,
        when it overruns, fails as it returns. Use the driver's own
        statement timeout to stop it; see docs/timeout.md.
        """
        return _preset(
            (10, 30.0),
            RetryPolicies.exponential(3, initial_delay=0.1, max_delay=1.0),
            60.0,
            30.0,
            (100, 200),
        )

    @staticmethod
    def external() -> ResiliencePolicy:
        """A third-party service: trips after 5 failures for 60 s, retries
        network errors only within 30 s in all, 15 s per attempt, 20
        concurrent + 50 queued."""
        return _preset((5, 60.0), RetryPolicies.network(), 30.0, 15.0, (20, 50))

    @staticmethod
    def critical() -> ResiliencePolicy:
        """A call that must not be cut off by a breaker: no breaker, 5 attempts
        (from 0.5 s) within 300 s in all, 60 s per attempt, 5 concurrent +
        10 queued."""
        return _preset(None, RetryConfig.AGGRESSIVE, 300.0, 60.0, (5, 10))


class Resilience(PolicyBase):
    """A ``ResiliencePolicy`` made real under ``name``: its breaker and
    bulkhead are registered in ``registry`` (default: the global one).

    Args:
        name: what its breaker, bulkhead and events are called.
        policy: which layers, and how (default: ``ResiliencePolicy()``).
        registry: where the breaker and bulkhead are registered.

    A call runs every present layer, outermost first, as one chain (see
    ``resilient._execution.compose``): one frame per layer, and one request.
    """

    _kind = "resilience"

    def __init__(
        self, name: str, policy: ResiliencePolicy | None = None, *, registry: Registry | None = None
    ) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError(f"Resilience name must be a non-empty str, got {name!r}")
        if policy is None:
            policy = ResiliencePolicy()
        elif not isinstance(policy, ResiliencePolicy):
            raise TypeError(f"Resilience policy must be a ResiliencePolicy, got {policy!r}")
        from ._registry.registry import resolve

        registry = resolve("Resilience", registry)
        listeners = registry.listeners
        self.name = name
        self.policy = policy
        self._listeners = events.ListenerSet(listeners)
        self.breaker: CircuitBreaker | None = (
            None
            if policy.circuit_breaker is None
            else registry.get_or_create(name, policy.circuit_breaker)
        )
        self.bulkhead: Bulkhead | None = (
            None if policy.bulkhead is None else registry.bulkhead(name, config=policy.bulkhead)
        )
        self.rate_limiter: RateLimiter | None = (
            None if policy.rate_limit is None else registry.rate_limiter(name, policy.rate_limit)
        )
        self.retry: Retry | None = (
            None if policy.retry is None else Retry(policy.retry, name=name, listeners=listeners)
        )
        # On this dependency's own worker pool: another's hung calls never
        # hold the workers this one needs.
        timeout = policy.timeout
        # A plain float bounds each wait of a stream, not the whole stream.
        per_wait = timeout is not None and not isinstance(timeout, TimeoutConfig)
        if timeout is not None and not isinstance(timeout, TimeoutConfig):
            timeout = TimeoutConfig(timeout)
        self.timeout: Timeout | None = (
            None if timeout is None else timeout.for_stack(name, listeners, per_wait=per_wait)
        )
        self.fallback = (
            None if policy.fallback is None else policy.fallback.for_stack(name, listeners)
        )
        self.hedging: Hedging | None = (
            None
            if policy.hedging is None
            else Hedging(policy.hedging, name=name, listeners=listeners)
        )
        self.failover: Failover | None = (
            None if policy.failover is None else policy.failover.for_stack(name, listeners)
        )
        # Outermost first.
        order = (
            self.fallback,
            self.retry,
            self.failover,
            self.hedging,
            self.breaker,
            self.rate_limiter,
            self.bulkhead,
            self.timeout,
        )
        self._present: tuple[Layer, ...] = tuple(
            cast("Layer", layer) for layer in order if layer is not None
        )

    def _layers(self) -> tuple[Layer, ...]:
        return self._present

    def __repr__(self) -> str:
        layers = [
            kind
            for kind, layer in (
                ("fallback", self.fallback),
                ("retry", self.retry),
                ("failover", self.failover),
                ("hedging", self.hedging),
                ("circuit_breaker", self.breaker),
                ("rate_limit", self.rate_limiter),
                ("bulkhead", self.bulkhead),
                ("timeout", self.timeout),
            )
            if layer is not None
        ]
        return f"<Resilience {self.name!r} {' > '.join(layers) or 'pass-through'}>"

    def __call__(self, fn: F) -> F:
        """Use the composed policy itself as a decorator."""
        fallback = self.fallback
        if fallback is not None and fallback.async_handler:
            from ._execution.compose import is_async_callable, is_async_gen

            if not is_async_callable(fn) and not is_async_gen(fn):
                raise TypeError(
                    f"{fallback!r}: an async handler cannot answer for the sync function {fn!r}"
                )
        return super().__call__(fn)
