"""Recovery under load: the open time that grows, the half-open time limit,
probe permits across reopenings, wait tickets, and the herd scenario."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from resilient import (
    CircuitBreaker,
    CircuitBreakerConfig,
    CircuitOpenError,
    ResiliencePolicies,
    events,
    with_circuit_breaker,
    with_retry,
)
from resilient._demo.herd import run_herd
from resilient.testing import FakeClock


class Down(Exception):
    pass


def _breaker(**fields: Any) -> CircuitBreaker:
    cfg = CircuitBreakerConfig(failure_threshold=1, recovery_timeout=1.0, **fields)
    return CircuitBreaker("rec", cfg, listeners=events.ListenerSet())


def _fail(breaker: CircuitBreaker) -> None:
    def down() -> None:
        raise Down

    with pytest.raises(Down):
        breaker.call(down)


def _changes(breaker: CircuitBreaker) -> list[tuple[str, str]]:
    seen: list[tuple[str, str]] = []

    def listen(event: events.Event) -> None:
        if isinstance(event, events.StateChanged):
            seen.append((event.old_state, event.new_state))

    breaker.subscribe(listen)
    return seen


# -- recovery_backoff / max_recovery_timeout ---------------------------------------


def test_each_opening_in_a_row_stays_open_longer_up_to_the_cap(fake_clock: FakeClock) -> None:
    clock = fake_clock
    breaker = _breaker(recovery_backoff=2.0, max_recovery_timeout=5.0)
    _fail(breaker)
    opened = []
    for _ in range(4):
        opened.append(breaker.metrics().remaining)
        clock.advance(breaker.metrics().remaining)
        _fail(breaker)  # the probe fails: reopened
    assert opened == [1.0, 2.0, 4.0, 5.0]
    with pytest.raises(CircuitOpenError) as info:
        breaker.call(lambda: None)
    # The opening lasts 5 s, but a probe goes every recovery_timeout: the
    # rejection tells when that is.
    assert info.value.remaining == 1.0
    assert breaker.metrics().remaining == 5.0


# -- a probe on the recovery_timeout schedule while the open time backs off -----------


def _backed_off(clock: FakeClock, **fields: Any) -> CircuitBreaker:
    """Opened twice in a row: the second opening lasts 4 s (base 1 s); one
    successful probe closes it unless ``fields`` say otherwise."""
    fields.setdefault("success_threshold", 1)
    breaker = _breaker(recovery_backoff=4.0, **fields)
    _fail(breaker)
    clock.advance(1.0)
    _fail(breaker)  # the half-open probe fails: the second opening, 4 s
    assert breaker.metrics().remaining == 4.0
    return breaker


def test_a_backed_off_opening_lets_one_probe_through_every_recovery_timeout(
    fake_clock: FakeClock,
) -> None:
    clock = fake_clock
    breaker = _backed_off(clock)
    with pytest.raises(CircuitOpenError) as info:
        breaker.call(lambda: "early")
    assert info.value.remaining == 1.0  # the next probe, not the opening's end
    clock.advance(1.0)
    assert breaker.call(lambda: "healthy again") == "healthy again"  # the probe
    assert breaker.state.value == "closed"  # success_threshold=1: closed by it


def test_a_backed_off_probe_that_succeeds_counts_towards_closing(fake_clock: FakeClock) -> None:
    clock = fake_clock
    breaker = _backed_off(clock, success_threshold=2, half_open_max_calls=2)
    clock.advance(1.0)
    assert breaker.call(lambda: 1) == 1
    assert breaker.state.value == "half_open"  # one of the two successes
    assert breaker.call(lambda: 2) == 2
    assert breaker.state.value == "closed"


def test_a_failed_backed_off_probe_keeps_the_opening(fake_clock: FakeClock) -> None:
    clock = fake_clock
    breaker = _backed_off(clock)
    seen = _changes(breaker)
    clock.advance(1.0)
    _fail(breaker)  # the probe fails
    assert breaker.state.value == "open"
    assert seen == []  # no new opening: the same one goes on
    assert breaker.metrics().remaining == 3.0
    with pytest.raises(CircuitOpenError) as info:
        breaker.call(lambda: None)
    assert info.value.remaining == 1.0  # the next probe, a recovery_timeout on
    clock.advance(1.0)
    assert breaker.call(lambda: "back") == "back"


async def test_only_one_backed_off_probe_runs_at_a_time(fake_clock: FakeClock) -> None:
    clock = fake_clock
    breaker = _backed_off(clock, half_open_max_calls=3)
    release: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    calls = 0

    async def slow() -> str:
        nonlocal calls
        calls += 1
        await release
        return "ok"

    clock.advance(1.0)
    probe = asyncio.ensure_future(breaker.call_async(slow))
    await asyncio.sleep(0)
    assert calls == 1
    for _ in range(3):
        with pytest.raises(CircuitOpenError):
            await breaker.call_async(slow)
    clock.advance(1.0)  # a recovery_timeout later, the probe still runs
    with pytest.raises(CircuitOpenError):
        await breaker.call_async(slow)
    assert calls == 1
    release.set_result(None)
    assert await probe == "ok"
    assert breaker.state.value == "closed"


async def test_a_cancelled_backed_off_probe_lets_the_next_call_probe(
    fake_clock: FakeClock,
) -> None:
    clock = fake_clock
    breaker = _backed_off(clock)
    never: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def hangs() -> None:
        await never

    clock.advance(1.0)
    probe = asyncio.ensure_future(breaker.call_async(hangs))
    await asyncio.sleep(0)
    probe.cancel()
    with pytest.raises(asyncio.CancelledError):
        await probe

    async def answers() -> str:
        return "ok"

    assert await breaker.call_async(answers) == "ok"  # at once, no wait
    assert breaker.state.value == "closed"


def test_a_first_opening_has_no_early_probe(fake_clock: FakeClock) -> None:
    clock = fake_clock
    breaker = CircuitBreaker(
        "first",
        CircuitBreakerConfig(failure_threshold=1, recovery_timeout=2.0, recovery_backoff=4.0),
        listeners=events.ListenerSet(),
    )
    _fail(breaker)
    clock.advance(1.0)
    with pytest.raises(CircuitOpenError) as info:
        breaker.call(lambda: None)
    assert info.value.remaining == 1.0
    clock.advance(1.0)
    assert breaker.call(lambda: "ok") == "ok"  # the ordinary half-open probe


def test_a_backed_off_probe_without_listeners_passes_the_lock_free_rejection(
    fake_clock: FakeClock,
) -> None:
    clock = fake_clock
    breaker = _backed_off(clock)
    protected = with_circuit_breaker(breaker)(lambda: "ok")
    with pytest.raises(CircuitOpenError):
        protected()
    clock.advance(1.0)
    assert protected() == "ok"


def test_a_close_resets_the_open_time(fake_clock: FakeClock) -> None:
    clock = fake_clock
    breaker = _breaker(recovery_backoff=3.0, success_threshold=1)
    _fail(breaker)
    clock.advance(1.0)
    _fail(breaker)
    assert breaker.metrics().remaining == 3.0
    clock.advance(3.0)
    breaker.call(lambda: None)  # closes
    _fail(breaker)
    assert breaker.metrics().remaining == 1.0


# -- max_half_open_duration ----------------------------------------------------------


async def test_a_hung_probe_is_freed_after_max_half_open_duration(fake_clock: FakeClock) -> None:
    clock = fake_clock
    hung: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    calls = 0

    @with_circuit_breaker(
        CircuitBreaker(
            "hung",
            CircuitBreakerConfig(
                failure_threshold=1, recovery_timeout=1.0, max_half_open_duration=2.0
            ),
            listeners=events.ListenerSet(),
        )
    )
    async def dependency(fail: bool = False) -> str:
        nonlocal calls
        calls += 1
        if fail:
            raise Down
        await hung
        return "ok"

    with pytest.raises(Down):
        await dependency(fail=True)
    clock.advance(1.0)
    probe = asyncio.ensure_future(dependency())
    await asyncio.sleep(0)
    assert calls == 2
    with pytest.raises(CircuitOpenError) as info:
        await dependency()
    assert info.value.state == "half_open"
    clock.advance(2.0)  # the half-open period ends: reopened, permit freed
    with pytest.raises(CircuitOpenError) as info:
        await dependency()
    assert info.value.state == "open"
    assert info.value.remaining == 1.0
    clock.advance(1.0)
    other = asyncio.ensure_future(dependency())
    await asyncio.sleep(0)
    assert calls == 3, "a new probe went through despite the hung one"
    for task in (probe, other):
        task.cancel()
    await asyncio.gather(probe, other, return_exceptions=True)


def test_the_half_open_time_limit_reopens_with_one_event_and_the_next_open_time(
    fake_clock: FakeClock,
) -> None:
    clock = fake_clock
    breaker = _breaker(max_half_open_duration=0.5, recovery_backoff=2.0)
    seen = _changes(breaker)
    _fail(breaker)
    clock.advance(1.0)
    assert breaker.state.value == "half_open"
    clock.advance(0.75)
    metrics = breaker.metrics()
    assert metrics.state.value == "open"
    # Reopened when the limit ran out (0.25 s ago), for the second opening's 2 s.
    assert metrics.remaining == 1.75
    assert seen == [("closed", "open"), ("open", "half_open"), ("half_open", "open")]


# -- probe permits across reopenings ------------------------------------------------------


async def test_the_dependency_never_sees_more_probes_than_the_limit(fake_clock: FakeClock) -> None:
    clock = fake_clock
    breaker = _breaker(half_open_max_calls=2)
    inside = peak = 0
    gates: list[asyncio.Future[None]] = []

    async def dependency(fail: bool) -> None:
        nonlocal inside, peak
        inside += 1
        peak = max(peak, inside)
        try:
            if fail:
                raise Down
            gate = asyncio.get_running_loop().create_future()
            gates.append(gate)
            await gate
        finally:
            inside -= 1

    _fail(breaker)
    slow: list[asyncio.Future[None]] = []
    for _ in range(3):  # three reopenings, each with a probe left hanging
        clock.advance(breaker.metrics().remaining)
        slow.append(asyncio.ensure_future(breaker.call_async(dependency, False)))
        await asyncio.sleep(0)
        with pytest.raises((Down, CircuitOpenError)):
            await breaker.call_async(dependency, True)  # a failed probe reopens
    assert peak <= 2
    assert inside == 2, "the first two probes hold the permits"
    clock.advance(breaker.metrics().remaining)
    with pytest.raises(CircuitOpenError) as info:
        await breaker.call_async(dependency, True)
    assert info.value.state == "half_open"
    gates[0].set_result(None)
    await slow[0]
    assert breaker._core.probes_running == 1
    for task in slow:
        task.cancel()
    await asyncio.gather(*slow, return_exceptions=True)
    assert breaker._core.probes_running == 0


# -- wait tickets -----------------------------------------------------------------------


def test_at_most_half_open_max_calls_tickets_and_none_leaks(fake_clock: FakeClock) -> None:
    clock = fake_clock
    breaker = _breaker(half_open_max_calls=2)
    _fail(breaker)
    first, second = breaker._wait_ticket(), breaker._wait_ticket()
    assert first is not None
    assert second is not None
    assert first.due == second.due == 1.0
    assert breaker._wait_ticket() is None
    first.release()
    first.release()  # idempotent
    third = breaker._wait_ticket()
    assert third is not None
    clock.advance(1.0)
    # Half-open: both permits are kept for the holders.
    with pytest.raises(CircuitOpenError):
        breaker.call(lambda: None)
    second.release()
    third.release()
    assert breaker.call(lambda: "probe") == "probe"


async def test_a_cancelled_waiting_retry_gives_its_ticket_back(fake_clock: FakeClock) -> None:
    breaker = _breaker(half_open_max_calls=1)
    _fail(breaker)
    started = asyncio.Event()

    @with_retry(max_attempts=3, max_delay=5.0, retry_on=CircuitOpenError)
    @breaker
    async def call() -> str:
        started.set()
        return "ok"

    waiting = asyncio.ensure_future(call())
    await asyncio.sleep(0)
    assert breaker._core.reserved, "the retry holds the one ticket"
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert not breaker._core.reserved
    assert breaker._wait_ticket() is not None


def test_retry_without_a_ticket_gives_up_at_once(fake_clock: FakeClock) -> None:
    clock = fake_clock
    breaker = _breaker(half_open_max_calls=1)
    _fail(breaker)
    held = breaker._wait_ticket()
    assert held is not None
    calls = 0

    @with_retry(max_attempts=3, max_delay=5.0, retry_on=CircuitOpenError)
    @breaker
    def call() -> None:
        nonlocal calls
        calls += 1

    with pytest.raises(CircuitOpenError) as info:
        call()
    assert clock.sleeps == []
    assert "other retries already wait" in info.value.__notes__[0]
    held.release()


def test_the_error_pickles_without_its_breaker() -> None:
    import pickle

    breaker = _breaker()
    error = CircuitOpenError("rec", "open", 1.0, "req", breaker)
    assert error.breaker is breaker
    copy = pickle.loads(pickle.dumps(error))
    assert copy.args == ("rec", "open", 1.0, "req")
    assert copy.breaker is None
    assert repr(error) == "CircuitOpenError('rec', 'open', 1.0, 'req')"


# -- the scenario -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fields",
    [
        {},
        pytest.param({"open_time": 0.5, "fail_for": 2.3}, marks=pytest.mark.slow),
        # probes slower than the wake-up jitter
        pytest.param({"call_time": 0.3}, marks=pytest.mark.slow),
        pytest.param({"callers": 50, "think_time": 0.01}, marks=pytest.mark.slow),
    ],
)
async def test_herd_at_half_open(fake_clock: FakeClock, fields: dict[str, Any]) -> None:
    """200 concurrent callers with retry (max_delay twice the open time)
    through one breaker, against a dependency that fails, then recovers."""
    result = await run_herd(**fields)
    assert result.rejected > 1000
    # At most half_open_max_calls callers asleep on the open breaker at a time,
    # and the dependency never sees more probes than that.
    assert result.max_sleepers <= 2
    assert result.max_concurrent_probes <= 2
    # Nobody sleeps and is then refused for want of a probe; once the
    # dependency is healthy, nobody is refused after sleeping at all.
    assert result.rejected_after_sleeping_no_probe == 0
    assert result.rejected_after_sleeping_since_recovery == 0
    # Closed within two open periods of the recovery.
    assert result.time_to_close is not None
    assert result.time_to_close <= 2 * result.open_time


@pytest.mark.slow
@pytest.mark.parametrize("preset", ["api", "ai", "database", "external"])
async def test_the_presets_recover_from_the_herd(fake_clock: FakeClock, preset: str) -> None:
    cfg = getattr(ResiliencePolicies, preset)().circuit_breaker
    assert cfg is not None
    opened = cfg.recovery_timeout
    result = await run_herd(
        config=cfg,
        open_time=opened,
        fail_for=3 * opened,
        duration=6 * opened,
        think_time=opened / 20,
        call_time=0.5,
    )
    assert result.max_sleepers <= cfg.half_open_max_calls
    assert result.max_concurrent_probes <= cfg.half_open_max_calls
    assert result.rejected_after_sleeping_no_probe == 0
    assert result.rejected_after_sleeping_since_recovery == 0
    assert result.time_to_close is not None
    assert result.open_time > opened, "openings in a row stayed open longer"
    assert result.time_to_close <= 2 * result.open_time


@pytest.mark.parametrize(("start", "opened"), [(0.1, 0.2), (0.7, 0.1), (1e9 + 0.3, 0.7)])
def test_a_retry_that_waited_its_ticket_finds_its_probe(start: float, opened: float) -> None:
    # The ticket is due when the breaker computes its end, to the last bit.
    from resilient.testing import fake_clock

    with fake_clock(start=start) as clock:
        cfg = CircuitBreakerConfig(failure_threshold=1, recovery_timeout=opened)
        breaker = CircuitBreaker("bits", cfg, listeners=events.ListenerSet())
        _fail(breaker)
        clock.advance(opened / 3)

        @with_retry(max_attempts=2, max_delay=5.0, jitter=0.0, retry_on=CircuitOpenError)
        @breaker
        def call() -> str:
            return "probed"

        assert call() == "probed"
        assert len(clock.sleeps) == 1


def test_a_wait_ticket_does_not_hold_the_backed_off_probe_back(fake_clock: FakeClock) -> None:
    clock = fake_clock
    breaker = _backed_off(clock)  # one probe permit, kept below for a waiting caller
    ticket = breaker._wait_ticket()
    assert ticket is not None
    clock.advance(1.0)
    assert breaker.call(lambda: "back") == "back"  # the probe took the ticket's permit
    assert breaker.state.value == "closed"
