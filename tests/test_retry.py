from __future__ import annotations

import asyncio
import inspect
import logging
import random
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest

import resilient
from resilient import (
    CircuitBreaker,
    CircuitBreakerConfig,
    CircuitOpenError,
    RateLimited,
    RetriesExhausted,
    Retry,
    RetryAttempted,
    RetryConfig,
    RetryPolicies,
    config,
    with_retry,
)
from resilient._runtime import clock as _clock
from resilient._runtime import validation as _validate
from resilient.events import CallFailed, CallStarted, Event
from resilient.testing import FakeClock, fake_clock


@pytest.fixture
def clock() -> Iterator[FakeClock]:
    with fake_clock() as c:
        yield c


@pytest.fixture
def seen() -> Iterator[list[Event]]:
    events: list[Event] = []
    unsubscribe = resilient.subscribe(events.append)
    yield events
    unsubscribe()


class Script:
    """A callable that plays a script: raise the exceptions, return the rest."""

    def __init__(self, *outcomes: object) -> None:
        self.outcomes = list(outcomes)
        self.calls = 0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        outcome = self.outcomes.pop(0) if len(self.outcomes) > 1 else self.outcomes[0]
        if isinstance(outcome, BaseException):
            raise outcome
        if isinstance(outcome, type) and issubclass(outcome, BaseException):
            raise outcome()
        return outcome


class AsyncScript(Script):
    async def __call__(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        return super().__call__(*args, **kwargs)


NO_JITTER = {"jitter": 0.0}


# -- configuration --------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "error", "words"),
    [
        ({"max_attempts": 0}, ValueError, ["max_attempts", "0"]),
        ({"max_attempts": 2.5}, TypeError, ["max_attempts", "2.5"]),
        ({"max_attempts": True}, TypeError, ["max_attempts", "True"]),
        ({"initial_delay": -1}, ValueError, ["initial_delay", "-1"]),
        ({"initial_delay": float("nan")}, ValueError, ["initial_delay", "nan"]),
        ({"max_delay": float("inf")}, ValueError, ["max_delay", "inf"]),
        ({"initial_delay": 5.0, "max_delay": 1.0}, ValueError, ["max_delay", "1.0", "5.0"]),
        ({"multiplier": 0.5}, ValueError, ["multiplier", "0.5"]),
        ({"multiplier": "2"}, TypeError, ["multiplier", "'2'"]),
        ({"jitter": 1.5}, ValueError, ["jitter", "1.5"]),
        ({"jitter": -0.1}, ValueError, ["jitter", "-0.1"]),
        ({"jitter": "gaussian"}, ValueError, ["jitter", "'gaussian'", "decorrelated"]),
        ({"jitter": None}, TypeError, ["jitter", "None"]),
        ({"retry_on": "ValueError"}, TypeError, ["retry_on", "'ValueError'"]),
        ({"retry_on": (ValueError, 3)}, TypeError, ["retry_on", "3"]),
        ({"give_up_on": int}, TypeError, ["give_up_on", "int"]),
        ({"retry_if_result": 3}, TypeError, ["retry_if_result", "3"]),
        ({"on_retry": "log"}, TypeError, ["on_retry", "'log'"]),
        ({"respect_retry_after": 1}, TypeError, ["respect_retry_after", "1"]),
        ({"deadline": 0}, ValueError, ["deadline", "0"]),
        ({"deadline": -3.0}, ValueError, ["deadline", "-3.0"]),
        ({"rng": 42}, TypeError, ["rng", "42"]),
    ],
)
def test_bad_values_name_the_field_and_the_value(
    fields: dict[str, Any], error: type[Exception], words: list[str]
) -> None:
    with pytest.raises(error) as info:
        RetryConfig(**fields)
    message = str(info.value)
    assert message.startswith("RetryConfig.")
    for word in words:
        assert word in message


def test_defaults_and_normalisation() -> None:
    cfg = RetryConfig(initial_delay=1, max_delay=10, multiplier=3, jitter=0, retry_on=KeyError)
    assert cfg.max_attempts == 3
    assert cfg.initial_delay == 1.0
    assert isinstance(cfg.initial_delay, float)
    assert cfg.multiplier == 3.0
    assert cfg.jitter == 0.0
    assert isinstance(cfg.jitter, float)
    assert cfg.retry_on == (KeyError,)
    assert cfg.give_up_on == ()
    assert cfg.respect_retry_after is True
    assert cfg.deadline is None


def test_presets() -> None:
    assert (RetryConfig.DEFAULT.max_attempts, RetryConfig.DEFAULT.initial_delay) == (3, 1.0)
    assert (RetryConfig.AGGRESSIVE.max_attempts, RetryConfig.AGGRESSIVE.initial_delay) == (5, 0.5)
    assert RetryConfig.NO_RETRY.max_attempts == 1


def test_policy_factories() -> None:
    fixed = RetryPolicies.fixed(4, 2.0)
    assert (fixed.max_attempts, fixed.initial_delay, fixed.max_delay) == (4, 2.0, 2.0)
    assert (fixed.multiplier, fixed.jitter) == (1.0, 0.0)
    expo = RetryPolicies.exponential(6, 0.5, 8.0)
    assert (expo.max_attempts, expo.initial_delay, expo.max_delay, expo.multiplier) == (
        6,
        0.5,
        8.0,
        2.0,
    )
    api = RetryPolicies.api_rate_limit()
    assert api.respect_retry_after
    assert api.jitter == "full"
    assert api.max_delay == 60.0
    network = RetryPolicies.network()
    assert network.retry_on == (ConnectionError, TimeoutError)
    assert network.jitter == "decorrelated"


def test_environment_changes_the_default_max_attempts() -> None:
    try:
        config.reload({"RESILIENT_RETRY_MAX_ATTEMPTS": "7"})
        assert RetryConfig().max_attempts == 7
        assert RetryConfig(max_attempts=2).max_attempts == 2
        assert RetryConfig.DEFAULT.max_attempts == 3
    finally:
        config.reload({})
    assert RetryConfig().max_attempts == 3


def test_with_retry_rejects_a_retry_with_fields_and_unknown_configs() -> None:
    with pytest.raises(TypeError, match="either a Retry"):
        with_retry(Retry(), max_attempts=2)
    with pytest.raises(TypeError, match="RetryConfig or a Retry"):
        with_retry(CircuitBreakerConfig())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="RetryConfig"):
        Retry(CircuitBreakerConfig())  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        with_retry(max_tries=3)
    with pytest.raises(ValueError, match="Retry name"):
        Retry(name="")


# -- the delay schedule -----------------------------------------------------------


def test_exact_exponential_delays_then_the_last_error(clock: FakeClock) -> None:
    errors = [ConnectionError(n) for n in range(5)]
    fn = Script(*errors)
    decorated = with_retry(max_attempts=5, initial_delay=0.5, max_delay=3.0, **NO_JITTER)(fn)
    with pytest.raises(ConnectionError) as info:
        decorated()
    assert info.value is errors[-1]
    assert clock.sleeps == [0.5, 1.0, 2.0, 3.0]
    assert clock.now() == 6.5
    assert fn.calls == 5


def test_seeded_jitter_gives_an_exact_sequence(clock: FakeClock) -> None:
    fn = Script(ConnectionError)
    decorated = with_retry(max_attempts=4, jitter=0.2, rng=random.Random(11))(fn)
    with pytest.raises(ConnectionError):
        decorated()
    mirror = random.Random(11)
    expected = [2.0 ** (n - 1) * (1 + mirror.uniform(-0.2, 0.2)) for n in (1, 2, 3)]
    assert clock.sleeps == expected


@pytest.mark.parametrize("strategy", ["full", "equal", "decorrelated"])
def test_seeded_jitter_strategies_repeat_exactly(clock: FakeClock, strategy: str) -> None:
    def run(seed: int) -> list[float]:
        clock.sleeps.clear()
        with pytest.raises(ConnectionError):
            Retry(RetryConfig(max_attempts=6, jitter=strategy, rng=random.Random(seed))).call(
                Script(ConnectionError)
            )
        return list(clock.sleeps)

    first = run(1)
    assert len(first) == 5
    assert run(1) == first
    assert run(2) != first


def test_default_random_source_stays_in_bounds(clock: FakeClock) -> None:
    with pytest.raises(ConnectionError):
        Retry(RetryConfig(max_attempts=4, jitter=0.5)).call(Script(ConnectionError))
    for n, delay in enumerate(clock.sleeps, start=1):
        assert 0.5 * 2 ** (n - 1) <= delay <= 1.5 * 2 ** (n - 1)


def test_success_after_failures_returns_the_value(clock: FakeClock) -> None:
    fn = Script(ConnectionError, TimeoutError, "ok")
    assert with_retry(**NO_JITTER)(fn)(1, key="v") == "ok"
    assert fn.calls == 3
    assert clock.sleeps == [1.0, 2.0]


def test_first_attempt_success_does_not_touch_the_clock() -> None:
    def boom() -> float:
        raise AssertionError("no clock on the success path")

    _clock.set_clock(_clock.Clock(monotonic=boom, wall=boom))
    assert with_retry()(lambda: 5)() == 5


# -- what is retried ----------------------------------------------------------------


def test_exhausted_re_raises_the_last_error_itself_with_a_note(clock: FakeClock) -> None:
    last = ValueError("third")
    fn = Script(ValueError("first"), ValueError("second"), last)
    with pytest.raises(ValueError) as info:
        with_retry(**NO_JITTER)(fn)()
    assert info.value is last
    assert type(info.value) is ValueError
    assert info.value.__notes__ == ["resilient: gave up after 3 attempts"]
    # Later errors do not chain onto earlier ones.
    assert info.value.__context__ is None
    assert info.value.__cause__ is None


def test_retry_on_types(clock: FakeClock) -> None:
    fn = Script(KeyError("k"))
    with pytest.raises(KeyError) as info:
        with_retry(retry_on=(ConnectionError,))(fn)()
    assert fn.calls == 1
    assert clock.sleeps == []
    assert not hasattr(info.value, "__notes__")


def test_retry_on_predicate(clock: FakeClock) -> None:
    transient = ConnectionError("transient")
    fatal = ConnectionError("fatal")
    fn = Script(transient, fatal)
    decorated = with_retry(retry_on=lambda e: "transient" in str(e), **NO_JITTER)(fn)
    with pytest.raises(ConnectionError) as info:
        decorated()
    assert info.value is fatal
    assert fn.calls == 2
    assert info.value.__notes__ == [
        "resilient: gave up after 2 attempts (ConnectionError is not retried)"
    ]


def test_give_up_on_wins_over_retry_on(clock: FakeClock) -> None:
    fn = Script(PermissionError)
    with pytest.raises(PermissionError):
        with_retry(retry_on=(OSError,), give_up_on=(PermissionError,))(fn)()
    assert fn.calls == 1
    fn = Script(FileNotFoundError, "ok")
    assert with_retry(retry_on=(OSError,), give_up_on=(PermissionError,))(fn)() == "ok"


def test_result_predicate_retries_until_the_result_is_good(clock: FakeClock) -> None:
    fn = Script(None, None, "ready")
    decorated = with_retry(retry_if_result=lambda r: r is None, **NO_JITTER)(fn)
    assert decorated() == "ready"
    assert clock.sleeps == [1.0, 2.0]


def test_result_still_bad_on_the_last_attempt_is_returned(
    clock: FakeClock, seen: list[Event]
) -> None:
    fn = Script({"status": "pending", "n": 1}, {"status": "pending", "n": 2})
    decorated = with_retry(
        max_attempts=2, retry_if_result=lambda r: r["status"] == "pending", **NO_JITTER
    )(fn)
    assert decorated() == {"status": "pending", "n": 2}
    exhausted = [e for e in seen if isinstance(e, RetriesExhausted)]
    assert len(exhausted) == 1
    assert exhausted[0].error is None
    assert exhausted[0].attempts == 2


def test_errors_and_bad_results_mix(clock: FakeClock) -> None:
    fn = Script(ConnectionError, "bad", "good")
    decorated = with_retry(retry_if_result=lambda r: r == "bad", **NO_JITTER)(fn)
    assert decorated() == "good"
    assert fn.calls == 3


def test_on_retry_is_called_positionally(clock: FakeClock) -> None:
    calls: list[tuple[int, BaseException | None, float]] = []

    def hook(attempt: int, error: BaseException | None, delay: float, /) -> None:
        calls.append((attempt, error, delay))

    first, second = ConnectionError(1), ConnectionError(2)
    fn = Script(first, second, None, "ok")
    decorated = with_retry(
        max_attempts=4, on_retry=hook, retry_if_result=lambda r: r is None, **NO_JITTER
    )(fn)
    assert decorated() == "ok"
    assert calls == [(1, first, 1.0), (2, second, 2.0), (3, None, 4.0)]


def test_no_retry_is_a_pass_through(clock: FakeClock, seen: list[Event]) -> None:
    error = ConnectionError()
    with pytest.raises(ConnectionError) as info:
        with_retry(RetryConfig.NO_RETRY)(Script(error))()
    assert info.value is error
    assert not hasattr(error, "__notes__")
    assert [type(e) for e in seen] == [CallStarted, CallFailed]  # the request, nothing more


def test_set_active_false_makes_one_attempt(clock: FakeClock) -> None:
    fn = Script(ConnectionError, "ok")
    resilient.set_active(False)
    with pytest.raises(ConnectionError):
        with_retry()(fn)()
    assert fn.calls == 1
    resilient.set_active(True)
    assert with_retry(**NO_JITTER)(fn)() == "ok"


@pytest.mark.parametrize("error", [KeyboardInterrupt, SystemExit, GeneratorExit])
def test_base_exceptions_are_never_retried(clock: FakeClock, error: type[BaseException]) -> None:
    fn = Script(error)
    with pytest.raises(error):
        with_retry(retry_on=(BaseException,))(fn)()
    assert fn.calls == 1
    assert clock.sleeps == []


def test_keyboard_interrupt_during_a_wait_ends_it(seen: list[Event]) -> None:
    def interrupted(seconds: float) -> None:
        raise KeyboardInterrupt

    _clock.set_clock(_clock.Clock(sleep=interrupted))
    fn = Script(ConnectionError, "ok")
    with pytest.raises(KeyboardInterrupt):
        with_retry()(fn)()
    assert fn.calls == 1


# -- Retry-After ----------------------------------------------------------------------


class RateLimitError(Exception):
    def __init__(self, retry_after: float | timedelta | None) -> None:
        super().__init__("slow down")
        self.retry_after = retry_after


@pytest.mark.parametrize("after", [7, 7.0, timedelta(seconds=7)])
def test_retry_after_makes_the_next_wait_at_least_that(
    clock: FakeClock, seen: list[Event], after: float | timedelta
) -> None:
    fn = Script(RateLimitError(after), RateLimitError(0.5), "ok")
    assert with_retry(**NO_JITTER)(fn)() == "ok"
    assert clock.sleeps == [7.0, 2.0]
    limited = [e for e in seen if isinstance(e, RateLimited)]
    assert [e.retry_after for e in limited] == [7.0, 0.5]
    assert limited[0].policy == "retry"


def test_retry_after_may_lengthen_the_wait_up_to_max_delay(clock: FakeClock) -> None:
    fn = Script(RateLimitError(30.0), "ok")
    assert with_retry(max_delay=30.0)(fn)() == "ok"
    assert clock.sleeps == [30.0]


# Longer than time.sleep can take (about 9.2e9 s): an OverflowError replaced
# the real error (two attempts) or counted as a failed attempt (three); an
# async retry slept forever.
HUGE_WAITS = {
    "120s": 120.0,
    "1e10": 1e10,
    "inf": float("inf"),
    "10**400": 10**400,
    "timedelta.max": timedelta.max,
}


@pytest.mark.parametrize("attempts", [2, 3])
@pytest.mark.parametrize("after", sorted(HUGE_WAITS))
def test_retry_after_beyond_max_delay_gives_up_at_once_with_the_real_error(
    clock: FakeClock, after: str, attempts: int
) -> None:
    error = RateLimitError(HUGE_WAITS[after])  # type: ignore[arg-type]
    fn = Script(error, "ok")
    with pytest.raises(RateLimitError) as info:
        with_retry(max_attempts=attempts, max_delay=30.0)(fn)()
    assert info.value is error
    assert fn.calls == 1
    assert clock.sleeps == []
    assert "gave up after 1 attempt" in info.value.__notes__[0]
    assert "max_delay 30s" in info.value.__notes__[0]


@pytest.mark.parametrize("attempts", [2, 3])
@pytest.mark.parametrize("after", sorted(HUGE_WAITS))
async def test_async_retry_after_beyond_max_delay_gives_up_at_once_with_the_real_error(
    clock: FakeClock, after: str, attempts: int
) -> None:
    error = RateLimitError(HUGE_WAITS[after])  # type: ignore[arg-type]
    fn = AsyncScript(error, "ok")
    with pytest.raises(RateLimitError) as info:
        await Retry(RetryConfig(max_attempts=attempts, max_delay=30.0)).call_async(fn)
    assert info.value is error
    assert fn.calls == 1
    assert clock.sleeps == []
    assert "max_delay 30s" in info.value.__notes__[0]


@pytest.mark.parametrize("seconds", [1e10, 1e300, float("inf")])
async def test_the_clock_cuts_every_wait_at_what_sleeps_can_take(seconds: float) -> None:
    asked: list[float] = []

    async def sleep_async(wait: float) -> None:
        asked.append(wait)

    _clock.set_clock(_clock.Clock(sleep=asked.append, sleep_async=sleep_async))
    _clock.sleep(seconds)
    await _clock.sleep_async(seconds)
    assert asked == [_validate.MAX_SECONDS, _validate.MAX_SECONDS]
    assert _validate.MAX_SECONDS < 9.3e9  # time.sleep's own limit on 64-bit platforms


def test_retry_after_ignored_when_asked(clock: FakeClock, seen: list[Event]) -> None:
    fn = Script(RateLimitError(60.0), "ok")
    assert with_retry(respect_retry_after=False, **NO_JITTER)(fn)() == "ok"
    assert clock.sleeps == [1.0]
    assert not any(isinstance(e, RateLimited) for e in seen)


def test_retry_after_past_the_deadline_gives_up_at_once(clock: FakeClock) -> None:
    error = RateLimitError(60.0)
    fn = Script(error, "ok")
    with pytest.raises(RateLimitError) as info:
        with_retry(deadline=30.0)(fn)()
    assert info.value is error
    assert clock.sleeps == []
    assert "deadline" in info.value.__notes__[0]


# -- deadline -------------------------------------------------------------------------


def test_deadline_no_wait_crosses_it(clock: FakeClock) -> None:
    def slow_failure() -> None:
        clock.advance(1.0)  # every attempt takes a second
        raise ConnectionError

    with pytest.raises(ConnectionError) as info:
        with_retry(max_attempts=10, deadline=10.0, **NO_JITTER)(slow_failure)()
    # t=1 fail, wait 1 -> t=2, t=3 fail, wait 2 -> t=5, t=6 fail, wait 4 would end at 10:
    # allowed; t=11 fail: the wait of 8 would end past 10.
    assert clock.sleeps == [1.0, 2.0, 4.0]
    assert clock.now() == 11.0
    assert info.value.__notes__ == [
        "resilient: gave up after 4 attempts (the next wait of 8s would pass the 10s deadline)"
    ]


def test_deadline_counts_from_the_first_attempt(clock: FakeClock) -> None:
    clock.advance(100.0)
    fn = Script(ConnectionError, ConnectionError, "ok")
    assert with_retry(deadline=3.0, **NO_JITTER)(fn)() == "ok"
    assert clock.sleeps == [1.0, 2.0]


# -- a circuit breaker inside ---------------------------------------------------------


def test_open_breaker_waits_its_remaining_time(clock: FakeClock, seen: list[Event]) -> None:
    fn = Script(CircuitOpenError("db", "open", 12.5), "ok")
    assert with_retry(max_delay=30.0, **NO_JITTER)(fn)() == "ok"
    assert clock.sleeps == [12.5]
    attempted = [e for e in seen if isinstance(e, RetryAttempted)]
    assert [(e.attempt, e.delay) for e in attempted] == [(1, 12.5)]


def test_open_breaker_longer_than_max_delay_gives_up_at_once(clock: FakeClock) -> None:
    error = CircuitOpenError("db", "open", 45.0)
    fn = Script(error, "ok")
    with pytest.raises(CircuitOpenError) as info:
        with_retry(max_delay=30.0)(fn)()
    assert info.value is error
    assert fn.calls == 1
    assert clock.sleeps == []
    assert info.value.__notes__ == [
        "resilient: gave up after 1 attempt (the circuit stays open 45s, more than max_delay 30s)"
    ]


def test_forced_open_breaker_gives_up_at_once(clock: FakeClock) -> None:
    fn = Script(CircuitOpenError("db", "forced_open", float("inf")), "ok")
    with pytest.raises(CircuitOpenError):
        with_retry()(fn)()
    assert fn.calls == 1


def test_open_breaker_past_the_deadline_gives_up_at_once(clock: FakeClock) -> None:
    fn = Script(CircuitOpenError("db", "open", 20.0), "ok")
    with pytest.raises(CircuitOpenError):
        with_retry(max_delay=30.0, deadline=10.0)(fn)()
    assert fn.calls == 1
    assert clock.sleeps == []


def test_half_open_breaker_with_no_probe_free_gives_up_at_once(clock: FakeClock) -> None:
    fn = Script(CircuitOpenError("db", "half_open", 0.0), "ok")
    with pytest.raises(CircuitOpenError) as info:
        with_retry(**NO_JITTER)(fn)()
    assert fn.calls == 1
    assert clock.sleeps == []
    assert info.value.__notes__ == [
        "resilient: gave up after 1 attempt (the circuit is half_open with no probe free)"
    ]


def test_retry_around_a_real_breaker_waits_for_the_probe(clock: FakeClock) -> None:
    breaker = CircuitBreaker("svc", CircuitBreakerConfig(failure_threshold=1, recovery_timeout=5))
    backend = Script(ConnectionError, "ok")

    @with_retry(max_attempts=3, retry_on=(ConnectionError, CircuitOpenError), **NO_JITTER)
    @breaker
    def call() -> str:
        return str(backend())

    # Attempt 1 fails and opens the breaker, waits 1 s; attempt 2 is rejected
    # with 4 s remaining, waits them; attempt 3 is the probe and succeeds.
    assert call() == "ok"
    assert clock.sleeps == [1.0, 4.0]
    assert backend.calls == 2


# -- events and logs ------------------------------------------------------------------


def test_events_before_each_wait_and_on_exhaustion(clock: FakeClock) -> None:
    log: list[object] = []
    retry = Retry(RetryConfig(max_attempts=3, jitter=0.0), name="payments")
    unsubscribe = retry.subscribe(log.append)
    _clock.set_clock(_clock.Clock(monotonic=clock.now, sleep=lambda s: log.append(("sleep", s))))
    try:
        with pytest.raises(ConnectionError):
            retry.call(Script(ConnectionError))
    finally:
        unsubscribe()
    kinds = [type(x).__name__ if isinstance(x, resilient.Event) else x for x in log]
    assert kinds[0] == "CallStarted"  # the request (see test_events)
    assert kinds[-1] == "CallFailed"
    assert kinds[1:-1] == [
        "RetryAttempted",
        ("sleep", 1.0),
        "RetryAttempted",
        ("sleep", 2.0),
        "RetriesExhausted",
    ]
    first = log[1]
    assert isinstance(first, RetryAttempted)
    assert (first.name, first.policy, first.attempt, first.delay) == ("payments", "retry", 1, 1.0)
    assert isinstance(first.error, ConnectionError)
    last = log[-2]
    assert isinstance(last, RetriesExhausted)
    assert last.attempts == 3


def test_events_are_named_after_the_function_without_a_name(
    clock: FakeClock, seen: list[Event]
) -> None:
    @with_retry(**NO_JITTER)
    def fetch_user() -> str:
        raise ConnectionError

    with pytest.raises(ConnectionError):
        fetch_user()
    assert {e.name for e in seen} == {fetch_user.__qualname__}


def test_retries_are_logged_at_info_and_success_not_at_all(
    clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="resilient")
    assert with_retry()(lambda: "fine")() == "fine"
    assert caplog.records == []
    retry = Retry(RetryConfig(jitter=0.0), name="inventory")
    assert retry.call(Script(ConnectionError("down"), "ok")) == "ok"
    (record,) = caplog.records
    assert record.levelno == logging.INFO
    assert record.name == "resilient"
    assert (record.retry, record.attempt, record.delay) == ("inventory", 1, 1.0)  # type: ignore[attr-defined]
    assert record.error_type == "ConnectionError"  # type: ignore[attr-defined]
    caplog.clear()
    with pytest.raises(ConnectionError):
        retry.call(Script(ConnectionError("down")))
    assert [r.levelno for r in caplog.records] == [logging.INFO, logging.INFO, logging.WARNING]
    assert caplog.records[-1].attempts == 3  # type: ignore[attr-defined]


# -- async ----------------------------------------------------------------------------


async def test_async_exact_delays_and_success(clock: FakeClock) -> None:
    fn = AsyncScript(ConnectionError, ConnectionError, "ok")

    @with_retry(**NO_JITTER)
    async def fetch(x: int) -> Any:
        return await fn(x)

    assert await fetch(1) == "ok"
    assert clock.sleeps == [1.0, 2.0]


async def test_async_exhausted_and_result_retry(clock: FakeClock) -> None:
    error = ConnectionError("last")
    fn = AsyncScript(ConnectionError(), error)
    with pytest.raises(ConnectionError) as info:
        await Retry(RetryConfig(max_attempts=2)).call_async(fn)
    assert info.value is error
    assert info.value.__notes__ == ["resilient: gave up after 2 attempts"]
    assert info.value.__context__ is None
    pending = AsyncScript(None, None)
    result = await Retry(RetryConfig(retry_if_result=lambda r: r is None)).call_async(pending)
    assert result is None
    assert pending.calls == 3


async def test_async_breaker_and_retry_after(clock: FakeClock) -> None:
    fn = AsyncScript(CircuitOpenError("x", "open", 3.0), RateLimitError(9.0), "ok")
    assert await Retry(RetryConfig(max_attempts=3, jitter=0.0)).call_async(fn) == "ok"
    assert clock.sleeps == [3.0, 9.0]


async def test_async_deadline(clock: FakeClock) -> None:
    fn = AsyncScript(ConnectionError, ConnectionError, "ok")
    with pytest.raises(ConnectionError):
        await Retry(RetryConfig(deadline=2.5, jitter=0.0)).call_async(fn)
    assert clock.sleeps == [1.0]


async def test_cancellation_during_a_wait_ends_it_with_no_further_attempt() -> None:
    waiting = asyncio.Event()

    async def endless(seconds: float) -> None:
        waiting.set()
        await asyncio.Event().wait()

    _clock.set_clock(_clock.Clock(sleep_async=endless))
    fn = AsyncScript(ConnectionError, "ok")
    task = asyncio.create_task(with_retry()(fn)())
    await waiting.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert fn.calls == 1


async def test_cancelled_error_from_the_call_is_not_retried(clock: FakeClock) -> None:
    fn = AsyncScript(asyncio.CancelledError, "ok")
    with pytest.raises(asyncio.CancelledError):
        await with_retry(retry_on=(BaseException,))(fn)()
    assert fn.calls == 1
    assert clock.sleeps == []


async def test_async_set_active_false(clock: FakeClock) -> None:
    fn = AsyncScript(ConnectionError, "ok")
    resilient.set_active(False)
    with pytest.raises(ConnectionError):
        await with_retry()(fn)()
    assert fn.calls == 1


# -- what it decorates ----------------------------------------------------------------


class Client:
    def __init__(self) -> None:
        self.backend = Script(ConnectionError, "ok")
        self.async_backend = AsyncScript(ConnectionError, "ok")

    @with_retry(**NO_JITTER)
    def get(self, key: str, *, fresh: bool = False) -> str:
        return f"{self.backend()}:{key}:{fresh}"

    @with_retry(**NO_JITTER)
    async def aget(self, key: str) -> str:
        return f"{await self.async_backend()}:{key}"

    attempts = 0

    @classmethod
    @with_retry(**NO_JITTER)
    def build(cls, value: int) -> int:
        cls.attempts += 1
        if cls.attempts < 2:
            raise ConnectionError
        return value

    @staticmethod
    @with_retry(**NO_JITTER)
    def pure(value: int) -> int:
        return value * 2


async def test_methods_classmethods_staticmethods(clock: FakeClock) -> None:
    client = Client()
    assert client.get("k", fresh=True) == "ok:k:True"
    assert await client.aget("a") == "ok:a"
    assert Client.build(5) == 5
    assert Client.pure(4) == 8
    assert list(inspect.signature(Client.get).parameters) == ["self", "key", "fresh"]
    assert Client.get.__name__ == "get"
    assert inspect.iscoroutinefunction(Client.aget)


def test_retry_object_as_decorator_and_with_retry_of_a_retry(clock: FakeClock) -> None:
    retry = Retry(RetryConfig(max_attempts=2, jitter=0.0))
    fn = Script(ConnectionError, "ok")
    assert retry(fn)() == "ok"
    fn2 = Script(ConnectionError, "ok")
    assert with_retry(retry)(fn2)() == "ok"
    assert clock.sleeps == [1.0, 1.0]
    assert "max_attempts=2" in repr(retry)


def test_with_retry_config_plus_fields(clock: FakeClock) -> None:
    fn = Script(ConnectionError)
    with pytest.raises(ConnectionError):
        with_retry(RetryConfig.AGGRESSIVE, max_attempts=2, jitter=0.0)(fn)()
    assert clock.sleeps == [0.5]


def test_decorating_something_not_callable_fails() -> None:
    decorate: Callable[[Any], Any] = with_retry()
    with pytest.raises(TypeError, match="callable"):
        decorate(42)


# -- plain functions: the closures of _wrap_sync / _wrap_async -----------------------
#
# Most tests above decorate a Script object, which wrapt binds and sends through
# ``_call``; a plain function gets the retry's own closure. These drive it.


def _plain(fn: Script) -> Callable[..., Any]:
    if isinstance(fn, AsyncScript):

        async def aplain(*args: Any, **kwargs: Any) -> Any:
            return await fn(*args, **kwargs)

        return aplain

    def plain(*args: Any, **kwargs: Any) -> Any:
        return fn(*args, **kwargs)

    return plain


async def _run(decorated: Callable[..., Any], *args: Any) -> Any:
    result = decorated(*args)
    return await result if inspect.isawaitable(result) else result


@pytest.fixture(params=[Script, AsyncScript], ids=["sync", "async"])
def script(request: pytest.FixtureRequest) -> type[Script]:
    return request.param  # type: ignore[no-any-return]


async def test_plain_function_retries_then_succeeds(clock: FakeClock, script: type[Script]) -> None:
    fn = script(ConnectionError, TimeoutError, "ok")
    decorated = with_retry(**NO_JITTER)(_plain(fn))
    assert inspect.iscoroutinefunction(decorated) == (script is AsyncScript)
    assert await _run(decorated, 1) == "ok"
    assert fn.calls == 3
    assert clock.sleeps == [1.0, 2.0]


async def test_plain_function_gives_up_with_the_last_error(
    clock: FakeClock, script: type[Script]
) -> None:
    errors = [ConnectionError(n) for n in range(3)]
    decorated = with_retry(**NO_JITTER)(_plain(script(*errors)))
    with pytest.raises(ConnectionError) as info:
        await _run(decorated)
    assert info.value is errors[-1]
    assert info.value.__notes__ == ["resilient: gave up after 3 attempts"]


async def test_plain_function_result_check(clock: FakeClock, script: type[Script]) -> None:
    fn = script(None, None, None)
    decorated = with_retry(retry_if_result=lambda r: r is None, **NO_JITTER)(_plain(fn))
    assert await _run(decorated) is None
    assert fn.calls == 3


async def test_plain_function_deadline_counts_from_the_first_attempt(
    clock: FakeClock, script: type[Script]
) -> None:
    clock.advance(100.0)
    fn = script(ConnectionError)
    decorated = with_retry(max_attempts=10, deadline=3.5, **NO_JITTER)(_plain(fn))
    with pytest.raises(ConnectionError) as info:
        await _run(decorated)
    assert clock.sleeps == [1.0, 2.0]
    assert "would pass the 3.5s deadline" in info.value.__notes__[0]
