"""Typed events every policy emits, and how listeners subscribe to them.

Emitting costs one check when nobody listens: policies test
``events.hub.listening`` before building an event.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from . import _clock

__all__ = [
    "BulkheadRejected",
    "CallFailed",
    "CallRejected",
    "CallStarted",
    "CallSucceeded",
    "ChaosInjected",
    "Event",
    "FallbackUsed",
    "Listener",
    "ListenerSet",
    "RateLimited",
    "RetriesExhausted",
    "RetryAttempted",
    "StateChanged",
    "StreamInactive",
    "TimedOut",
    "get_request_id",
    "hub",
    "request_context",
    "subscribe",
]

log = logging.getLogger("resilient")

_request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "resilient_request_id", default=None
)


def get_request_id() -> str | None:
    """The request id of the current context, or ``None`` outside any."""
    return _request_id.get()


@contextlib.contextmanager
def request_context(request_id: str | None = None) -> Iterator[str]:
    """Set (or generate) the request id for every call inside the block."""
    rid = request_id if request_id is not None else uuid.uuid4().hex
    token = _request_id.set(rid)
    try:
        yield rid
    finally:
        _request_id.reset(token)


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """What every event carries. ``name`` is the policy's name."""

    name: str
    policy: str
    timestamp: float
    monotonic: float
    request_id: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class CallStarted(Event):
    pass


@dataclass(frozen=True, slots=True, kw_only=True)
class CallSucceeded(Event):
    duration: float


@dataclass(frozen=True, slots=True, kw_only=True)
class CallFailed(Event):
    duration: float
    error: BaseException


@dataclass(frozen=True, slots=True, kw_only=True)
class CallRejected(Event):
    state: str
    remaining: float


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryAttempted(Event):
    attempt: int
    delay: float
    error: BaseException | None


@dataclass(frozen=True, slots=True, kw_only=True)
class RetriesExhausted(Event):
    attempts: int
    error: BaseException | None


@dataclass(frozen=True, slots=True, kw_only=True)
class RateLimited(Event):
    retry_after: float


@dataclass(frozen=True, slots=True, kw_only=True)
class StateChanged(Event):
    old_state: str
    new_state: str


@dataclass(frozen=True, slots=True, kw_only=True)
class TimedOut(Event):
    timeout: float


@dataclass(frozen=True, slots=True, kw_only=True)
class BulkheadRejected(Event):
    max_concurrent: int
    max_queue: int


@dataclass(frozen=True, slots=True, kw_only=True)
class FallbackUsed(Event):
    error: BaseException | None


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamInactive(Event):
    inactivity: float


@dataclass(frozen=True, slots=True, kw_only=True)
class ChaosInjected(Event):
    """``with_chaos`` changed a call: ``kind`` is ``"latency"`` (``delay``
    seconds added before it), ``"fault"`` (``error`` raised instead of
    running it) or ``"result"`` (a result returned instead of running it)."""

    kind: str
    delay: float
    error: BaseException | None


Listener = Callable[[Event], object]


class _Hub:
    """Counts live subscriptions everywhere, so emitters can skip all work at zero."""

    __slots__ = ("_count", "_failed", "listening")

    def __init__(self) -> None:
        self._count = 0
        self.listening = False
        self._failed: set[int] = set()

    def _added(self) -> None:
        self._count += 1
        self.listening = True

    def _removed(self) -> None:
        self._count -= 1
        self.listening = self._count > 0

    def deliver(self, listeners: tuple[Listener, ...], event: Event) -> None:
        for listener in listeners:
            try:
                listener(event)
            except Exception:
                # Logged once per listener: a broken listener must never
                # break the protected call, nor flood the log.
                key = id(listener)
                if key not in self._failed:
                    self._failed.add(key)
                    log.exception("resilient: event listener %r raised", listener)


hub = _Hub()


class ListenerSet:
    """Listeners of one scope (a policy, a registry, or the whole process)."""

    __slots__ = ("listeners", "parent")

    def __init__(self, parent: ListenerSet | None = None) -> None:
        self.listeners: tuple[Listener, ...] = ()
        self.parent = parent

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        if not callable(listener):
            raise TypeError(f"listener must be callable, got {listener!r}")
        self.listeners = (*self.listeners, listener)
        hub._added()
        done = False

        def unsubscribe() -> None:
            nonlocal done
            if done:
                return
            done = True
            items = list(self.listeners)
            items.remove(listener)
            self.listeners = tuple(items)
            hub._removed()

        return unsubscribe

    def emit(self, event: Event) -> None:
        scope: ListenerSet | None = self
        while scope is not None:
            if scope.listeners:
                hub.deliver(scope.listeners, event)
            scope = scope.parent


GLOBAL = ListenerSet()


def subscribe(listener: Listener) -> Callable[[], None]:
    """Listen to every event of every policy in the process."""
    return GLOBAL.subscribe(listener)


def stamp() -> dict[str, object]:
    """The common fields of an event made now, in the current context."""
    return {
        "timestamp": _clock.wall(),
        "monotonic": _clock.monotonic(),
        "request_id": _request_id.get(),
    }
