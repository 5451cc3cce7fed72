"""RetryBudget: the bound across call sites sharing it, a quiet caller never
refused, the refusal's note and counts, the registry, validation."""

from __future__ import annotations

import bisect
import contextlib
import random
from typing import Any

import pytest

import resilient
from resilient import MetricsCollector, Registry, RetryBudget, RetryConfig, with_retry
from resilient.retry.budget_state import BudgetCore
from resilient.testing import fake_clock


class Down(Exception):
    pass


def _in(times: list[float], low: float, high: float) -> int:
    """How many of the sorted ``times`` lie in [low, high]."""
    return bisect.bisect_right(times, high) - bisect.bisect_left(times, low)


def test_ten_call_sites_failing_every_time_stay_within_the_budget() -> None:
    budget = RetryBudget(ratio=0.2, min_retries_per_second=1.0, window=2.0)
    firsts: list[float] = []
    retries: list[float] = []
    with fake_clock() as clock:
        started = [False]  # whether the current call has made its first attempt

        def down() -> None:
            (retries if started[0] else firsts).append(clock.now())
            started[0] = True
            raise Down

        retry = RetryConfig(max_attempts=4, initial_delay=0.0, max_delay=0.0, budget=budget)
        sites = [with_retry(retry)(down) for _ in range(10)]
        rng = random.Random(3)
        for _ in range(2000):  # 10 s of calls from ten sites, all failing
            clock.advance(rng.uniform(0.0, 0.01))
            started[0] = False
            with pytest.raises(Down):
                rng.choice(sites)()
    assert len(firsts) == 2000
    assert retries, "the budget allowed no retry at all"
    window = budget.window
    for t in retries:  # the bound, over the window ending at each retry
        allowed = 1.0 * window + 0.2 * _in(firsts, t - window, t)
        assert _in(retries, t - window, t) <= allowed
    # Without a budget these calls would have made three retries each.
    assert len(retries) < 0.5 * len(firsts)
    assert budget.refused > 0


def test_one_call_site_with_occasional_failures_is_never_refused() -> None:
    budget = RetryBudget()
    rng = random.Random(5)
    failures = 0
    with fake_clock() as clock:

        @with_retry(max_attempts=2, initial_delay=0.01, jitter=0.0, budget=budget)
        def sometimes() -> int:
            nonlocal failures
            if rng.random() < 0.05:
                failures += 1
                raise Down
            return 1

        for _ in range(5000):
            clock.advance(0.01)
            with contextlib.suppress(Down):
                sometimes()
    assert failures > 100
    assert budget.refused == 0


def test_a_refused_retry_reraises_the_real_error_with_a_note_and_is_counted() -> None:
    budget = RetryBudget(ratio=0.0, min_retries_per_second=0.1, window=10.0)  # one retry
    collector = MetricsCollector()
    unsubscribe = resilient.subscribe(collector)
    try:
        with fake_clock():

            @with_retry(max_attempts=5, initial_delay=0.1, jitter=0.0, budget=budget)
            def down() -> None:
                raise Down("still down")

            with pytest.raises(Down) as caught:
                down()
        assert any("retry budget is spent" in note for note in caught.value.__notes__)
        assert any("gave up after 2 attempts" in note for note in caught.value.__notes__)
        assert budget.refused == 1
        stats = collector.statistics
        assert stats.total_retries == 1
        assert stats.budget_refusals == 1
    finally:
        unsubscribe()


async def test_async_retries_share_the_same_budget() -> None:
    budget = RetryBudget(ratio=0.0, min_retries_per_second=0.2, window=10.0)  # two retries
    calls = 0
    with fake_clock():

        @with_retry(max_attempts=3, initial_delay=0.1, jitter=0.0, budget=budget)
        async def down() -> None:
            nonlocal calls
            calls += 1
            raise Down

        for _ in range(3):
            with pytest.raises(Down):
                await down()
    assert calls == 3 + 2  # the first call retried twice; the others could not
    assert budget.refused == 2


def test_the_budget_refills_as_the_window_moves_on() -> None:
    core = BudgetCore(ratio=0.5, min_retries_per_second=0.0, window=10.0)
    core.deposit(4, 0.0)
    assert [core.withdraw(0.5) for _ in range(3)] == [True, True, False]
    assert core.available(5.0) == 0
    # After the window, the first attempts and the retries have both gone.
    assert core.available(20.0) == 0
    core.deposit(2, 20.0)
    assert core.available(20.0) == 1


def test_registry_hands_out_one_budget_per_name() -> None:
    reg = Registry()
    budget = reg.retry_budget("calls", ratio=0.1)
    assert reg.retry_budget("calls") is budget
    assert reg.retry_budget("calls", ratio=0.1) is budget
    with pytest.raises(ValueError, match="already exists"):
        reg.retry_budget("calls", ratio=0.3)
    assert budget.name == "calls"
    assert (budget.ratio, budget.min_retries_per_second, budget.window) == (0.1, 10.0, 10.0)
    assert "calls" in repr(budget)


@pytest.mark.parametrize(
    ("fields", "error", "field"),
    [
        ({"ratio": -0.1}, ValueError, "ratio"),
        ({"ratio": "x"}, TypeError, "ratio"),
        ({"ratio": float("inf")}, ValueError, "ratio"),
        ({"min_retries_per_second": -1}, ValueError, "min_retries_per_second"),
        ({"min_retries_per_second": True}, TypeError, "min_retries_per_second"),
        ({"window": 0}, ValueError, "window"),
        ({"window": 1e12}, ValueError, "window"),
        ({"min_retries_per_second": 1e308, "window": 1e6}, ValueError, "min_retries_per_second"),
    ],
)
def test_bad_fields_are_refused(fields: dict[str, Any], error: type[Exception], field: str) -> None:
    with pytest.raises(error, match=rf"RetryBudget\.{field}\b"):
        RetryBudget(**fields)


def test_retry_config_takes_only_a_budget() -> None:
    with pytest.raises(TypeError, match=r"RetryConfig\.budget"):
        RetryConfig(budget=0.2)  # type: ignore[arg-type]
