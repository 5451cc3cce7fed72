"""Adaptive concurrency: the algorithms, the targets on a simulated
dependency, and the bulkhead that applies them."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import pytest

import resilient
from resilient import (
    AdaptiveLimit,
    Bulkhead,
    BulkheadConfig,
    BulkheadFullError,
)
from resilient._demo.overload import p99, simulate
from resilient._runtime import clock as _clock
from resilient.adaptive import ALGORITHMS, MAX_LIMIT, WINDOW, estimator
from resilient.bulkhead.state import LimiterCore
from resilient.testing import fake_clock

# -- configuration --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "field", "value"),
    [
        ({"algorithm": "reno"}, "algorithm", "reno"),
        ({"algorithm": None}, "algorithm", None),
        ({"initial": 0}, "initial", 0),
        ({"initial": 2.5}, "initial", 2.5),
        ({"min_limit": 0}, "min_limit", 0),
        ({"max_limit": True}, "max_limit", True),
        ({"max_limit": MAX_LIMIT + 1, "initial": 5}, "max_limit", MAX_LIMIT + 1),
        ({"min_limit": 30, "initial": 30, "max_limit": 10}, "max_limit", 10),
        ({"initial": 500}, "initial", 500),
        ({"initial": 1, "min_limit": 2}, "initial", 1),
    ],
)
def test_bad_fields_are_refused_at_construction(
    fields: dict[str, Any], field: str, value: object
) -> None:
    with pytest.raises((TypeError, ValueError)) as info:
        AdaptiveLimit(**fields)
    assert f"AdaptiveLimit.{field}" in str(info.value)
    assert repr(value) in str(info.value)


def test_the_defaults_are_the_documented_ones() -> None:
    assert AdaptiveLimit() == AdaptiveLimit("gradient", initial=20, min_limit=1, max_limit=200)


def test_the_bulkheads_max_concurrent_caps_the_limit() -> None:
    algorithm = estimator(AdaptiveLimit(initial=20, max_limit=200), cap=8)
    assert algorithm.estimate == 8.0
    assert algorithm.high == 8.0


# -- the algorithms, sample by sample ------------------------------------------------------


@pytest.mark.parametrize("name", ALGORITHMS)
def test_a_full_bulkhead_at_baseline_latency_grows(name: str) -> None:
    algorithm = estimator(AdaptiveLimit(name, initial=20), cap=200)
    for _ in range(200):
        algorithm.update(0.01, int(algorithm.estimate), False)
    assert algorithm.estimate > 22


@pytest.mark.parametrize("name", ALGORITHMS)
def test_a_far_from_full_bulkhead_does_not_grow(name: str) -> None:
    algorithm = estimator(AdaptiveLimit(name, initial=20), cap=200)
    for _ in range(200):
        algorithm.update(0.01, 2, False)
    assert algorithm.estimate == 20.0


@pytest.mark.parametrize("name", ALGORITHMS)
def test_latency_far_above_the_baseline_shrinks_the_limit(name: str) -> None:
    algorithm = estimator(AdaptiveLimit(name, initial=40), cap=200)
    algorithm.update(0.01, 40, False)
    for _ in range(400):
        algorithm.update(0.05, int(algorithm.estimate), False)
    assert algorithm.estimate < 30


@pytest.mark.parametrize("name", ALGORITHMS)
def test_failures_shrink_the_limit_down_to_min_limit_and_no_further(name: str) -> None:
    algorithm = estimator(AdaptiveLimit(name, initial=40, min_limit=3), cap=200)
    algorithm.update(0.01, 40, False)
    for _ in range(10_000):
        algorithm.update(0.01, int(algorithm.estimate), True)
    assert algorithm.estimate == 3.0


# -- the targets, on a simulated dependency of capacity C -------------------------------------

C = 50
BASE = 0.01
DROP_AT = 4000  # calls; then the capacity falls to 10
CALLS = 6000


def _capacity(n: int) -> int:
    return C if n < DROP_AT else 10


def _run(adaptive: AdaptiveLimit | None, max_concurrent: int) -> Any:
    return simulate(
        adaptive,
        max_concurrent=max_concurrent,
        calls=CALLS,
        capacity=_capacity,
        clients=lambda n: 10 * C,
        base=BASE,
    )


def _settled_by(limits: list[int], start: int, end: int, low: float, high: float) -> int | None:
    """The first call from which the limit stays within [low, high] until ``end``."""
    for i in range(start, end):
        if all(low <= x <= high for x in limits[i:end]):
            return i - start
    return None


@pytest.mark.parametrize("name", ALGORITHMS)
def test_the_limit_settles_near_capacity_and_keeps_latency_low(name: str) -> None:
    run = _run(AdaptiveLimit(name, initial=20, max_limit=10 * C), 10 * C)
    settled = _settled_by(run.limits, 0, DROP_AT, 0.5 * C, 2 * C)
    assert settled is not None
    assert settled <= 2000
    assert p99(run.latencies[2000:DROP_AT]) <= 3 * BASE


@pytest.mark.parametrize("name", ALGORITHMS)
def test_the_limit_follows_a_capacity_drop_within_1000_calls(name: str) -> None:
    run = _run(AdaptiveLimit(name, initial=20, max_limit=10 * C), 10 * C)
    followed = _settled_by(run.limits, DROP_AT, CALLS, 0.5 * 10, 2 * 10)
    assert followed is not None
    assert followed <= 1000


def test_a_fixed_limit_of_ten_times_capacity_lets_latency_grow() -> None:
    run = _run(None, 10 * C)
    assert set(run.limits) == {10 * C}
    assert p99(run.latencies[2000:DROP_AT]) >= 5 * BASE


def test_the_simulation_is_deterministic() -> None:
    first = _run(AdaptiveLimit("vegas"), 200)
    again = _run(AdaptiveLimit("vegas"), 200)
    assert first.limits == again.limits
    assert first.latencies == again.latencies


# -- the permits: growing and shrinking in the core ------------------------------------------


def test_a_smaller_limit_takes_free_permits_then_owes_held_ones() -> None:
    core = LimiterCore(10, 0, limit=4)
    core.take()
    core.take()
    core.take()  # 3 held, 1 free
    core.resize(1)
    assert (core.limit, core.owed, len(core.free), core.active) == (1, 2, 0, 3)
    assert core.settle()  # the first two releases pay the debt
    assert core.settle()
    assert not core.settle()
    core.give()
    assert (core.active, len(core.free)) == (0, 1)


def test_a_larger_limit_pays_debts_first_then_adds_permits() -> None:
    core = LimiterCore(10, 0, limit=2)
    core.take()
    core.take()
    core.resize(0 + 1)  # owes one
    assert core.owed == 1
    core.resize(4)
    assert (core.owed, len(core.free), core.active) == (0, 2, 2)


# -- the bulkhead -------------------------------------------------------------------------------


def test_a_fixed_bulkheads_limit_is_max_concurrent() -> None:
    bulkhead = Bulkhead("fixed", max_concurrent=7)
    assert bulkhead.metrics().limit == 7


def test_an_adaptive_bulkhead_starts_at_initial_within_max_concurrent() -> None:
    assert Bulkhead("a", BulkheadConfig(100, adaptive=AdaptiveLimit())).metrics().limit == 20
    assert Bulkhead("b", BulkheadConfig(5, adaptive=AdaptiveLimit())).metrics().limit == 5


def test_failing_calls_shrink_an_adaptive_bulkheads_limit() -> None:
    bulkhead = Bulkhead(
        "shrinks", BulkheadConfig(100, adaptive=AdaptiveLimit("aimd", initial=20, min_limit=2))
    )

    @bulkhead
    def fail() -> None:
        raise ConnectionError()

    with fake_clock():
        for _ in range(200):
            with pytest.raises(ConnectionError):
                fail()
    metrics = bulkhead.metrics()
    assert metrics.limit < 20
    assert metrics.active == 0


async def test_slow_calls_shrink_the_limit_and_held_permits_are_not_leaked() -> None:
    bulkhead = Bulkhead(
        "slowing", BulkheadConfig(50, adaptive=AdaptiveLimit("gradient", initial=10))
    )
    latency = [0.01]
    made = 0

    @bulkhead
    async def call() -> None:
        nonlocal made
        made += 1
        await _clock.sleep_async(latency[0])

    with fake_clock():
        for _ in range(WINDOW // 10 + 1):  # a window's worth at the baseline
            await asyncio.gather(*(call() for _ in range(10)))
        latency[0] = 0.1  # ten times the baseline
        for _ in range(20):
            await asyncio.gather(*(call() for _ in range(bulkhead.metrics().limit)))
    metrics = bulkhead.metrics()
    assert metrics.limit < 10
    assert metrics.active == 0
    assert metrics.completed == made


async def test_a_shrunk_limit_rejects_beyond_it() -> None:
    bulkhead = Bulkhead(
        "tight", BulkheadConfig(50, adaptive=AdaptiveLimit("vegas", initial=3, min_limit=1))
    )
    release = asyncio.Event()

    @bulkhead
    async def hold() -> None:
        await release.wait()

    tasks = [asyncio.create_task(hold()) for _ in range(3)]
    await asyncio.sleep(0)
    with pytest.raises(BulkheadFullError) as info:
        await hold()
    assert info.value.max_concurrent == 3
    release.set()
    await asyncio.gather(*tasks)
    assert bulkhead.metrics().active == 0


def test_the_limit_is_in_health_and_the_exported_gauges() -> None:
    registry = resilient.Registry()
    bulkhead = registry.bulkhead(
        "db", config=BulkheadConfig(100, adaptive=AdaptiveLimit(initial=30))
    )
    report = registry.health().to_dict()
    assert report["bulkheads"]["db"]["limit"] == 30
    assert report["bulkheads"]["db"]["max_concurrent"] == 100
    gauges = bulkhead._stats_for("db").gauges
    assert gauges is not None
    assert gauges()["limit"] == 30  # type: ignore[index]


async def test_a_limit_that_grows_hands_the_new_permits_to_waiters() -> None:
    from resilient.adaptive import Estimator

    class Grows(Estimator):
        __slots__ = ()
        name = "grows"

        def update(
            self, latency: float, inflight: int, failures: int = 0, samples: int = 1
        ) -> float:
            return self._bounded(3.0)

    bulkhead = Bulkhead("grows", BulkheadConfig(10, max_queue=5, adaptive=AdaptiveLimit(initial=1)))
    bulkhead._estimator = Grows(1, 1, 10)
    release = asyncio.Event()
    running = 0

    @bulkhead
    async def hold() -> None:
        nonlocal running
        running += 1
        await release.wait()

    tasks = [asyncio.create_task(hold()) for _ in range(3)]
    for _ in range(3):
        await asyncio.sleep(0)
    assert (running, bulkhead.metrics().queued) == (1, 2)
    for _ in range(WINDOW):  # a window of samples from elsewhere (a ``with`` block)
        bulkhead._observe(_clock.monotonic(), False)
    for _ in range(3):
        await asyncio.sleep(0)
    assert bulkhead.metrics().limit == 3
    assert (running, bulkhead.metrics().queued) == (3, 0)
    release.set()
    await asyncio.gather(*tasks)
    assert bulkhead.metrics().active == 0


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_calls_alternating_between_a_fast_and_a_slow_backend_are_timed_on_both(
    mode: str,
) -> None:
    # The fast path times half the calls it admits; a round-robin over two
    # backends (every other call slow) must still be seen as it is.
    bulkhead = Bulkhead(f"round-robin-{mode}", BulkheadConfig(100, adaptive=AdaptiveLimit()))
    turns = iter(range(WINDOW))

    with fake_clock() as clock:

        def call() -> None:
            clock.advance(0.010 if next(turns) % 2 else 0.030)

        async def acall() -> None:
            call()

        async def all_async() -> None:
            for _ in range(WINDOW):
                await bulkhead.call_async(acall)

        if mode == "sync":
            for _ in range(WINDOW):
                bulkhead.call(call)
        else:
            asyncio.run(all_async())
    estimator = bulkhead._estimator
    assert estimator is not None
    # One window went to the algorithm: its mean latency is its baseline so far.
    assert 0.015 < estimator.baseline(math.inf, 0) < 0.025
