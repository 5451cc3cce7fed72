from __future__ import annotations

import math
import random
from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from resilient.retry.backoff import (
    CIRCUIT_JITTER,
    Backoff,
    Circuit,
    Plan,
    may_wait_for_circuit,
    plan,
    retry_after_of,
)


class _NoRandom(random.Random):
    def random(self) -> float:
        raise AssertionError("no jitter: the random source must not be read")


def test_base_grows_by_multiplier_and_stops_at_max_delay() -> None:
    backoff = Backoff(1.0, 10.0, 2.0, 0.0)
    assert [backoff.base(n) for n in range(1, 7)] == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]


def test_multiplier_one_is_a_constant_delay() -> None:
    backoff = Backoff(0.5, 0.5, 1.0, 0.0)
    assert [backoff.base(n) for n in range(1, 4)] == [0.5, 0.5, 0.5]


def test_huge_attempt_numbers_do_not_overflow() -> None:
    backoff = Backoff(1.0, 30.0, 2.0, 0.0)
    assert backoff.base(100_000) == 30.0


def test_no_jitter_is_exact_and_reads_no_randomness() -> None:
    backoff = Backoff(1.0, 30.0, 3.0, 0.0)
    rng = _NoRandom()
    assert [backoff.delay(n, 0.0, rng) for n in range(1, 5)] == [1.0, 3.0, 9.0, 27.0]


def test_fractional_jitter_sequence_is_exact_with_a_seed() -> None:
    backoff = Backoff(1.0, 30.0, 2.0, 0.1)
    got = [backoff.delay(n, 0.0, random.Random(42)) for n in (1, 2, 3)]
    # Random(42).random() == 0.6394267984578837: uniform(-0.1, 0.1) == 0.0278853...
    assert got == pytest.approx([1.0278853596915767, 2.0557707193831534, 4.111541438766307])
    mirror = random.Random(7)
    expected = [min(30.0, 2.0 ** (n - 1) * (1 + mirror.uniform(-0.1, 0.1))) for n in (1, 2, 3)]
    rng = random.Random(7)
    assert [backoff.delay(n, 0.0, rng) for n in (1, 2, 3)] == expected


def test_fractional_jitter_never_exceeds_max_delay() -> None:
    backoff = Backoff(1.0, 4.0, 2.0, 0.5)
    rng = random.Random(3)
    assert max(backoff.delay(10, 0.0, rng) for _ in range(200)) <= 4.0


def test_full_jitter_formula() -> None:
    backoff = Backoff(1.0, 30.0, 2.0, "full")
    mirror = random.Random(5)
    expected = [mirror.uniform(0.0, 2.0 ** (n - 1)) for n in (1, 2, 3, 4)]
    rng = random.Random(5)
    assert [backoff.delay(n, 0.0, rng) for n in (1, 2, 3, 4)] == expected


def test_equal_jitter_formula() -> None:
    backoff = Backoff(2.0, 30.0, 2.0, "equal")
    mirror = random.Random(5)
    bases = [2.0, 4.0, 8.0]
    expected = [b / 2 + mirror.uniform(0.0, b / 2) for b in bases]
    rng = random.Random(5)
    assert [backoff.delay(n, 0.0, rng) for n in (1, 2, 3)] == expected


def test_decorrelated_jitter_formula_uses_the_previous_delay() -> None:
    backoff = Backoff(1.0, 10.0, 2.0, "decorrelated")
    mirror = random.Random(9)
    expected = []
    previous = 0.0
    for _ in range(6):
        previous = min(10.0, mirror.uniform(1.0, 3.0 * max(previous, 1.0)))
        expected.append(previous)
    rng = random.Random(9)
    got = []
    previous = 0.0
    for n in range(1, 7):
        previous = backoff.delay(n, previous, rng)
        got.append(previous)
    assert got == expected


@given(
    attempt=st.integers(1, 60),
    previous=st.floats(0, 100),
    initial=st.floats(0, 5),
    extra=st.floats(0, 60),
    jitter=st.sampled_from([0.0, 0.1, 0.5, 1.0, "full", "equal", "decorrelated"]),
    seed=st.integers(0, 2**32),
)
def test_every_delay_is_between_zero_and_max_delay(
    attempt: int, previous: float, initial: float, extra: float, jitter: float | str, seed: int
) -> None:
    backoff = Backoff(initial, initial + extra, 2.0, jitter)
    delay = backoff.delay(attempt, previous, random.Random(seed))
    assert 0.0 <= delay <= initial + extra
    if jitter == "decorrelated":
        assert delay >= min(initial, initial + extra)


class _Limited(Exception):
    def __init__(self, retry_after: object) -> None:
        self.retry_after = retry_after


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (3, 3.0),
        (2.5, 2.5),
        (0, 0.0),
        (timedelta(seconds=90), 90.0),
        (timedelta(milliseconds=1500), 1.5),
    ],
)
def test_retry_after_in_seconds_or_timedelta(value: object, expected: float) -> None:
    assert retry_after_of(_Limited(value)) == expected


@pytest.mark.parametrize("value", [None, True, -1, math.nan, "30", timedelta(seconds=-5), object()])
def test_retry_after_that_makes_no_sense_is_ignored(value: object) -> None:
    assert retry_after_of(_Limited(value)) is None


def test_no_retry_after_attribute() -> None:
    assert retry_after_of(ValueError()) is None
    assert retry_after_of(None) is None


NO_JITTER = Backoff(1.0, 30.0, 2.0, 0.0)
RNG = _NoRandom()


def _plan(**kwargs: object) -> Plan:
    args: dict[str, object] = {
        "attempt": 1,
        "max_attempts": 5,
        "previous": 0.0,
        "elapsed": 0.0,
        "deadline": None,
    }
    args.update(kwargs)
    return plan(NO_JITTER, RNG, **args)  # type: ignore[arg-type]


def test_plan_waits_the_backoff() -> None:
    assert _plan(attempt=3) == Plan(4.0, 4.0, None)


def test_plan_stops_when_attempts_run_out() -> None:
    assert _plan(attempt=5).stop == ""


def test_plan_retry_after_raises_the_wait_but_never_lowers_it() -> None:
    assert _plan(retry_after=25.0) == Plan(25.0, 1.0, 25.0)
    assert _plan(attempt=3, retry_after=0.5) == Plan(4.0, 4.0, 0.5)


@pytest.mark.parametrize("after", [30.5, 1e10, math.inf])
def test_plan_retry_after_past_max_delay_stops(after: float) -> None:
    stop = _plan(retry_after=after).stop
    assert stop is not None
    assert "max_delay 30s" in stop


@pytest.mark.parametrize("jitter", [0.5, "full", "decorrelated"])
def test_plan_open_breaker_waits_its_remaining_time_plus_up_to_a_tenth(jitter: object) -> None:
    for seed in range(20):
        rng = random.Random(seed)
        expected = 12.0 + 12.0 * random.Random(seed).uniform(0.0, CIRCUIT_JITTER)
        waited = plan(
            Backoff(1.0, 30.0, 2.0, jitter),  # type: ignore[arg-type]
            rng,
            attempt=1,
            max_attempts=5,
            previous=0.0,
            elapsed=0.0,
            deadline=None,
            retry_after=99.0,
            circuit=Circuit("open", 12.0, True),
        )
        assert waited == Plan(expected, 0.0, None)
        assert 12.0 <= waited.delay <= 13.2


def test_plan_open_breaker_jitter_is_the_configured_fraction_up_to_a_tenth() -> None:
    assert _plan(circuit=Circuit("open", 12.0, True)) == Plan(12.0, 0.0, None)
    rng = random.Random(7)
    expected = 12.0 + 12.0 * random.Random(7).uniform(0.0, 0.05)
    waited = plan(
        Backoff(1.0, 30.0, 2.0, 0.05),
        rng,
        attempt=1,
        max_attempts=5,
        previous=0.0,
        elapsed=0.0,
        deadline=None,
        circuit=Circuit("open", 12.0, True),
    )
    assert waited.delay == expected


def test_plan_open_breaker_gives_up_at_once_unless_it_may_wait() -> None:
    stop = _plan(circuit=Circuit("open", 31.0, True)).stop
    assert stop == "the circuit stays open 31s, more than max_delay 30s"
    assert _plan(circuit=Circuit("open", 5.0, False)).stop == (
        "other retries already wait for the circuit's probes"
    )
    # Half-open with its probes busy: nothing to wait for, no backoff either.
    assert _plan(circuit=Circuit("half_open", 0.0, True)).stop == (
        "the circuit is half_open with no probe free"
    )
    assert _plan(circuit=Circuit("forced_open", math.inf, True)).stop is not None
    # Its probe is free now: go at once.
    assert _plan(circuit=Circuit("open", 0.0, True)) == Plan(0.0, 0.0, None)


def test_plan_open_breaker_wait_is_cut_at_the_deadline() -> None:
    assert _plan(circuit=Circuit("open", 5.0, True), elapsed=6.0, deadline=10.0).stop
    cut = _plan(circuit=Circuit("open", 5.0, True), elapsed=5.0, deadline=10.0)
    assert cut == Plan(5.0, 0.0, None)


def test_may_wait_for_circuit_only_when_a_wait_would_follow() -> None:
    ok = {
        "state": "open",
        "remaining": 5.0,
        "attempt": 1,
        "max_attempts": 3,
        "max_delay": 10.0,
        "elapsed": 0.0,
        "deadline": None,
    }
    assert may_wait_for_circuit(**ok)  # type: ignore[arg-type]
    for change in (
        {"state": "half_open"},
        {"state": "forced_open", "remaining": math.inf},
        {"remaining": 11.0},
        {"attempt": 3},
        {"elapsed": 6.0, "deadline": 10.0},
    ):
        assert not may_wait_for_circuit(**{**ok, **change})  # type: ignore[arg-type]


def test_plan_no_wait_ends_past_the_deadline() -> None:
    assert _plan(attempt=2, elapsed=8.0, deadline=10.0) == Plan(2.0, 2.0, None)
    stop = _plan(attempt=2, elapsed=8.5, deadline=10.0).stop
    assert stop == "the next wait of 2s would pass the 10s deadline"
    assert _plan(retry_after=60.0, deadline=30.0).stop is not None
