"""How one call of a protected function is counted as exactly one request.

The outermost layer of every chain (a decorated function, a composed
policy, ``policy.call``) owns a ``Request``: the name the call is
counted under, the scope whose readers and listeners see it, and the
counters. Whether a layer is outermost is known when the chain is built, so
nothing is looked up per call: the chain's entry reads one gate level and,
with nobody watching, runs the bare fast path. While a reader watches it
times the call into the counters; while a listener anywhere in the chain
listens it also opens a request id and emits the request-level events.

A decorated function called from inside another one (from user code) is a
request of its own: it is the entry of its own chain. It shares the request
id, though, which lives in a contextvar for the whole call.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, TypeVar

from .._runtime import clock as _clock
from ..errors import BulkheadFullError, CircuitOpenError
from ..events import (
    EVENTS,
    REQUEST,
    CallFailed,
    CallRejected,
    CallStarted,
    CallSucceeded,
    Event,
    Gate,
    ListenerSet,
)
from . import counters as _stats
from . import request_id as _request
from .streams import Args, Kwargs

__all__ = ["Request", "Span", "Tracer", "rejection", "tracer"]

R = TypeVar("R")


def rejection(error: BaseException) -> tuple[str, float] | None:
    """``(state, remaining)`` when ``error`` is a policy refusing the call."""
    if isinstance(error, CircuitOpenError):
        return error.state, error.remaining
    if isinstance(error, BulkheadFullError):
        return "full", 0.0
    retry_after = getattr(error, "_rejected_for", None)
    if retry_after is not None:
        return "rate_limited", retry_after
    return None


class Request:
    """The request accounting of one chain (see the module's docstring)."""

    __slots__ = ("gate", "kind", "name", "scope", "stats")

    def __init__(self, name: str, kind: str, scope: ListenerSet, stats: _stats.Stats, gate: Gate):
        self.name = name
        self.kind = kind
        self.scope = scope
        self.stats = stats
        self.gate = gate
        stats.ensure_latency()  # the chain's closures write into it directly

    # -- outcomes ------------------------------------------------------------

    def _emit(self, kind: type[Event], now: float, *fields: Any) -> None:
        self.scope.emit(
            tuple.__new__(
                kind,
                (
                    self.name,
                    self.kind,
                    _clock.wall_now(),
                    now,
                    _request.current.get(),
                    *fields,
                    REQUEST,
                ),
            )
        )

    def succeeded(self, start: float, emit: bool) -> None:
        now = _clock.now()
        self.stats.record(now - start)
        if emit:
            self._emit(CallSucceeded, now, now - start)

    def failed(self, error: BaseException, start: float, emit: bool) -> None:
        """The call raised ``error``: a rejection, a failure, or (cancellation
        and interrupts) nothing at all."""
        if not isinstance(error, Exception):
            return
        now = _clock.now()
        stats = self.stats
        rejected = rejection(error)
        if rejected is not None:
            stats.rejections += 1
            if emit:
                self._emit(CallRejected, now, *rejected)
            return
        stats.failures += 1
        stats.record(now - start)
        if emit:
            self._emit(CallFailed, now, now - start, error)

    def begin(self, current: bool = True) -> tuple[float, bool, Any, Any]:
        """Open the request: ``(start, emit, token, span)`` for ``end``.
        ``current``: its span (when tracing) is the current one while it runs."""
        token = None
        if _request.current.get() is None:
            token = _request.current.set(_request.new_request_id())
        start = _clock.now()
        emit = self.scope.calls  # not for a listener of what policies do only (tracing)
        traced = tracer.open(self.name, self.kind, current) if tracer is not None else None
        if emit:
            self._emit(CallStarted, start)
        return start, emit, token, traced

    def end(self, opened: tuple[float, bool, Any, Any], error: BaseException | None) -> None:
        start, emit, token, traced = opened
        try:
            if error is None:
                self.succeeded(start, emit)
            else:
                self.failed(error, start, emit)
        finally:
            if traced is not None:
                traced.close(error)
            if token is not None:
                try:
                    _request.current.reset(token)
                except ValueError:  # closed from another context (a finalized stream)
                    _request.current.set(None)

    # -- what the outermost layer of a chain calls ------------------------------

    # The outermost closure of a chain reads ``gate.level`` first. NONE: the
    # bare fast path. METERED: it times the call itself, inline (a detour
    # through a frame of ours costs more than the timing: metering is the
    # path production runs), then calls ``ok`` or ``failed``. EVENTS: it
    # hands the call to ``detour(plain)``, which opens the request's id and
    # events around the same closure watched by its own gate only.

    def ok(self, start: float, _clock: Any = _clock, _fold_at: int = _stats.FOLD_AT) -> None:
        """A metered call that started at ``start`` (``_clock.now()``) succeeded.
        (The defaults bind what every observed call looks up.)"""
        stats = self.stats
        pending = stats.pending
        pending.append(_clock.now() - start)
        if len(pending) >= _fold_at:
            stats.fold()

    # --- generated from atimed by scripts/unasync.py; do not edit ---
    def timed(self, start: float, run: Callable[..., R], *args: Any) -> R:
        """``run(*args)`` (a layer's slow path) finishing a metered call."""
        try:
            result = run(*args)
        except BaseException as exc:
            self.failed(exc, start, False)
            raise
        self.ok(start)
        return result

    # --- end generated ---

    async def atimed(self, start: float, run: Callable[..., Awaitable[R]], *args: Any) -> R:
        """``run(*args)`` (a layer's slow path) finishing a metered call."""
        try:
            result = await run(*args)
        except BaseException as exc:
            self.failed(exc, start, False)
            raise
        self.ok(start)
        return result

    # --- generated from adetour by scripts/unasync.py; do not edit ---
    def detour(self, plain: Callable[..., Any]) -> Callable[[tuple[Any, ...], dict[str, Any]], Any]:
        """The events path of a chain around ``plain``."""

        def with_events(args: Args, kwargs: Kwargs) -> Any:
            opened = self.begin()
            try:
                # ``f(*args)`` when there are no keywords: ``f(*args, **kwargs)``
                # builds a dict per call (docs/architecture.md, calls without keywords).
                result = plain(*args, **kwargs) if kwargs else plain(*args)
            except BaseException as exc:
                self.end(opened, exc)
                raise
            self.end(opened, None)
            return result

        return with_events

    # --- end generated ---

    def adetour(
        self, plain: Callable[..., Awaitable[Any]]
    ) -> Callable[[tuple[Any, ...], dict[str, Any]], Awaitable[Any]]:
        """The events path of a chain around ``plain``."""

        async def with_events(args: Args, kwargs: Kwargs) -> Any:
            opened = self.begin()
            try:
                # ``f(*args)`` when there are no keywords: ``f(*args, **kwargs)``
                # builds a dict per call (docs/architecture.md, calls without keywords).
                result = await (plain(*args, **kwargs) if kwargs else plain(*args))
            except BaseException as exc:
                self.end(opened, exc)
                raise
            self.end(opened, None)
            return result

        return with_events

    # --- generated from stream by scripts/unasync.py; do not edit ---
    def sync_stream(self, items: Iterator[R]) -> Iterator[R]:
        """``items`` (a protected stream) as one request: consumed to its end
        it succeeded; abandoned by its consumer it is not counted. The time
        to its first item goes into the counters' ``first_items``.

        The request id is set around each step only, so nothing is left set
        in the consumer's context while it holds an item.
        """
        rid, start, emit, traced = self._open_stream()
        current, now = _request.current, _clock.now
        waiting = True
        ended: BaseException | None = None
        try:
            while True:
                token = current.set(rid) if rid is not None else None
                try:
                    item = next(items)
                except StopIteration:
                    break
                finally:
                    if token is not None:
                        current.reset(token)
                if waiting:
                    waiting = False
                    self.stats.first_item(now() - start)
                yield item
        except BaseException as exc:
            ended = exc
            if not isinstance(exc, GeneratorExit):
                self._in(rid, self.failed, exc, start, emit)
            raise
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                token = current.set(rid) if rid is not None else None
                try:
                    close()
                finally:
                    if token is not None:
                        current.reset(token)
            if traced is not None:
                traced.close(ended)
        self._in(rid, self.succeeded, start, emit)

    # --- end generated ---

    async def stream(self, items: AsyncIterator[R]) -> AsyncIterator[R]:
        """``items`` (a protected stream) as one request: consumed to its end
        it succeeded; abandoned by its consumer it is not counted. The time
        to its first item goes into the counters' ``first_items``.

        The request id is set around each step only, so nothing is left set
        in the consumer's context while it holds an item.
        """
        rid, start, emit, traced = self._open_stream()
        current, now = _request.current, _clock.now
        waiting = True
        ended: BaseException | None = None
        try:
            while True:
                token = current.set(rid) if rid is not None else None
                try:
                    item = await anext(items)
                except StopAsyncIteration:
                    break
                finally:
                    if token is not None:
                        current.reset(token)
                if waiting:
                    waiting = False
                    self.stats.first_item(now() - start)
                yield item
        except BaseException as exc:
            ended = exc
            if not isinstance(exc, GeneratorExit):
                self._in(rid, self.failed, exc, start, emit)
            raise
        finally:
            aclose = getattr(items, "aclose", None)
            if aclose is not None:
                token = current.set(rid) if rid is not None else None
                try:
                    await aclose()
                finally:
                    if token is not None:
                        current.reset(token)
            if traced is not None:
                traced.close(ended)
        self._in(rid, self.succeeded, start, emit)

    def _open_stream(self) -> tuple[str | None, float, bool, Any]:
        """A stream's request id (with events only), start, whether it
        emits, and its span (when tracing; never the current one: the
        consumer runs between its items)."""
        if self.gate.level < EVENTS:
            return None, _clock.now(), False, None
        rid = _request.current.get() or _request.new_request_id()
        token = _request.current.set(rid)
        try:
            start, emit, _, traced = self.begin(current=False)
        finally:
            _request.current.reset(token)
        return rid, start, emit, traced

    @staticmethod
    def _in(rid: str | None, report: Callable[..., None], *args: Any) -> None:
        """``report(*args)`` with the stream's request id current."""
        if rid is None:
            report(*args)
            return
        token = _request.current.set(rid)
        try:
            report(*args)
        finally:
            _request.current.reset(token)


class Span:
    """What a tracer gives each traced request: ``close(error)`` ends it."""

    def close(self, error: BaseException | None) -> None:  # pragma: no cover - protocol
        raise NotImplementedError


class Tracer:
    """What ``resilient.tracing`` installs as ``tracer``: ``open(name, kind,
    current)`` starts a request's span (``current``: it is the current span
    while the request runs), or returns None."""

    def open(self, name: str, kind: str, current: bool) -> Span | None:  # pragma: no cover
        raise NotImplementedError


#: The tracer every request opens a span with (``resilient.tracing``); None:
#: no tracing. Read on the events path only: the fast paths never look.
tracer: Tracer | None = None
