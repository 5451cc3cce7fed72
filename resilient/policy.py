"""``ResiliencePolicy``, its presets in ``ResiliencePolicies``, and
``Resilience``: every layer composed into one policy.

The order, outermost first: fallback → retry → circuit breaker → bulkhead →
timeout → function. So the timeout bounds each attempt, the breaker counts
each attempt, a full bulkhead is not the dependency's failure, retry waits
out (or gives up on) an open breaker, and the fallback answers only once
retry has given up.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, cast

from . import _validate
from ._active import switch
from .bulkhead import Bulkhead, BulkheadConfig
from .circuit_breaker import CircuitBreaker, CircuitBreakerConfig
from .config import defaults
from .fallback import Fallback
from .retry import Retry, RetryConfig, RetryPolicies
from .timeout import Timeout

if TYPE_CHECKING:
    from ._decorate import Decoratable
    from .registry import Registry

__all__ = ["Resilience", "ResiliencePolicies", "ResiliencePolicy"]

P = ParamSpec("P")
R = TypeVar("R")
F = TypeVar("F", bound="Decoratable")

_OWNER = "ResiliencePolicy"


def _default_timeout() -> float:
    return defaults.timeout


@dataclass(frozen=True, slots=True, kw_only=True)
class ResiliencePolicy:
    """Which layers protect a dependency, and how. ``None`` leaves a layer out.

    The defaults follow the environment (``RESILIENT_*`` variables): a
    breaker ``CircuitBreakerConfig()``, retry ``RetryConfig()``, a timeout
    of 30 s per attempt, no bulkhead, no fallback.
    """

    circuit_breaker: CircuitBreakerConfig | None = field(default_factory=CircuitBreakerConfig)
    retry: RetryConfig | None = field(default_factory=RetryConfig)
    timeout: float | None = field(default_factory=_default_timeout)
    bulkhead: BulkheadConfig | None = None
    fallback: Fallback | None = None

    def __post_init__(self) -> None:
        for name, kind in (
            ("circuit_breaker", CircuitBreakerConfig),
            ("retry", RetryConfig),
            ("bulkhead", BulkheadConfig),
            ("fallback", Fallback),
        ):
            value = getattr(self, name)
            if value is not None and not isinstance(value, kind):
                raise TypeError(f"{_OWNER}.{name} must be a {kind.__name__} or None, got {value!r}")
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


class ResiliencePolicies:
    """Ready-made policies per kind of dependency (the README has the table)."""

    @staticmethod
    def api() -> ResiliencePolicy:
        """An HTTP API: trips after 5 failures for 60 s, 3 attempts with
        exponential backoff, 30 s per attempt, 50 concurrent calls + 100 queued."""
        return ResiliencePolicy(
            circuit_breaker=CircuitBreakerConfig(failure_threshold=5, recovery_timeout=60.0),
            retry=RetryPolicies.exponential(3),
            timeout=30.0,
            bulkhead=BulkheadConfig(50, max_queue=100),
        )

    @staticmethod
    def ai() -> ResiliencePolicy:
        """An LLM provider: trips after 3 failures for 120 s, rate-limit aware
        retry (``Retry-After`` honoured), 120 s per attempt, 10 + 50 queued."""
        return ResiliencePolicy(
            circuit_breaker=CircuitBreakerConfig(failure_threshold=3, recovery_timeout=120.0),
            retry=RetryPolicies.api_rate_limit(),
            timeout=120.0,
            bulkhead=BulkheadConfig(10, max_queue=50),
        )

    @staticmethod
    def database() -> ResiliencePolicy:
        """A database: trips after 10 failures for 30 s, 3 quick attempts
        (0.1 s, then 0.2 s), 30 s per attempt, 100 concurrent + 200 queued."""
        return ResiliencePolicy(
            circuit_breaker=CircuitBreakerConfig(failure_threshold=10, recovery_timeout=30.0),
            retry=RetryPolicies.exponential(3, initial_delay=0.1, max_delay=1.0),
            timeout=30.0,
            bulkhead=BulkheadConfig(100, max_queue=200),
        )

    @staticmethod
    def external() -> ResiliencePolicy:
        """A third-party service: trips after 5 failures for 60 s, retries
        network errors only, 15 s per attempt, 20 concurrent + 50 queued."""
        return ResiliencePolicy(
            circuit_breaker=CircuitBreakerConfig(failure_threshold=5, recovery_timeout=60.0),
            retry=RetryPolicies.network(),
            timeout=15.0,
            bulkhead=BulkheadConfig(20, max_queue=50),
        )

    @staticmethod
    def critical() -> ResiliencePolicy:
        """A call that must not be cut off by a breaker: no breaker, 5 attempts
        (from 0.5 s), 60 s per attempt, 5 concurrent + 10 queued."""
        return ResiliencePolicy(
            circuit_breaker=None,
            retry=RetryConfig.AGGRESSIVE,
            timeout=60.0,
            bulkhead=BulkheadConfig(5, max_queue=10),
        )


# A layer's (sync, async) entry points, each called as (fn, args, kwargs).
_Entry = tuple[Callable[..., Any], Callable[..., Awaitable[Any]]]

_NO_KWARGS: dict[str, Any] = {}  # never mutated: each layer unpacks it into a fresh call


class _Hop:
    """One layer over the layer below it: the layer's ``_call`` gets the
    layer below as its function and ``(fn, args, kwargs)`` as its arguments."""

    __slots__ = ("abelow", "acall", "below", "call")

    def __init__(
        self,
        call: Callable[..., Any],
        acall: Callable[..., Awaitable[Any]],
        below: Callable[..., Any],
        abelow: Callable[..., Awaitable[Any]],
    ) -> None:
        self.call, self.acall, self.below, self.abelow = call, acall, below, abelow

    def run(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        return self.call(self.below, (fn, args, kwargs), _NO_KWARGS)

    def arun(
        self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Awaitable[Any]:
        # Returns the layer's own awaitable: no coroutine of our own per hop.
        return self.acall(self.abelow, (fn, args, kwargs), _NO_KWARGS)


class Resilience:
    """A :class:`ResiliencePolicy` made real under ``name``: its breaker and
    bulkhead are registered in ``registry`` (default: the global one).

    One object runs the whole stack, chained once here: the innermost layer
    is handed the caller's function, each layer above it the layer below
    (see :class:`_Hop`). A call builds a tuple per layer and no closures.
    """

    __slots__ = (
        "_acall",
        "_call",
        "breaker",
        "bulkhead",
        "fallback",
        "name",
        "policy",
        "retry",
        "timeout",
    )

    def __init__(
        self, name: str, policy: ResiliencePolicy | None = None, *, registry: Registry | None = None
    ) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError(f"Resilience name must be a non-empty str, got {name!r}")
        if policy is None:
            policy = ResiliencePolicy()
        elif not isinstance(policy, ResiliencePolicy):
            raise TypeError(f"Resilience policy must be a ResiliencePolicy, got {policy!r}")
        if registry is None:
            from .registry import registry as global_registry

            registry = global_registry
        listeners = registry.listeners
        self.name = name
        self.policy = policy
        self.breaker: CircuitBreaker | None = (
            None
            if policy.circuit_breaker is None
            else registry.get_or_create(name, policy.circuit_breaker)
        )
        self.bulkhead: Bulkhead | None = (
            None if policy.bulkhead is None else registry.bulkhead(name, config=policy.bulkhead)
        )
        self.retry: Retry | None = (
            None if policy.retry is None else Retry(policy.retry, name=name, listeners=listeners)
        )
        self.timeout: Timeout | None = (
            None
            if policy.timeout is None
            else Timeout(policy.timeout, name=name, listeners=listeners)
        )
        self.fallback = policy.fallback

        # Every layer checks the on/off switch itself, so the chain needs no
        # check of its own; fallback is the one layer handled here.
        layers: list[_Entry] = [
            (layer._call, layer._acall)
            for layer in (self.retry, self.breaker, self.bulkhead, self.timeout)
            if layer is not None
        ]
        if self.fallback is not None:
            # The outermost layer is called by the fallback's own frame.
            outer, aouter = layers.pop(0) if layers else (_plain, _aplain)
        run, arun = _chain(layers)
        if self.fallback is None:
            self._call, self._acall = run, arun
        else:
            self._call = functools.partial(self._call_with_fallback, outer, run)
            self._acall = functools.partial(self._acall_with_fallback, aouter, arun)

    def __repr__(self) -> str:
        layers = [
            kind
            for kind, layer in (
                ("fallback", self.fallback),
                ("retry", self.retry),
                ("circuit_breaker", self.breaker),
                ("bulkhead", self.bulkhead),
                ("timeout", self.timeout),
            )
            if layer is not None
        ]
        return f"<Resilience {self.name!r} {' > '.join(layers) or 'pass-through'}>"

    # -- execution -----------------------------------------------------------

    def call(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run ``fn(*args, **kwargs)`` through every layer."""
        return cast(R, self._call(fn, args, kwargs))

    async def call_async(
        self, fn: Callable[P, Awaitable[R]], /, *args: P.args, **kwargs: P.kwargs
    ) -> R:
        """Await ``fn(*args, **kwargs)`` through every layer."""
        return cast(R, await self._acall(fn, args, kwargs))

    def _call_with_fallback(
        self,
        outer: Callable[..., Any],
        below: Callable[..., Any],
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        try:
            return outer(below, (fn, args, kwargs), _NO_KWARGS)
        except Exception as exc:
            fallback = self.fallback
            assert fallback is not None
            if not isinstance(exc, fallback.on) or not switch.on:
                raise
            if fallback._async_handler:
                raise TypeError(
                    f"{fallback!r}: an async handler cannot answer for the sync function {fn!r}"
                ) from exc
            return fallback._answer(fn, args, kwargs, exc)

    async def _acall_with_fallback(
        self,
        aouter: Callable[..., Awaitable[Any]],
        abelow: Callable[..., Awaitable[Any]],
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        try:
            return await aouter(abelow, (fn, args, kwargs), _NO_KWARGS)
        except Exception as exc:
            fallback = self.fallback
            assert fallback is not None
            if not isinstance(exc, fallback.on) or not switch.on:
                raise
            answer = fallback._answer(fn, args, kwargs, exc)
            if inspect.isawaitable(answer):
                answer = await answer
            return answer

    def __call__(self, fn: F) -> F:
        """Use the composed policy itself as a decorator."""
        from ._decorate import decorate

        fallback = self.fallback
        if fallback is not None and fallback._async_handler:
            from ._decorate import is_async_callable

            if not is_async_callable(fn):
                raise TypeError(
                    f"{fallback!r}: an async handler cannot answer for the sync function {fn!r}"
                )
        return decorate(self, fn)


def _chain(layers: list[_Entry]) -> _Entry:
    """The (sync, async) entry points of ``layers`` (outermost first): the
    innermost takes the caller's function itself, each other one a hop."""
    run: Callable[..., Any] = _plain
    arun: Callable[..., Awaitable[Any]] = _aplain
    if layers:
        run, arun = layers[-1]
        for call, acall in reversed(layers[:-1]):
            hop = _Hop(call, acall, run, arun)
            run, arun = hop.run, hop.arun
    return run, arun


def _plain(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    return fn(*args, **kwargs)


def _aplain(
    fn: Callable[..., Awaitable[Any]], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Awaitable[Any]:
    return fn(*args, **kwargs)
