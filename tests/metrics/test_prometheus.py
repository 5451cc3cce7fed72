from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

import prometheus_client
import pytest
from _support import emit
from prometheus_client.parser import text_string_to_metric_families

import resilient
from resilient import CircuitBreaker, CircuitBreakerConfig, CircuitOpenError, events
from resilient.metrics import prometheus
from resilient.testing import fake_clock


@pytest.fixture
def registry() -> Iterator[prometheus_client.CollectorRegistry]:
    reg = prometheus_client.CollectorRegistry()
    uninstrument = prometheus.instrument(reg)
    yield reg
    uninstrument()


def samples(registry: prometheus_client.CollectorRegistry) -> dict[tuple[Any, ...], float]:
    """Every sample of the real exposition text, by name and sorted labels."""
    text = prometheus_client.generate_latest(registry).decode()
    return {
        (s.name, *sorted(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if not s.name.endswith("_created")
    }


def state_of(registry: prometheus_client.CollectorRegistry, name: str) -> float | None:
    return samples(registry).get(("circuit_breaker_state", ("name", name)))


def test_a_breaker_lifecycle_in_the_exposition(
    registry: prometheus_client.CollectorRegistry,
) -> None:
    breaker = CircuitBreaker(
        "db", CircuitBreakerConfig(failure_threshold=1, recovery_timeout=10.0, success_threshold=1)
    )

    def fail() -> None:
        clock.advance(0.5)
        raise ConnectionError("down")

    with fake_clock() as clock:
        breaker.call(lambda: None)
        assert state_of(registry, "db") == 0
        with pytest.raises(ConnectionError):
            breaker.call(fail)
        assert state_of(registry, "db") == 1
        with pytest.raises(CircuitOpenError):
            breaker.call(lambda: None)
        clock.advance(10.0)
        assert breaker.state.value == "half_open"
        assert state_of(registry, "db") == 2
        breaker.call(lambda: None)
        assert state_of(registry, "db") == 0

    got = samples(registry)
    calls = {
        r: got[("circuit_breaker_calls_total", ("name", "db"), ("result", r))]
        for r in ("success", "failure", "rejected")
    }
    assert calls == {"success": 2, "failure": 1, "rejected": 1}
    change = "circuit_breaker_state_changes_total", ("from_state", "closed"), ("name", "db")
    assert got[(*change, ("to_state", "open"))] == 1
    assert (
        got[
            (
                "circuit_breaker_state_changes_total",
                ("from_state", "open"),
                ("name", "db"),
                ("to_state", "half_open"),
            )
        ]
        == 1
    )
    assert (
        got[
            (
                "circuit_breaker_state_changes_total",
                ("from_state", "half_open"),
                ("name", "db"),
                ("to_state", "closed"),
            )
        ]
        == 1
    )
    # Three requests ran (one was rejected): their durations, in seconds.
    assert got[("resilient_operation_duration_seconds_count", ("name", "db"))] == 3
    assert got[("resilient_operation_duration_seconds_sum", ("name", "db"))] == 0.5
    assert got[("resilient_operation_duration_seconds_bucket", ("le", "0.25"), ("name", "db"))] == 2


def test_forced_states_read_as_what_callers_get(
    registry: prometheus_client.CollectorRegistry,
) -> None:
    breaker = CircuitBreaker("db")
    breaker.force_open()
    assert state_of(registry, "db") == 1
    breaker.force_closed()
    assert state_of(registry, "db") == 0
    got = samples(registry)
    assert (
        got[
            (
                "circuit_breaker_state_changes_total",
                ("from_state", "closed"),
                ("name", "db"),
                ("to_state", "forced_open"),
            )
        ]
        == 1
    )


def test_breakers_that_exist_before_instrumenting_are_exported() -> None:
    resilient.registry.get_or_create("early")
    resilient.registry.force_open("forced-early")
    resilient.registry.get_or_create("forced-early")
    reg = prometheus_client.CollectorRegistry()
    uninstrument = prometheus.instrument(reg)
    try:
        assert state_of(reg, "early") == 0
        assert state_of(reg, "forced-early") == 1
    finally:
        uninstrument()


def test_attempts_count_per_breaker_call_and_duration_per_request(
    registry: prometheus_client.CollectorRegistry, repeat: Any
) -> None:
    calls = 0

    @repeat("api", times=3)
    @CircuitBreaker("api")
    def flaky() -> str:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise ConnectionError("down")
        return "ok"

    assert flaky() == "ok"
    got = samples(registry)
    assert got[("circuit_breaker_calls_total", ("name", "api"), ("result", "failure"))] == 2
    assert got[("circuit_breaker_calls_total", ("name", "api"), ("result", "success"))] == 1
    assert got[("retry_attempts_total", ("name", "api"))] == 2
    assert got[("resilient_operation_duration_seconds_count", ("name", "api"))] == 1


def test_timeouts_and_bulkheads(registry: prometheus_client.CollectorRegistry) -> None:
    emit(events.TimedOut, "slow", "timeout", timeout=1.0)
    emit(events.StreamInactive, "slow", "timeout", inactivity=5.0)
    emit(events.BulkheadRejected, "pool", "bulkhead", max_concurrent=1, max_queue=0)
    emit(events.CallSucceeded, "pool", "bulkhead", duration=0.1)
    emit(events.CallFailed, "pool", "bulkhead", duration=0.1, error=ValueError())
    # The bulkhead's rejection is counted once, from BulkheadRejected.
    emit(events.CallRejected, "pool", "bulkhead", state="full", remaining=0.0)
    got = samples(registry)
    assert got[("timeout_operations_total", ("name", "slow"))] == 2
    for state, count in (("rejected", 1), ("success", 1), ("failure", 1)):
        assert got[("bulkhead_executions_total", ("name", "pool"), ("state", state))] == count


def test_uninstrumenting_removes_the_metrics_and_stops_listening() -> None:
    reg = prometheus_client.CollectorRegistry()
    uninstrument = prometheus.instrument(reg)
    assert events.hub.listening
    uninstrument()
    uninstrument()
    assert not events.hub.listening
    assert samples(reg) == {}
    again = prometheus.instrument(reg)  # the names are free again
    again()


def test_instrumenting_one_registry_twice_is_a_clear_error(
    registry: prometheus_client.CollectorRegistry,
) -> None:
    CircuitBreaker("db").call(lambda: None)
    with pytest.raises(ValueError, match="already in this Prometheus registry"):
        prometheus.instrument(registry)
    assert state_of(registry, "db") == 0  # the first instrumentation is intact


def test_custom_buckets_and_the_default_registry() -> None:
    uninstrument = prometheus.instrument(buckets=[0.1, 1.0])
    try:
        CircuitBreaker("db").call(lambda: None)
        got = samples(prometheus_client.REGISTRY)
        assert ("resilient_operation_duration_seconds_bucket", ("le", "0.1"), ("name", "db")) in got
        assert (
            "resilient_operation_duration_seconds_bucket",
            ("le", "0.25"),
            ("name", "db"),
        ) not in got
    finally:
        uninstrument()
    assert "circuit_breaker_state" not in prometheus_client.generate_latest().decode()


def test_a_missing_extra_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "prometheus_client", None)
    with pytest.raises(ImportError, match=r"pip install 'resilient\[prometheus\]'"):
        prometheus.instrument()
