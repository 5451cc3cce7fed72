"""Streams: what every policy's stream path shares.

A stream (what a generator function or an async generator function
returns) is one protected call. It starts at the first ``next()`` /
``__anext__()`` and ends when it is exhausted, raises, or is closed by its
consumer (``close()`` / ``aclose()``, ``break``, garbage collection).

``before_first`` / ``abefore_first`` are the one place where a stream is
started again: while no item has reached the consumer, a failure is handed
to ``recover(error, attempt)``, which gives the next stream to open (retry:
the same call again after its wait; fallback: the handler's answer; a
failover: the next target) or ``None`` to let the error go. After the first
item the stream is relayed untouched: an error propagates as itself, and no
item is ever repeated or lost.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Iterator
from typing import Any, TypeVar

__all__ = [
    "AOpener",
    "AStream",
    "AStreamFn",
    "Args",
    "AsyncFn",
    "Kwargs",
    "Opener",
    "Stream",
    "StreamFn",
    "SyncFn",
    "abefore_first",
    "aclose",
    "aone_stream",
    "before_first",
    "close",
    "one_stream",
]

T = TypeVar("T")

Opener = Callable[[], Iterator[T]]
AOpener = Callable[[], AsyncIterator[T]]

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


def close(stream: object) -> None:
    """Close ``stream`` if it can be closed (a generator can; a list iterator cannot)."""
    closing = getattr(stream, "close", None)
    if closing is not None:
        closing()


async def aclose(stream: object) -> None:
    closing = getattr(stream, "aclose", None)
    if closing is not None:
        await closing()


def before_first(
    opener: Opener[T],
    recover: Callable[[Exception, int], Opener[T] | None],
    answered: Callable[[], object] | None = None,
) -> Iterator[T]:
    """The items of ``opener()``; a failure before the first item asks
    ``recover(error, attempt)`` for the stream to open instead (``None``:
    the error propagates). ``attempt`` counts the streams opened so far.
    ``answered()``, when given, is called once a stream gave its first item
    (or ended without one)."""
    attempt = 1
    while True:
        stream: Iterator[T] | None = None
        try:
            stream = opener()
            first = next(stream)
        except StopIteration:
            if answered is not None:
                answered()
            return
        except Exception as exc:
            if stream is not None:
                close(stream)
            following = recover(exc, attempt)
            if following is None:
                raise
            opener = following
            attempt += 1
            continue
        except BaseException:
            if stream is not None:
                close(stream)
            raise
        break
    if answered is not None:
        answered()
    try:
        yield first
        del first
        yield from stream
    finally:
        close(stream)


async def abefore_first(
    opener: AOpener[T],
    recover: Callable[[Exception, int], Awaitable[AOpener[T] | None]],
    answered: Callable[[], object] | None = None,
) -> AsyncIterator[T]:
    """``before_first`` for async streams (``recover`` is awaited)."""
    attempt = 1
    while True:
        stream: AsyncIterator[T] | None = None
        try:
            stream = opener()
            first = await anext(stream)
        except StopAsyncIteration:
            if answered is not None:
                answered()
            return
        except Exception as exc:
            if stream is not None:
                await aclose(stream)
            following = await recover(exc, attempt)
            if following is None:
                raise
            opener = following
            attempt += 1
            continue
        except BaseException:
            if stream is not None:
                await aclose(stream)
            raise
        break
    if answered is not None:
        answered()
    try:
        yield first
        del first
        async for item in stream:
            yield item
    finally:
        await aclose(stream)


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
