"""Stress: many threads and tasks through one policy, with random outcomes
and cancellations, and every call accounted for exactly.

Each call is classified twice: by the caller (what it got back) and by the
policy (its events, its window, its permits). The two must agree to the
unit, and nothing may be left behind: no permit held, no thread, no task.
"""

from __future__ import annotations

import asyncio
import random
import threading
from collections import Counter
from collections.abc import Callable, Iterator

import pytest

from resilient import (
    BulkheadConfig,
    BulkheadFullError,
    CallTimeoutError,
    CircuitBreaker,
    CircuitBreakerConfig,
    CircuitOpenError,
    Registry,
    RetryConfig,
    events,
)
from resilient.policy import Resilience, ResiliencePolicy
from tests.conftest import Boom

pytestmark = pytest.mark.slow

THREADS = 8
CALLS_PER_THREAD = 50_000
TASKS = 10_000


class Skipped(Exception):
    pass


class Tally:
    """Counters shared by threads."""

    def __init__(self) -> None:
        self._counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def add(self, key: str) -> None:
        with self._lock:
            self._counts[key] += 1

    def snapshot(self) -> Counter[str]:
        with self._lock:
            return Counter(self._counts)


class EventTally:
    """Counts events by kind: ``kinds["circuit_breaker.CallFailed"]`` is a
    policy's own view of calls, ``kinds["request.CallFailed"]`` the callers'.

    Each thread counts on its own (no lock on the hot path); ``kinds`` adds
    them up once the threads are done.
    """

    def __init__(self) -> None:
        self.changes: list[tuple[str, str]] = []
        self._local = threading.local()
        self._counters: list[Counter[tuple[str, type]]] = []
        self._lock = threading.Lock()

    def __call__(self, event: events.Event) -> None:
        try:
            counter = self._local.counter
        except AttributeError:
            counter = self._local.counter = Counter()
            with self._lock:
                self._counters.append(counter)
        level = getattr(event, "level", "policy")
        counter[event.policy if level == "policy" else level, type(event)] += 1
        if type(event) is events.StateChanged:
            # StateChanged is delivered by one thread at a time, in order.
            self.changes.append((event.old_state, event.new_state))

    @property
    def kinds(self) -> Counter[str]:
        total: Counter[str] = Counter()
        for counter in self._counters:
            for (scope, kind), n in counter.items():
                total[f"{scope}.{kind.__name__}"] += n
        return total


@pytest.fixture
def no_leaks() -> Iterator[None]:
    # Compare identities, not counts: an idle worker left by an earlier test may
    # retire during this one, which a count would read as balancing a leak.
    before = set(threading.enumerate())
    yield
    outlived = [t.name for t in threading.enumerate() if t not in before]
    assert not outlived, f"threads outlived the test: {outlived}"


def _run_threads(target: Callable[[int], None]) -> None:
    threads = [threading.Thread(target=target, args=(i,)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def _outcome(rng: random.Random, fail: float, skip: float) -> str:
    roll = rng.random()
    return "fail" if roll < fail else "skip" if roll < fail + skip else "ok"


def _check_transitions(changes: list[tuple[str, str]]) -> None:
    """Each transition starts where the previous one ended (one event each)."""
    state = "closed"
    for old, new in changes:
        assert old == state, f"transition {old}->{new} announced while {state}"
        state = new


# -- threads -----------------------------------------------------------------------


def test_threads_lock_free_successes_are_all_counted(no_leaks: None) -> None:
    # A breaker that never trips, with a window larger than all the calls:
    # the window must hold exactly every recorded call, although successes
    # are counted without the lock.
    total = THREADS * CALLS_PER_THREAD
    cfg = CircuitBreakerConfig(failure_threshold=total + 1, window_size=total, ignore_on=(Skipped,))
    breaker = CircuitBreaker("stress-window", cfg, listeners=events.ListenerSet())
    tally = Tally()

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(CALLS_PER_THREAD):
            outcome = _outcome(rng, 0.1, 0.05)

            def fn(outcome: str = outcome) -> None:
                tally.add("ran")
                if outcome == "fail":
                    raise Boom
                if outcome == "skip":
                    raise Skipped

            try:
                breaker.call(fn)
            except Boom:
                tally.add("failed")
            except Skipped:
                tally.add("ignored")
            else:
                tally.add("succeeded")

    assert breaker._own_gate.level == events.NONE  # the lock-free path is the one under test
    _run_threads(worker)
    counts = tally.snapshot()
    assert counts["ran"] == total
    assert counts["succeeded"] + counts["failed"] + counts["ignored"] == total
    metrics = breaker.metrics()
    assert metrics.state == "closed"
    assert metrics.calls == counts["succeeded"] + counts["failed"]
    assert metrics.failures == counts["failed"]


def test_threads_tripping_breaker_accounts_for_every_call(no_leaks: None) -> None:
    cfg = CircuitBreakerConfig(
        failure_threshold=5,
        failure_rate_threshold=0.5,
        minimum_calls=20,
        window_size=50,
        recovery_timeout=0.002,  # short: many transitions, and rejections while open
        half_open_max_calls=3,
        success_threshold=2,
        ignore_on=(Skipped,),
    )
    breaker = CircuitBreaker("stress-trip", cfg, listeners=events.ListenerSet())
    seen = EventTally()
    unsubscribe = breaker.subscribe(seen)
    tally = Tally()

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(CALLS_PER_THREAD):
            outcome = _outcome(rng, 0.3, 0.05)

            def fn(outcome: str = outcome) -> None:
                tally.add("ran")
                if outcome == "fail":
                    raise Boom
                if outcome == "skip":
                    raise Skipped

            try:
                breaker.call(fn)
            except CircuitOpenError:
                tally.add("rejected")
            except Boom:
                tally.add("failed")
            except Skipped:
                tally.add("ignored")
            else:
                tally.add("succeeded")

    try:
        _run_threads(worker)
    finally:
        unsubscribe()
    counts = tally.snapshot()
    started = THREADS * CALLS_PER_THREAD
    assert counts["succeeded"] + counts["failed"] + counts["ignored"] == counts["ran"]
    assert counts["ran"] + counts["rejected"] == started
    assert counts["rejected"] > 0, "the breaker should have tripped"
    assert seen.kinds["circuit_breaker.CallSucceeded"] == counts["succeeded"]
    assert seen.kinds["circuit_breaker.CallFailed"] == counts["failed"]
    assert seen.kinds["circuit_breaker.CallRejected"] == counts["rejected"]
    # As the callers saw it: one request each, ignored errors being failures to them.
    assert seen.kinds["request.CallStarted"] == started
    assert seen.kinds["request.CallSucceeded"] == counts["succeeded"]
    assert seen.kinds["request.CallFailed"] == counts["failed"] + counts["ignored"]
    assert seen.kinds["request.CallRejected"] == counts["rejected"]
    _check_transitions(seen.changes)
    assert breaker._core.probes_running == 0


def test_threads_half_open_admits_exactly_half_open_max_calls(no_leaks: None) -> None:
    contenders = 12
    for max_calls in (1, 3, 5):
        cfg = CircuitBreakerConfig(
            failure_threshold=1,
            recovery_timeout=0.0,
            half_open_max_calls=max_calls,
            success_threshold=10**9,  # stays half-open round after round
        )
        breaker = CircuitBreaker("stress-probes", cfg, listeners=events.ListenerSet())
        with pytest.raises(Boom):
            breaker.call(_raise_boom)
        assert breaker.state == "half_open"
        for _round in range(30):
            admitted = Tally()
            reached = threading.Semaphore(0)  # one release per contender decided
            gate = threading.Event()

            def probe(
                admitted: Tally = admitted,
                reached: threading.Semaphore = reached,
                gate: threading.Event = gate,
            ) -> None:
                admitted.add("in")
                reached.release()
                gate.wait()  # holds the permit until every contender has tried

            def contender(
                breaker: CircuitBreaker = breaker,
                probe: Callable[[], None] = probe,
                reached: threading.Semaphore = reached,
            ) -> None:
                try:
                    breaker.call(probe)
                except CircuitOpenError:
                    reached.release()

            threads = [threading.Thread(target=contender) for _ in range(contenders)]
            for thread in threads:
                thread.start()
            for _ in range(contenders):
                reached.acquire()
            assert admitted.snapshot()["in"] == max_calls
            gate.set()
            for thread in threads:
                thread.join()
        assert breaker._core.probes_running == 0


def _raise_boom() -> None:
    raise Boom


# -- asyncio -----------------------------------------------------------------------


def test_tasks_with_random_cancellations_are_all_accounted_for() -> None:
    cfg = CircuitBreakerConfig(
        failure_threshold=5,
        failure_rate_threshold=0.5,
        minimum_calls=20,
        window_size=50,
        recovery_timeout=0.0,
        half_open_max_calls=4,
        success_threshold=2,
        ignore_on=(Skipped,),
    )
    breaker = CircuitBreaker("stress-tasks", cfg, listeners=events.ListenerSet())
    seen = EventTally()
    unsubscribe = breaker.subscribe(seen)
    tally = Tally()

    async def one(rng: random.Random) -> None:
        tally.add("entered")  # not reached by a task cancelled before it starts
        outcome = _outcome(rng, 0.3, 0.05)
        steps = rng.randrange(4)
        ran = False

        async def fn() -> None:
            nonlocal ran
            ran = True
            tally.add("ran")
            for _ in range(steps):
                await asyncio.sleep(0)
            if outcome == "fail":
                raise Boom
            if outcome == "skip":
                raise Skipped

        try:
            await breaker.call_async(fn)
        except CircuitOpenError:
            tally.add("rejected")
        except Boom:
            tally.add("failed")
        except Skipped:
            tally.add("ignored")
        except asyncio.CancelledError:
            tally.add("cancelled_running" if ran else "cancelled_before")
            raise
        else:
            tally.add("succeeded")

    cancelled = 0

    async def main() -> None:
        nonlocal cancelled
        before = asyncio.all_tasks()
        rng = random.Random(2024)
        tasks = [asyncio.ensure_future(one(random.Random(rng.random()))) for _ in range(TASKS)]
        for _ in range(3):
            await asyncio.sleep(0)
            for task in rng.sample(tasks, TASKS // 20):
                task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        cancelled = sum(task.cancelled() for task in tasks)
        assert asyncio.all_tasks() == before, "a task outlived its call"

    try:
        asyncio.run(main())
    finally:
        unsubscribe()
    counts = tally.snapshot()
    admitted = counts["ran"]
    assert (
        counts["succeeded"] + counts["failed"] + counts["ignored"] + counts["cancelled_running"]
        == admitted
    )
    assert admitted + counts["rejected"] + counts["cancelled_before"] == counts["entered"]
    never_started = TASKS - counts["entered"]
    assert cancelled == never_started + counts["cancelled_running"] + counts["cancelled_before"]
    assert counts["cancelled_running"] > 0
    assert counts["rejected"] > 0
    assert seen.kinds["circuit_breaker.CallSucceeded"] == counts["succeeded"]
    assert seen.kinds["circuit_breaker.CallFailed"] == counts["failed"]
    assert seen.kinds["circuit_breaker.CallRejected"] == counts["rejected"]
    # As the callers saw it: one request each, ignored errors being failures to them.
    assert seen.kinds["request.CallStarted"] == counts["entered"]
    assert seen.kinds["request.CallSucceeded"] == counts["succeeded"]
    assert seen.kinds["request.CallFailed"] == counts["failed"] + counts["ignored"]
    assert seen.kinds["request.CallRejected"] == counts["rejected"]
    _check_transitions(seen.changes)
    assert breaker._core.probes_running == 0


def test_tasks_half_open_admits_exactly_half_open_max_calls() -> None:
    async def main() -> None:
        before = asyncio.all_tasks()
        cfg = CircuitBreakerConfig(
            failure_threshold=1,
            recovery_timeout=0.0,
            half_open_max_calls=4,
            success_threshold=10**9,
        )
        breaker = CircuitBreaker("stress-task-probes", cfg, listeners=events.ListenerSet())
        with pytest.raises(Boom):
            breaker.call(_raise_boom)
        rng = random.Random(5)
        for _round in range(200):
            gate = asyncio.Event()
            running = 0

            async def probe(gate: asyncio.Event = gate) -> None:
                nonlocal running
                running += 1
                try:
                    await gate.wait()
                finally:
                    running -= 1

            async def contender(probe: Callable[[], object] = probe) -> str:
                try:
                    await breaker.call_async(probe)  # type: ignore[arg-type]
                except CircuitOpenError:
                    return "rejected"
                return "admitted"

            tasks = [asyncio.ensure_future(contender()) for _ in range(20)]
            await asyncio.sleep(0)
            assert running == 4
            # Cancel some probes while they hold a permit: they must give it back.
            for task in rng.sample(tasks, 8):
                task.cancel()
            gate.set()
            await asyncio.gather(*tasks, return_exceptions=True)
            assert breaker._core.probes_running == 0
        assert asyncio.all_tasks() == before

    asyncio.run(main())


# -- through a composed policy -----------------------------------------------------


def _composed(
    name: str, *, timeout: float | None, bulkhead: BulkheadConfig
) -> tuple[Resilience, Registry]:
    registry = Registry()
    policy = ResiliencePolicy(
        circuit_breaker=CircuitBreakerConfig(
            failure_threshold=5,
            failure_rate_threshold=0.5,
            minimum_calls=20,
            window_size=50,
            recovery_timeout=0.002,  # open for real, briefly: calls meet it rejecting
            half_open_max_calls=2,
            success_threshold=2,
            ignore_on=(Skipped,),
        ),
        retry=RetryConfig(
            max_attempts=3, initial_delay=0.0, max_delay=0.0, jitter=0.0, give_up_on=(Skipped,)
        ),
        timeout=timeout,
        bulkhead=bulkhead,
    )
    return Resilience(name, policy, registry=registry), registry


def _classify(tally: Tally, call: Callable[[], object]) -> None:
    try:
        call()
    except (CircuitOpenError, BulkheadFullError):
        tally.add("rejected")
    except (Boom, Skipped, CallTimeoutError):
        tally.add("failed")
    else:
        tally.add("succeeded")


def _check_composed(
    composed: Resilience, seen: EventTally, counts: Counter[str], started: int
) -> None:
    assert counts["succeeded"] + counts["failed"] + counts["rejected"] == started
    # The policy's own accounting, one request per call, agrees exactly.
    assert seen.kinds["request.CallStarted"] == started
    assert seen.kinds["request.CallSucceeded"] == counts["succeeded"]
    assert seen.kinds["request.CallFailed"] == counts["failed"]
    assert seen.kinds["request.CallRejected"] == counts["rejected"]
    # Each layer's own view: every attempt that got a slot ran, and each run
    # the breaker saw succeed or fail did so.
    assert composed.bulkhead is not None
    assert composed.breaker is not None
    bulkhead = composed.bulkhead.metrics()
    assert bulkhead.completed == counts["ran"]
    assert bulkhead.rejected == seen.kinds["bulkhead.BulkheadRejected"]
    assert seen.kinds["circuit_breaker.CallSucceeded"] == counts["ran_ok"]
    assert seen.kinds["circuit_breaker.CallFailed"] == counts["ran_boom"]
    # Nothing held.
    assert (bulkhead.active, bulkhead.queued) == (0, 0)
    assert composed.breaker._core.probes_running == 0
    _check_transitions(seen.changes)


COMPOSED_CALLS_PER_THREAD = 3_000


def test_threads_through_a_composed_policy(no_leaks: None) -> None:
    composed, registry = _composed(
        "stress-composed",
        timeout=None,
        bulkhead=BulkheadConfig(2, max_queue=4, queue_timeout=0.005),
    )
    seen = EventTally()
    unsubscribe = registry.subscribe(seen)
    tally = Tally()

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(COMPOSED_CALLS_PER_THREAD):
            outcome = _outcome(rng, 0.3, 0.05)

            def fn(outcome: str = outcome) -> str:
                tally.add("ran")
                if outcome == "fail":
                    tally.add("ran_boom")
                    raise Boom
                if outcome == "skip":
                    raise Skipped
                tally.add("ran_ok")
                return "ok"

            _classify(tally, lambda fn=fn: composed.call(fn))  # type: ignore[misc]

    try:
        _run_threads(worker)
    finally:
        unsubscribe()
    counts = tally.snapshot()
    _check_composed(composed, seen, counts, THREADS * COMPOSED_CALLS_PER_THREAD)
    assert counts["rejected"] > 0


def test_tasks_through_a_composed_policy_with_timeouts_and_cancellations() -> None:
    composed, registry = _composed(
        "stress-composed-async",
        timeout=0.05,
        bulkhead=BulkheadConfig(50, max_queue=100, queue_timeout=0.02),
    )
    seen = EventTally()
    unsubscribe = registry.subscribe(seen)
    tally = Tally()

    async def one(rng: random.Random, hang: asyncio.Future[None]) -> None:
        roll = rng.random()
        outcome = "hang" if roll < 0.02 else _outcome(rng, 0.3, 0.05)
        steps = rng.randrange(3)

        async def fn() -> str:
            tally.add("ran")
            try:
                for _ in range(steps):
                    await asyncio.sleep(0)
                if outcome == "hang":
                    await hang  # until the timeout
            except asyncio.CancelledError:
                # By the timeout (under load, not only the hanging ones), or
                # by the test cancelling the task.
                tally.add("ran_cancelled")
                raise
            if outcome == "fail":
                tally.add("ran_boom")
                raise Boom
            if outcome == "skip":
                raise Skipped
            tally.add("ran_ok")
            return "ok"

        try:
            await composed.call_async(fn)
        except (CircuitOpenError, BulkheadFullError):
            tally.add("rejected")
        except (Boom, Skipped, CallTimeoutError):
            tally.add("failed")
        except asyncio.CancelledError:
            tally.add("cancelled")
            raise
        else:
            tally.add("succeeded")

    cancelled_tasks = 0

    async def main() -> None:
        nonlocal cancelled_tasks
        before = asyncio.all_tasks()
        hang: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        rng = random.Random(99)
        tasks = [
            asyncio.ensure_future(one(random.Random(rng.random()), hang)) for _ in range(TASKS)
        ]
        for _ in range(3):
            await asyncio.sleep(0)
            for task in rng.sample(tasks, TASKS // 50):
                task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        cancelled_tasks = sum(task.cancelled() for task in tasks)
        assert asyncio.all_tasks() == before, "a task outlived its call"

    try:
        asyncio.run(main())
    finally:
        unsubscribe()
    counts = tally.snapshot()
    # A task cancelled before it first ran never became a request; one
    # cancelled later did, with no outcome.
    never_started = cancelled_tasks - counts["cancelled"]
    started = TASKS - never_started
    assert counts["succeeded"] + counts["failed"] + counts["rejected"] + counts["cancelled"] == (
        started
    )
    assert seen.kinds["request.CallStarted"] == started
    assert seen.kinds["request.CallSucceeded"] == counts["succeeded"]
    assert seen.kinds["request.CallFailed"] == counts["failed"]
    assert seen.kinds["request.CallRejected"] == counts["rejected"]
    assert composed.bulkhead is not None
    assert composed.breaker is not None
    bulkhead = composed.bulkhead.metrics()
    timed_out = seen.kinds["timeout.TimedOut"]
    # Completed: every call that ran, but those the test cancelled while they
    # ran (cancelled inside, and not by their timeout).
    assert bulkhead.completed == counts["ran"] - (counts["ran_cancelled"] - timed_out)
    assert bulkhead.rejected == seen.kinds["bulkhead.BulkheadRejected"]
    assert seen.kinds["circuit_breaker.CallSucceeded"] == counts["ran_ok"]
    assert seen.kinds["circuit_breaker.CallFailed"] == counts["ran_boom"] + timed_out
    assert 0 < timed_out <= counts["ran_cancelled"]
    assert (bulkhead.active, bulkhead.queued) == (0, 0)
    assert composed.breaker._core.probes_running == 0
    assert counts["cancelled"] > 0
    _check_transitions(seen.changes)
