"""The ``with_*`` decorators. Each accepts a ready policy object or keywords."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from ._decorate import decorate
from .circuit_breaker import CircuitBreaker, CircuitBreakerConfig

if TYPE_CHECKING:
    from ._decorate import Decoratable

__all__ = ["with_circuit_breaker"]

F = TypeVar("F", bound="Decoratable")


def with_circuit_breaker(
    name: str | CircuitBreaker,
    *,
    config: CircuitBreakerConfig | None = None,
    registry: Any = None,
    **fields: Any,
) -> Callable[[F], F]:
    """Protect a function, coroutine function or method with a circuit breaker.

    ``name`` registers (or reuses) a breaker in the registry; ``config`` and
    keyword fields (those of :class:`CircuitBreakerConfig`) configure it. A
    ready :class:`CircuitBreaker` may be passed instead of a name.
    """
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
        if registry is None:
            from .registry import registry as global_registry

            registry = global_registry
        breaker = registry.get_or_create(name, config)

    def decorator(fn: F) -> F:
        return decorate(breaker, fn)

    return decorator
