"""Many hedged calls at once: every call gets its own answer, and no attempt
is left behind."""

from __future__ import annotations

import asyncio
import random
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import anyio
import pytest

from resilient import Bulkhead, Hedging, HedgingConfig
from tests.conftest import Main


@pytest.mark.slow
async def test_concurrent_async_hedged_calls_leave_no_task_and_no_permit() -> None:
    rng = random.Random(3)
    bulkhead = Bulkhead("stress-hedged", max_concurrent=10_000)
    policy = Hedging(HedgingConfig(0.002, max_hedges=2, on=(ConnectionError,)))

    @bulkhead
    async def dependency(i: int) -> int:
        roll = rng.random()
        await asyncio.sleep(0.02 if roll < 0.1 else 0.001 * rng.random())
        if roll > 0.9:
            raise ConnectionError(i)
        return i

    async def one(i: int) -> int | None:
        try:
            return await policy.call_async(dependency, i)
        except ConnectionError:
            return None

    calls = [asyncio.create_task(one(i)) for i in range(2000)]
    # Cancel a few callers midway: their attempts must go too.
    await asyncio.sleep(0.005)
    for task in calls[::50]:
        task.cancel()
    results = await asyncio.gather(*calls, return_exceptions=True)
    for i, result in enumerate(results):
        assert result in (i, None) or isinstance(result, asyncio.CancelledError)
    for _ in range(5):
        await asyncio.sleep(0)
    assert asyncio.all_tasks() == {asyncio.current_task()}
    assert bulkhead.metrics().active == 0


@pytest.mark.slow
def test_concurrent_hedged_calls_under_each_library_leave_no_permit(
    run: Callable[[Main], Any],
) -> None:
    rng = random.Random(5)
    bulkhead = Bulkhead("stress-hedged-libraries", max_concurrent=10_000)
    policy = Hedging(HedgingConfig(0.002, max_hedges=2, on=(ConnectionError,)))
    results: dict[int, int | None] = {}
    cancelled: list[int] = []

    @bulkhead
    async def dependency(i: int) -> int:
        roll = rng.random()
        await anyio.sleep(0.02 if roll < 0.1 else 0.001 * rng.random())
        if roll > 0.9:
            raise ConnectionError(i)
        return i

    async def one(i: int) -> None:
        with anyio.CancelScope() as scope:
            if i % 50 == 0:
                scope.deadline = anyio.current_time() + 0.005  # cancelled midway
            try:
                results[i] = await policy.call_async(dependency, i)
            except ConnectionError:
                results[i] = None
        if scope.cancelled_caught:
            cancelled.append(i)

    async def main() -> None:
        async with anyio.create_task_group() as tasks:
            for i in range(1000):
                tasks.start_soon(one, i)

    run(main)
    assert all(result in (i, None) for i, result in results.items())
    assert len(results) + len(cancelled) == 1000
    assert cancelled  # some callers were cancelled midway: their attempts went too
    assert bulkhead.metrics().active == 0


@pytest.mark.slow
def test_concurrent_sync_hedged_calls_each_get_their_own_answer() -> None:
    local = threading.local()
    policy = Hedging(HedgingConfig(0.002, max_hedges=1))
    release = threading.Event()

    def dependency(i: int) -> int:
        local.calls = getattr(local, "calls", 0) + 1
        if i % 10 == 0 and local.calls % 2:
            release.wait(0.05)  # a slow one: its hedge answers first
        return i

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda i: policy.call(dependency, i), range(400)))
    release.set()
    assert results == list(range(400))
