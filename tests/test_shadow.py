"""Shadow breakers: every rule applied, every state moved through, every
event and metric emitted, no call ever rejected."""

from __future__ import annotations

import asyncio

import prometheus_client
import pytest
from prometheus_client.parser import text_string_to_metric_families

from resilient import (
    CallRejected,
    CircuitBreaker,
    CircuitBreakerConfig,
    CircuitState,
    Event,
    HealthStatus,
    Registry,
    StateChanged,
    with_circuit_breaker,
)
from resilient.metrics import prometheus
from resilient.testing import FakeClock

SHADOW = CircuitBreakerConfig(failure_threshold=2, recovery_timeout=30.0, shadow=True)


def test_a_shadow_breaker_opens_but_lets_every_call_run(clock: FakeClock) -> None:
    reg = Registry()
    breaker = reg.get_or_create("shadowed", SHADOW)
    seen: list[Event] = []
    reg.subscribe(seen.append)
    ran: list[int] = []

    @with_circuit_breaker(breaker)
    def call(i: int, fail: bool = False) -> int:
        ran.append(i)
        if fail:
            raise ConnectionError(i)
        return i

    for i in range(2):
        with pytest.raises(ConnectionError):
            call(i, fail=True)
    assert breaker.state is CircuitState.OPEN
    assert call(2) == 2  # a real breaker would have rejected it
    with pytest.raises(ConnectionError):  # the call's own error, not CircuitOpenError
        call(3, fail=True)
    assert ran == [0, 1, 2, 3]
    changes = [e for e in seen if isinstance(e, StateChanged)]
    assert [(e.old_state, e.new_state, e.shadow) for e in changes] == [("closed", "open", True)]
    rejected = [e for e in seen if isinstance(e, CallRejected)]
    assert [(e.state, e.shadow) for e in rejected] == [("open", True), ("open", True)]
    # What ran while it was open is not counted: it would not have run.
    metrics = breaker.metrics()
    assert (metrics.calls, metrics.failures) == (2, 2)  # the two that opened it
    assert reg.health().status is HealthStatus.HEALTHY


def test_a_shadow_breaker_probes_and_closes_as_a_real_one(clock: FakeClock) -> None:
    breaker = CircuitBreaker("shadowed", SHADOW)
    for _ in range(2):
        with pytest.raises(ConnectionError):
            breaker.call(_fail)
    clock.advance(30.0)
    assert breaker.state is CircuitState.HALF_OPEN
    assert breaker.call(lambda: 1) == 1
    assert breaker.state is CircuitState.HALF_OPEN
    assert breaker.call(lambda: 2) == 2  # the second probe's success closes it
    assert breaker.state is CircuitState.CLOSED


def test_a_shadow_breaker_lets_async_calls_and_forced_opens_through(clock: FakeClock) -> None:
    breaker = CircuitBreaker("shadowed", SHADOW)

    @with_circuit_breaker(breaker)
    async def call() -> str:
        return "ran"

    breaker.force_open()
    assert asyncio.run(call()) == "ran"
    assert breaker.state is CircuitState.FORCED_OPEN


def test_a_real_breakers_events_say_it_is_no_shadow(clock: FakeClock) -> None:
    reg = Registry()
    breaker = reg.get_or_create("real", CircuitBreakerConfig(failure_threshold=1))
    seen: list[Event] = []
    reg.subscribe(seen.append)
    with pytest.raises(ConnectionError):
        breaker.call(_fail)
    with pytest.raises(Exception, match="open"):
        breaker.call(lambda: 1)
    said = [e.shadow for e in seen if isinstance(e, (StateChanged, CallRejected))]
    assert len(said) >= 2  # a change, a rejection (at the policy and request levels)
    assert not any(said)
    assert reg.health().status is not HealthStatus.HEALTHY


def test_the_metrics_say_which_breaker_is_a_shadow(clock: FakeClock) -> None:
    registry = prometheus_client.CollectorRegistry()
    uninstrument = prometheus.instrument(registry)
    try:
        shadow = CircuitBreaker("would", SHADOW)
        real = CircuitBreaker("did", CircuitBreakerConfig(failure_threshold=2))
        for breaker in (shadow, real):
            for _ in range(2):
                with pytest.raises(ConnectionError):
                    breaker.call(_fail)
        assert shadow.call(lambda: 1) == 1
        text = prometheus_client.generate_latest(registry).decode()
    finally:
        uninstrument()
    got = {
        (s.name, *sorted(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    assert got[("circuit_breaker_shadow", ("name", "would"))] == 1
    assert ("circuit_breaker_shadow", ("name", "did")) not in got
    assert got[("circuit_breaker_state", ("name", "would"))] == 1
    assert got[("circuit_breaker_calls_total", ("name", "would"), ("result", "rejected"))] == 1
    assert real is not None


def test_shadow_loads_from_a_table_and_must_be_a_bool() -> None:
    assert CircuitBreakerConfig.from_dict({"shadow": True}).shadow is True
    with pytest.raises(TypeError, match="shadow must be a bool"):
        CircuitBreakerConfig(shadow="yes")  # type: ignore[arg-type]


def _fail() -> None:
    raise ConnectionError("down")
