"""Wait tickets: how a retry that met an open breaker waits for its probe.

A breaker hands out at most ``half_open_max_calls`` tickets per half-open
period (fewer while probes from an earlier period still run). A ticket
keeps one probe permit of the coming half-open period for its holder, from
``due`` on. The retry sleeps until then, makes its next attempt with the
ticket current (``holding``), and releases the ticket when that attempt
ends, or when it is cancelled first: a ticket never outlives its holder.
A retry that gets no ticket gives up at once.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from .state import BreakerCore

__all__ = ["Issuer", "WaitTicket", "holding", "ticket_for"]


class Issuer(Protocol):
    """What hands tickets out and takes them back (a ``CircuitBreaker``)."""

    def _wait_ticket(self) -> WaitTicket | None: ...
    def _unreserve(self, ticket: WaitTicket) -> None: ...


class WaitTicket:
    """One kept probe permit of ``breaker`` (``reservation`` in its core),
    usable from monotonic time ``due`` on."""

    __slots__ = ("breaker", "core", "due", "reservation")

    def __init__(self, breaker: Issuer, core: BreakerCore, reservation: int, due: float) -> None:
        self.breaker = breaker
        self.core = core
        self.reservation = reservation
        self.due = due

    def release(self) -> None:
        """Give the kept permit back if it was not used (idempotent)."""
        if self.reservation >= 0:
            self.breaker._unreserve(self)
            self.reservation = -1


#: The ticket of the attempt running in this context, for its breaker to use.
holding: ContextVar[WaitTicket | None] = ContextVar("resilient_wait_ticket", default=None)


def ticket_for(breaker: Issuer) -> WaitTicket | None:
    """A probe permit ``breaker`` keeps for a retry that will wait for it,
    or None when its coming half-open period has none left to keep."""
    return breaker._wait_ticket()
