"""The ``with_*`` decorators. Each accepts a ready policy object or keywords."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar, Unpack, cast

from ._execution.compose import chain_of, decorate
from ._fields import (
    CircuitBreakerFields,
    RateLimitFields,
    ResilienceOverrides,
    RetryFields,
    TimeoutOptions,
)
from ._runtime import validation as _validate
from .bulkhead.bulkhead import Bulkhead, BulkheadConfig
from .circuit_breaker.breaker import CircuitBreaker, CircuitBreakerConfig
from .circuit_breaker.keyed import KeyedBreakers
from .fallback import MISSING, Fallback
from .policy import Resilience, ResiliencePolicy
from .rate_limit.limiter import RateLimitConfig, RateLimiter
from .rate_limit.stack import Limits, limit_of
from .retry.retry import Retry, RetryConfig, retry_of
from .timeout.timeout import Timeout

if TYPE_CHECKING:
    from ._execution.compose import Decoratable

__all__ = [
    "with_bulkhead",
    "with_circuit_breaker",
    "with_fallback",
    "with_rate_limit",
    "with_resilience",
    "with_retry",
    "with_timeout",
]

F = TypeVar("F", bound="Decoratable")


def _registry_of(owner: str, registry: object) -> Any:
    """``registry``, or the global one for ``None``; anything else is a TypeError."""
    from ._registry.registry import resolve

    return resolve(owner, registry)


def with_circuit_breaker(
    name: str | CircuitBreaker,
    *,
    config: CircuitBreakerConfig | None = None,
    registry: Any = None,
    key: Callable[..., str] | None = None,
    max_keys: int = 1024,
    **fields: Unpack[CircuitBreakerFields],
) -> Callable[[F], F]:
    """Protect a function, coroutine function or method with a circuit breaker.

    Args:
        name: the name the breaker is registered (or reused) under, or a
            ready ``CircuitBreaker``.
        config: a ``CircuitBreakerConfig`` (default: ``CircuitBreakerConfig()``).
        registry: the ``Registry`` to register in (default: the global one).
        key: picks the breaker of each call: ``key(*args, **kwargs)`` (a
            ``str``), registered as ``f"{name}[{key}]"``.
        max_keys: with ``key``, beyond this many breakers of ``name`` the
            least recently used CLOSED one with no call in flight is dropped.
        **fields: fields of ``CircuitBreakerConfig`` replacing those of
            ``config``: ``failure_threshold``, ``failure_rate_threshold``,
            ``minimum_calls``, ``window_size``, ``window_duration``,
            ``slow_call_duration``, ``slow_call_rate_threshold``,
            ``recovery_timeout``, ``half_open_max_calls``,
            ``success_threshold``, ``record_on``, ``ignore_on``,
            ``failure_predicate``, ``result_predicate``, ``timeout``,
            ``health_check``, ``health_check_interval``, ``storage``,
            ``recovery_backoff``, ``max_recovery_timeout``, ``max_half_open_duration``,
            ``shadow``.

    Returns:
        A decorator that keeps the decorated callable's exact signature.
    """
    if key is not None:
        if isinstance(name, CircuitBreaker):
            raise TypeError("with_circuit_breaker: key= needs a name, not a CircuitBreaker")
        if not callable(key):
            raise TypeError(f"with_circuit_breaker: key must be callable, got {key!r}")
        _validate.int_at_least("with_circuit_breaker", "max_keys", max_keys, 1)
        if not isinstance(name, str) or not name:
            raise TypeError(f"with_circuit_breaker: name must be a non-empty str, got {name!r}")
        # Made once for every key (a config per breaker would cost each key).
        config = dataclasses.replace(config or CircuitBreakerConfig(), **fields)
        registry = _registry_of("with_circuit_breaker", registry)
        keyed = KeyedBreakers(name, key, config=config, max_keys=max_keys, registry=registry)

        def per_key(fn: F) -> F:
            return decorate(keyed, fn)

        return per_key
    if max_keys != 1024:
        raise TypeError("with_circuit_breaker: max_keys= needs key=")
    if isinstance(name, CircuitBreaker):
        if config is not None or fields:
            raise TypeError(
                "with_circuit_breaker: pass either a CircuitBreaker or a name with config, "
                f"not both (got config={config!r}, fields={sorted(fields)})"
            )
        breaker = name
    else:
        if not isinstance(name, str) or not name:
            raise TypeError(f"with_circuit_breaker: name must be a non-empty str, got {name!r}")
        if fields:
            config = dataclasses.replace(config or CircuitBreakerConfig(), **fields)
        registry = _registry_of("with_circuit_breaker", registry)
        return _registering(lambda: registry.get_or_create(name, config))

    def decorator(fn: F) -> F:
        return decorate(breaker, fn)

    return decorator


def _registering(
    make: Callable[[], Any], apply: Callable[[Any, Any], Any] = decorate
) -> Callable[[F], F]:
    """The decorator of the policy ``make()`` registers now (so a conflict
    with a registered one is an error at once). When a decoration fails
    (``apply(policy, fn)`` raises: a ``TypeError`` for what cannot be
    decorated, say) before any succeeded, what ``make()`` registered is
    taken back: a failed decoration leaves nothing in the registry. Applied
    again after that, the decorator registers anew."""
    from ._registry.registry import recording

    with recording() as registered:
        policy = make()
    # [policy, its registrations while no decoration has succeeded yet]
    state: list[Any] = [policy, registered]

    def decorator(fn: F) -> F:
        policy, pending = state
        if pending is not None and pending.taken_back:
            with recording() as pending:
                policy = make()
            state[:] = [policy, pending]
        try:
            decorated = cast(F, apply(policy, fn))
        except BaseException:
            if pending is not None:
                pending.take_back()
            raise
        state[1] = None  # registered for good
        return decorated

    return decorator


def with_bulkhead(
    name: str | Bulkhead,
    *,
    max_concurrent: int | None = None,
    max_queue: int = 0,
    queue_timeout: float | None = None,
    registry: Any = None,
) -> Callable[[F], F]:
    """Limit a function, coroutine function or method to ``max_concurrent``
    calls at once; beyond that (and a full queue), ``BulkheadFullError``.

    Args:
        name: the name the bulkhead is registered (or reused) under, or a
            ready ``Bulkhead``.
        max_concurrent: calls running at once (required with a name).
        max_queue: calls that may wait for a slot beyond those.
        queue_timeout: seconds a queued call waits at most (``None``: no limit).
        registry: the ``Registry`` to register in (default: the global one).
    """
    if isinstance(name, Bulkhead):
        if max_concurrent is not None or max_queue or queue_timeout is not None:
            raise TypeError("with_bulkhead: pass either a Bulkhead or a name with limits")
        bulkhead = name
    else:
        if not isinstance(name, str) or not name:
            raise TypeError(f"with_bulkhead: name must be a non-empty str, got {name!r}")
        if max_concurrent is None:
            raise TypeError(f"with_bulkhead({name!r}) needs max_concurrent")
        registry = _registry_of("with_bulkhead", registry)
        config = BulkheadConfig(max_concurrent, max_queue=max_queue, queue_timeout=queue_timeout)
        return _registering(lambda: registry.bulkhead(name, config=config))

    def decorator(fn: F) -> F:
        return decorate(bulkhead, fn)

    return decorator


def with_rate_limit(
    name: str | RateLimiter,
    *,
    cost: Callable[..., float] | float | None = None,
    actual: Callable[[Any], float] | None = None,
    config: RateLimitConfig | None = None,
    registry: Any = None,
    **fields: Unpack[RateLimitFields],
) -> Callable[[F], F]:
    """Let at most ``rate`` calls per ``period`` start (GCRA; ``burst`` at
    once); a caller waits up to ``max_wait`` seconds for its turn, else gets
    ``RateLimitExceededError``.

    With ``cost``, a call takes ``cost(*args, **kwargs)`` units of the limit
    instead of one (a cost above ``burst`` is a ``ValueError``); with
    ``actual``, ``actual(result)`` is what it really took, and the
    difference is charged or refunded when it returns. Rate limits
    decorated directly on top of one another act as one: a call waits for
    the latest of its turns, and takes none when one of them refuses it.

    Args:
        name: the name the limiter is registered (or reused) under, or a
            ready ``RateLimiter``.
        cost: what a call takes: a callable of the call's arguments, or a
            number (default 1).
        actual: a callable of the result: what the call really took.
        config: a ``RateLimitConfig``.
        registry: the ``Registry`` to register in (default: the global one).
        **fields: fields of ``RateLimitConfig``: ``rate``, ``period``,
            ``burst``, ``max_wait``, ``storage``.

    Returns:
        A decorator that keeps the decorated callable's exact signature.
    """
    if cost is not None and not callable(cost) and not isinstance(cost, (int, float)):
        raise TypeError(f"with_rate_limit.cost must be a callable, a number or None, got {cost!r}")

    def layer_of(limiter: RateLimiter) -> Limits | RateLimiter:
        if cost is not None or actual is not None:
            return Limits((limit_of(limiter, cost, actual),))
        return limiter

    def apply(layer: Limits | RateLimiter, fn: F) -> F:
        stacked = chain_of(fn)
        if stacked is not None and isinstance(stacked.layers[0], (Limits, RateLimiter)):
            # Limits on top of limits: one layer, taken together.
            first = layer if isinstance(layer, Limits) else Limits((limit_of(layer, None, None),))
            merged = first.then(stacked.layers[0])
            return decorate(merged, cast(F, stacked.fn), merged, (merged, *stacked.layers[1:]))
        return decorate(layer, fn)

    if isinstance(name, RateLimiter):
        if config is not None or fields:
            raise TypeError("with_rate_limit: pass either a RateLimiter or a name with a limit")
        ready = layer_of(name)

        def decorator(fn: F) -> F:
            return apply(ready, fn)

        return decorator
    if not isinstance(name, str) or not name:
        raise TypeError(f"with_rate_limit: name must be a non-empty str, got {name!r}")
    registry = _registry_of("with_rate_limit", registry)
    return _registering(lambda: layer_of(registry.rate_limiter(name, config, **fields)), apply)


def with_retry(
    config: RetryConfig | Retry | None = None, **fields: Unpack[RetryFields]
) -> Callable[[F], F]:
    """Run a function, coroutine function or method again when it fails.

    Args:
        config: a ``RetryConfig`` (default: ``RetryConfig()``), or a
            ready ``Retry``.
        **fields: fields of ``RetryConfig`` replacing those of
            ``config``: ``max_attempts``, ``initial_delay``, ``max_delay``,
            ``multiplier``, ``jitter``, ``retry_on``, ``give_up_on``,
            ``retry_if_result``, ``on_retry``, ``wait``, ``respect_retry_after``,
            ``deadline``, ``rng``, ``budget``.

    Returns:
        A decorator that keeps the decorated callable's exact signature.
    """
    retry = retry_of("with_retry", config, fields)
    return retry.__call__


def with_timeout(
    seconds: float | Timeout | None = None, **options: Unpack[TimeoutOptions]
) -> Callable[[F], F]:
    """Fail a call with ``CallTimeoutError`` when it takes longer than ``seconds``.

    Args:
        seconds: the limit per call, or a ready ``Timeout``.
        **options: those of ``Timeout``: ``mode`` (``"thread"``, the
            default, or ``"signal"`` for sync functions), ``first_item``
            (seconds to the first item of a stream), ``inactivity``
            (seconds without an item after it), ``name``, ``pool`` (a
            ``WorkerPool``). On a generator function (or an async generator
            function) ``seconds`` bounds the whole stream.
    """
    if isinstance(seconds, Timeout):
        if options:
            raise TypeError(
                "with_timeout: pass either a Timeout or seconds with options, "
                f"not both (got options={sorted(options)})"
            )
        return seconds.__call__
    return Timeout(seconds, **options).__call__


def with_fallback(
    value: Any = MISSING,
    *,
    handler: Callable[..., Any] | None = None,
    on: type[BaseException] | tuple[type[BaseException], ...] = (Exception,),
) -> Callable[[F], F]:
    """Answer with ``value``, or what ``handler`` returns, when the call fails.

    Args:
        value: the answer, or a ready ``Fallback``.
        handler: called with the call's own arguments (and ``error=`` when it
            declares that keyword-only parameter); its result is the answer.
        on: the exception types that are answered.
    """
    if isinstance(value, Fallback):
        if handler is not None or on != (Exception,):
            raise TypeError(
                "with_fallback: pass either a Fallback or value/handler/on, not both "
                f"(got handler={handler!r}, on={on!r})"
            )
        return value.__call__
    return Fallback(value, handler=handler, on=on).__call__


def with_resilience(
    name: str,
    policy: ResiliencePolicy | None = None,
    *,
    registry: Any = None,
    **overrides: Unpack[ResilienceOverrides],
) -> Callable[[F], F]:
    """Protect a function, coroutine function or method with every layer of
    a policy, outermost first: fallback → retry → failover → hedging →
    circuit breaker → rate limiter → bulkhead → timeout.

    Args:
        name: the name its breaker and bulkhead are registered under.
        policy: a ``ResiliencePolicy`` (default: ``ResiliencePolicy()``).
        registry: the ``Registry`` to register in (default: the global one).
        **overrides: fields of ``ResiliencePolicy`` replacing the
            policy's (``circuit_breaker``, ``retry``, ``timeout``,
            ``bulkhead``, ``fallback``, ``rate_limit``, ``hedging``,
            ``failover``); ``None`` drops a layer.
    """
    if policy is None:
        policy = ResiliencePolicy()
    elif not isinstance(policy, ResiliencePolicy):
        raise TypeError(f"with_resilience: policy must be a ResiliencePolicy, got {policy!r}")
    if overrides:
        policy = policy.replace(**overrides)
    if not isinstance(name, str) or not name:
        raise ValueError(f"Resilience name must be a non-empty str, got {name!r}")
    registry = _registry_of("with_resilience", registry)
    return _registering(
        lambda: Resilience(name, policy, registry=registry), lambda made, fn: made(fn)
    )
