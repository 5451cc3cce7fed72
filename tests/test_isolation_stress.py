"""Three dependencies through one process: one hangs, one fails, one is
healthy; 8 threads and 1,000 asyncio tasks call all three at once, for a few
seconds. The healthy one sees no timeout, no rejection and no error; the
hanging one's bulkhead bound and the failing one's half-open bound hold when
counted inside the functions themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import Counter

import pytest

from resilient import (
    BulkheadConfig,
    BulkheadFullError,
    CallTimeoutError,
    CircuitBreakerConfig,
    CircuitOpenError,
    TimeoutConfig,
)
from resilient.policy import Resilience, ResiliencePolicy
from tests.conftest import Boom

pytestmark = pytest.mark.slow

THREADS = 8
TASKS = 1_000
SECONDS = 2.0  # the threads' share; the tasks run beside them
BULKHEAD = 3
PROBES = 2


class Inside:
    """How many calls are inside a function now, and the most ever seen."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.now = 0
        self.most = 0

    def __enter__(self) -> None:
        with self._lock:
            self.now += 1
            self.most = max(self.most, self.now)

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self.now -= 1


def test_a_hanging_and_a_failing_dependency_never_harm_a_healthy_one() -> None:
    stop = threading.Event()
    hanging_inside, failing_inside = Inside(), Inside()
    hanging = Resilience(
        "hanging",
        ResiliencePolicy(
            circuit_breaker=CircuitBreakerConfig(failure_threshold=5, recovery_timeout=0.05),
            retry=None,
            timeout=TimeoutConfig(0.02, pool_size=BULKHEAD),
            bulkhead=BulkheadConfig(BULKHEAD),
        ),
    )
    failing = Resilience(
        "failing",
        ResiliencePolicy(
            circuit_breaker=CircuitBreakerConfig(
                failure_threshold=1, recovery_timeout=0.05, half_open_max_calls=PROBES
            ),
            retry=None,
            timeout=1.0,
        ),
    )
    healthy = Resilience("healthy", ResiliencePolicy(retry=None, timeout=5.0))

    def hang() -> None:
        with hanging_inside:
            stop.wait(0.2)  # far past its timeout: abandoned, still running

    async def ahang() -> None:
        with hanging_inside:
            await asyncio.sleep(0.2)

    def fail() -> None:
        with failing_inside:
            time.sleep(0.001)
            raise Boom

    async def afail() -> None:
        with failing_inside:
            await asyncio.sleep(0.001)
            raise Boom

    def ok(i: int) -> int:
        return i

    async def aok(i: int) -> int:
        await asyncio.sleep(0)
        return i

    expected = (CallTimeoutError, BulkheadFullError, CircuitOpenError, Boom)
    healthy_outcomes: Counter[str] = Counter()
    lock = threading.Lock()

    def tally(outcome: str) -> None:
        with lock:
            healthy_outcomes[outcome] += 1

    def caller(seed: int) -> None:
        ends = time.monotonic() + SECONDS
        i = seed
        while time.monotonic() < ends:
            for policy, fn in ((hanging, hang), (failing, fail)):
                with contextlib.suppress(expected):
                    policy.call(fn)
            try:
                tally("ok" if healthy.call(ok, i) == i else "wrong")
            except Exception as exc:
                tally(type(exc).__name__)
            i += 1

    async def task(i: int) -> None:
        for _ in range(3):
            for policy, fn in ((hanging, ahang), (failing, afail)):
                with contextlib.suppress(expected):
                    await policy.call_async(fn)
            try:
                tally("ok" if await healthy.call_async(aok, i) == i else "wrong")
            except Exception as exc:
                tally(type(exc).__name__)

    async def tasks() -> None:
        await asyncio.gather(*(task(i) for i in range(TASKS)))

    with pytest.raises(Boom):
        failing.call(fail)  # open: from here on, every call it admits is a probe
    threads = [threading.Thread(target=caller, args=(n * 1_000_000,)) for n in range(THREADS)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    asyncio.run(tasks())
    for thread in threads:
        thread.join(SECONDS + 30)
    stop.set()
    elapsed = time.monotonic() - started

    assert not any(thread.is_alive() for thread in threads)
    assert elapsed < SECONDS + 30
    assert set(healthy_outcomes) == {"ok"}, healthy_outcomes
    assert healthy_outcomes["ok"] >= TASKS * 3
    assert healthy.breaker is not None
    assert healthy.breaker.metrics().failures == 0
    # The bounds, counted inside the functions: abandoned sync calls included.
    assert 0 < hanging_inside.most <= BULKHEAD
    assert failing_inside.most > 0
    # Probes admitted before a reopening still count against the next
    # half-open round: the bound holds across reopenings.
    assert failing_inside.most <= PROBES, f"{failing_inside.most} probes at once (limit {PROBES})"
