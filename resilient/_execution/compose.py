"""The one way policies are put together: a chain of layers around a function.

Every execution goes through a chain built here, once: a decorated
function, ``policy.call(fn, ...)``, ``with_resilience``, decorators stacked
by hand, and the HTTP transports. A chain nests each layer's own closure
(``_wrap_sync`` / ``_wrap_async``: the layer's fast path, written once),
innermost first, so a call costs one frame per layer, plus the chain's
entry (``Request.entry``): it reads the chain's
``Gate`` and, while nobody watches, just calls the layers;
with a reader in scope it times the call into the counters, with a
listener it also opens the request's id and events.

Sync or async is decided here, once, from the function. Plain functions
(which includes methods, at the time a class body decorates them) get the
chain itself, which binds like any function. Everything else that binds
(``classmethod``, ``staticmethod``, bound methods, callable objects) gets a
wrapt ``FunctionWrapper`` that runs a chain built for what it binds to.

Decorating a function that is already a chain stacks the new layer on it
as its outermost: ``@with_retry() @with_circuit_breaker("x")`` is one chain
of two layers, one request, exactly as ``with_resilience`` composes.
"""

from __future__ import annotations

import functools
import inspect
import sys
import weakref
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, NamedTuple, Protocol, TypeAlias, TypeVar, cast

from .._runtime import clock as _clock
from ..events import METERED, NONE, Gate, ListenerSet
from . import streams as _streams
from .request import Request
from .streams import AOpen, Args, AStream, AStreamFn, Kwargs, Open, Opened, Stream, StreamFn

__all__ = [
    "NEVER",
    "Chain",
    "Refused",
    "Decoratable",
    "Layer",
    "Owner",
    "chain_of",
    "aforwarding",
    "compose",
    "compose_stream",
    "decorate",
    "forwarding",
    "handing_back",
    "is_async_callable",
    "is_async_gen",
    "is_stream",
    "offer_hand_back",
    "watching",
]

if TYPE_CHECKING:
    from .counters import Stats

    Decoratable: TypeAlias = (
        Callable[..., Any] | classmethod[Any, Any, Any] | staticmethod[Any, Any]
    )
else:
    Decoratable = object
F = TypeVar("F", bound="Decoratable")

_BINDING = __name__.rpartition(".")[0] + ".binding"

#: The gate of a layer that nobody's listening can change (its level stays NONE).
NEVER = Gate(None, ())
assert NEVER.level == NONE


class Owner(Protocol):
    """Who a request is counted for: the outermost policy of a chain."""

    _kind: ClassVar[str]
    _listeners: ListenerSet

    def _event_name(self, fn: Callable[..., Any]) -> str: ...
    def _stats_for(self, name: str) -> Stats: ...


class Layer(Owner, Protocol):
    """One policy in a chain.

    ``_wrap_sync(fn, name)`` / ``_wrap_async(fn, name)`` return the closure
    that runs ``fn`` through the policy: its fast path, written once per
    flavour. ``name`` is what the layer reports under (its own name, or for
    an unnamed policy the chain's). A policy with per-call events of its own
    (a breaker, a bulkhead) sets ``_own_gate`` to a gate on its listeners;
    its closure reads it first and takes its path with events while set.
    The outermost layer is also handed the chain's ``entry`` (see
    ``watching``): it then reads the chain's gate instead, and meters
    the call itself.
    """

    @property
    def _own_gate(self) -> Gate: ...

    def _wrap_sync(
        self, fn: Callable[..., Any], name: str, entry: Request | None = None
    ) -> Callable[..., Any]: ...

    def _wrap_async(
        self, fn: Callable[..., Awaitable[Any]], name: str, entry: Request | None = None
    ) -> Callable[..., Awaitable[Any]]: ...


class Streaming(Layer, Protocol):
    """What a layer implements to run streams (see ``streams``):
    ``_open_stream`` / ``_aopen_stream(open, args, kwargs, name)`` do the
    layer's work before a stream's first item around ``open(args, kwargs,
    name)`` (the layers inside it) and give back the ``Opened`` stream,
    with the layer's end hook added; ``_stream`` / ``_astream(fn, args,
    kwargs, name)`` (``PolicyBase``'s) run a generator function / an async
    generator function through the layer alone. Optional: ``decorate``
    refuses a stream that one of the layers cannot open (the HTTP
    integrations' layers run whole requests, not streams)."""

    def _open_stream(self, open: Open, args: Args, kwargs: Kwargs, name: str) -> Opened: ...

    async def _aopen_stream(self, open: AOpen, args: Args, kwargs: Kwargs, name: str) -> Opened: ...

    def _stream(self, fn: StreamFn, args: Args, kwargs: Kwargs, name: str) -> Stream: ...

    def _astream(self, fn: AStreamFn, args: Args, kwargs: Kwargs, name: str) -> AStream: ...


class Chain(NamedTuple):
    """What a chain's entry remembers, so another layer can be stacked on it."""

    owner: Owner
    layers: tuple[Layer, ...]  # outermost first
    fn: Callable[..., Any]  # the user's function


_CHAIN = "__resilient_chain__"


def chain_of(fn: object) -> Chain | None:
    """The chain ``fn`` is the entry of, if it is one."""
    binding = sys.modules.get(_BINDING)  # not loaded: no wrapper was made yet
    if binding is not None and isinstance(fn, binding.ChainWrapper):
        chain: Chain = fn._self_chain
        return chain
    found = getattr(fn, _CHAIN, None) if inspect.isfunction(fn) else None
    return found if isinstance(found, Chain) else None


# -- refusals handed back ------------------------------------------------------
#
# A layer that refuses calls at once (an open breaker) may offer, on its
# closure, a variant of that same closure that returns ``Refused(error)``
# instead of raising ``error``. A layer just above it that only wants to
# move on when refused (a failover) runs the variant: a refused target then
# costs the error, not its raise, its traceback and the unwinding to the
# failover's ``except``.


class Refused(tuple):  # type: ignore[type-arg]
    """What a closure built to hand its refusals back returns instead of
    raising an error: ``Refused((error,))``, the error its ``[0]``. (A bare
    tuple subclass: built by the builtin constructor, no Python frame.)"""


_HAND_BACK = "__resilient_hand_back__"


def offer_hand_back(closure: Callable[..., Any], variant: Callable[[], Callable[..., Any]]) -> None:
    """Offer, on ``closure``, ``variant()``: the same closure, built to
    return ``Refused(error)`` where ``closure`` raises ``error`` at once."""
    # The closure is named weakly: holding itself, every breaker closure
    # was a reference cycle, freed only by the cyclic collector (and its
    # breaker and counters with it). Not a table beside it either: the
    # variant holds the breaker, which may hold the closure (``call``'s
    # cached chain), so a table's entry would never go.
    setattr(closure, _HAND_BACK, (weakref.ref(closure), variant))


def handing_back(fn: object) -> Callable[..., Any] | None:
    """The variant of ``fn`` that hands its refusals back, if ``fn`` is a
    layer's closure that offers one (never a copy of its attributes, as
    ``functools.wraps`` makes: it is checked to be ``fn``'s own)."""
    offered = getattr(fn, _HAND_BACK, None) if inspect.isfunction(fn) else None
    if offered is None or offered[0]() is not fn:
        return None
    variant: Callable[..., Any] = offered[1]()
    return variant


def is_async_callable(fn: object) -> bool:
    if isinstance(fn, (classmethod, staticmethod)):
        fn = fn.__func__
    while isinstance(fn, functools.partial):
        fn = fn.func
    if inspect.iscoroutinefunction(fn):
        return True
    call = getattr(fn, "__call__", None)  # noqa: B004 - callable objects
    return call is not None and not inspect.isfunction(fn) and inspect.iscoroutinefunction(call)


def is_async_gen(fn: object) -> bool:
    if isinstance(fn, (classmethod, staticmethod)):
        fn = fn.__func__
    while isinstance(fn, functools.partial):
        fn = fn.func
    return inspect.isasyncgenfunction(fn)


def is_stream(fn: object) -> bool:
    """Whether calling ``fn`` returns a stream (a generator or async generator function)."""
    if isinstance(fn, (classmethod, staticmethod)):
        fn = fn.__func__
    while isinstance(fn, functools.partial):
        fn = fn.func
    return inspect.isgeneratorfunction(fn) or inspect.isasyncgenfunction(fn)


def compose(
    owner: Owner,
    layers: Sequence[Layer],
    fn: Callable[..., Any],
    *,
    is_async: bool,
) -> Callable[..., Any]:
    """The entry of ``layers`` (outermost first) around ``fn``, counting each
    call as one request of ``owner``."""
    name = owner._event_name(fn)
    scope = owner._listeners
    gate = Gate(scope, tuple(s for layer in layers for s in layer._own_gate.inner))
    request = Request(name, owner._kind, scope, owner._stats_for(name), gate)
    wrap = "_wrap_async" if is_async else "_wrap_sync"
    # The outermost layer meters the call itself, unless it cannot (a layer
    # with ``_meters = False``): then a plain entry of ours does.
    meters = bool(layers) and getattr(layers[0], "_meters", True)
    inner = fn
    for layer in reversed(layers[1:] if meters else layers):
        inner = getattr(layer, wrap)(inner, name)
    entry: Callable[..., Any]
    if meters:
        entry = getattr(layers[0], wrap)(inner, name, request)
    else:
        entry = _bare_async(inner, request) if is_async else _bare(inner, request)
    setattr(entry, _CHAIN, Chain(owner, tuple(layers), fn))
    return entry


Detour = Callable[[tuple[Any, ...], dict[str, Any]], Any]


def watching(
    layer: Layer,
    fn: Callable[..., Any],
    name: str,
    entry: Request | None,
    own: Detour | None = None,
    *,
    is_async: bool = False,
) -> tuple[Gate, Detour | None, Request | None]:
    """What a layer's closure reads: ``(gate, detour, meter)``.

    Inside a chain: the layer's own gate, and ``own`` (its path with events,
    if it has per-call events). Outermost (``entry`` given): the chain's
    gate, the chain's events path around the same closure watched by its
    own gate only, and the request to meter into.
    """
    if entry is None:
        return layer._own_gate, own, None
    wrap = layer._wrap_async if is_async else layer._wrap_sync
    plain = wrap(fn, name)
    return entry.gate, entry.adetour(plain) if is_async else entry.detour(plain), entry


def forwarding(
    layer: Layer,
    fn: Callable[..., Any],
    name: str,
    entry: Request | None,
    run: Callable[..., Any],
) -> Callable[..., Any]:
    """The closure of a layer whose whole fast path is ``run(fn, name, args,
    kwargs)`` (chaos, hedging): the gate, the metering and the call, once."""
    gate, detour, meter = watching(layer, fn, name, entry)

    def forwarded(*args: Any, **kwargs: Any) -> Any:
        if level := gate.level:
            if level != METERED:
                return detour(args, kwargs)  # type: ignore[misc]
            return meter.timed(_clock.now(), run, fn, name, args, kwargs)  # type: ignore[union-attr]
        return run(fn, name, args, kwargs)

    return forwarded


def aforwarding(
    layer: Layer,
    fn: Callable[..., Awaitable[Any]],
    name: str,
    entry: Request | None,
    arun: Callable[..., Awaitable[Any]],
) -> Callable[..., Awaitable[Any]]:
    """``forwarding`` for coroutine functions.

    The closure is a plain function returning the awaitable its caller
    awaits (the layer's ``arun(...)`` coroutine), not a coroutine function
    awaiting it: one coroutine frame less on every call and every resumption
    (about a tenth of a hedged stack's call). Nothing runs before the
    caller awaits it but picking the path.
    """
    gate, detour, meter = watching(layer, fn, name, entry, is_async=True)

    def forwarded(*args: Any, **kwargs: Any) -> Awaitable[Any]:
        if level := gate.level:
            if level != METERED:
                return detour(args, kwargs)  # type: ignore[misc,no-any-return]
            return meter.atimed(_clock.now(), arun, fn, name, args, kwargs)  # type: ignore[union-attr]
        return arun(fn, name, args, kwargs)

    return forwarded


def _bare(fn: Callable[..., Any], request: Request) -> Callable[..., Any]:
    """The entry of a chain whose outermost layer does not meter (or of no
    layer at all: a composed policy with every layer off)."""
    detour, gate = request.detour(fn), request.gate

    def entry(*args: Any, **kwargs: Any) -> Any:
        if gate.level:
            return detour(args, kwargs)
        # ``f(*args)`` when there are no keywords: ``f(*args, **kwargs)``
        # builds a dict per call (docs/architecture.md, calls without keywords).
        return fn(*args, **kwargs) if kwargs else fn(*args)

    return entry


def _bare_async(fn: Callable[..., Any], request: Request) -> Callable[..., Any]:
    detour, gate = request.adetour(fn), request.gate

    async def entry(*args: Any, **kwargs: Any) -> Any:
        if gate.level:
            return await detour(args, kwargs)
        return await (fn(*args, **kwargs) if kwargs else fn(*args))

    return entry


def compose_stream(
    owner: Owner, layers: Sequence[Layer], fn: Callable[..., Any]
) -> Callable[..., Any]:
    """The entry of ``layers`` around a generator function or an async
    generator function: each layer's ``_open_stream`` / ``_aopen_stream``
    nested innermost first, opening the stream up to its first item, and
    one relay for its items (``streams.relaying``); the whole stream is
    one request, started at its first item's request."""
    name = owner._event_name(fn)
    scope = owner._listeners
    gate = Gate(scope, tuple(s for layer in layers for s in layer._own_gate.inner))
    request = Request(name, owner._kind, scope, owner._stats_for(name), gate)
    # Each has the member the stream needs: decorate refuses it otherwise.
    streaming = cast("Sequence[Streaming]", layers)
    entry: Callable[..., Any]
    if is_async_gen(fn):
        aopen: Any = functools.partial(_streams.aopen_first, fn)
        for layer in reversed(streaming):
            aopen = functools.partial(layer._aopen_stream, aopen)
        entry = _streams.arelaying(aopen, name, gate, request.stream)
    else:
        open: Any = functools.partial(_streams.open_first, fn)
        for layer in reversed(streaming):
            open = functools.partial(layer._open_stream, open)
        entry = _streams.relaying(open, name, gate, request.sync_stream)
    setattr(entry, _CHAIN, Chain(owner, tuple(layers), fn))
    return entry


def decorate(policy: Any, target: F, owner: Owner | None = None, layers: Any = None) -> F:
    """Wrap ``target`` so every call runs through ``policy`` (or, for a
    composed policy, through ``layers`` counted for ``owner``)."""
    if not callable(target) and not isinstance(target, (classmethod, staticmethod)):
        raise TypeError(f"{type(policy).__name__} can only decorate a callable, got {target!r}")
    own: tuple[Layer, ...] = tuple(layers) if layers is not None else (policy,)
    if owner is None:
        owner = policy
    assert owner is not None
    stacked = chain_of(target)
    if stacked is not None:
        # Stacked by hand on another chain: one chain, the new layers outermost.
        own = (*own, *stacked.layers)
        target = cast(F, stacked.fn)
    elif isinstance(target, (classmethod, staticmethod)):
        stacked = chain_of(target.__func__)
        if stacked is not None:  # a chain under the classmethod: rebuild it round the function
            own = (*own, *stacked.layers)
            target = cast(F, type(target)(stacked.fn))
    if is_stream(target):
        method = "_aopen_stream" if is_async_gen(target) else "_open_stream"
        missing = [layer for layer in own if getattr(layer, method, None) is None]
        if missing:
            raise TypeError(
                f"{type(missing[0]).__name__} cannot wrap the generator function {target!r}"
            )
        if inspect.isfunction(target):
            return cast(F, _update_wrapper(compose_stream(owner, own, target), target))
        build: Callable[[Callable[..., Any]], Callable[..., Any]] = functools.partial(
            compose_stream, owner, own
        )
    else:
        is_async = is_async_callable(target)
        if inspect.isfunction(target):
            entry = compose(owner, own, target, is_async=is_async)
            if is_async and not inspect.iscoroutinefunction(entry):
                entry = _coroutine_function(entry)
            return cast(F, _update_wrapper(entry, target))
        build = functools.partial(compose, owner, own, is_async=is_async)
    from .binding import BoundChain, ChainWrapper  # wrapt loads with the first one made

    return cast(F, ChainWrapper(target, BoundChain(build), Chain(owner, own, cast(Any, target))))


def _coroutine_function(entry: Callable[..., Any]) -> Callable[..., Any]:
    """``entry``, a plain function returning its awaitable (an outermost
    layer that only forwards: a timeout, hedging, chaos, failover), as what
    it decorates is: a coroutine function to ``inspect`` and ``asyncio``
    (FastAPI, Starlette, pytest and Django decide how to call a function by
    that). From Python 3.12 it is marked as one, at no cost per call;
    before, an ``async def`` awaits it (a coroutine per call)."""
    if sys.version_info >= (3, 12):
        return inspect.markcoroutinefunction(entry)

    async def entered(*args: Any, **kwargs: Any) -> Any:
        # ``f(*args)`` when there are no keywords: ``f(*args, **kwargs)``
        # builds a dict per call (docs/architecture.md, calls without keywords).
        return await (entry(*args, **kwargs) if kwargs else entry(*args))

    setattr(entered, _CHAIN, getattr(entry, _CHAIN))
    return entered


def _update_wrapper(wrapper: Callable[..., Any], fn: Callable[..., Any]) -> Callable[..., Any]:
    functools.update_wrapper(wrapper, fn)
    # What update_wrapper leaves out: introspection of defaults keeps working.
    wrapper.__defaults__ = fn.__defaults__
    wrapper.__kwdefaults__ = fn.__kwdefaults__
    return wrapper
