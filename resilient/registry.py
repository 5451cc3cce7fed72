"""``Registry``: breakers and bulkheads by name, forcing, health and features."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Literal

from . import _clock, events, health
from .bulkhead import Bulkhead, BulkheadConfig
from .circuit_breaker import CircuitBreaker, CircuitBreakerConfig
from .health import DegradationLevel, Feature, HealthReport

if TYPE_CHECKING:
    from ._storage import BreakerStorage

__all__ = ["Registry", "registry"]

_Force = Literal["open", "closed"]


class Registry:
    """Named policies. ``resilient.registry`` is the process-global one.

    Args:
        storage: the shared store new breakers use unless their config names
            one (e.g. ``RedisStorage``); default: in memory."""

    def __init__(self, *, storage: BreakerStorage | None = None) -> None:
        self._storage = storage
        self._lock = threading.RLock()
        self._breakers: dict[str, CircuitBreaker] = {}
        self._explicit: set[str] = set()
        self._pending: dict[str, _Force] = {}
        self._bulkheads: dict[str, Bulkhead] = {}
        self._features: dict[str, Feature] = {}
        self._listeners = events.ListenerSet(events.GLOBAL)

    def __repr__(self) -> str:
        return f"<Registry breakers={sorted(self._breakers)}>"

    # -- breakers ------------------------------------------------------------

    def get_or_create(
        self, name: str, config: CircuitBreakerConfig | None = None
    ) -> CircuitBreaker:
        """The breaker called ``name``, created with ``config`` on first use.

        Asking again with a different explicit config is an error: two call
        sites would otherwise silently disagree about one dependency.
        """
        with self._lock:
            breaker = self._breakers.get(name)
            if breaker is None:
                breaker = CircuitBreaker(
                    name, config, listeners=self._listeners, storage=self._storage
                )
                self._breakers[name] = breaker
                if config is not None:
                    self._explicit.add(name)
                force = self._pending.pop(name, None)
                if force == "open":
                    breaker.force_open()
                elif force == "closed":
                    breaker.force_closed()
                return breaker
            if config is not None and config != breaker.config:
                if name in self._explicit:
                    raise ValueError(
                        f"circuit breaker {name!r} already exists with config "
                        f"{breaker.config!r}; got a different one: {config!r}"
                    )
                breaker._reconfigure(config)
                self._explicit.add(name)
            elif config is not None:
                self._explicit.add(name)
            return breaker

    def set_default_storage(self, storage: BreakerStorage | None) -> None:
        """Share every breaker whose config names no store through ``storage``
        (``None``: stop sharing them), those already created included."""
        with self._lock:
            self._storage = storage
            breakers = list(self._breakers.values())
        for breaker in breakers:
            breaker._use_default_storage(storage)

    def get(self, name: str) -> CircuitBreaker | None:
        """The breaker called ``name``, or ``None``."""
        return self._breakers.get(name)

    def names(self) -> list[str]:
        """Names of every breaker, sorted."""
        with self._lock:
            return sorted(self._breakers)

    def breakers(self) -> list[CircuitBreaker]:
        with self._lock:
            return [self._breakers[n] for n in sorted(self._breakers)]

    def _require(self, name: str) -> CircuitBreaker:
        breaker = self._breakers.get(name)
        if breaker is None:
            raise KeyError(f"no circuit breaker named {name!r}")
        return breaker

    def reset(self, name: str) -> None:
        """Close ``name`` and clear its window."""
        with self._lock:
            self._pending.pop(name, None)
            self._require(name).reset()

    def reset_all(self) -> None:
        """Reset every breaker; forces, pending ones included, are cleared."""
        with self._lock:
            self._pending.clear()
            breakers = list(self._breakers.values())
        for breaker in breakers:
            breaker.reset()

    def _force(self, name: str, how: _Force) -> None:
        with self._lock:
            breaker = self._breakers.get(name)
            if breaker is None:
                self._pending[name] = how
                return
        if how == "open":
            breaker.force_open()
        else:
            breaker.force_closed()

    def force_open(self, name: str) -> None:
        """Reject every call to ``name``; applies at creation if it does not exist yet."""
        self._force(name, "open")

    def force_closed(self, name: str) -> None:
        """Admit every call to ``name``; applies at creation if it does not exist yet."""
        self._force(name, "closed")

    def release(self, name: str) -> None:
        """Undo a force on ``name`` (a pending one too); otherwise nothing."""
        with self._lock:
            self._pending.pop(name, None)
            breaker = self._breakers.get(name)
        if breaker is not None:
            breaker.release()

    def pending_forces(self) -> dict[str, _Force]:
        """Forces waiting for their breaker to be created."""
        with self._lock:
            return dict(self._pending)

    @contextlib.contextmanager
    def forced_open(self, name: str) -> Iterator[None]:
        """``name`` is forced open inside the block and released after it."""
        self.force_open(name)
        try:
            yield
        finally:
            self.release(name)

    @contextlib.contextmanager
    def forced_closed(self, name: str) -> Iterator[None]:
        """``name`` is forced closed inside the block and released after it."""
        self.force_closed(name)
        try:
            yield
        finally:
            self.release(name)

    @contextlib.contextmanager
    def isolated(self) -> Iterator[Registry]:
        """A clean slate for one test, undone after it.

        Inside the block every breaker already registered (say, by a
        module-level decorator) is CLOSED with an empty window and nothing is
        forced. After it, whatever the block created, forced or tripped is
        gone: breakers, bulkheads and features declared inside are dropped,
        and names, configs, forces and breaker states are back as they were.
        Bulkheads keep their counters; listeners subscribed inside stay.
        """
        with self._lock:
            # Every per-name table (breakers, explicit configs, pending
            # forces, and any a later feature adds), copied shallowly.
            tables = {
                key: value.copy()
                for key, value in vars(self).items()
                if isinstance(value, (dict, set))
            }
            states = [(b, b._swap_state()) for b in self._breakers.values()]
            self._pending.clear()
        try:
            yield self
        finally:
            with self._lock:
                for key, saved in tables.items():
                    live = getattr(self, key)
                    live.clear()
                    live.update(saved)
                for breaker, state in states:
                    breaker._swap_state(state)

    # -- bulkheads ------------------------------------------------------------

    def bulkhead(
        self,
        name: str,
        *,
        max_concurrent: int | None = None,
        max_queue: int = 0,
        queue_timeout: float | None = None,
        config: BulkheadConfig | None = None,
    ) -> Bulkhead:
        """The bulkhead called ``name``, created with these limits on first use.

        Asking again with different limits is an error, as for breakers.
        """
        if config is None:
            if max_concurrent is None:
                raise TypeError(f"registry.bulkhead({name!r}) needs max_concurrent")
            config = BulkheadConfig(
                max_concurrent, max_queue=max_queue, queue_timeout=queue_timeout
            )
        elif max_concurrent is not None or max_queue or queue_timeout is not None:
            raise TypeError(f"registry.bulkhead({name!r}): pass either a config or limits")
        with self._lock:
            bulkhead = self._bulkheads.get(name)
            if bulkhead is None:
                bulkhead = Bulkhead(name, config, listeners=self._listeners)
                self._bulkheads[name] = bulkhead
            elif bulkhead.config != config:
                raise ValueError(
                    f"bulkhead {name!r} already exists with {bulkhead.config!r}; "
                    f"got different limits: {config!r}"
                )
            return bulkhead

    def get_bulkhead(self, name: str) -> Bulkhead | None:
        """The bulkhead called ``name``, or ``None``."""
        return self._bulkheads.get(name)

    def bulkheads(self) -> list[Bulkhead]:
        """Every bulkhead, sorted by name."""
        with self._lock:
            return [self._bulkheads[n] for n in sorted(self._bulkheads)]

    # -- health and features -------------------------------------------------

    def _states(self) -> dict[str, health.CircuitState]:
        # Reading .state lets an expired OPEN timer (or a health check)
        # move a breaker to HALF_OPEN, as any caller would see it.
        return {breaker.name: breaker.state for breaker in self.breakers()}

    def _pending_open(self) -> list[str]:
        with self._lock:
            return [name for name, how in self._pending.items() if how == "open"]

    def health(self, *, rejection_window: float = 60.0) -> HealthReport:
        """Every breaker's state, every bulkhead's load, every feature's
        availability, and one status: healthy, degraded, unhealthy or critical.

        A bulkhead counts as rejecting if it rejected a call within the last
        ``rejection_window`` seconds.
        """
        since = _clock.monotonic() - rejection_window
        bulkheads = []
        for bulkhead in self.bulkheads():
            m = bulkhead.metrics()
            bulkheads.append(
                health.BulkheadHealth(
                    name=bulkhead.name,
                    active=m.active,
                    queued=m.queued,
                    max_concurrent=m.max_concurrent,
                    max_queue=m.max_queue,
                    utilization=m.utilization,
                    rejected=m.rejected,
                    rejecting=bulkhead.rejected_since(since),
                )
            )
        with self._lock:
            features = dict(sorted(self._features.items()))
        return health.build_report(
            self._states(), bulkheads, features, pending_open=self._pending_open()
        )

    def feature(self, name: str, depends_on: Iterable[str] = ()) -> Feature:
        """Declare a feature that works only while the breakers it depends on
        let calls through. Declaring it again with other dependencies is an error."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"feature name must be a non-empty str, got {name!r}")
        if isinstance(depends_on, str):
            raise TypeError(
                f"feature {name!r}: depends_on must be a list of breaker names, "
                f"got the str {depends_on!r}"
            )
        feature = Feature(name, tuple(depends_on))
        with self._lock:
            known = self._features.setdefault(name, feature)
        if known != feature:
            raise ValueError(
                f"feature {name!r} already depends on {list(known.depends_on)}; "
                f"got {list(feature.depends_on)}"
            )
        return known

    def is_available(self, name: str) -> bool:
        """False when any breaker feature ``name`` depends on is open or forced open."""
        feature = self._features.get(name)
        if feature is None:
            raise KeyError(f"no feature named {name!r}")
        states = {}
        for dep in feature.depends_on:
            breaker = self._breakers.get(dep)
            if breaker is not None:
                states[dep] = breaker.state
        return health.available(feature, health.dependency_states(states, self._pending_open()))

    def degradation_level(self) -> DegradationLevel:
        """none, minor, moderate, severe or critical, by the share of
        features unavailable: 0, < 25 %, < 50 %, < 100 %, all."""
        with self._lock:
            features = list(self._features)
        unavailable = sum(1 for name in features if not self.is_available(name))
        return health.degradation_level(unavailable, len(features))

    # -- events --------------------------------------------------------------

    def subscribe(self, listener: events.Listener | events.Reader) -> Callable[[], None]:
        """Listen to every event of every policy in this registry."""
        return self._listeners.subscribe(listener)

    @property
    def listeners(self) -> events.ListenerSet:
        return self._listeners


registry = Registry()
