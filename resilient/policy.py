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

from . import _validate, events
from ._active import switch
from ._decorate import athrough, through
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


_NO_KWARGS: dict[str, Any] = {}  # never mutated: each layer unpacks it into a fresh call


class Resilience:
    """A :class:`ResiliencePolicy` made real under ``name``: its breaker and
    bulkhead are registered in ``registry`` (default: the global one).

    One object runs the whole stack, chained once here (see :func:`_chain`):
    a call builds a tuple per layer, and no closure.
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
        self.fallback = None if policy.fallback is None else policy.fallback._named(name, listeners)

        # Every layer checks the on/off switch itself, so the chain needs no
        # check of its own; fallback is the one layer handled here.
        present = [
            layer for layer in (self.retry, self.breaker, self.bulkhead, self.timeout) if layer
        ]
        # The outermost entry opens the request (see events.run_request) as
        # "resilience"; the layers inside see it and count only their own.
        whole = _Whole(listeners, name, self)
        opens = self.fallback is None
        run = _chain([layer._call for layer in present], whole, is_async=False, opens=opens)
        arun = _chain([layer._acall for layer in present], whole, is_async=True, opens=opens)
        if self.fallback is None:
            self._call, self._acall = run, arun
        else:
            self._call = _falling_back(self.fallback, run, whole)
            self._acall = _afalling_back(self.fallback, arun, whole)

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

    # A decorated plain function gets every layer's own closure, nested:
    # what ``_call`` does, one frame per layer. While someone listens, the
    # outermost closure hands the call to ``_call``, which opens the
    # request as the composition's. Each closure carries the function's
    # name and is marked a layer, so the one around it stacks on it.

    def _wrap_sync(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        return self._nest(fn, is_async=False)

    def _wrap_async(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        return self._nest(fn, is_async=True)

    def _nest(self, fn: Callable[..., Any], *, is_async: bool) -> Callable[..., Any]:
        layers = [
            layer
            for layer in (self.timeout, self.bulkhead, self.breaker, self.retry, self.fallback)
            if layer is not None
        ]
        wrap = "_wrap_async" if is_async else "_wrap_sync"
        if not layers or not hasattr(layers[-1], wrap):
            # A timeout alone has no closure of its own: the chain it is.
            return (athrough if is_async else through)(self._acall if is_async else self._call, fn)
        inner = fn
        for layer in layers[:-1]:
            own = getattr(layer, wrap, None)
            if own is not None:
                closure = own(inner)
            else:
                closure = (athrough if is_async else through)(
                    layer._acall if is_async else layer._call, inner
                )
            inner = events.mark_layer(functools.update_wrapper(closure, fn))
        listened = functools.partial(self._acall if is_async else self._call, fn)
        outermost: Callable[..., Any] = getattr(layers[-1], wrap)(inner, listened)
        return outermost

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


class _Whole:
    """Who opens the request of a composed call: listeners, name, owner."""

    __slots__ = ("listeners", "name", "owner")

    def __init__(self, listeners: events.ListenerSet, name: str, owner: object) -> None:
        self.listeners = listeners
        self.name = name
        self.owner = owner

    def open(self, entry: Callable[..., Any], fn: Any, args: Any, kwargs: Any) -> Any:
        """The request around ``entry`` (which, handed ``fn`` back, runs the layers)."""
        return events.run_request(
            self.listeners, self.name, "resilience", entry, fn, args, kwargs, owner=self.owner
        )

    def aopen(self, entry: Callable[..., Any], fn: Any, args: Any, kwargs: Any) -> Any:
        return events.arun_request(
            self.listeners, self.name, "resilience", entry, fn, args, kwargs, owner=self.owner
        )


def _chain(
    layers: list[Callable[..., Any]], whole: _Whole, *, is_async: bool, opens: bool
) -> Callable[..., Any]:
    """One entry point, called as ``(fn, args, kwargs)``, for ``layers``
    (their ``_call``s, or their ``_acall``s; outermost first).

    The entry opens the request of ``whole`` when someone listens (one check
    otherwise); with ``opens=False`` the fallback around it has opened it.

    The innermost layer is handed the caller's function; each other layer is
    handed the layer below it as its function, and that layer's arguments
    as its own. The call ``entry(fn, args, kwargs)`` through retry, breaker
    and bulkhead is ``retry(breaker, (bulkhead, (fn, args, kwargs), {}), {})``:
    nested tuples built once per call, and no frame of ours between layers.
    An async entry returns the outermost layer's awaitable.
    """
    n = len(layers)
    if n <= 1 and not opens:
        return layers[0] if layers else _plain
    opened = whole.aopen if is_async else whole.open
    owner = whole.owner
    if n <= 1:
        inner = layers[0] if layers else _plain

        def entry1(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            if events.hub.listening and events.entering(fn, owner):
                return opened(entry1, fn, args, kwargs)
            return inner(fn, args, kwargs)

        return entry1
    if n == 2:
        a, b = layers

        def entry2(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            if events.hub.listening and events.entering(fn, owner):
                return opened(entry2, fn, args, kwargs)
            return a(b, (fn, args, kwargs), _NO_KWARGS)

        return entry2
    if n == 3:
        a, b, c = layers

        def entry3(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            if events.hub.listening and events.entering(fn, owner):
                return opened(entry3, fn, args, kwargs)
            return a(b, (c, (fn, args, kwargs), _NO_KWARGS), _NO_KWARGS)

        return entry3
    a, b, c, d = layers  # retry, breaker, bulkhead, timeout: never more

    def entry4(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if events.hub.listening and events.entering(fn, owner):
            return opened(entry4, fn, args, kwargs)
        return a(b, (c, (d, (fn, args, kwargs), _NO_KWARGS), _NO_KWARGS), _NO_KWARGS)

    return entry4


def _falling_back(fallback: Fallback, run: Callable[..., Any], whole: _Whole) -> Callable[..., Any]:
    """``run`` under ``fallback``, which answers with the call's own arguments."""
    on = fallback.on
    owner = whole.owner

    def call(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if events.hub.listening and events.entering(fn, owner):
            return whole.open(call, fn, args, kwargs)
        try:
            return run(fn, args, kwargs)
        except Exception as exc:
            if not isinstance(exc, on) or not switch.on:
                raise
            if fallback._async_handler:
                raise TypeError(
                    f"{fallback!r}: an async handler cannot answer for the sync function {fn!r}"
                ) from exc
            return fallback._answer(fn, args, kwargs, exc)

    return call


def _afalling_back(
    fallback: Fallback, arun: Callable[..., Awaitable[Any]], whole: _Whole
) -> Callable[..., Awaitable[Any]]:
    on = fallback.on
    owner = whole.owner

    async def acall(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if events.hub.listening and events.entering(fn, owner):
            return await whole.aopen(acall, fn, args, kwargs)
        try:
            return await arun(fn, args, kwargs)
        except Exception as exc:
            if not isinstance(exc, on) or not switch.on:
                raise
            answer = fallback._answer(fn, args, kwargs, exc)
            if inspect.isawaitable(answer):
                answer = await answer
            return answer

    return acall


def _plain(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """No layer at all: the call itself (for a coroutine function, its coroutine)."""
    return fn(*args, **kwargs)
