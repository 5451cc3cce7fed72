"""What every policy offers around its own closures: running a function
through it, use as a decorator, its counters and its listeners."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any, ClassVar, ParamSpec, TypeVar, cast, overload

from .. import events
from . import counters as _stats
from . import streams as _streams
from .compose import NEVER, aforwarding, compose, compose_stream, decorate, forwarding, is_stream
from .request import Request
from .streams import Args, AStream, AStreamFn, AsyncFn, Kwargs, Stream, StreamFn, SyncFn

if TYPE_CHECKING:
    from .compose import Decoratable, Layer
    from .counters import Stats

__all__ = ["ForwardingPolicy", "NamedPolicy", "PolicyBase", "fn_name"]

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")
F = TypeVar("F", bound="Decoratable")


def fn_name(fn: Callable[..., Any]) -> str:
    return getattr(fn, "__qualname__", None) or repr(fn)


def _callable(policy: object, method: str, fn: object) -> None:
    """A TypeError at once for what cannot be called: no attempt, no retry."""
    if not callable(fn):
        raise TypeError(f"{type(policy).__name__}.{method}(fn, ...) needs a callable, got {fn!r}")


class PolicyBase:
    """The shared half of every policy. A policy adds ``_wrap_sync`` and
    ``_wrap_async`` (its fast paths) and, if it has per-call events of its
    own, sets ``_own_gate`` to a gate on its listeners."""

    _listeners: events.ListenerSet
    #: What the policy's events say it is ("retry", "circuit_breaker", ...).
    _kind: ClassVar[str]
    _own_gate: events.Gate = NEVER
    _stats_table: dict[str, Stats] | None = None
    _own_stats: Stats | None = None
    _last: tuple[Any, Callable[..., Any]] | None = None
    _alast: tuple[Any, Callable[..., Any]] | None = None

    def _event_name(self, fn: Callable[..., Any]) -> str:
        """The policy's name, or else the function's (an unnamed policy)."""
        name: str | None = getattr(self, "name", None)
        return name or fn_name(fn)

    def _stats_for(self, name: str) -> Stats:
        """The counters this policy keeps under ``name``."""
        own = self._own_stats
        if own is not None and own.name == name:
            return own
        table = self._stats_table
        stats = table.get(name) if table is not None else None
        if stats is None:
            stats = _stats.stats_for(name, self._kind, self._listeners)
            if own is None and name == getattr(self, "name", None):
                self._own_stats = stats  # the usual case: no table
            else:
                if table is None:
                    table = self._stats_table = {}
                table[name] = stats
            self._init_stats(stats)
        return stats

    def _init_stats(self, stats: Stats) -> None:
        """Hook: a policy with live gauges or lock-free counts sets them up."""

    def _layers(self) -> tuple[Layer, ...]:
        return (cast("Layer", self),)

    # -- a stream through this policy alone (a chain opens its layers in turn) --

    # --- generated from _astream by scripts/unasync.py; do not edit ---
    def _stream(self, fn: StreamFn, args: Args, kwargs: Kwargs, name: str = "") -> Stream:
        """``fn(*args, **kwargs)`` through this layer's ``_open_stream``, relayed."""
        layer: Any = self
        opened = functools.partial(layer._open_stream, functools.partial(_streams.open_first, fn))
        return _streams.relaying(opened, name or self._event_name(fn))(*args, **kwargs)

    # --- end generated ---

    def _astream(self, fn: AStreamFn, args: Args, kwargs: Kwargs, name: str = "") -> AStream:
        """``fn(*args, **kwargs)`` through this layer's ``_open_stream``, relayed."""
        layer: Any = self
        opened = functools.partial(layer._aopen_stream, functools.partial(_streams.aopen_first, fn))
        return _streams.arelaying(opened, name or self._event_name(fn))(*args, **kwargs)

    # -- running and decorating ------------------------------------------------

    def _chain(self, fn: Callable[..., Any], is_async: bool = False) -> Callable[..., Any]:
        """The chain ``call`` (or ``call_async``) runs ``fn`` through: the
        last one made for each, kept, as a loop calls the same ``fn``."""
        last = self._alast if is_async else self._last
        if last is not None and (last[0] is fn or last[0] == fn):
            return last[1]
        _callable(self, "call_async" if is_async else "call", fn)
        chain = self._compose(fn, is_async=is_async)
        if is_async:
            self._alast = (fn, chain)
        else:
            self._last = (fn, chain)
        return chain

    def _compose(self, fn: Callable[..., Any], *, is_async: bool) -> Callable[..., Any]:
        from .compose import chain_of

        layers = self._layers()
        stacked = chain_of(fn)
        if stacked is not None:
            layers, fn = (*layers, *stacked.layers), stacked.fn
        if is_stream(fn):
            stream = compose_stream(self, layers, fn)
            if not is_async:
                return stream

            async def opened(*args: Any, **kwargs: Any) -> Any:
                return stream(*args, **kwargs)  # awaited by call_async: the stream itself

            return opened
        return compose(self, layers, fn, is_async=is_async)

    def call(self, fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run ``fn(*args, **kwargs)`` through this policy. For a generator
        function (or an async generator function), the protected stream."""
        return cast(R, self._chain(fn)(*args, **kwargs))

    @overload
    async def call_async(
        self, fn: Callable[P, AsyncIterator[T]], /, *args: P.args, **kwargs: P.kwargs
    ) -> AsyncIterator[T]: ...

    @overload
    async def call_async(
        self, fn: Callable[P, Awaitable[R]], /, *args: P.args, **kwargs: P.kwargs
    ) -> R: ...

    async def call_async(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """Await ``fn(*args, **kwargs)`` through this policy. For an async
        generator function, the protected stream (``async for x in await
        policy.call_async(stream, ...)``)."""
        return await self._chain(fn, True)(*args, **kwargs)

    def subscribe(self, listener: events.Listener | events.Reader) -> Callable[[], None]:
        """Call ``listener`` with every event of this policy; returns the unsubscriber."""
        return self._listeners.subscribe(listener)

    def __call__(self, fn: F) -> F:
        """Use the policy itself as a decorator."""
        layers = self._layers()
        return decorate(self, fn, self, layers)


class ForwardingPolicy(PolicyBase):
    """A policy whose whole fast path is ``_run(fn, name, args, kwargs)`` /
    ``await _arun(fn, name, args, kwargs)`` (chaos, hedging, timeout): its
    closures are the shared forwarding ones."""

    # --- generated from _arun by scripts/unasync.py; do not edit ---
    def _run(
        self,
        fn: Callable[..., Any],
        name: str,
        args: Args,
        kwargs: Kwargs,
    ) -> Any:
        raise NotImplementedError

    # --- end generated ---

    def _arun(
        self,
        fn: Callable[..., Awaitable[Any]],
        name: str,
        args: Args,
        kwargs: Kwargs,
    ) -> Awaitable[Any]:
        raise NotImplementedError

    def _wrap_sync(self, fn: SyncFn[R], name: str, entry: Request | None = None) -> SyncFn[R]:
        return forwarding(self, fn, name, entry, self._run)

    def _wrap_async(self, fn: AsyncFn[R], name: str, entry: Request | None = None) -> AsyncFn[R]:
        return aforwarding(self, fn, name, entry, self._arun)


class NamedPolicy(PolicyBase):
    """A named policy with per-call events of its own (a breaker, a bulkhead):
    its closures watch its own listeners, and its ``with`` blocks are
    requests of their own."""

    name: str
    _gate: events.Gate | None = None
    _block: Request | None = None

    @property
    def _own_gate(self) -> events.Gate:  # type: ignore[override]
        """The gate on this policy's own listeners, made when a chain first
        needs it."""
        gate = self._gate
        if gate is None:
            gate = self._gate = events.Gate(None, (self._listeners,))
        return gate

    def _block_request(self) -> Request:
        """The request of ``with`` blocks, made on first use."""
        block = self._block
        if block is None:
            block = self._block = Request(
                self.name,
                self._kind,
                self._listeners,
                self._stats_for(self.name),
                events.Gate(self._listeners),
            )
        return block
