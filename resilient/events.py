"""The typed events policies emit, and how listeners subscribe to them.

Events are immutable and cheap: each is a tuple underneath (building one
costs a fraction of a frozen dataclass), with named, typed, read-only
fields. A policy builds an event only when a listener in its own scope will
receive it: a scope is a policy, a registry, or the whole process (each
policy's scope sits inside its registry's, which sits inside the process's).

Two levels of call events
-------------------------
``CallStarted``, ``CallSucceeded``, ``CallFailed`` and ``CallRejected`` carry a
``level``:

- ``"request"``: the call as its caller saw it, emitted once per call by the
  outermost layer of a decorated function (or composed policy), however many
  layers are stacked and however many attempts a retry makes.
- ``"policy"``: one policy's own view of one call through it (a breaker
  records every attempt a retry makes through it).

Counters (``MetricsCollector``, the Prometheus and OpenTelemetry exporters)
need no events at all: they read the counters each policy keeps in place.
"""

from __future__ import annotations

import functools
import logging
import threading
import weakref
from collections.abc import Callable, Sequence
from operator import itemgetter
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Literal, Protocol, TypeVar, overload

from ._execution import request_id as _request
from ._execution.request_id import get_request_id, request_context
from ._runtime import clock as _clock
from ._runtime import fork as _fork

__all__ = [
    "POLICY",
    "REQUEST",
    "BulkheadRejected",
    "CallFailed",
    "CallRejected",
    "CallStarted",
    "CallSucceeded",
    "ChaosInjected",
    "Event",
    "FailoverUsed",
    "FallbackUsed",
    "HedgeStarted",
    "Level",
    "Listener",
    "RateLimited",
    "Reader",
    "Reconfigured",
    "RetriesExhausted",
    "RetryAttempted",
    "StateChanged",
    "StreamInactive",
    "TimedOut",
    "get_request_id",
    "request_context",
    "subscribe",
]

log = logging.getLogger("resilient")

T = TypeVar("T")

Level = Literal["request", "policy"]
"""The ``level`` of a call event: ``"request"`` (the call as its caller saw
it) or ``"policy"`` (one policy's own view of a call through it)."""
REQUEST: Level = "request"
"""The call as its caller saw it, once per call."""
POLICY: Level = "policy"
"""One policy's own view of one call through it."""


# -- the event types ---------------------------------------------------------------

if TYPE_CHECKING:

    class _Field(Generic[T]):
        """A read-only field of an event (typed for checkers)."""

        def __init__(self, index: int, default: object = ...) -> None: ...
        @overload
        def __get__(self, obj: None, owner: Any) -> _Field[T]: ...
        @overload
        def __get__(self, obj: object, owner: Any) -> T: ...
        def __get__(self, obj: object, owner: Any) -> T | _Field[T]: ...

else:

    class _Field:
        def __class_getitem__(cls, item):
            return cls

        def __new__(cls, index, *default):
            if not default:
                return property(itemgetter(index))
            (value,) = default
            # A field added later: events built without it read its default.
            return property(lambda event: event[index] if len(event) > index else value)


_MISSING: Any = object()


class Event(tuple):  # type: ignore[type-arg]
    """What every event carries: ``name`` (the policy's name), ``policy``
    (its kind), ``timestamp`` (wall clock), ``monotonic`` and ``request_id``.

    Construct with keywords (``CallStarted(name=..., policy=..., ...)``);
    fields are read-only.
    """

    __slots__ = ()
    _fields: ClassVar[tuple[str, ...]] = ("name", "policy", "timestamp", "monotonic", "request_id")
    _defaults: ClassVar[dict[str, object]] = {}

    name: _Field[str] = _Field(0)
    policy: _Field[str] = _Field(1)
    timestamp: _Field[float] = _Field(2)
    monotonic: _Field[float] = _Field(3)
    request_id: _Field[str | None] = _Field(4)

    def __new__(cls, **fields: Any) -> Any:
        values = []
        for f in cls._fields:
            value = fields.pop(f, _MISSING)
            if value is _MISSING:
                value = cls._defaults.get(f, _MISSING)
                if value is _MISSING:
                    raise TypeError(f"{cls.__name__}() missing the field {f!r}")
            values.append(value)
        if fields:
            raise TypeError(f"{cls.__name__}() has no field {', '.join(map(repr, sorted(fields)))}")
        return tuple.__new__(cls, values)

    def __repr__(self) -> str:
        inner = ", ".join(f"{f}={v!r}" for f, v in zip(self._fields, self, strict=True))
        return f"{type(self).__name__}({inner})"

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and tuple.__eq__(self, other)

    def __ne__(self, other: object) -> bool:
        return not self == other

    __hash__ = tuple.__hash__

    def __getnewargs_ex__(self) -> tuple[tuple[Any, ...], dict[str, Any]]:
        return (), dict(zip(self._fields, self, strict=True))

    def __reduce__(self) -> Any:
        return (_rebuild, (type(self), tuple(self)))

    def _asdict(self) -> dict[str, Any]:
        return dict(zip(self._fields, self, strict=True))


def _rebuild(cls: type[Event], values: tuple[Any, ...]) -> Event:
    return tuple.__new__(cls, values)


_BASE = len(Event._fields)
_LEVELLED: dict[str, object] = {"level": POLICY}  # never mutated


class CallStarted(Event):
    """A request starts (request level only): ``level``."""

    __slots__ = ()
    _fields = (*Event._fields, "level")
    _defaults = _LEVELLED
    level: _Field[Level] = _Field(_BASE)


class CallSucceeded(Event):
    """A request returned, or a breaker's or bulkhead's call ended well:
    ``duration`` (seconds) and ``level``."""

    __slots__ = ()
    _fields = (*Event._fields, "duration", "level")
    _defaults = _LEVELLED
    duration: _Field[float] = _Field(_BASE)
    level: _Field[Level] = _Field(_BASE + 1)


class CallFailed(Event):
    """A request raised, a breaker counted a failure, or a bulkhead's admitted
    call raised: ``duration`` (seconds), ``error`` and ``level``."""

    __slots__ = ()
    _fields = (*Event._fields, "duration", "error", "level")
    _defaults = _LEVELLED
    duration: _Field[float] = _Field(_BASE)
    error: _Field[BaseException] = _Field(_BASE + 1)
    level: _Field[Level] = _Field(_BASE + 2)


class CallRejected(Event):
    """A call refused without running: ``state`` is the breaker's state,
    ``"full"`` for a bulkhead, ``"rate_limited"`` for a rate limiter.
    ``shadow``: a shadow breaker would have refused it, and let it run."""

    __slots__ = ()
    _fields = (*Event._fields, "state", "remaining", "level", "shadow")
    _defaults: ClassVar[dict[str, object]] = {"level": POLICY, "shadow": False}
    state: _Field[str] = _Field(_BASE)
    remaining: _Field[float] = _Field(_BASE + 1)
    level: _Field[Level] = _Field(_BASE + 2)
    shadow: _Field[bool] = _Field(_BASE + 3, False)


class RetryAttempted(Event):
    """Before each wait of a retry: ``attempt`` (the one that failed, from 1),
    ``delay`` (seconds until the next) and ``error`` (``None`` for a
    rejected result)."""

    __slots__ = ()
    _fields = (*Event._fields, "attempt", "delay", "error")
    attempt: _Field[int] = _Field(_BASE)
    delay: _Field[float] = _Field(_BASE + 1)
    error: _Field[BaseException | None] = _Field(_BASE + 2)


class RetriesExhausted(Event):
    """A retry gave up on a retryable failure after ``attempts`` attempts;
    ``error`` is the last one's (``None`` for a rejected result)."""

    __slots__ = ()
    _fields = (*Event._fields, "attempts", "error")
    attempts: _Field[int] = _Field(_BASE)
    error: _Field[BaseException | None] = _Field(_BASE + 1)


class RateLimited(Event):
    """A retry waits the ``retry_after`` (seconds) its failure asked for (a
    server's ``Retry-After``, a rate limiter's refusal)."""

    __slots__ = ()
    _fields = (*Event._fields, "retry_after")
    retry_after: _Field[float] = _Field(_BASE)


class StateChanged(Event):
    """A breaker moved from ``old_state`` to ``new_state`` (the values of
    ``CircuitState``), forced moves included. ``shadow``: a shadow breaker
    moved (it rejects nothing: what a real one would have done)."""

    __slots__ = ()
    _fields = (*Event._fields, "old_state", "new_state", "shadow")
    _defaults: ClassVar[dict[str, object]] = {"shadow": False}
    old_state: _Field[str] = _Field(_BASE)
    new_state: _Field[str] = _Field(_BASE + 1)
    shadow: _Field[bool] = _Field(_BASE + 2, False)


class TimedOut(Event):
    """A call ran out of its ``timeout`` (seconds)."""

    __slots__ = ()
    _fields = (*Event._fields, "timeout")
    timeout: _Field[float] = _Field(_BASE)


class BulkheadRejected(Event):
    """A bulkhead turned a call away: its ``max_concurrent`` and
    ``max_queue``."""

    __slots__ = ()
    _fields = (*Event._fields, "max_concurrent", "max_queue")
    max_concurrent: _Field[int] = _Field(_BASE)
    max_queue: _Field[int] = _Field(_BASE + 1)


class HedgeStarted(Event):
    """A hedged call started another attempt (``attempt`` 2 for the first hedge)."""

    __slots__ = ()
    _fields = (*Event._fields, "attempt")
    attempt: _Field[int] = _Field(_BASE)


class FallbackUsed(Event):
    """A fallback answered instead of the call; ``error`` is what the call
    raised."""

    __slots__ = ()
    _fields = (*Event._fields, "error")
    error: _Field[BaseException | None] = _Field(_BASE)


class FailoverUsed(Event):
    """A failover left a target: ``target`` is the name of the one it tries
    next, ``error`` what the one it left raised."""

    __slots__ = ()
    _fields = (*Event._fields, "target", "error")
    target: _Field[str] = _Field(_BASE)
    error: _Field[BaseException] = _Field(_BASE + 1)


class StreamInactive(Event):
    """An async stream yielded nothing for ``inactivity`` seconds."""

    __slots__ = ()
    _fields = (*Event._fields, "inactivity")
    inactivity: _Field[float] = _Field(_BASE)


class ChaosInjected(Event):
    """``with_chaos`` changed a call: ``kind`` is ``"latency"`` (``delay``
    seconds added before it), ``"fault"`` (``error`` raised instead of
    running it) or ``"result"`` (a result returned instead of running it)."""

    __slots__ = ()
    _fields = (*Event._fields, "kind", "delay", "error")
    kind: _Field[str] = _Field(_BASE)
    delay: _Field[float] = _Field(_BASE + 1)
    error: _Field[BaseException | None] = _Field(_BASE + 2)


class Reconfigured(Event):
    """A breaker, bulkhead or rate limiter adopted new settings in place
    (``reconfigure``): ``changes`` maps each field that changed to its
    ``(old, new)`` values."""

    __slots__ = ()
    _fields = (*Event._fields, "changes")
    changes: _Field[dict[str, tuple[Any, Any]]] = _Field(_BASE)


def announce_settings(policy: str, name: str, scope: ListenerSet, changes: dict[str, Any]) -> None:
    """Log a reconfiguration of ``name`` and emit its ``Reconfigured`` event."""
    log.warning(
        "%s %r reconfigured: %s",
        policy,
        name,
        ", ".join(f"{field} {old!r} -> {new!r}" for field, (old, new) in changes.items()),
        extra={"policy_name": name, "changes": changes},
    )
    if scope.events:
        scope.new(Reconfigured, name, policy, changes)


Listener = Callable[[Event], object]
"""What ``subscribe`` takes besides a ``Reader``: a callable taking one event."""


class Reader(Protocol):
    """A counter reader (``MetricsCollector``, the exporters' readers): what
    ``subscribe`` attaches by its ``_watch(scope)``, which returns the
    function detaching it."""

    def _watch(self, scope: ListenerSet) -> Callable[[], None]: ...


# -- scopes and subscription ----------------------------------------------------------
#
# Internal, and not exported: the scopes (``ListenerSet``, ``GLOBAL``) and the
# gates the hot path reads (``Gate`` and its levels) are what the policies,
# the registry and the counter readers wire together. Users subscribe with
# ``subscribe`` below, ``registry.subscribe`` or ``policy.subscribe``.

# Subscribing is rare and may race with another thread subscribing; emitting
# never takes this lock (it reads immutable tuples and flags).
_subscribe_lock = threading.RLock()
_fork.renew_module_locks(__name__, "_subscribe_lock")
_failed: set[int] = set()

# Gate levels, read on every call by each layer (one attribute read).
NONE, METERED, EVENTS = 0, 1, 2


class Gate:
    """What the hot path of one layer reads to know whether anyone watches.

    ``level`` is ``NONE`` (the bare fast path), ``METERED`` (a counter
    reader, such as a ``MetricsCollector``, is in scope of the request: time
    it) or ``EVENTS`` (a listener is in scope of some layer: build events).
    ``entry`` is the scope whose request is counted (``None``: a layer
    inside a chain, which only cares about its own listeners); ``inner`` are
    the scopes whose listeners make the whole call take the events path.

    A listener of what policies do only (``every_call=False``: tracing)
    sends the request through its events path (where its span opens) but
    leaves every layer's gate as it is: the layers take their fast paths,
    and emit what they do (retries, rejections, ...) from their slow paths,
    which read ``scope.events``.
    """

    __slots__ = ("__weakref__", "entry", "inner", "level")

    def __init__(self, entry: ListenerSet | None, inner: tuple[ListenerSet, ...] = ()) -> None:
        self.entry = entry
        self.inner = inner
        self.level = NONE
        with _subscribe_lock:
            for scope in {*inner, *((entry,) if entry is not None else ())}:
                scope._add_gate(self)
            self.refresh()

    def refresh(self) -> None:
        entry = self.entry
        level = NONE
        if entry is not None:
            level = EVENTS if entry.events else METERED if entry.metered else NONE
        if level != EVENTS and any(scope.calls for scope in self.inner):
            level = EVENTS
        self.level = level


class ListenerSet:
    """The listeners of one scope (a policy, a registry, or the whole process),
    and the counter readers watching it."""

    __slots__ = (
        "__weakref__",
        "_children",
        "_dead_children",
        "_gates",
        "_on_child_death",
        "_stats",
        "calls",
        "events",
        "listeners",
        "metered",
        "parent",
        "readers",
    )

    def __init__(self, parent: ListenerSet | None = None) -> None:
        self.listeners: tuple[Listener, ...] = ()
        self.readers: tuple[object, ...] = ()
        self.parent = parent
        self.events = False  # a listener in scope: emit events
        self.calls = False  # and one wants every call's events (every_call)
        self.metered = False
        # Weak references, pruned as they die: a scope must stay small.
        self._children: tuple[weakref.ref[ListenerSet], ...] = ()
        self._gates: tuple[weakref.ref[Gate], ...] = ()
        self._dead_children = 0
        self._on_child_death: Callable[[object], None] | None = None  # made by a first child
        # The counters kept in this scope: a tuple, or a list once many
        # (resilient._execution.counters keeps it).
        self._stats: Sequence[weakref.ref[Any]] = ()
        with _subscribe_lock:
            if parent is not None:
                parent._add_child(self)
            self._refresh()

    # Under ``_subscribe_lock``. Children (the scopes of policies, which
    # come and go: per-key breakers, say) are counted as they die, and
    # pruned once the dead are half of them: after many have died, the
    # tuple is not copied whole, dead ones and all, for every new child.
    # The callback may run in any thread, at any time: it only counts (a
    # count lost to a race delays a pruning, nothing more). Gates (one per
    # chain, which rarely die) are pruned when their number is a power of
    # two: a weak reference without a callback is shared by the scopes a
    # gate is in.

    def _add_child(self, child: ListenerSet) -> None:
        children = self._children
        if 2 * self._dead_children >= len(children) > 0:
            children = tuple(r for r in children if r() is not None)
            self._dead_children = 0
        counting = self._on_child_death
        if counting is None:  # one callback for all its children's references
            counting = self._on_child_death = _death_counter(weakref.ref(self))
        self._children = (*children, weakref.ref(child, counting))

    def _add_gate(self, gate: Gate) -> None:
        gates = self._gates
        if len(gates) >= 8 and (len(gates) & (len(gates) - 1)) == 0:
            gates = tuple(r for r in gates if r() is not None)
        self._gates = (*gates, weakref.ref(gate))

    def _refresh(self) -> None:
        parent = self.parent
        self.events = bool(self.listeners) or (parent is not None and parent.events)
        self.calls = any(type(listener) is not _Quiet for listener in self.listeners) or (
            parent is not None and parent.calls
        )
        self.metered = bool(self.readers) or self.events or (parent is not None and parent.metered)
        for gate_ref in self._gates:
            gate = gate_ref()
            if gate is not None:
                gate.refresh()
        for child_ref in self._children:
            child = child_ref()
            if child is not None:
                child._refresh()

    def descendants(self) -> list[ListenerSet]:
        """This scope and every live scope inside it."""
        found = [self]
        for child_ref in self._children:
            child = child_ref()
            if child is not None:
                found.extend(child.descendants())
        return found

    def within(self, scope: ListenerSet) -> bool:
        """Whether this scope is ``scope`` or inside it."""
        here: ListenerSet | None = self
        while here is not None:
            if here is scope:
                return True
            here = here.parent
        return False

    def subscribe(
        self, listener: Listener | Reader, *, every_call: bool = True
    ) -> Callable[[], None]:
        """Deliver every event of this scope to ``listener``; returns the
        unsubscriber. An object with a ``_watch(scope)`` method (such as a
        ``MetricsCollector``) is attached as a counter reader instead, and
        costs the hot path no event at all.

        ``every_call=False``: the listener wants what the policies do
        (retries, rejections, state changes, ...) and each request's
        events path, not every layer's per-call events: the layers keep
        their fast paths (see ``Gate``). It may still receive per-call
        events, from the paths that build them anyway."""
        watch = getattr(listener, "_watch", None)
        if watch is not None and not isinstance(listener, type):
            return self._add_reader(listener, watch)
        if not callable(listener):
            raise TypeError(f"listener must be callable, got {listener!r}")
        if not every_call:
            # Marked by its type; a partial forwards each event with no
            # Python frame of its own.
            listener = _Quiet(listener)
        with _subscribe_lock:
            self.listeners = (*self.listeners, listener)
            self._refresh()
        done = False

        def unsubscribe() -> None:
            nonlocal done
            with _subscribe_lock:
                if done:
                    return
                done = True
                items = list(self.listeners)
                items.remove(listener)
                self.listeners = tuple(items)
                _failed.discard(id(listener))
                self._refresh()

        return unsubscribe

    def _add_reader(
        self, reader: object, watch: Callable[[ListenerSet], Callable[[], None]]
    ) -> Callable[[], None]:
        with _subscribe_lock:
            self.readers = (*self.readers, reader)
            self._refresh()
        detach = watch(self)
        done = False

        def unsubscribe() -> None:
            nonlocal done
            with _subscribe_lock:
                if done:
                    return
                done = True
                items = list(self.readers)
                items.remove(reader)
                self.readers = tuple(items)
                self._refresh()
            detach()

        return unsubscribe

    def emit(self, event: Event) -> None:
        """Deliver ``event`` to this scope's listeners and every enclosing scope's."""
        scope: ListenerSet | None = self
        while scope is not None:
            for listener in scope.listeners:
                try:
                    listener(event)
                except Exception:
                    _failed_listener(listener)
            scope = scope.parent

    def new(self, kind: type[Event], name: str, policy: str, *fields: Any) -> None:
        """Build a ``kind`` event stamped now (in the current request) and emit it."""
        self.emit(
            tuple.__new__(
                kind,
                (
                    name,
                    policy,
                    _clock.wall_now(),
                    _clock.now(),
                    _request.current.get(),
                    *fields,
                ),
            )
        )


class _Quiet(functools.partial):  # type: ignore[type-arg]
    """A listener subscribed with ``every_call=False``."""


def _death_counter(scope: weakref.ref[ListenerSet]) -> Callable[[object], None]:
    """The callback of a scope's references to its children: it counts their
    deaths, holding the scope weakly (a strong hold would make a cycle, and
    the scope would wait for the cyclic collector to be freed)."""

    def died(ref: object) -> None:
        owner = scope()
        if owner is not None:
            owner._dead_children += 1

    return died


def _failed_listener(listener: Listener) -> None:
    # Logged once per listener: a broken listener must never break the
    # protected call, nor flood the log.
    key = id(listener)
    if key not in _failed:
        _failed.add(key)
        log.exception("resilient: event listener %r raised", listener)


GLOBAL = ListenerSet()


def subscribe(listener: Listener | Reader) -> Callable[[], None]:
    """Listen to every event of every policy in the process (a
    ``MetricsCollector`` passed here reads every policy's counters).

    Args:
        listener: a callable taking one event, or a ``MetricsCollector``.

    Returns:
        A function that unsubscribes it."""
    return GLOBAL.subscribe(listener)
