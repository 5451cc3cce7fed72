"""What a breaker needs from a shared store (``CircuitBreakerConfig.storage``).

A breaker keeps deciding on its own, from a local core, until a store says
otherwise. The store never sits on the hot path: the breaker asks it only for
a half-open probe (``SharedBreaker.acquire``) and for manual control; it
tells it about failures with ``SharedBreaker.poke`` (a wake-up, no I/O),
and the store pulls counts and pushes verdicts in the background through
``CircuitBreaker.with_core``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Literal, NamedTuple, Protocol, TypeVar

if TYPE_CHECKING:
    from .state import BreakerCore, CircuitState, Rules

__all__ = ["Action", "BreakerStorage", "Outcome", "SharedBreaker", "StoredBreaker", "Verdict"]

T = TypeVar("T")

Action = Literal["force_open", "force_closed", "release", "reset"]
Outcome = Literal["success", "failure", "ignored"]


class Verdict(NamedTuple):
    """The fleet's answer to a request for a half-open probe."""

    kind: Literal["probe", "reject", "admit"]
    state: CircuitState
    remaining: float
    probe: object = None  # handed back to SharedBreaker.finished


class SharedBreaker(Protocol):
    """One breaker's link to the store."""

    def acquire(self) -> Verdict | None:
        """Ask for a half-open probe; ``None`` when the store cannot answer."""

    async def acquire_async(self) -> Verdict | None:
        """``acquire`` without blocking the event loop."""

    def finished(self, probe: object, outcome: Outcome) -> None:
        """Report how a probe granted by ``acquire`` ended (queued, no I/O)."""

    def poke(self) -> None:
        """A failure was recorded: send the counts soon (a wake-up, no I/O)."""

    def control(self, action: Action) -> None:
        """Apply ``action`` (already applied locally) fleet-wide, now or when
        the store is reachable again."""

    def detach(self) -> None:
        """Stop sharing this breaker."""


class StoredBreaker(Protocol):
    """What a store sees of a breaker (``CircuitBreaker`` is one)."""

    @property
    def name(self) -> str: ...

    @property
    def identity(self) -> str | tuple[str, str]:
        """Its name, or ``(group, key)`` for a per-key breaker."""
        ...

    @property
    def config(self) -> Rules:
        """Its settings (a ``CircuitBreakerConfig``), as the rules read them."""
        ...

    def with_core(self, fn: Callable[[BreakerCore, float], T]) -> T:
        """Run ``fn(core, now)`` under the breaker's lock, then announce the
        transitions it made (how a store reads counts and applies verdicts)."""
        ...


class BreakerStorage(Protocol):
    """A store breakers share their state through, e.g. ``resilient.redis.RedisStorage``."""

    def attach(self, breaker: StoredBreaker) -> SharedBreaker: ...
