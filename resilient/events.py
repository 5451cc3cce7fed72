"""Typed events every policy emits, how listeners subscribe to them, and how
one call of a decorated function is counted as exactly one request.

Emitting costs one check when nobody listens: policies test
``events.hub.listening`` before building an event, and only then call into
the request scope below.

Two levels of call events
-------------------------
``CallStarted``, ``CallSucceeded``, ``CallFailed`` and ``CallRejected`` carry a
``level``:

- ``"request"``: the call as its caller saw it. The outermost resilient layer
  of a call emits exactly one ``CallStarted`` and, unless the call was
  cancelled or interrupted, exactly one of the other three, however many
  layers are stacked and however many attempts a retry makes.
- ``"policy"``: one policy's own view of one call through it (a breaker
  records every attempt a retry makes through it; a result its
  ``result_predicate`` rejects is a failure to the breaker and a success to
  the caller).

The request scope
-----------------
A contextvar holds the :class:`RequestScope` of the call in progress while
control is *between* layers; the user's own function always runs with it
cleared, so a decorated function called from inside another one is a
request of its own (it shares the request id, though). A policy learns
whether the callable it was given is another layer from the marker
:func:`mark_layer` puts on every wrapper ``resilient`` makes.

How a policy takes part (only when someone listens, so one check otherwise)::

    def _call(self, fn, args, kwargs):
        if events.hub.listening and events.entering(fn, self):
            return events.run_request(
                self._listeners, name, "retry", self._call, fn, args, kwargs, owner=self
            )
        ...  # the policy's own work, calling fn as usual

``run_request`` opens the request if no layer has, then calls ``_call``
again with ``fn`` wrapped so that :func:`entering` says no. The async twins
are :func:`arun_request` and :func:`astream_request`; a context manager
uses :func:`begin_request`.
"""

from __future__ import annotations

import contextvars
import logging
import threading
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from . import _clock, _request
from ._request import get_request_id, new_request_id, request_context
from .errors import BulkheadFullError, CircuitOpenError

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
    "FallbackUsed",
    "Level",
    "Listener",
    "ListenerSet",
    "RateLimited",
    "RequestScope",
    "RetriesExhausted",
    "RetryAttempted",
    "StateChanged",
    "StreamInactive",
    "TimedOut",
    "arun_request",
    "astream_request",
    "ashield",
    "begin_request",
    "entering",
    "get_request_id",
    "hub",
    "is_layer",
    "mark_layer",
    "new_request_id",
    "request_context",
    "run_request",
    "shield",
    "stamp",
    "subscribe",
]

log = logging.getLogger("resilient")

R = TypeVar("R")
T = TypeVar("T")

Level = Literal["request", "policy"]
REQUEST: Level = "request"
POLICY: Level = "policy"


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
    level: Level = POLICY


@dataclass(frozen=True, slots=True, kw_only=True)
class CallSucceeded(Event):
    duration: float
    level: Level = POLICY


@dataclass(frozen=True, slots=True, kw_only=True)
class CallFailed(Event):
    duration: float
    error: BaseException
    level: Level = POLICY


@dataclass(frozen=True, slots=True, kw_only=True)
class CallRejected(Event):
    """A call refused without running: ``state`` is the breaker's state, or
    ``"full"`` for a bulkhead (at request level)."""

    state: str
    remaining: float
    level: Level = POLICY


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

# Subscribing is rare and may race with another thread subscribing; emitting
# never takes this lock (it reads an immutable tuple). Reentrant: a listener
# set collected while it is held releases its subscriptions from a finalizer.
_subscribe_lock = threading.RLock()


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

    def _removed(self, listener_id: int) -> None:
        with _subscribe_lock:
            self._count -= 1
            self.listening = self._count > 0
            self._failed.discard(listener_id)

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

    __slots__ = ("__weakref__", "listeners", "parent")

    def __init__(self, parent: ListenerSet | None = None) -> None:
        self.listeners: tuple[Listener, ...] = ()
        self.parent = parent

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        if not callable(listener):
            raise TypeError(f"listener must be callable, got {listener!r}")
        with _subscribe_lock:
            self.listeners = (*self.listeners, listener)
            hub._added()
        # A policy dropped with listeners still on it must not leave every
        # other call paying for events nobody receives.
        gone = weakref.finalize(self, hub._removed, id(listener))

        def unsubscribe() -> None:
            if gone.detach() is None:
                return  # already unsubscribed
            with _subscribe_lock:
                items = list(self.listeners)
                items.remove(listener)
                self.listeners = tuple(items)
            hub._removed(id(listener))

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
        "request_id": _request.current.get(),
    }


# -- the request scope ---------------------------------------------------------

_LAYER = "__resilient_layer__"


def mark_layer(fn: T) -> T:
    """Declare ``fn`` a resilient layer: a policy handed ``fn`` is stacked on
    it (one request), not wrapped around user code that calls it (two).

    ``resilient``'s own wrappers and every policy's ``_call`` / ``_acall`` /
    ``_astream`` are marked; a composition that chains policies through
    callables of its own marks each link.
    """
    setattr(fn, _LAYER, True)
    return fn


def is_layer(fn: object) -> bool:
    return getattr(fn, _LAYER, False) is True


_scope: contextvars.ContextVar[RequestScope | None] = contextvars.ContextVar(
    "resilient_request_scope", default=None
)


class RequestScope:
    """One call of a decorated function, as its caller sees it.

    Opened by the outermost layer, which emits the request-level events
    through it; closed by :meth:`succeeded` or :meth:`failed`.
    """

    __slots__ = ("_id_token", "_listeners", "_scope_token", "name", "policy", "request_id", "start")

    def __init__(self, listeners: ListenerSet, name: str, policy: str, request_id: str) -> None:
        self._listeners = listeners
        self.name = name
        self.policy = policy
        self.request_id = request_id
        self._id_token: contextvars.Token[str | None] | None = None
        self._scope_token: contextvars.Token[RequestScope | None] | None = None
        self.start = now = _clock.monotonic()
        self._emit(CallStarted, now, {})

    def _emit(self, kind: type[Event], now: float, fields: dict[str, Any]) -> None:
        if hub.listening:
            self._listeners.emit(
                kind(
                    name=self.name,
                    policy=self.policy,
                    timestamp=_clock.wall(),
                    monotonic=now,
                    request_id=self.request_id,
                    level=REQUEST,  # type: ignore[call-arg]
                    **fields,
                )
            )

    def _close(self) -> None:
        # A token belongs to the context it was made in; a scope closed from
        # another one (an abandoned stream finalized elsewhere) must not fail.
        scope_token, id_token = self._scope_token, self._id_token
        self._scope_token = self._id_token = None
        if scope_token is not None:
            try:
                _scope.reset(scope_token)
            except ValueError:
                _scope.set(None)
        if id_token is not None:
            try:
                _request.current.reset(id_token)
            except ValueError:
                _request.current.set(None)

    def succeeded(self) -> None:
        now = _clock.monotonic()
        try:
            self._emit(CallSucceeded, now, {"duration": now - self.start})
        finally:
            self._close()

    def end(self, error: BaseException | None) -> None:
        """Close the scope with a block's outcome: ``None`` is success."""
        if error is None:
            self.succeeded()
        else:
            self.failed(error)

    def failed(self, error: BaseException) -> None:
        """The call raised ``error``. Rejections by a breaker or a bulkhead are
        ``CallRejected``; cancellation and interrupts are not counted at all."""
        try:
            _emit_outcome(self._emit, error, self.start)
        finally:
            self._close()


def _emit_outcome(
    emit: Callable[[type[Event], float, dict[str, Any]], None], error: BaseException, start: float
) -> None:
    now = _clock.monotonic()
    if isinstance(error, CircuitOpenError):
        emit(CallRejected, now, {"state": error.state, "remaining": error.remaining})
    elif isinstance(error, BulkheadFullError):
        emit(CallRejected, now, {"state": "full", "remaining": 0.0})
    elif isinstance(error, Exception):
        emit(CallFailed, now, {"duration": now - start, "error": error})


def _open(listeners: ListenerSet, name: str, policy: str, *, enter: bool) -> RequestScope:
    rid = _request.current.get()
    generated = rid is None
    if rid is None:
        rid = new_request_id()
    scope = RequestScope(listeners, name, policy, rid)
    if generated:
        scope._id_token = _request.current.set(rid)
    if enter:
        scope._scope_token = _scope.set(scope)
    return scope


def begin_request(listeners: ListenerSet, name: str, policy: str) -> RequestScope | None:
    """For a policy used as a context manager: the scope of the block, or
    ``None`` when the policy runs inside another layer's call.

    The block is user code, so it runs outside the scope (decorated calls in
    it are requests of their own) but under the request id.
    """
    if _scope.get() is not None:
        return None
    return _open(listeners, name, policy, enter=False)


Report = tuple[ListenerSet, str, str]


class _Handed:
    """The callable :func:`run_request` hands to the policy that asked.

    ``owner`` is that policy: handed back to it, :func:`entering` says the
    call is accounted for. ``clear`` (user code) runs ``fn`` outside the
    scope; ``report`` emits the policy-level outcome of ``fn`` (a bulkhead's
    admitted calls). Everything else about ``fn`` (its name) shows through.
    """

    __slots__ = ("clear", "fn", "owner", "report")
    __resilient_layer__ = True  # safe to call with the scope set

    def __init__(self, fn: Callable[..., Any], owner: object, clear: bool, report: Report | None):
        self.fn = fn
        self.owner = owner
        self.clear = clear
        self.report = report

    def __getattr__(self, name: str) -> Any:
        return getattr(self.fn, name)

    def __repr__(self) -> str:
        return repr(self.fn)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        token = _scope.set(None) if self.clear else None
        start = _clock.monotonic() if self.report is not None else 0.0
        try:
            result = self.fn(*args, **kwargs)
        except BaseException as exc:
            if self.report is not None:
                _report(self.report, start, exc)
            raise
        finally:
            if token is not None:
                _scope.reset(token)
        if self.report is not None:
            _report(self.report, start, None)
        return result


class _AHanded(_Handed):
    __slots__ = ()

    async def __call__(self, *args: Any, **kwargs: Any) -> Any:
        token = _scope.set(None) if self.clear else None
        start = _clock.monotonic() if self.report is not None else 0.0
        try:
            result = await self.fn(*args, **kwargs)
        except BaseException as exc:
            if self.report is not None:
                _report(self.report, start, exc)
            raise
        finally:
            if token is not None:
                _scope.reset(token)
        if self.report is not None:
            _report(self.report, start, None)
        return result


def _report(report: Report, start: float, error: BaseException | None) -> None:
    if not hub.listening:
        return
    listeners, name, policy = report

    def emit(kind: type[Event], now: float, fields: dict[str, Any]) -> None:
        listeners.emit(
            kind(
                name=name,
                policy=policy,
                timestamp=_clock.wall(),
                monotonic=now,
                request_id=_request.current.get(),
                **fields,
            )
        )

    now = _clock.monotonic()
    if error is None:
        emit(CallSucceeded, now, {"duration": now - start})
    elif isinstance(error, Exception):
        emit(CallFailed, now, {"duration": now - start, "error": error})


def entering(fn: object, owner: object) -> bool:
    """Whether ``owner`` must pass its call through :func:`run_request` (and
    friends): false when ``fn`` is what ``run_request`` handed back to it.

    A policy's ``_call`` reads, so that nobody listening costs one check::

        if events.hub.listening and events.entering(fn, self):
            return events.run_request(..., self._call, fn, args, kwargs, owner=self)
    """
    return type(fn) not in _HANDED or fn.owner is not owner  # type: ignore[attr-defined]


_HANDED = (_Handed, _AHanded)


def _hand(
    fn: Callable[..., Any], owner: object, report: Report | None, kind: type[_Handed]
) -> _Handed:
    return kind(fn, owner, not is_layer(fn), report)


def run_request(
    listeners: ListenerSet,
    name: str,
    policy: str,
    run: Callable[[Callable[..., R], tuple[Any, ...], dict[str, Any]], R],
    fn: Callable[..., R],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    *,
    owner: object,
    report: bool = False,
) -> R:
    """``run(fn, args, kwargs)`` as one request when this layer is the outermost.

    Call it only when ``hub.listening``. ``run`` is the policy's own
    execution (often its ``_call`` itself: see :func:`entering`); ``fn``
    reaches it wrapped (:class:`_Handed`). ``report=True`` emits the
    policy-level outcome of every call of ``fn`` under ``name``/``policy``.
    """
    handed = _hand(fn, owner, (listeners, name, policy) if report else None, _Handed)
    if _scope.get() is not None:
        return run(handed, args, kwargs)
    scope = _open(listeners, name, policy, enter=True)
    try:
        result = run(handed, args, kwargs)
    except BaseException as exc:
        scope.failed(exc)
        raise
    scope.succeeded()
    return result


async def arun_request(
    listeners: ListenerSet,
    name: str,
    policy: str,
    run: Callable[[Callable[..., Any], tuple[Any, ...], dict[str, Any]], Awaitable[R]],
    fn: Callable[..., Awaitable[Any]],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    *,
    owner: object,
    report: bool = False,
) -> R:
    """The async twin of :func:`run_request`: ``await run(fn, args, kwargs)``."""
    handed = _hand(fn, owner, (listeners, name, policy) if report else None, _AHanded)
    if _scope.get() is not None:
        return await run(handed, args, kwargs)
    scope = _open(listeners, name, policy, enter=True)
    try:
        result = await run(handed, args, kwargs)
    except BaseException as exc:
        scope.failed(exc)
        raise
    scope.succeeded()
    return result


def shield(fn: Callable[..., R]) -> Callable[..., R]:
    """``fn`` (user code a policy calls itself: a fallback handler) made to
    run outside the request scope, so decorated calls in it count on their own."""
    return _Handed(fn, None, True, None)


def ashield(fn: Callable[..., Awaitable[R]]) -> Callable[..., Awaitable[R]]:
    """:func:`shield` for a coroutine function."""
    return _AHanded(fn, None, True, None)


async def astream_request(
    listeners: ListenerSet,
    name: str,
    policy: str,
    run: Callable[[Callable[..., Any], tuple[Any, ...], dict[str, Any]], AsyncIterator[T]],
    fn: Callable[..., AsyncIterator[Any]],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    *,
    owner: object,
) -> AsyncIterator[T]:
    """The stream of ``run(fn, args, kwargs)`` as one request (a stream that
    is consumed to its end succeeds; one the consumer abandons is not counted).

    Nothing is left set in the consumer's context while it holds an item:
    the scope and the request id are set around each step only (user code
    in ``fn`` steps with the scope cleared).
    """
    outer = _scope.get()
    rid = _request.current.get()
    scope: RequestScope | None = None
    if outer is None:
        rid = rid if rid is not None else new_request_id()
        scope = RequestScope(listeners, name, policy, rid)
    inner_sees = (scope or outer) if is_layer(fn) else None
    handed = _Handed(fn, owner, False, None)
    stream: AsyncIterator[T] | None = None

    def enter() -> tuple[contextvars.Token[Any], contextvars.Token[Any]]:
        return _scope.set(inner_sees), _request.current.set(rid)

    def leave(tokens: tuple[contextvars.Token[Any], contextvars.Token[Any]]) -> None:
        _request.current.reset(tokens[1])
        _scope.reset(tokens[0])

    try:
        while True:
            tokens = enter()
            try:
                if stream is None:
                    stream = run(handed, args, kwargs)
                item = await anext(stream)
            except StopAsyncIteration:
                break
            finally:
                leave(tokens)
            yield item
    except BaseException as exc:
        if scope is not None:
            scope.failed(exc)
        raise
    else:
        if scope is not None:
            scope.succeeded()
    finally:
        aclose = getattr(stream, "aclose", None)
        if aclose is not None:
            tokens = enter()
            try:
                await aclose()
            finally:
                leave(tokens)
