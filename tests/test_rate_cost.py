"""Weighed rate limits: cost before the call, actual after it, adjust, and
limits stacked as one (a call waits for the latest turn and takes none when
one limit refuses)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import resilient
from resilient import (
    CallRejected,
    MetricsCollector,
    RateLimiter,
    RateLimitExceededError,
    Registry,
    with_circuit_breaker,
    with_rate_limit,
)
from resilient.rate_limit.state import GcraCore
from resilient.testing import fake_clock


def ask(prompt: str) -> str:
    return prompt.upper()


async def aask(prompt: str) -> str:
    return prompt.upper()


def tokens(prompt: str) -> float:
    return float(len(prompt))


# -- the pure rules ----------------------------------------------------------------


def test_core_a_weighed_turn_takes_its_cost_of_the_burst() -> None:
    core = GcraCore(rate=10.0, period=1.0, burst=10)  # interval 0.1
    assert core.acquire(0.0, 0.0, cost=6.0) == 0.0
    assert core.available(0.0) == 4
    assert core.acquire(0.0, 0.0, cost=5.0) is None
    assert core.retry_after(0.0, cost=5.0) == pytest.approx(0.1)
    assert core.acquire(0.0, 0.0, cost=4.0) == pytest.approx(0.6)
    assert core.available(0.0) == 0


def test_core_a_weighed_waiter_starts_when_its_whole_cost_is_free() -> None:
    core = GcraCore(rate=10.0, period=1.0, burst=10)
    core.acquire(0.0, 0.0, cost=10.0)
    token = core.acquire(0.0, 1.0, cost=3.0)
    assert token is not None
    assert core.start_of(token, 3.0) == pytest.approx(0.3)


def test_core_the_last_weighed_turn_given_back_rolls_back_an_earlier_stays_spent() -> None:
    core = GcraCore(rate=10.0, period=1.0, burst=10)
    first = core.acquire(0.0, 0.0, cost=3.0)
    second = core.acquire(0.0, 0.0, cost=3.0)
    assert first is not None
    assert second is not None
    core.give_back(second, 3.0)
    assert core.available(0.0) == 7
    core.give_back(first, 3.0)  # the last handed out now: rolls back too
    assert core.available(0.0) == 10
    a = core.acquire(0.0, 0.0, cost=2.0)
    core.acquire(0.0, 0.0, cost=2.0)
    assert a is not None
    core.give_back(a, 2.0)  # not the last one: strict, stays spent
    assert core.available(0.0) == 6


def test_core_adjust_charges_and_refunds_never_beyond_a_full_burst() -> None:
    core = GcraCore(rate=10.0, period=1.0, burst=10)
    core.adjust(0.0, 4.0)
    assert core.available(0.0) == 6
    core.adjust(0.0, -2.0)
    assert core.available(0.0) == 8
    core.adjust(0.0, -50.0)
    assert core.available(0.0) == 10
    core.adjust(0.0, 15.0)  # in debt: nothing until 0.5 s have passed
    assert core.available(0.0) == 0
    assert core.retry_after(0.0) == pytest.approx(0.6)


# -- cost and actual -------------------------------------------------------------------


def test_a_call_takes_its_cost_and_is_refused_with_the_wait_for_it() -> None:
    with fake_clock(), Registry().isolated() as registry:
        limited = with_rate_limit("tpm", cost=tokens, rate=100, period=60.0, registry=registry)(ask)
        assert limited("x" * 40) == "X" * 40
        assert limited("x" * 40) == "X" * 40
        with pytest.raises(RateLimitExceededError) as caught:
            limited("x" * 40)
        assert registry.rate_limiter("tpm").metrics().available == 20
    assert caught.value.retry_after == pytest.approx(20 * 0.6)


def test_a_fixed_cost_is_a_number() -> None:
    with fake_clock():
        limited = with_rate_limit("fixed", cost=3, rate=10)(ask)
        for _ in range(3):
            limited("a")
        with pytest.raises(RateLimitExceededError):
            limited("a")


def test_actual_refunds_what_the_estimate_overcharged() -> None:
    with fake_clock():
        limiter = RateLimiter("tpm", rate=100, period=60.0)
        limited = with_rate_limit(limiter, cost=lambda prompt: 50.0, actual=lambda reply: 10.0)(ask)
        limited("hello")
        assert limiter.metrics().available == 90


def test_actual_charges_what_the_estimate_undercharged() -> None:
    with fake_clock():
        limiter = RateLimiter("tpm", rate=100, period=60.0)
        limited = with_rate_limit(limiter, cost=1, actual=len)(ask)
        limited("x" * 30)
        assert limiter.metrics().available == 70


async def test_async_calls_are_weighed_and_settled() -> None:
    with fake_clock():
        limiter = RateLimiter("tpm", rate=100, period=60.0)
        weighed = with_rate_limit(limiter, cost=tokens)(aask)
        settled = with_rate_limit(limiter, cost=tokens, actual=lambda r: 1.0)(aask)
        assert await weighed("x" * 30) == "X" * 30
        assert await settled("x" * 30) == "X" * 30
        assert limiter.metrics().available == 69
        with pytest.raises(RateLimitExceededError):
            await weighed("x" * 70)


def test_a_weighed_caller_waits_for_its_whole_cost_within_max_wait() -> None:
    with fake_clock() as clock:
        limited = with_rate_limit("tpm", cost=tokens, rate=10, burst=10, max_wait=1.0)(ask)
        limited("x" * 10)
        limited("x" * 5)
        assert clock.delays == [pytest.approx(0.5)]


def test_adjust_charges_and_refunds_the_limit_directly() -> None:
    with fake_clock():
        limiter = RateLimiter("tpm", rate=100, period=60.0)
        limiter.adjust(30)
        assert limiter.metrics().available == 70
        limiter.adjust(-10)
        assert limiter.metrics().available == 80
        with pytest.raises(TypeError, match="adjust"):
            limiter.adjust("3")  # type: ignore[arg-type]


def test_a_cost_larger_than_burst_is_a_value_error_naming_both() -> None:
    with pytest.raises(ValueError, match=r"cost=200.*burst=100"):
        with_rate_limit("tpm", cost=200, rate=100)
    with fake_clock():
        limiter = RateLimiter("tpm2", rate=100)
        limited = with_rate_limit(limiter, cost=tokens)(ask)
        with pytest.raises(ValueError, match=r"cost=150.0.*burst=100"):
            limited("x" * 150)
        assert limiter.metrics().available == 100  # nothing taken


@pytest.mark.parametrize(
    ("bad", "error"),
    [(-1.0, ValueError), (float("nan"), ValueError), ("3", TypeError), (None, TypeError)],
    ids=["negative", "nan", "str", "none"],
)
def test_a_bad_cost_from_the_callback_is_an_error_and_takes_nothing(
    bad: Any, error: type[Exception]
) -> None:
    with fake_clock():
        limiter = RateLimiter("tpm", rate=100)
        limited = with_rate_limit(limiter, cost=lambda prompt: bad)(ask)
        with pytest.raises(error, match="cost"):
            limited("a")
        assert limiter.metrics().available == 100


def test_bad_cost_and_actual_at_decoration_name_the_field() -> None:
    with pytest.raises(TypeError, match="cost"):
        with_rate_limit("tpm", cost="many", rate=100)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="actual"):
        with_rate_limit("tpm", actual=3, rate=100)  # type: ignore[arg-type]


def test_a_weighed_limit_with_a_listener_refuses_with_its_event() -> None:
    with fake_clock():
        limiter = RateLimiter("tpm", rate=10)
        seen: list[Any] = []
        limiter.subscribe(seen.append)
        limited = with_rate_limit(limiter, cost=tokens)(ask)
        limited("x" * 8)
        with pytest.raises(RateLimitExceededError):
            limited("x" * 8)
    assert {e.state for e in seen if isinstance(e, CallRejected)} == {"rate_limited"}
    assert limiter.metrics().admitted == 1
    assert limiter.metrics().rejected == 1


def test_a_metered_weighed_call_is_counted() -> None:
    with fake_clock():
        limited = with_rate_limit("tpm", cost=tokens, rate=10)(ask)
        collector = MetricsCollector()
        unsubscribe = resilient.registry.subscribe(collector)
        try:
            limited("x" * 8)
            with pytest.raises(RateLimitExceededError):
                limited("x" * 8)
        finally:
            unsubscribe()
    stats = collector.statistics.by_name["tpm"]
    assert (stats.total_requests, stats.successes, stats.rejections) == (2, 1, 1)


# -- stacked limits --------------------------------------------------------------------


def _three(registry: Registry, **waits: float) -> Any:
    rpm = dict(rate=10, period=60.0, max_wait=waits.get("rpm", 0.0))
    itpm = dict(rate=1000, period=60.0, max_wait=waits.get("itpm", 0.0))
    otpm = dict(rate=500, period=60.0, max_wait=waits.get("otpm", 0.0))

    @with_rate_limit("rpm", registry=registry, **rpm)  # type: ignore[arg-type]
    @with_rate_limit("itpm", cost=tokens, registry=registry, **itpm)  # type: ignore[arg-type]
    @with_rate_limit(  # type: ignore[arg-type]
        "otpm", cost=lambda p: 100.0, actual=len, registry=registry, **otpm
    )
    def complete(prompt: str) -> str:
        return prompt.upper()

    return complete


def test_stacked_limits_each_take_their_cost() -> None:
    with fake_clock(), Registry().isolated() as registry:
        complete = _three(registry)
        complete("x" * 300)
        available = {
            n: registry.rate_limiter(n).metrics().available for n in ("rpm", "itpm", "otpm")
        }
    assert available == {"rpm": 9, "itpm": 700, "otpm": 200}


def test_stacked_limits_take_no_turn_when_one_refuses() -> None:
    with fake_clock(), Registry().isolated() as registry:
        complete = _three(registry)
        complete("x" * 400)  # otpm: 100 estimated, 400 settled: 100 left
        complete("x" * 50)  # otpm: 0 left after settling 50
        before = {n: registry.rate_limiter(n).metrics().available for n in ("rpm", "itpm")}
        with pytest.raises(RateLimitExceededError) as caught:
            complete("x" * 10)
        after = {n: registry.rate_limiter(n).metrics().available for n in ("rpm", "itpm")}
        assert registry.rate_limiter("rpm").metrics().admitted == 2
    assert caught.value.name == "otpm"
    assert after == before == {"rpm": 8, "itpm": 550}


async def test_stacked_async_limits_take_no_turn_when_the_middle_one_refuses() -> None:
    with fake_clock(), Registry().isolated() as registry:

        @with_rate_limit("rpm", rate=10, registry=registry)
        @with_rate_limit("itpm", cost=tokens, rate=100, registry=registry)
        @with_rate_limit("otpm", rate=10, registry=registry)
        async def complete(prompt: str) -> str:
            return prompt

        await complete("x" * 90)
        with pytest.raises(RateLimitExceededError) as caught:
            await complete("x" * 20)
        rpm, otpm = registry.rate_limiter("rpm"), registry.rate_limiter("otpm")
        assert (rpm.metrics().available, otpm.metrics().available) == (9, 9)
    assert caught.value.name == "itpm"


def test_a_stacked_call_waits_once_for_the_latest_turn() -> None:
    with fake_clock() as clock, Registry().isolated() as registry:

        @with_rate_limit("a", rate=2, burst=1, max_wait=1.0, registry=registry)
        @with_rate_limit("b", rate=1, burst=1, max_wait=1.0, registry=registry)
        def call() -> float:
            return clock.now()

        assert call() == 0.0
        assert call() == pytest.approx(1.0)  # a's turn at 0.5, b's at 1.0: one wait
        assert clock.delays == [pytest.approx(1.0)]


async def test_a_stacked_async_call_waits_once_for_the_latest_turn() -> None:
    with fake_clock() as clock, Registry().isolated() as registry:

        @with_rate_limit("a", rate=1, burst=1, max_wait=1.0, registry=registry)
        @with_rate_limit("b", rate=4, burst=1, max_wait=1.0, registry=registry)
        async def call() -> float:
            return clock.now()

        await call()
        assert await call() == pytest.approx(1.0)
        assert clock.delays == [pytest.approx(1.0)]


async def test_a_cancelled_stacked_waiter_gives_every_turn_back() -> None:
    with fake_clock(), Registry().isolated() as registry:

        @with_rate_limit("a", rate=1, burst=1, max_wait=5.0, registry=registry)
        @with_rate_limit("b", rate=1, burst=1, max_wait=5.0, registry=registry)
        async def call() -> None:
            return None

        await call()
        waiting = asyncio.ensure_future(call())
        await asyncio.sleep(0)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        a, b = registry.rate_limiter("a"), registry.rate_limiter("b")
        assert (a._core.tat, b._core.tat) == (pytest.approx(1.0), pytest.approx(1.0))


def test_limits_apart_in_a_chain_still_act_alone() -> None:
    with fake_clock(), Registry().isolated() as registry:

        @with_rate_limit("outer", rate=5, registry=registry)
        @with_circuit_breaker("between", registry=registry)
        @with_rate_limit("inner", cost=tokens, rate=5, registry=registry)
        def call(prompt: str) -> str:
            return prompt

        call("xxx")
        assert registry.rate_limiter("outer").metrics().available == 4
        assert registry.rate_limiter("inner").metrics().available == 2


async def test_a_stream_takes_the_turns_of_every_stacked_limit_when_it_starts() -> None:
    with fake_clock(), Registry().isolated() as registry:

        @with_rate_limit("rpm", rate=10, registry=registry)
        @with_rate_limit("tpm", cost=lambda n: float(n), rate=10, registry=registry)
        async def stream(n: int) -> Any:
            for i in range(n):
                yield i

        assert [i async for i in stream(4)] == [0, 1, 2, 3]
        assert registry.rate_limiter("rpm").metrics().available == 9
        assert registry.rate_limiter("tpm").metrics().available == 6
        with pytest.raises(RateLimitExceededError):
            [i async for i in stream(7)]
        assert registry.rate_limiter("rpm").metrics().available == 9  # given back


def test_a_sync_stream_takes_its_weighed_turn_when_it_starts() -> None:
    with fake_clock(), Registry().isolated() as registry:
        started: list[int] = []

        @with_rate_limit("tpm", cost=lambda n: float(n), rate=10, registry=registry)
        def stream(n: int) -> Any:
            started.append(n)
            yield from range(n)

        tokens = stream(4)
        assert registry.rate_limiter("tpm").metrics().available == 10  # not started
        assert next(tokens) == 0
        assert registry.rate_limiter("tpm").metrics().available == 6
        assert list(tokens) == [1, 2, 3]
        with pytest.raises(RateLimitExceededError):
            next(stream(7))
        assert started == [4]  # the refused stream never ran
        assert registry.rate_limiter("tpm").metrics().available == 6


def _usage(last: dict[str, int]) -> float:
    return float(last["usage"])


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_a_stream_settles_actual_from_its_last_item_when_exhausted(kind: str) -> None:
    with fake_clock(), Registry().isolated() as registry:
        limit = with_rate_limit(
            "tpm", cost=lambda n: 8.0, actual=_usage, rate=20, period=60, registry=registry
        )
        chunks = [{"text": 1}, {"text": 2}, {"usage": 3}]  # the usage comes last

        if kind == "sync":

            @limit
            def stream(n: int) -> Any:
                yield from chunks[:n]

            assert list(stream(3)) == chunks
            available = registry.rate_limiter("tpm").metrics().available
            # Closed early, or broken off: the estimate stays charged.
            partial = stream(3)
            next(partial)
            partial.close()
        else:

            @limit
            async def stream(n: int) -> Any:
                for chunk in chunks[:n]:
                    yield chunk

            assert [c async for c in stream(3)] == chunks
            available = registry.rate_limiter("tpm").metrics().available
            partial = stream(3)
            await partial.__anext__()
            await partial.aclose()
        assert available == 17  # 8 estimated, 3 used: 5 refunded
        assert registry.rate_limiter("tpm").metrics().available == available - 8


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_an_actual_that_raises_on_a_streams_last_item_reaches_the_consumer(
    kind: str,
) -> None:
    with fake_clock(), Registry().isolated() as registry:
        limit = with_rate_limit("tpm", cost=lambda: 4.0, actual=_usage, rate=10, registry=registry)
        if kind == "sync":

            @limit
            def stream() -> Any:
                yield {"text": 1}

            with pytest.raises(KeyError, match="usage"):
                list(stream())
        else:

            @limit
            async def astream() -> Any:
                yield {"text": 1}

            with pytest.raises(KeyError, match="usage"):
                [c async for c in astream()]
        assert registry.rate_limiter("tpm").metrics().available == 6  # estimate kept


# -- the one-frame fast paths ---------------------------------------------------------


@pytest.mark.parametrize("actual", [None, len], ids=["weighed", "settled"])
def test_a_weighed_limit_obeys_its_reconfigured_rate_on_the_fast_path(actual: Any) -> None:
    with fake_clock(), Registry().isolated() as registry:
        limited = with_rate_limit(
            "tpm", cost=tokens, actual=actual, registry=registry, rate=100, period=60.0
        )(ask)
        limited("x" * 10)
        assert registry.rate_limiter("tpm").metrics().available == 90
        registry.reconfigure("tpm", rate=20, burst=20)
        # The 10 turns taken stay taken at the new rate: 10 of 20 are left.
        assert registry.rate_limiter("tpm").metrics().available == 10
        with pytest.raises(RateLimitExceededError):
            limited("x" * 11)
        assert limited("x" * 10) == "X" * 10
        assert registry.rate_limiter("tpm").metrics().available == 0


@pytest.mark.parametrize("stacked", [False, True], ids=["one", "stacked"])
@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_a_cost_above_a_lowered_burst_is_a_value_error_not_a_refusal(
    flavour: str, stacked: bool
) -> None:
    """The fast path checks a cost against ``burst`` as it was when the
    function was decorated; the limiter itself checks it against today's."""
    with fake_clock(), Registry().isolated() as registry:
        limit = with_rate_limit("tpm", cost=tokens, registry=registry, rate=100, period=60.0)
        outer = with_rate_limit("rpm", registry=registry, rate=10, period=60.0)
        wrap = (lambda fn: outer(limit(fn))) if stacked else limit
        limited = wrap(ask) if flavour == "sync" else wrap(aask)

        def call(prompt: str) -> Any:
            result = limited(prompt)
            return asyncio.run(result) if flavour == "async" else result

        call("x" * 10)
        registry.reconfigure("tpm", burst=20)
        with pytest.raises(ValueError, match=r"cost=25.0 is larger than burst=20"):
            call("x" * 25)
        # No turn is taken from either limit by the refused call.
        assert registry.rate_limiter("tpm").metrics().available == 10
        assert registry.rate_limiter("rpm").metrics().available == (9 if stacked else 10)


def test_a_raising_cost_of_a_later_stacked_limit_takes_no_turn_from_any() -> None:
    def refuses(prompt: str) -> float:
        raise LookupError("no tokenizer")

    with fake_clock(), Registry().isolated() as registry:

        @with_rate_limit("rpm", registry=registry, rate=10, period=60.0)
        @with_rate_limit("itpm", cost=tokens, registry=registry, rate=1000, period=60.0)
        @with_rate_limit("otpm", cost=refuses, registry=registry, rate=500, period=60.0)
        def complete(prompt: str) -> str:
            return prompt

        with pytest.raises(LookupError):
            complete("x" * 30)
        available = {
            n: registry.rate_limiter(n).metrics().available for n in ("rpm", "itpm", "otpm")
        }
    assert available == {"rpm": 10, "itpm": 1000, "otpm": 500}


def test_stacked_actuals_all_settle_before_the_first_error_is_raised() -> None:
    def broken(result: str) -> float:
        raise LookupError("no usage")

    with fake_clock(), Registry().isolated() as registry:

        @with_rate_limit("itpm", cost=5.0, actual=broken, registry=registry, rate=100)
        @with_rate_limit("otpm", cost=5.0, actual=len, registry=registry, rate=100)
        def complete(prompt: str) -> str:
            return prompt

        with pytest.raises(LookupError):
            complete("x" * 20)
        available = {n: registry.rate_limiter(n).metrics().available for n in ("itpm", "otpm")}
    assert available == {"itpm": 95, "otpm": 80}
