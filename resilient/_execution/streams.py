"""Streams: what every policy's stream path shares.

A stream (what a generator function or an async generator function
returns) is one protected call. It starts at the first ``next()`` /
``__anext__()`` and ends when it is exhausted, raises, or is closed by its
consumer (``close()`` / ``aclose()``, ``break``, garbage collection).

A chain runs a stream in two halves:

- Opening, up to the first item. Each layer's ``_open_stream(open, args,
  kwargs, name)`` (``_aopen_stream``, awaited, for an async stream) does
  what the layer does before the first item (admission, a permit, a turn,
  a first-item deadline, starting again after a failure) around
  ``open(args, kwargs, name)``, which opens the layers inside it and,
  innermost, the stream itself up to its first item (``open_first``). It
  gives back an ``Opened``: the innermost stream, its first item, what to
  run when the stream ends (``ends``: hooks called ``hook(error, closed)``,
  innermost first; each layer appends its own) and the bound of each later
  wait (``waits``, a timeout's). A layer whose open fails after its own
  admission undoes it before the error leaves it, as a call does.
- Relaying: ONE generator (``relaying`` / ``arelaying``) yields the first
  item, then the innermost stream's items straight through, applying only
  ``waits``; when the stream ends it closes the innermost stream and runs
  the hooks with how it ended (an error, closed by its consumer, or
  exhausted). Why: a generator per layer relaying every item made an item
  cross one frame per layer plus a timer per item, about five times what a
  bare relay costs.

``reopen`` / ``areopen`` are the one place where a stream is started again:
while no item has reached the consumer, a failure is handed to
``recover(error, attempt)``, which gives the next open (retry: the same
layers again after its wait; fallback: the handler's answer; a failover:
the next target) or ``None`` to let the error go. After the first item the
stream is relayed untouched: an error propagates as itself, and no item is
ever repeated or lost.
"""

from __future__ import annotations

import asyncio
import inspect
from asyncio import CancelledError
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from .._runtime.async_backend import current_task as _current_task

if TYPE_CHECKING:
    from ..events import Gate

__all__ = [
    "AOpen",
    "AStream",
    "AStreamFn",
    "AWaits",
    "Args",
    "AsyncFn",
    "End",
    "Hold",
    "Kwargs",
    "Open",
    "Opened",
    "Stream",
    "StreamFn",
    "SyncFn",
    "Waits",
    "abandon",
    "aabandon",
    "aclose",
    "aone_stream",
    "aopen_first",
    "areopen",
    "arelaying",
    "asealed",
    "close",
    "end",
    "one_stream",
    "open_first",
    "relaying",
    "reopen",
    "sealed",
]

T = TypeVar("T")

# What a layer's paths are handed and give back, spelt once: the function
# (sync, async, or the generator function of a stream) and its arguments.
Args = tuple[Any, ...]
Kwargs = dict[str, Any]
SyncFn = Callable[..., T]
AsyncFn = Callable[..., Awaitable[T]]
Stream = Iterator[Any]
AStream = AsyncIterator[Any]
StreamFn = Callable[..., Stream]
AStreamFn = Callable[..., AStream]

#: What a stream runs when it ends: ``hook(error, closed)``; ``error`` is
#: what it raised (None: exhausted, or closed), ``closed`` whether its
#: consumer closed it (``close()``, ``aclose()``, ``break``, collected).
End = Callable[[BaseException | None, bool], None]

#: What is still pending of a call's result when the call returns (a
#: response whose body streams on): ``hold(result)`` gives the end hooks of
#: that pending part, which its owner runs once when it ends, or None when
#: nothing is pending.
Hold = Callable[[Any], "list[End] | None"]


class Waits(Protocol):
    """The bound of each later wait of a sync stream (a timeout's): a wait
    asked at ``asked`` that gave its item at ``came`` (both ``now()``)
    overran when ``came - asked > later`` or ``came > ends``; ``overran``
    is then the error to raise."""

    now: Callable[[], float]
    later: float
    ends: float

    def overran(self, asked: float, came: float) -> BaseException: ...


class AWaits(Protocol):
    """The bound of each later wait of an async stream under asyncio (a
    timeout's one lazy timer). As a wait starts the relay sets ``when``
    (``time() + later``, at most ``ends``), ``task`` (the waiting task,
    ``current_task(loop)``) and ``waiting``, and calls ``schedule()`` if
    no timer is set (``handle`` None); ``waiting = False`` when it ended. A
    ``CancelledError`` out of the wait is the deadline's when
    ``timed_out()``, and ``error()`` is then the error."""

    time: Callable[[], float]
    later: float
    ends: float
    loop: asyncio.AbstractEventLoop
    when: float
    task: Any
    waiting: bool
    handle: object

    def schedule(self) -> None: ...

    def timed_out(self) -> bool: ...

    def error(self) -> BaseException: ...


class Opened:
    """A stream opened by a chain up to its first item (``stream`` None: it
    ended without one)."""

    __slots__ = ("ends", "first", "stream", "waits")

    def __init__(self, stream: Any, first: Any) -> None:
        self.stream = stream
        self.first = first
        self.ends: list[End] = []
        self.waits: Any = None  # Waits or AWaits, by the kind of stream


Open = Callable[[Args, Kwargs, str], Opened]
AOpen = Callable[[Args, Kwargs, str], Awaitable[Opened]]


# --- generated from aclose by scripts/unasync.py; do not edit ---
def close(stream: object) -> None:
    """Close ``stream`` if it can be closed (a generator can; a list iterator cannot)."""
    closing = getattr(stream, "close", None)
    if closing is not None:
        closing()


# --- end generated ---


async def aclose(stream: object) -> None:
    """Close ``stream`` if it can be closed (a generator can; a list iterator cannot)."""
    closing = getattr(stream, "aclose", None)
    if closing is not None:
        await closing()


def end(ends: list[End], error: BaseException | None, closed: bool) -> None:
    """Run a stream's end hooks, innermost first. A hook that raises does
    not stop the others (no permit is kept): the ones after it see its error
    as the stream's, and it is raised once all have run."""
    raised: BaseException | None = None
    for hook in ends:
        try:
            hook(error, closed)
        except BaseException as exc:
            raised = error = exc
            closed = False
    if raised is not None:
        try:
            raise raised
        finally:
            raised = error = None


# --- generated from aabandon by scripts/unasync.py; do not edit ---
def abandon(opened: Opened, error: BaseException) -> None:
    """End ``opened`` with ``error`` before it reached the relay (a layer's
    own step failed after the layers inside it opened)."""
    try:
        close(opened.stream)
    finally:
        end(opened.ends, error, False)


# --- end generated ---


async def aabandon(opened: Opened, error: BaseException) -> None:
    """End ``opened`` with ``error`` before it reached the relay (a layer's
    own step failed after the layers inside it opened)."""
    try:
        await aclose(opened.stream)
    finally:
        end(opened.ends, error, False)


# -- opening ------------------------------------------------------------------------


# --- generated from aopen_first by scripts/unasync.py; do not edit ---
def open_first(fn: StreamFn, args: Args, kwargs: Kwargs, name: str) -> Opened:
    """The innermost open: the stream of ``fn(*args, **kwargs)`` and its first item."""
    stream = fn(*args, **kwargs)
    try:
        first = next(stream)
    except StopIteration:
        return Opened(None, None)
    except BaseException:
        close(stream)
        raise
    return Opened(stream, first)


# --- end generated ---


async def aopen_first(fn: AStreamFn, args: Args, kwargs: Kwargs, name: str) -> Opened:
    """The innermost open: the stream of ``fn(*args, **kwargs)`` and its first item."""
    stream = fn(*args, **kwargs)
    try:
        first = await anext(stream)
    except StopAsyncIteration:
        return Opened(None, None)
    except BaseException:
        await aclose(stream)
        raise
    return Opened(stream, first)


# --- generated from areopen by scripts/unasync.py; do not edit ---
def reopen(
    args: Args,
    kwargs: Kwargs,
    name: str,
    error: Exception,
    recover: Callable[[Exception, int], Open | None],
) -> Opened:
    """After the first open failed with ``error``: the open
    ``recover(error, attempt)`` gives instead (``attempt`` counts the
    opens so far), while it gives one; else the last error propagates."""
    attempt = 1
    while True:
        following = recover(error, attempt)
        if following is None:
            try:
                raise error
            finally:
                error = None  # type: ignore[assignment]  # no cycle through the traceback
        attempt += 1
        try:
            return following(args, kwargs, name)
        except Exception as exc:
            error = exc


# --- end generated ---


async def areopen(
    args: Args,
    kwargs: Kwargs,
    name: str,
    error: Exception,
    recover: Callable[[Exception, int], Awaitable[AOpen | None]],
) -> Opened:
    """After the first open failed with ``error``: the open
    ``recover(error, attempt)`` gives instead (``attempt`` counts the
    opens so far), while it gives one; else the last error propagates."""
    attempt = 1
    while True:
        following = await recover(error, attempt)
        if following is None:
            try:
                raise error
            finally:
                error = None  # type: ignore[assignment]  # no cycle through the traceback
        attempt += 1
        try:
            return await following(args, kwargs, name)
        except Exception as exc:
            error = exc


# -- relaying -------------------------------------------------------------------------


def relaying(
    open: Open,
    name: str,
    gate: Gate | None = None,
    watched: Callable[[Stream], Stream] | None = None,
) -> StreamFn:
    """The generator function of a chain's stream: ``open`` up to the first
    item, then the one relay. While ``gate`` is up, ``watched(stream)``
    relays it as one request (timing, events) around the same relay."""
    plain = relaying(open, name) if watched is not None else None

    def relay(*args: Any, **kwargs: Any) -> Iterator[Any]:
        if gate is not None and gate.level:
            assert plain is not None
            assert watched is not None
            watching = watched(plain(*args, **kwargs))
            try:
                yield from watching
            finally:
                close(watching)
            return
        opened = open(args, kwargs, name)
        stream, ends = opened.stream, opened.ends
        if stream is None:
            end(ends, None, False)
            return
        waits: Waits | None = opened.waits
        first = opened.first
        del opened
        error: BaseException | None = None
        closed = False
        try:
            yield first
            del first
            if waits is None:
                # ``yield from``: the items pass at C speed, and close() /
                # throw() reach the stream as they would without a relay.
                yield from stream
            else:
                # A sync stream cannot be interrupted: a wait that overran
                # fails when its item comes (the item is dropped).
                now, later, ends_at = waits.now, waits.later, waits.ends
                asked = now()
                for item in stream:
                    came = now()
                    if came - asked > later or came > ends_at:
                        raise waits.overran(asked, came)
                    yield item
                    asked = now()
        except GeneratorExit:
            closed = True
            raise
        except BaseException as exc:
            error = exc
            raise
        finally:
            try:
                close(stream)
            except BaseException as exc:
                error, closed = exc, False
                raise
            finally:
                try:
                    end(ends, error, closed)
                finally:
                    error = None

    return relay


def arelaying(
    open: AOpen,
    name: str,
    gate: Gate | None = None,
    watched: Callable[[AStream], AStream] | None = None,
) -> AStreamFn:
    """``relaying`` for async streams."""
    plain = arelaying(open, name) if watched is not None else None

    async def relay(*args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        if gate is not None and gate.level:
            assert plain is not None
            assert watched is not None
            watching = watched(plain(*args, **kwargs))
            try:
                async for item in watching:
                    yield item
            finally:
                await aclose(watching)
            return
        opened = await open(args, kwargs, name)
        stream, ends = opened.stream, opened.ends
        if stream is None:
            end(ends, None, False)
            return
        waits: AWaits | None = opened.waits
        first = opened.first
        del opened
        error: BaseException | None = None
        closed = False
        exhausted = False
        try:
            yield first
            del first
            if waits is None:
                async for item in stream:
                    yield item
            else:
                # Each wait re-arms the stream's one lazy timer: a clock read,
                # not a timer per item. ``AWaits``' steps, inline (a method
                # call per item was a third of the relay's cost).
                now, later, ends_at = waits.time, waits.later, waits.ends
                current, loop = _current_task, waits.loop
                when = now() + later
                waits.when = when if when < ends_at else ends_at
                waits.task = current(loop)
                waits.waiting = True
                if waits.handle is None:
                    waits.schedule()
                async for item in stream:
                    waits.waiting = False
                    yield item
                    when = now() + later
                    waits.when = when if when < ends_at else ends_at
                    waits.task = current(loop)
                    waits.waiting = True
                    if waits.handle is None:
                        waits.schedule()
                waits.waiting = False
            exhausted = True  # nothing to close
        except GeneratorExit:
            closed = True
            raise
        except BaseException as exc:
            if waits is not None and waits.waiting:
                waits.waiting = False
                if isinstance(exc, CancelledError) and waits.timed_out():
                    error = waits.error()
                    raise error from exc
            error = exc
            raise
        finally:
            try:
                if not exhausted:
                    await aclose(stream)
            except BaseException as exc:
                error, closed = exc, False
                raise
            finally:
                try:
                    end(ends, error, closed)
                finally:
                    error = None

    return relay


def _given(args: Args, kwargs: Kwargs, name: str) -> Opened:
    opened: Opened = args[0]
    return opened


async def _agiven(args: Args, kwargs: Kwargs, name: str) -> Opened:
    opened: Opened = args[0]
    return opened


_sealing = relaying(_given, "")
_asealing = arelaying(_agiven, "")


def sealed(opened: Opened) -> tuple[Stream | None, Any]:
    """``opened`` as a stream of its own, relayed and ended as a chain's
    (its waits, its hooks), and its first item: ``(None, None)`` for a
    stream that ended without one (its hooks have run). Started already,
    so dropping it unconsumed still ends it (its ``close()`` on collection
    runs the hooks). For what holds an opened stream apart from the relay:
    a hedge that may lose, a second timeout."""
    if opened.stream is None:
        end(opened.ends, None, False)
        return None, None
    stream = _sealing(opened)
    return stream, next(stream)


async def asealed(opened: Opened) -> tuple[AStream | None, Any]:
    """``sealed`` for async streams (collected, the event loop closes it)."""
    if opened.stream is None:
        end(opened.ends, None, False)
        return None, None
    stream = _asealing(opened)
    return stream, await anext(stream)


# -- fallback answers -------------------------------------------------------------


def _is_value(answer: object) -> bool:
    """What a fallback answer is taken as one item, not as items: text,
    bytes, mappings and anything not iterable."""
    return isinstance(answer, (str, bytes, bytearray, memoryview, dict)) or not isinstance(
        answer, Iterable
    )


def one_stream(answer: Any) -> Iterator[Any]:
    """A fallback's answer as a stream: an iterable gives its items, any
    other value is a one-item stream."""
    if _is_value(answer):
        yield answer
        return
    stream = iter(answer)
    try:
        yield from stream
    finally:
        close(stream)


async def aone_stream(answer: Any) -> AsyncIterator[Any]:
    """``one_stream`` for async streams: also an async iterable, or an
    awaitable whose result is any of these."""
    if inspect.isawaitable(answer):
        answer = await answer
    if isinstance(answer, AsyncIterable):
        stream = aiter(answer)
        try:
            async for item in stream:
                yield item
        finally:
            await aclose(stream)
        return
    if _is_value(answer):
        yield answer
        return
    items = iter(answer)
    try:
        for item in items:
            yield item
    finally:
        close(items)
