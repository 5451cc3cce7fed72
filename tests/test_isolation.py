"""One dependency's trouble stays its own: timeout pools per dependency, a
bulkhead bound that holds at the dependency, and the errors that say which."""

from __future__ import annotations

import gc
import signal
import threading
import weakref
from collections.abc import Iterator

import pytest

import resilient
from resilient import (
    AdaptiveLimit,
    BulkheadConfig,
    BulkheadFullError,
    CallTimeoutError,
    CircuitBreaker,
    CircuitBreakerConfig,
    CircuitOpenError,
    ResiliencePolicy,
    Timeout,
    TimeoutConfig,
)
from resilient._runtime.workers import WorkerPool, pool_for, shared_pool
from resilient.policy import Resilience
from resilient.testing import fake_clock
from tests.conftest import PICKUP

SHORT = 0.05
LONG = 10.0


@pytest.fixture
def release() -> Iterator[threading.Event]:
    """Set at the end of the test, so abandoned calls finish."""
    gate = threading.Event()
    yield gate
    gate.set()


def _stack(name: str, **fields: object) -> Resilience:
    fields.setdefault("circuit_breaker", None)
    fields.setdefault("retry", None)
    return Resilience(name, ResiliencePolicy(**fields))  # type: ignore[arg-type]


# -- worker pools per dependency ---------------------------------------------------


def test_each_named_stack_and_breaker_timeout_has_its_own_pool() -> None:
    a = _stack("dep-a", timeout=TimeoutConfig(1.0, mode="thread"))
    b = _stack("dep-b", timeout=TimeoutConfig(1.0, mode="thread"))
    assert a.timeout is not None
    assert b.timeout is not None
    pools = {id(a.timeout._pool), id(b.timeout._pool), id(shared_pool())}
    assert len(pools) == 3
    breaker = CircuitBreaker("dep-c", CircuitBreakerConfig(timeout=1.0))
    assert breaker._timeout is not None
    assert breaker._timeout._pool is pool_for("dep-c")
    assert breaker._timeout._pool not in (a.timeout._pool, b.timeout._pool)


def test_a_timeout_config_sets_the_pool_size_and_mode() -> None:
    stack = _stack("sized", timeout=TimeoutConfig(2.5, pool_size=3, mode="thread"))
    assert stack.timeout is not None
    assert stack.timeout.seconds == 2.5
    assert stack.timeout._pool is not None
    assert stack.timeout._pool.max_workers == 3
    signalled = _stack("alarm", timeout=TimeoutConfig(2.5, mode="signal"))
    assert signalled.timeout is not None
    assert signalled.timeout.mode == "signal"
    assert signalled.timeout._pool is None


def test_a_hung_dependency_never_times_out_a_healthy_one(release: threading.Event) -> None:
    hung = _stack("hung", timeout=TimeoutConfig(SHORT, pool_size=2, mode="thread"))
    healthy = _stack("healthy", timeout=TimeoutConfig(LONG, pool_size=2, mode="thread"))

    def hang() -> None:
        release.wait(LONG)

    for _ in range(6):  # three times its pool: every worker stuck
        with pytest.raises(CallTimeoutError):
            hung.call(hang)
    # Healthy calls start at once on their own workers, however many.
    assert [healthy.call(lambda i=i: i) for i in range(6)] == list(range(6))


def test_a_call_that_could_not_start_says_so(release: threading.Event) -> None:
    pool = WorkerPool(1)

    def hang() -> None:
        release.wait(LONG)

    with pytest.raises(CallTimeoutError) as first:
        Timeout(PICKUP, name="stuck", pool=pool).call(hang)
    assert first.value.started
    assert "timed out after" in str(first.value)
    with pytest.raises(CallTimeoutError) as second:
        Timeout(SHORT, name="stuck", pool=pool).call(hang)
    assert not second.value.started
    message = str(second.value)
    assert "could not start within 0.05s" in message
    assert "all 1 workers" in message


# -- the bulkhead's bound at the dependency -----------------------------------------


@pytest.mark.parametrize("adaptive", [False, True], ids=["fixed", "adaptive"])
@pytest.mark.parametrize("listened", [False, True], ids=["fast-path", "with-listener"])
def test_a_timed_out_call_keeps_its_bulkhead_permit_until_its_worker_ends(
    release: threading.Event, listened: bool, adaptive: bool
) -> None:
    limit = AdaptiveLimit(initial=1, max_limit=1) if adaptive else None
    stack = _stack(
        "bounded",
        timeout=TimeoutConfig(PICKUP, mode="thread"),
        bulkhead=BulkheadConfig(1, max_queue=1, queue_timeout=LONG, adaptive=limit),
    )
    bulkhead = stack.bulkhead
    assert bulkhead is not None
    if listened:
        bulkhead.subscribe(lambda event: None)
    inside = 0
    most = 0
    lock = threading.Lock()

    def call() -> str:
        nonlocal inside, most
        with lock:
            inside += 1
            most = max(most, inside)
        try:
            release.wait(LONG)
            return "done"
        finally:
            with lock:
                inside -= 1

    with pytest.raises(CallTimeoutError):
        stack.call(call)
    # The caller is gone but the call still runs: the permit is still held.
    assert bulkhead.metrics().active == 1
    waiter_result: list[str] = []
    waiter = threading.Thread(target=lambda: waiter_result.append(stack.call(lambda: "next")))
    waiter.start()  # queued behind the abandoned call
    with pytest.raises(BulkheadFullError):
        stack.call(call)  # the queue's one place is taken
    release.set()  # the abandoned call ends: its worker hands the permit on
    waiter.join(LONG)
    assert waiter_result == ["next"]
    assert most == 1
    metrics = bulkhead.metrics()
    assert (metrics.active, metrics.completed) == (0, 2)


class _Payload:
    """An argument whose life a weak reference can watch."""


def test_an_idle_worker_keeps_nothing_of_the_calls_it_ran() -> None:
    pool = WorkerPool(1)  # a new worker: the first job it runs is the one at stake
    timeout = Timeout(LONG, pool=pool)
    payload = _Payload()
    watched = weakref.ref(payload)
    assert timeout.call(lambda p: p, payload) is payload
    del payload
    gc.collect()
    assert watched() is None  # neither the argument nor the result is kept


def test_a_call_that_never_started_frees_its_permit_at_once(release: threading.Event) -> None:
    stack = _stack(
        "never",
        timeout=TimeoutConfig(PICKUP, pool_size=1, mode="thread"),
        bulkhead=BulkheadConfig(2),
    )
    bulkhead = stack.bulkhead
    assert bulkhead is not None
    with pytest.raises(CallTimeoutError) as first:
        stack.call(release.wait, LONG)
    with pytest.raises(CallTimeoutError) as second:
        stack.call(release.wait, LONG)
    assert (first.value.started, second.value.started) == (True, False)
    assert bulkhead.metrics().active == 1  # only the call still running holds one


# -- smaller fixes -------------------------------------------------------------------


def test_a_half_open_rejection_does_not_promise_a_probe_in_zero_seconds() -> None:
    with fake_clock() as clock:
        breaker = CircuitBreaker("probing", CircuitBreakerConfig(failure_threshold=1))
        with pytest.raises(ZeroDivisionError):
            breaker.call(lambda: 1 / 0)
        clock.advance(31)
        entered = threading.Event()
        leave = threading.Event()

        def probe() -> None:
            entered.set()
            leave.wait(LONG)

        prober = threading.Thread(target=breaker.call, args=(probe,))
        prober.start()
        entered.wait(LONG)
        with pytest.raises(CircuitOpenError) as info:
            breaker.call(lambda: None)
        leave.set()
        prober.join(LONG)
    message = str(info.value)
    assert info.value.state == "half_open"
    assert "0.000s" not in message
    assert "probe" in message


needs_sigalrm = pytest.mark.skipif(not hasattr(signal, "SIGALRM"), reason="no SIGALRM")


@needs_sigalrm
def test_signal_mode_restores_a_periodic_timer_with_its_interval() -> None:
    fired = 0

    def count(signum: int, frame: object) -> None:
        nonlocal fired
        fired += 1

    previous = signal.signal(signal.SIGALRM, count)
    try:
        signal.setitimer(signal.ITIMER_REAL, 5.0, 0.5)
        assert resilient.Timeout(1.0, mode="signal").call(lambda: 3) == 3
        left, interval = signal.getitimer(signal.ITIMER_REAL)
        assert 0 < left <= 5.0
        assert interval == pytest.approx(0.5)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert fired == 0
