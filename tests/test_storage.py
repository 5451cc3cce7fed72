"""The breaker side of ``resilient.circuit_breaker.storage``, with a fake store (no Redis)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from resilient import (
    CircuitBreaker,
    CircuitBreakerConfig,
    CircuitOpenError,
    CircuitState,
    StateChanged,
)
from resilient.circuit_breaker.breaker import adopt_config, use_default_storage
from resilient.circuit_breaker.state import BreakerCore
from resilient.circuit_breaker.storage import Action, Outcome, Verdict
from resilient.testing import fake_clock
from tests.conftest import Boom

CLOSED, OPEN, HALF_OPEN = CircuitState.CLOSED, CircuitState.OPEN, CircuitState.HALF_OPEN


def fail() -> None:
    raise Boom


class FakeShared:
    """Records what the breaker tells its store; answers probes as scripted."""

    def __init__(self, breaker: CircuitBreaker) -> None:
        self.breaker = breaker
        self.pokes = 0
        self.controls: list[Action] = []
        self.finished_probes: list[tuple[object, Outcome]] = []
        self.verdict: Verdict | None = None
        self.detached = False

    def acquire(self) -> Verdict | None:
        return self.verdict

    async def acquire_async(self) -> Verdict | None:
        await asyncio.sleep(0)
        return self.verdict

    def finished(self, probe: object, outcome: Outcome) -> None:
        self.finished_probes.append((probe, outcome))

    def poke(self) -> None:
        self.pokes += 1

    def control(self, action: Action) -> None:
        self.controls.append(action)

    def detach(self) -> None:
        self.detached = True


class FakeStorage:
    def __init__(self) -> None:
        self.attached: list[FakeShared] = []

    def attach(self, breaker: CircuitBreaker) -> FakeShared:
        shared = FakeShared(breaker)
        self.attached.append(shared)
        return shared


def follower(storage: FakeStorage, **fields: Any) -> tuple[CircuitBreaker, FakeShared]:
    fields.setdefault("failure_threshold", 2)
    breaker = CircuitBreaker("pay", CircuitBreakerConfig(storage=storage, **fields))
    shared = storage.attached[-1]
    breaker.with_core(lambda core, now: setattr(core, "follower", True))
    return breaker, shared


def test_a_follower_counts_but_leaves_tripping_to_the_store() -> None:
    breaker, shared = follower(FakeStorage())
    for _ in range(5):
        with pytest.raises(Boom):
            breaker.call(fail)
    assert breaker.state is CLOSED
    assert shared.pokes == 5  # every failure asks for a sync
    assert breaker._core.failed_total == 5
    assert breaker.call(lambda: 1) == 1
    breaker.with_core(lambda core, now: core.flush(now))
    assert breaker._core.ok_total == 1


def test_a_follower_leaves_its_rates_to_the_fleet() -> None:
    breaker, _ = follower(
        FakeStorage(), failure_threshold=100, failure_rate_threshold=0.5, minimum_calls=2
    )
    breaker.call(lambda: 1)
    with pytest.raises(Boom):
        breaker.call(fail)
    assert breaker.state is CLOSED
    assert breaker._core.rates_trip()


def test_a_leader_trips_on_its_own() -> None:
    breaker, _ = follower(FakeStorage())
    breaker.with_core(lambda core, now: setattr(core, "follower", False))
    for _ in range(2):
        with pytest.raises(Boom):
            breaker.call(fail)
    assert breaker.state is OPEN


def test_a_follower_left_alone_judges_what_it_counted_at_once() -> None:
    # The store went out of reach after failures it had not yet acted on:
    # the instance opens now, not at its next failure.
    breaker, _ = follower(FakeStorage())
    changes: list[tuple[CircuitState, CircuitState]] = []
    breaker.subscribe(
        lambda e: (
            changes.append((e.old_state, e.new_state)) if isinstance(e, StateChanged) else None
        )
    )
    for _ in range(2):
        with pytest.raises(Boom):
            breaker.call(fail)
    assert breaker.state is CLOSED
    breaker.with_core(BreakerCore.lead)
    assert breaker.state is OPEN
    assert changes == [(CLOSED, OPEN)]


def test_a_follower_left_alone_judges_its_rates_too() -> None:
    breaker, _ = follower(
        FakeStorage(), failure_threshold=100, failure_rate_threshold=0.5, minimum_calls=2
    )
    breaker.call(lambda: 1)
    with pytest.raises(Boom):
        breaker.call(fail)
    breaker.with_core(BreakerCore.lead)
    assert breaker.state is OPEN


def test_a_follower_left_alone_below_its_thresholds_stays_closed() -> None:
    breaker, _ = follower(FakeStorage())
    with pytest.raises(Boom):
        breaker.call(fail)
    breaker.with_core(BreakerCore.lead)
    assert breaker.state is CLOSED
    with pytest.raises(Boom):
        breaker.call(fail)
    assert breaker.state is OPEN  # deciding alone from then on


def test_adopt_mirrors_the_store_with_its_timer() -> None:
    with fake_clock() as clock:
        breaker, _ = follower(FakeStorage(), recovery_timeout=30.0)
        breaker.with_core(lambda core, now: core.adopt(OPEN, 10.0, now))
        assert breaker.state is OPEN
        assert breaker.metrics().remaining == pytest.approx(10.0)
        clock.advance(10.0)
        assert breaker.state is HALF_OPEN
        # The store still says OPEN with nothing left: our timer ran first.
        breaker.with_core(lambda core, now: core.adopt(OPEN, 0.0, now))
        assert breaker.state is HALF_OPEN
        breaker.with_core(lambda core, now: core.adopt(CLOSED, 0.0, now))
        assert breaker.state is CLOSED


def test_control_goes_to_the_store_after_the_local_action() -> None:
    breaker, shared = follower(FakeStorage())
    breaker.force_open()
    assert breaker.state is CircuitState.FORCED_OPEN
    breaker.release()
    breaker.force_closed()
    breaker.reset()
    assert shared.controls == ["force_open", "release", "force_closed", "reset"]


def open_then_half_open(breaker: CircuitBreaker, clock: Any) -> None:
    breaker.with_core(lambda core, now: core.adopt(OPEN, 1.0, now))
    clock.advance(1.0)
    assert breaker.state is HALF_OPEN


def test_a_probe_needs_the_fleets_consent() -> None:
    with fake_clock() as clock:
        breaker, shared = follower(FakeStorage(), recovery_timeout=30.0, half_open_max_calls=1)
        open_then_half_open(breaker, clock)
        shared.verdict = Verdict("probe", HALF_OPEN, 0.0, "probe-1")
        assert breaker.call(lambda: "probed") == "probed"
        assert shared.finished_probes == [("probe-1", "success")]
        assert breaker.state is HALF_OPEN  # the store decides when it closes

        shared.verdict = Verdict("probe", HALF_OPEN, 0.0, "probe-2")
        with pytest.raises(Boom):
            breaker.call(fail)
        assert shared.finished_probes[-1] == ("probe-2", "failure")


def test_a_fleet_rejection_gives_the_local_permit_back() -> None:
    with fake_clock() as clock:
        breaker, shared = follower(FakeStorage(), recovery_timeout=30.0, half_open_max_calls=1)
        open_then_half_open(breaker, clock)
        shared.verdict = Verdict("reject", OPEN, 12.0)
        with pytest.raises(CircuitOpenError) as caught:
            breaker.call(lambda: 1)
        assert (caught.value.state, caught.value.remaining) == ("open", 12.0)
        assert breaker.state is OPEN
        assert breaker._core.probes_running == 0


def test_a_fleet_that_closed_meanwhile_admits_a_plain_call() -> None:
    with fake_clock() as clock:
        breaker, shared = follower(FakeStorage(), recovery_timeout=30.0)
        open_then_half_open(breaker, clock)
        shared.verdict = Verdict("admit", CLOSED, 0.0)
        assert breaker.call(lambda: "ok") == "ok"
        assert breaker.state is CLOSED
        assert shared.finished_probes == []


def test_an_unreachable_store_leaves_the_local_probe_standing() -> None:
    with fake_clock() as clock:
        breaker, shared = follower(FakeStorage(), recovery_timeout=30.0)
        breaker.with_core(lambda core, now: setattr(core, "follower", False))
        open_then_half_open(breaker, clock)
        shared.verdict = None
        assert breaker.call(lambda: "ok") == "ok"
        assert breaker.call(lambda: "ok") == "ok"
        assert breaker.state is CLOSED  # local rules: success_threshold=2


async def test_async_probe_and_cancellation_while_asking() -> None:
    with fake_clock() as clock:
        breaker, shared = follower(FakeStorage(), recovery_timeout=30.0, half_open_max_calls=1)
        open_then_half_open(breaker, clock)

        async def ok() -> str:
            return "ok"

        shared.verdict = Verdict("probe", HALF_OPEN, 0.0, "p")
        assert await breaker.call_async(ok) == "ok"
        assert shared.finished_probes == [("p", "success")]

        asking = asyncio.Event()

        async def never() -> Verdict | None:
            asking.set()
            await asyncio.Event().wait()
            return None

        shared.acquire_async = never  # type: ignore[method-assign]
        task = asyncio.ensure_future(breaker.call_async(ok))
        await asking.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert breaker._core.probes_running == 0


async def test_async_context_manager_asks_the_fleet() -> None:
    with fake_clock() as clock:
        breaker, shared = follower(FakeStorage(), recovery_timeout=30.0)
        open_then_half_open(breaker, clock)
        shared.verdict = Verdict("reject", HALF_OPEN, 0.0)
        with pytest.raises(CircuitOpenError):
            async with breaker:
                pass
        shared.verdict = Verdict("probe", HALF_OPEN, 0.0, "p")
        async with breaker:
            pass
        assert shared.finished_probes == [("p", "success")]


def test_reconfiguring_or_changing_the_default_store_reattaches() -> None:
    first, second = FakeStorage(), FakeStorage()
    breaker = CircuitBreaker("pay", storage=first)
    assert len(first.attached) == 1
    use_default_storage(breaker, second)
    assert first.attached[0].detached
    assert len(second.attached) == 1
    adopt_config(breaker, CircuitBreakerConfig(failure_threshold=3))
    assert second.attached[0].detached
    assert len(second.attached) == 2
    use_default_storage(breaker, None)
    assert breaker._shared is None


def test_a_config_store_wins_over_the_default() -> None:
    own, default = FakeStorage(), FakeStorage()
    breaker = CircuitBreaker("pay", CircuitBreakerConfig(storage=own), storage=default)
    use_default_storage(breaker, FakeStorage())
    assert len(own.attached) == 1
    assert default.attached == []
    assert breaker._shared is own.attached[0]
