"""The asyncio race's shared timer: one loop timer per policy and loop,
entries that leave nothing behind, a hedge at each call's own delay.

Time is the event loop's own here (the shared timer reads it), moved by
hand: a loop whose ``time()`` is a number the test sets.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from resilient import Hedging


class _ManualLoop(asyncio.SelectorEventLoop):
    """An event loop whose clock moves only when the test moves it."""

    now = 0.0

    def time(self) -> float:
        return self.now


def _run(main: Callable[[_ManualLoop], Awaitable[Any]]) -> Any:
    loop = _ManualLoop()
    try:
        return loop.run_until_complete(main(loop))
    finally:
        loop.close()


async def _settle() -> None:
    """Let every callback and task the loop has ready run (timers due
    included), in a few rounds of its queue."""
    for _ in range(5):
        await asyncio.sleep(0)


async def _quick(x: int) -> int:
    await asyncio.sleep(0)
    return x


async def test_calls_one_after_another_leave_nothing_on_the_timer() -> None:
    policy = Hedging(delay=5.0)
    for i in range(100):
        assert await policy.call_async(_quick, i) == i
    timers = policy._timers
    assert timers is not None
    assert len(timers.entries) == 0
    # One loop timer, armed by the first call, serves them all.
    scheduled = asyncio.get_running_loop()._scheduled  # type: ignore[attr-defined]
    assert timers.handle is not None
    assert [h for h in scheduled if not h.cancelled()] == [timers.handle]


def test_calls_ending_out_of_order_are_dropped_when_the_timer_gets_there() -> None:
    policy = Hedging(delay=1.0)

    async def main(loop: _ManualLoop) -> None:
        events = {0: asyncio.Event(), 1: asyncio.Event()}

        async def waits(x: int) -> int:
            await events[x].wait()
            return x

        older = asyncio.ensure_future(policy.call_async(waits, 0))
        await asyncio.sleep(0)
        newer = asyncio.ensure_future(policy.call_async(waits, 1))
        await asyncio.sleep(0)
        timers = policy._timers
        assert timers is not None
        assert len(timers.entries) == 2
        events[0].set()
        assert await older == 0
        assert len(timers.entries) == 2  # ended, but not at the tail: left to the timer
        events[1].set()
        assert await newer == 1
        assert len(timers.entries) == 1  # the newer one left from the tail
        loop.now = 1.0
        await _settle()
        assert len(timers.entries) == 0  # the timer got there and dropped the older
        assert timers.handle is None

    _run(main)


def test_each_call_is_hedged_at_its_own_delay() -> None:
    policy = Hedging(delay=1.0)
    started: list[tuple[int, float]] = []

    async def main(loop: _ManualLoop) -> list[int]:
        async def hangs_once(x: int) -> int:
            started.append((x, loop.now))
            if sum(1 for y, _ in started if y == x) == 1:
                await asyncio.Event().wait()  # each call's first attempt hangs
            return x

        calls = []
        for i, at in enumerate((0.0, 0.25, 0.5)):
            loop.now = at
            calls.append(asyncio.ensure_future(policy.call_async(hangs_once, i)))
            await asyncio.sleep(0)
        quick = [await policy.call_async(_quick, i) for i in range(10, 20)]  # in time
        assert quick == list(range(10, 20))
        for at in (1.0, 1.25, 1.5):
            loop.now = at
            await _settle()
        return list(await asyncio.gather(*calls))

    assert _run(main) == [0, 1, 2]
    hedges = [(x, at) for x, at in started if started.index((x, at)) >= 3]
    assert hedges == [(0, 1.0), (1, 1.25), (2, 1.5)]
