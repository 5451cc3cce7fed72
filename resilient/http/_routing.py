"""Per-host routes: what the HTTP integrations share but their I/O (the
httpx transports, ``_transport.py``, and the aiohttp middleware,
``resilient.aiohttp``).

A ``Routing`` checks its settings, keeps a breaker per host (a per-key
group named after the integration, at most ``MAX_HOSTS`` by the LRU rule,
judging a streamed body when it ends through ``hold``) and builds, on a
host's first request, its route: the chains its requests go through
(fallback, raise for status, retry, the quota gate, the host's breaker,
its bulkhead, then the integration's attempt). Retry comes in three
flavours: for requests that may be repeated after they were sent, for the
others, and none (a request that asked not to be retried).
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Iterable
from typing import Any, ClassVar, NamedTuple

from .. import events
from .._execution.compose import compose
from .._execution.policy_base import PolicyBase
from .._registry.registry import Registry, resolve
from .._runtime import fork as _fork
from ..circuit_breaker.keyed import KeyedBreakers
from ..policy import ResiliencePolicy
from ..retry.retry import Retry, RetryConfig
from ._classify import IDEMPOTENT_METHODS, may_retry
from ._quota import QuotaState
from ._quota_gate import QuotaGate, breaker_config

__all__ = ["MAX_HOSTS", "Route", "Routing", "Sends"]

MAX_HOSTS = 1024  # per-host breakers kept by one transport or middleware (the LRU rule)

Send = Callable[..., Any]


class Sends(NamedTuple):
    """A route: its name and its chains."""

    name: str
    send: Send  # for requests that may be repeated
    send_once: Send  # for the others
    send_no_retry: Send  # for requests that asked not to be retried


class Route(PolicyBase):
    """Who the requests of one route (one host) are counted for."""

    _kind = "http"

    def __init__(self, name: str, listeners: events.ListenerSet) -> None:
        self.name = name
        self._listeners = listeners

    def timed_out(self, seconds: float | None, *, inactive: bool = False) -> None:
        """Count a timeout of the HTTP client's (connect, read, write, pool,
        or a body gone silent) as ``Timeout`` counts its own; ``inactive``:
        the body's own ``StreamInactive`` event says it, no ``TimedOut``."""
        self._stats_for(self.name).timeouts += 1
        if not inactive and self._listeners.events:
            self._listeners.new(events.TimedOut, self.name, self._kind, seconds or 0.0)


def _names(methods: Any) -> tuple[str, ...] | None:
    if isinstance(methods, str):
        return None
    try:
        names = tuple(methods)
    except TypeError:
        return None
    return names if all(isinstance(m, str) for m in names) else None


class Routing:
    """Settings, per-host breakers and routes (see the module's docstring).

    An integration sets ``_owner`` (what starts each error about its
    arguments: ``"ResilientTransport."``), ``_hold`` (what of a response is
    still pending when it returns: its streamed body), ``_is_async``,
    ``_route_class`` (a ``Route``: who a route's requests are counted for)
    and ``_raise_for_status`` (the layer that raises an error response
    nobody retried), and implements ``_route_key(*args)`` (the host of a
    request, from what its chains are called with) and
    ``_attempt_for(route, quota)`` (one attempt: the I/O)."""

    _owner: ClassVar[str]
    _hold: ClassVar[Any]  # a Hold, as a staticmethod
    _is_async: ClassVar[bool] = False
    _route_class: ClassVar[type[Route]] = Route
    _raise_for_status: ClassVar[Any]

    def __init__(
        self,
        policy: ResiliencePolicy | None = None,
        *,
        per_host: bool = True,
        name: str = "http",
        registry: Registry | None = None,
        retry_methods: Iterable[str] = IDEMPOTENT_METHODS,
        quota_headers: bool = True,
    ) -> None:
        owner = self._owner
        if policy is not None and not isinstance(policy, ResiliencePolicy):
            raise TypeError(f"{owner}policy must be a ResiliencePolicy or None, got {policy!r}")
        if not isinstance(name, str) or not name:
            raise ValueError(f"{owner}name must be a non-empty str, got {name!r}")
        methods = _names(retry_methods)
        if methods is None:
            raise TypeError(
                f"{owner}retry_methods must be an iterable of method names, got {retry_methods!r}"
            )
        if not isinstance(quota_headers, bool):
            raise TypeError(f"{owner}quota_headers must be a bool, got {quota_headers!r}")
        registry = resolve(owner.rstrip(".: "), registry)
        self.policy = policy if policy is not None else ResiliencePolicy()
        self.per_host = bool(per_host)
        self.name = name
        self.registry = registry
        self.retry_methods = frozenset(m.upper() for m in methods)
        self.quota_headers = quota_headers
        self._listeners = events.ListenerSet(registry.listeners)
        self._routes: dict[str, Sends] = {}
        self._lock = threading.Lock()
        _fork.renew_in_child(self, _fork.locks("_lock"))
        config = breaker_config(self.policy)
        self._breakers = (
            None
            if config is None
            else KeyedBreakers(
                name,
                self._route_key,
                config=config,
                max_keys=MAX_HOSTS,
                registry=registry,
                label=self._route_name,
                on_drop=self._drop_route,
                hold=self._hold,  # a streamed body is judged when it ends
            )
        )

    def subscribe(self, listener: events.Listener | events.Reader) -> Callable[[], None]:
        """Listen to this integration's own events (its retries', a body's
        ``StreamInactive``)."""
        return self._listeners.subscribe(listener)

    def _route_key(self, *args: Any) -> str:
        raise NotImplementedError

    def _route_name(self, key: str) -> str:
        return f"{self.name}:{key}" if key else self.name

    def _drop_route(self, key: str) -> None:
        """The host's breaker was dropped (the LRU rule): its route goes too."""
        self._routes.pop(key, None)

    def _route(self, key: str) -> Sends:
        """The route of host ``key`` ("" when not per host), built on first use."""
        route = self._routes.get(key)
        if route is None:
            with self._lock:
                route = self._routes.get(key)
                if route is None:
                    route = self._routes[key] = self._build(self._route_name(key))
        return route

    def _attempt_for(self, route: Any, quota: QuotaState | None) -> Send:
        raise NotImplementedError

    def _build(self, name: str) -> Sends:
        policy = self.policy
        inner: list[Any] = []
        if self._breakers is not None:
            inner.append(self._breakers)  # the request's host picks its breaker
        if policy.bulkhead is not None:
            inner.append(self.registry.bulkhead(name, config=policy.bulkhead))
        outer: list[Any] = [] if policy.fallback is None else [policy.fallback]
        outer.append(self._raise_for_status)
        owner = self._route_class(name, self._listeners)
        quota = QuotaState() if self.quota_headers else None
        attempt = self._attempt_for(owner, quota)

        def chain(retry: RetryConfig | None) -> Send:
            layers = [*outer]
            if retry is not None:
                layers.append(Retry(retry, name=name, listeners=self._listeners))
            if quota is not None:
                layers.append(QuotaGate(name, quota, retry))
            layers.extend(inner)
            # One request per HTTP request, whatever the layers inside do.
            return compose(owner, layers, attempt, is_async=self._is_async)

        cfg = policy.retry
        if cfg is None:
            send = chain(None)
            return Sends(name, send, send, send)
        replace = dataclasses.replace
        return Sends(
            name,
            chain(replace(cfg, retry_on=may_retry(cfg.retry_on, cfg.max_delay, sent=True))),
            chain(replace(cfg, retry_on=may_retry(cfg.retry_on, cfg.max_delay, sent=False))),
            chain(None),
        )
