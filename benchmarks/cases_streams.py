"""Benchmark cases of streams (registered into ``cases.CASES`` on import).

Each call consumes a whole stream: ``ITEMS`` items for the per-item cases
(so the stream's setup is spread thin), one item for the per-stream cases.
The floor is a bare relay, ``async for x in inner: yield x`` (``yield from``
for sync generators): the least a wrapper of a stream costs. The full stack
is fallback, retry, breaker, bulkhead and a timeout with an inactivity
limit; the per-stream case compares it with the same stack around a
coroutine call (its timeout without ``inactivity=``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from .cases import CONCURRENCY, TIMEOUT, awork, case

__all__ = ["ITEMS"]

ITEMS = 100
STREAM = ("with_resilience", "TimeoutConfig", "BulkheadConfig", "Fallback")


def _items(n: int) -> Iterator[int]:
    yield from range(n)


async def _aitems(n: int) -> AsyncIterator[int]:
    for i in range(n):
        yield i


def _relay(n: int) -> Iterator[int]:
    yield from _items(n)


async def _arelay(n: int) -> AsyncIterator[int]:
    async for item in _aitems(n):
        yield item


def _stack(fn: Callable[..., Any], name: str, *, stream: bool = True, **more: Any) -> Any:
    from resilient import BulkheadConfig, Fallback, TimeoutConfig, with_resilience

    timeout = TimeoutConfig(TIMEOUT, inactivity=TIMEOUT) if stream else TimeoutConfig(TIMEOUT)
    return with_resilience(
        name,
        timeout=timeout,
        bulkhead=BulkheadConfig(max_concurrent=CONCURRENCY),
        fallback=Fallback(value=None),
        **more,
    )(fn)


def _consume(stream: Callable[[int], Iterator[int]], n: int) -> Callable[[int], Any]:
    def call(x: int) -> Any:
        for _ in stream(n):
            pass
        return x

    return call


def _aconsume(stream: Callable[[int], AsyncIterator[int]], n: int) -> Callable[[int], Any]:
    async def call(x: int) -> Any:
        async for _ in stream(n):
            pass
        return x

    return call


# Per item: a stream of ITEMS items through the stack, and through a bare relay.
case("sync", f"stream of {ITEMS}", "floor: bare relay")(lambda: _consume(_relay, ITEMS))
case("async", f"stream of {ITEMS}", "floor: bare relay")(lambda: _aconsume(_arelay, ITEMS))
case("sync", f"stream of {ITEMS}", "resilient", features=STREAM)(
    lambda: _consume(_stack(_items, "stream-items"), ITEMS)
)
case("async", f"stream of {ITEMS}", "resilient", features=STREAM)(
    lambda: _aconsume(_stack(_aitems, "astream-items"), ITEMS)
)

# Per stream: one item through the stack, against the same stack around a call.
case(
    "async",
    "stream of 1",
    "resilient",
    features=STREAM,
    also=("async stack around a call: resilient",),
)(lambda: _aconsume(_stack(_aitems, "astream-one"), 1))
case("async", "stack around a call", "resilient", features=STREAM)(
    lambda: _stack(awork, "astream-call", stream=False)
)


def _hedged() -> Any:
    from resilient import HedgingConfig

    return _aconsume(_stack(_aitems, "astream-hedged", hedging=HedgingConfig(TIMEOUT)), 1)


# Hedged by first item, the first item in time, against the same stream unhedged.
case("async", "hedged stream of 1", "resilient", features=(*STREAM, "HedgingConfig"))(_hedged)
