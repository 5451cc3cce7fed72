"""RateLimiter: admitting, refusing, waiting (threads and tasks), turns given
back, events and counters, composition, registry and validation."""

from __future__ import annotations

import asyncio
import math
import threading
from typing import Any

import pytest

import resilient
from resilient import (
    CallRejected,
    CircuitBreakerConfig,
    MetricsCollector,
    RateLimitConfig,
    RateLimiter,
    RateLimitExceededError,
    Registry,
    ResiliencePolicy,
    RetryConfig,
    with_circuit_breaker,
    with_rate_limit,
    with_resilience,
    with_retry,
)
from resilient.testing import fake_clock


def work(x: int) -> int:
    return x


async def awork(x: int) -> int:
    return x


def test_a_burst_is_admitted_then_calls_are_refused_with_retry_after() -> None:
    with fake_clock(100.0):
        limited = with_rate_limit("api", rate=5)(work)
        assert [limited(i) for i in range(5)] == [0, 1, 2, 3, 4]
        with pytest.raises(RateLimitExceededError) as caught:
            limited(5)
    assert caught.value.name == "api"
    assert caught.value.retry_after == pytest.approx(0.2)
    assert isinstance(caught.value, resilient.ResilienceError)


def test_the_steady_rate_after_the_burst() -> None:
    with fake_clock() as clock:
        limited = with_rate_limit("api", rate=10, period=2.0, burst=1)(work)
        admitted = 0
        for _ in range(100):  # 10 s in steps of 0.1 s: one call per 0.2 s
            try:
                limited(1)
                admitted += 1
            except RateLimitExceededError:
                pass
            clock.advance(0.1)
    assert admitted == 50


def test_refusal_is_immediate_when_the_turn_is_beyond_max_wait() -> None:
    with fake_clock() as clock:
        limited = with_rate_limit("api", rate=1, max_wait=0.5)(work)
        limited(1)
        with pytest.raises(RateLimitExceededError) as caught:
            limited(2)
        assert clock.delays == []  # no waiting at all
    assert caught.value.retry_after == pytest.approx(1.0)


def test_a_thread_waits_for_its_turn_within_max_wait() -> None:
    with fake_clock() as clock:
        limited = with_rate_limit("api", rate=2, burst=1, max_wait=1.0)(work)
        assert [limited(i) for i in range(3)] == [0, 1, 2]
        assert clock.delays == [pytest.approx(0.5), pytest.approx(0.5)]
        assert clock.now() == pytest.approx(1.0)


async def test_tasks_wait_for_their_turns_in_order() -> None:
    with fake_clock() as clock:
        limiter = RateLimiter("api", rate=4, burst=1, max_wait=2.0)
        started: list[float] = []

        async def call(i: int) -> int:
            started.append(clock.now())
            return i

        results = await asyncio.gather(*(limiter.call_async(call, i) for i in range(4)))
    assert results == [0, 1, 2, 3]
    assert started == [0.0, 0.25, 0.5, 0.75]


async def test_a_cancelled_waiter_gives_its_turn_back() -> None:
    with fake_clock() as clock:
        limiter = RateLimiter("api", rate=1, burst=1, max_wait=5.0)
        await limiter.call_async(awork, 0)
        waiting = asyncio.ensure_future(limiter.call_async(awork, 1))
        await asyncio.sleep(0)  # it reserved the turn at 1.0 and sleeps
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert limiter._core.acquire(clock.now(), 5.0) == pytest.approx(1.0)  # free again


def test_an_interrupted_thread_gives_its_turn_back() -> None:
    limiter = RateLimiter("api", rate=1, burst=1, max_wait=5.0)

    class Interrupted(BaseException):
        pass

    def sleep(seconds: float) -> None:
        raise Interrupted

    clock = resilient._runtime.clock.Clock(monotonic=lambda: 0.0, sleep=sleep)
    previous = resilient._runtime.clock.set_clock(clock)
    try:
        limiter.call(work, 0)
        with pytest.raises(Interrupted):
            limiter.call(work, 1)
        assert limiter._core.retry_after(0.0) == pytest.approx(1.0)  # only the first is held
        assert limiter.metrics().admitted == 1
    finally:
        resilient._runtime.clock.set_clock(previous)


def test_threads_together_get_exactly_the_burst_while_time_stands_still() -> None:
    with fake_clock():
        limited = with_rate_limit("api", rate=50)(work)
        admitted = [0] * 8
        barrier = threading.Barrier(8)

        def hammer(i: int) -> None:
            barrier.wait()
            for _ in range(100):
                try:
                    limited(1)
                    admitted[i] += 1
                except RateLimitExceededError:
                    pass

        threads = [threading.Thread(target=hammer, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert sum(admitted) == 50


def test_a_refusal_is_a_rejected_request_and_counted_in_place() -> None:
    collector = MetricsCollector()
    resilient.registry.subscribe(collector)
    seen: list[Any] = []
    with fake_clock():
        limited = with_rate_limit("api", rate=1)(work)
        resilient.registry.get_rate_limiter("api").subscribe(seen.append)  # type: ignore[union-attr]
        limited(1)
        with pytest.raises(RateLimitExceededError):
            limited(2)
    stats = collector.statistics.by_name["api"]
    assert (stats.total_requests, stats.successes, stats.rejections) == (2, 1, 1)
    assert stats.rate_limit_count == 1
    rejected = [e for e in seen if isinstance(e, CallRejected)]
    assert sorted((e.state, e.level) for e in rejected) == [
        ("rate_limited", "policy"),
        ("rate_limited", "request"),
    ]
    assert all(e.remaining == pytest.approx(1.0) for e in rejected)
    limiter = resilient.registry.get_rate_limiter("api")
    assert limiter is not None
    assert (limiter.metrics().admitted, limiter.metrics().rejected) == (1, 1)


def test_the_breaker_never_counts_a_refusal() -> None:
    with fake_clock():
        limited = with_circuit_breaker("api", failure_threshold=1)(
            with_rate_limit("api", rate=1)(work)
        )
        limited(1)
        for _ in range(3):
            with pytest.raises(RateLimitExceededError):
                limited(2)
        breaker = resilient.registry.get("api")
        assert breaker is not None
        assert breaker.state is resilient.CircuitState.CLOSED
        assert breaker.metrics().failures == 0


def test_retry_waits_for_the_retry_after_of_a_refusal() -> None:
    with fake_clock() as waits:
        limited = with_retry(max_attempts=2, initial_delay=0.01, jitter=0.0)(
            with_rate_limit("api", rate=2, burst=1)(work)
        )
        limited(1)
        # The second call is refused (0.5 s to go), waits that long, and runs.
        assert limited(2) == 2
    assert waits.delays == [pytest.approx(0.5, abs=0.01)]


def test_resilience_policy_puts_the_limiter_between_breaker_and_bulkhead() -> None:
    policy = ResiliencePolicy(
        rate_limit=RateLimitConfig(3),
        bulkhead=resilient.BulkheadConfig(2),
        fallback=resilient.Fallback(value=-1),
    )
    composed = resilient.Resilience("svc", policy)
    kinds = [layer._kind for layer in composed._layers()]
    assert kinds == ["fallback", "retry", "circuit_breaker", "rate_limiter", "bulkhead", "timeout"]
    assert composed.rate_limiter is resilient.registry.get_rate_limiter("svc")
    assert "rate_limit" in repr(composed)


def test_with_resilience_refusals_end_in_the_fallback_and_leave_the_breaker_closed() -> None:
    with fake_clock():
        fn = with_resilience(
            "svc",
            rate_limit=RateLimitConfig(1),
            retry=RetryConfig(max_attempts=1),
            fallback=resilient.Fallback(value=-1),
            circuit_breaker=CircuitBreakerConfig(failure_threshold=1),
        )(work)
        assert [fn(1), fn(2), fn(3)] == [1, -1, -1]
    breaker = resilient.registry.get("svc")
    assert breaker is not None
    assert breaker.state is resilient.CircuitState.CLOSED


def test_registry_returns_one_limiter_per_name_and_refuses_another_limit() -> None:
    reg = Registry()
    first = reg.rate_limiter("a", rate=3)
    assert reg.rate_limiter("a", rate=3) is first
    assert reg.rate_limiter("a") is first
    assert reg.get_rate_limiter("a") is first
    with pytest.raises(ValueError, match="already exists"):
        reg.rate_limiter("a", rate=4)
    with pytest.raises(TypeError, match="needs a config"):
        reg.rate_limiter("b")
    assert reg.rate_limiters() == [first]


def test_a_ready_limiter_decorates_and_is_not_registered() -> None:
    limiter = RateLimiter("mine", rate=1)
    fn = with_rate_limit(limiter)(work)
    assert fn(3) == 3
    assert resilient.registry.get_rate_limiter("mine") is None
    with pytest.raises(TypeError):
        with_rate_limit(limiter, rate=2)


def test_with_blocks_take_a_turn() -> None:
    with fake_clock():
        limiter = RateLimiter("blocks", rate=1)
        with limiter:
            pass
        with pytest.raises(RateLimitExceededError), limiter:
            pass  # pragma: no cover - never entered


async def test_async_with_blocks_take_a_turn() -> None:
    with fake_clock():
        limiter = RateLimiter("blocks", rate=1)
        async with limiter:
            pass
        with pytest.raises(RateLimitExceededError):
            async with limiter:
                pass  # pragma: no cover - never entered


async def test_a_stream_takes_one_turn_when_it_starts() -> None:
    with fake_clock():
        limiter = RateLimiter("streams", rate=1)

        @limiter
        async def numbers() -> Any:
            for i in range(3):
                yield i

        assert [i async for i in numbers()] == [0, 1, 2]
        with pytest.raises(RateLimitExceededError):
            [i async for i in numbers()]


def test_switched_off_it_admits_everything() -> None:
    with fake_clock():
        limited = with_rate_limit("api", rate=1)(work)
        resilient.set_active(False)
        assert [limited(i) for i in range(5)] == [0, 1, 2, 3, 4]


def test_reset_frees_the_burst() -> None:
    with fake_clock():
        limiter = RateLimiter("api", rate=2)
        limiter.call(work, 1)
        limiter.call(work, 1)
        assert limiter.metrics().available == 0
        limiter.reset()
        assert limiter.metrics().available == 2


def test_burst_defaults_to_the_rate_rounded_up() -> None:
    assert RateLimitConfig(2.5).burst == 3
    assert RateLimitConfig(0.1, period=60).burst == 1
    assert RateLimitConfig(7, burst=1).burst == 1
    assert RateLimitConfig(2.0, period=4).interval == 2.0


@pytest.mark.parametrize(
    ("fields", "error", "names"),
    [
        ({"rate": 0}, ValueError, "rate"),
        ({"rate": -1}, ValueError, "rate"),
        ({"rate": math.inf}, ValueError, "rate"),
        ({"rate": "5"}, TypeError, "rate"),
        ({"rate": True}, TypeError, "rate"),
        ({"rate": 1, "period": 0}, ValueError, "period"),
        ({"rate": 1, "period": math.nan}, ValueError, "period"),
        ({"rate": 1e12}, ValueError, "rate"),
        ({"rate": 1, "burst": 0}, ValueError, "burst"),
        ({"rate": 1, "burst": 1.5}, TypeError, "burst"),
        ({"rate": 1, "burst": 2**40}, ValueError, "burst"),
        ({"rate": 1, "max_wait": -1}, ValueError, "max_wait"),
        ({"rate": 1, "max_wait": 1e300}, ValueError, "max_wait"),
        ({"rate": 1, "storage": object()}, TypeError, "storage"),
    ],
)
def test_bad_fields_are_refused_at_construction(
    fields: dict[str, Any], error: type[Exception], names: str
) -> None:
    with pytest.raises(error, match=rf"RateLimitConfig\.{names}\b"):
        RateLimitConfig(**fields)


def test_bad_limiter_arguments() -> None:
    with pytest.raises(ValueError, match="name"):
        RateLimiter("", rate=1)
    with pytest.raises(TypeError, match="needs a config"):
        RateLimiter("x")
    with pytest.raises(TypeError, match="RateLimitConfig"):
        RateLimiter("x", config=3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="either"):
        RateLimiter("x", RateLimitConfig(1), rate=2)
    with pytest.raises(TypeError, match="name"):
        with_rate_limit("", rate=1)
    with pytest.raises(TypeError, match="rate_limit"):
        ResiliencePolicy(rate_limit=3)  # type: ignore[arg-type]


def test_health_reports_a_rejecting_limiter_as_degraded() -> None:
    with fake_clock() as clock:
        limited = with_rate_limit("quota", rate=1)(work)
        limited(1)
        report = resilient.registry.health()
        assert report.status == "healthy"
        assert report.to_dict()["rate_limiters"]["quota"]["available"] == 0
        with pytest.raises(RateLimitExceededError):
            limited(2)
        report = resilient.registry.health(rejection_window=60.0)
        assert report.status == "degraded"
        assert report.rate_limiters["quota"].rejected == 1
        assert "rate limiter 'quota' is rejecting calls" in report.issues
        clock.advance(61.0)
        assert resilient.registry.health(rejection_window=60.0).status == "healthy"


def test_an_isolated_registry_gives_every_limiter_its_burst_and_restores_it() -> None:
    with fake_clock():
        limited = with_rate_limit("quota", rate=1)(work)
        limited(1)
        with resilient.registry.isolated():
            assert limited(2) == 2  # a whole burst inside
            with pytest.raises(RateLimitExceededError):
                limited(3)
        with pytest.raises(RateLimitExceededError):
            limited(4)  # spent, as before the block
