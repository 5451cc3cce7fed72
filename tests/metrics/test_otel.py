from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

import pytest
from _support import emit
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

import resilient
from resilient import CircuitBreaker, CircuitBreakerConfig, CircuitOpenError, events
from resilient.metrics import otel
from resilient.testing import fake_clock


@pytest.fixture
def reader() -> Iterator[InMemoryMetricReader]:
    memory = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[memory])
    uninstrument = otel.instrument(meter_provider=provider)
    yield memory
    uninstrument()
    provider.shutdown()


def points(reader: InMemoryMetricReader) -> dict[str, dict[tuple[Any, ...], Any]]:
    """Each metric's data points, by sorted attributes, from the SDK's reader."""
    data = reader.get_metrics_data()
    out: dict[str, dict[tuple[Any, ...], Any]] = {}
    if data is None:
        return out
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            assert scope.scope.name == "resilient"
            for metric in scope.metrics:
                out[metric.name] = {
                    tuple(sorted(p.attributes.items())): p for p in metric.data.data_points
                }
    return out


def value(reader: InMemoryMetricReader, metric: str, **attributes: str) -> Any:
    point = points(reader)[metric][tuple(sorted(attributes.items()))]
    return point.value


def test_a_breaker_lifecycle_through_the_sdk(reader: InMemoryMetricReader) -> None:
    breaker = CircuitBreaker(
        "db", CircuitBreakerConfig(failure_threshold=1, recovery_timeout=10.0, success_threshold=1)
    )

    def fail() -> None:
        clock.advance(0.5)
        raise ConnectionError("down")

    with fake_clock() as clock:
        breaker.call(lambda: None)
        assert value(reader, "circuit_breaker_state", name="db") == 0
        with pytest.raises(ConnectionError):
            breaker.call(fail)
        assert value(reader, "circuit_breaker_state", name="db") == 1
        with pytest.raises(CircuitOpenError):
            breaker.call(lambda: None)
        clock.advance(10.0)
        assert breaker.state.value == "half_open"
        assert value(reader, "circuit_breaker_state", name="db") == 2
        breaker.call(lambda: None)
        assert value(reader, "circuit_breaker_state", name="db") == 0

    for result, count in (("success", 2), ("failure", 1), ("rejected", 1)):
        assert value(reader, "circuit_breaker_calls", name="db", result=result) == count
    assert (
        value(
            reader,
            "circuit_breaker_state_changes",
            name="db",
            from_state="closed",
            to_state="open",
        )
        == 1
    )
    metrics = reader.get_metrics_data().resource_metrics[0].scope_metrics[0].metrics  # type: ignore[union-attr]
    duration = next(m for m in metrics if m.name == "resilient_operation_duration")
    assert duration.unit == "s"
    (point,) = duration.data.data_points
    assert dict(point.attributes) == {"name": "db"}
    assert (point.count, point.sum) == (3, 0.5)
    assert list(point.explicit_bounds)[:3] == [0.001, 0.005, 0.01]


def test_forced_states_and_breakers_made_before_instrumenting() -> None:
    resilient.registry.get_or_create("early")
    memory = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[memory])
    uninstrument = otel.instrument(meter_provider=provider)
    try:
        assert value(memory, "circuit_breaker_state", name="early") == 0
        resilient.registry.force_open("early")
        assert value(memory, "circuit_breaker_state", name="early") == 1
        resilient.registry.force_closed("early")
        assert value(memory, "circuit_breaker_state", name="early") == 0
    finally:
        uninstrument()
        provider.shutdown()


def test_retries_timeouts_and_bulkheads(reader: InMemoryMetricReader, repeat: Any) -> None:
    calls = 0

    @repeat("api", times=3)
    @CircuitBreaker("api")
    def flaky() -> str:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise ConnectionError("down")
        return "ok"

    flaky()
    emit(events.TimedOut, "slow", "timeout", timeout=1.0)
    emit(events.BulkheadRejected, "pool", "bulkhead", max_concurrent=1, max_queue=0)
    emit(events.CallSucceeded, "pool", "bulkhead", duration=0.1)
    assert value(reader, "retry_attempts", name="api") == 2
    assert value(reader, "circuit_breaker_calls", name="api", result="failure") == 2
    assert points(reader)["resilient_operation_duration"][(("name", "api"),)].count == 1
    assert value(reader, "timeout_operations", name="slow") == 1
    assert value(reader, "bulkhead_executions", name="pool", state="rejected") == 1
    assert value(reader, "bulkhead_executions", name="pool", state="success") == 1


def test_uninstrumenting_stops_recording_and_the_state_gauge() -> None:
    memory = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[memory])
    uninstrument = otel.instrument(meter_provider=provider)
    CircuitBreaker("db").call(lambda: None)
    uninstrument()
    assert not events.hub.listening
    CircuitBreaker("db").call(lambda: None)
    got = points(memory)
    assert "circuit_breaker_state" not in got
    assert got["circuit_breaker_calls"][(("name", "db"), ("result", "success"))].value == 1
    provider.shutdown()


def test_the_global_meter_provider_is_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    from opentelemetry import metrics

    memory = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[memory])
    monkeypatch.setattr(metrics, "get_meter_provider", lambda: provider)
    uninstrument = otel.instrument()
    try:
        CircuitBreaker("db").call(lambda: None)
        assert value(memory, "circuit_breaker_calls", name="db", result="success") == 1
    finally:
        uninstrument()
        provider.shutdown()


def test_a_missing_extra_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry", None)
    with pytest.raises(ImportError, match=r"pip install 'resilient\[otel\]'"):
        otel.instrument()
