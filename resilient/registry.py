"""``Registry``: breakers and bulkheads by name, forcing, health and features."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Literal

from . import events
from .bulkhead import Bulkhead, BulkheadConfig
from .circuit_breaker import CircuitBreaker, CircuitBreakerConfig

if TYPE_CHECKING:
    from ._storage import BreakerStorage

__all__ = ["Registry", "registry"]

_Force = Literal["open", "closed"]


class Registry:
    """Named policies. ``resilient.registry`` is the process-global one."""

    def __init__(self, *, storage: BreakerStorage | None = None) -> None:
        self._storage = storage
        self._lock = threading.RLock()
        self._breakers: dict[str, CircuitBreaker] = {}
        self._explicit: set[str] = set()
        self._pending: dict[str, _Force] = {}
        self._bulkheads: dict[str, Bulkhead] = {}
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

    # -- events --------------------------------------------------------------

    def subscribe(self, listener: events.Listener) -> Callable[[], None]:
        """Listen to every event of every policy in this registry."""
        return self._listeners.subscribe(listener)

    @property
    def listeners(self) -> events.ListenerSet:
        return self._listeners


registry = Registry()
