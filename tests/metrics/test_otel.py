from __future__ import annotations

import sys
from collections.abc import Iterator
from typing import Any

import pytest
from _support import failing, go_quiet, retrying, time_out, turn_away
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

import resilient
from resilient import Bulkhead, CircuitBreaker, CircuitBreakerConfig, CircuitOpenError, events
from resilient._execution.counters import RELATIVE_ERROR
from resilient.metrics import otel
from resilient.testing import fake_clock

NAME = "resilient.policy.name"


@pytest.fixture
def reader() -> Iterator[InMemoryMetricReader]:
    memory = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[memory])
    uninstrument = otel.instrument(meter_provider=provider)
    yield memory
    uninstrument()
    provider.shutdown()


def metrics_of(reader: InMemoryMetricReader) -> dict[str, Any]:
    data = reader.get_metrics_data()
    out: dict[str, Any] = {}
    if data is None:
        return out
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            assert scope.scope.name == "resilient"
            for metric in scope.metrics:
                out[metric.name] = metric
    return out


def points(reader: InMemoryMetricReader) -> dict[str, dict[tuple[Any, ...], Any]]:
    """Each metric's data points, by sorted attributes, from the SDK's reader."""
    return {
        name: {tuple(sorted(p.attributes.items())): p for p in metric.data.data_points}
        for name, metric in metrics_of(reader).items()
    }


def value(reader: InMemoryMetricReader, metric: str, name: str, **attributes: str) -> Any:
    point = points(reader)[metric][tuple(sorted({NAME: name, **attributes}.items()))]
    return point.value


STATE = "resilient.circuit_breaker.state"
CALLS = "resilient.circuit_breaker.calls"
CHANGES = "resilient.circuit_breaker.state_changes"
DURATION = "resilient.operation.duration"


def test_a_breaker_lifecycle_through_the_sdk(reader: InMemoryMetricReader) -> None:
    breaker = CircuitBreaker(
        "db", CircuitBreakerConfig(failure_threshold=1, recovery_timeout=10.0, success_threshold=1)
    )

    def fail() -> None:
        clock.advance(0.5)
        raise ConnectionError("down")

    with fake_clock() as clock:
        breaker.call(lambda: None)
        assert value(reader, STATE, "db") == 0
        with pytest.raises(ConnectionError):
            breaker.call(fail)
        assert value(reader, STATE, "db") == 1
        with pytest.raises(CircuitOpenError):
            breaker.call(lambda: None)
        clock.advance(10.0)
        assert breaker.state.value == "half_open"
        assert value(reader, STATE, "db") == 2
        breaker.call(lambda: None)
        assert value(reader, STATE, "db") == 0

    for result, count in (("success", 2), ("failure", 1), ("rejected", 1)):
        assert value(reader, CALLS, "db", result=result) == count
    assert value(reader, CHANGES, "db", from_state="closed", to_state="open") == 1
    duration = metrics_of(reader)[DURATION]
    assert duration.unit == "s"
    (point,) = duration.data.data_points
    assert dict(point.attributes) == {NAME: "db"}
    # Recorded at collection time from the internal buckets: each duration
    # stands as the middle of its bucket (two ~0 s successes, one 0.5 s failure).
    assert point.count == 3
    assert point.sum == pytest.approx(0.5, rel=RELATIVE_ERROR)
    assert list(point.explicit_bounds)[:3] == [0.001, 0.005, 0.01]
    assert list(point.bucket_counts)[:2] == [2, 0]  # <= 1 ms: exact, as every default bound
    assert sum(point.bucket_counts) == 3


def test_instrument_names_units_and_attributes(reader: InMemoryMetricReader) -> None:
    breaker = CircuitBreaker("db", CircuitBreakerConfig(failure_threshold=1))
    with pytest.raises(ConnectionError):
        breaker.call(failing(ConnectionError()))
    retrying("api", 2)(failing(ConnectionError()))()
    time_out("slow")
    pool = Bulkhead("pool", max_concurrent=1)  # alive: its limit is read live
    turn_away(pool)
    got = metrics_of(reader)
    assert {name: metric.unit for name, metric in got.items()} == {
        "resilient.circuit_breaker.state": "",
        "resilient.circuit_breaker.state_changes": "{transition}",
        "resilient.circuit_breaker.calls": "{call}",
        "resilient.retry.attempts": "{call}",
        "resilient.timeout.operations": "{call}",
        "resilient.bulkhead.executions": "{call}",
        "resilient.bulkhead.limit": "{call}",
        "resilient.operation.duration": "s",
    }
    attributes = {
        name: {frozenset(p.attributes) for p in metric.data.data_points}
        for name, metric in got.items()
    }
    assert attributes == {
        "resilient.circuit_breaker.state": {frozenset({NAME})},
        "resilient.circuit_breaker.state_changes": {frozenset({NAME, "from_state", "to_state"})},
        "resilient.circuit_breaker.calls": {frozenset({NAME, "result"})},
        "resilient.retry.attempts": {frozenset({NAME})},
        "resilient.timeout.operations": {frozenset({NAME})},
        "resilient.bulkhead.executions": {frozenset({NAME, "state"})},
        "resilient.bulkhead.limit": {frozenset({NAME})},
        "resilient.operation.duration": {frozenset({NAME})},
    }
    for name in ("state_changes", "calls"):
        metric = got[f"resilient.circuit_breaker.{name}"]
        assert metric.data.is_monotonic
    assert value(reader, "resilient.bulkhead.limit", "pool") == 1


def test_forced_states_and_breakers_made_before_instrumenting() -> None:
    resilient.registry.get_or_create("early")
    memory = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[memory])
    uninstrument = otel.instrument(meter_provider=provider)
    try:
        assert value(memory, STATE, "early") == 0
        resilient.registry.force_open("early")
        assert value(memory, STATE, "early") == 1
        resilient.registry.force_closed("early")
        assert value(memory, STATE, "early") == 0
    finally:
        uninstrument()
        provider.shutdown()


def test_retries_timeouts_and_bulkheads(reader: InMemoryMetricReader) -> None:
    flaky = retrying("api", 3)(
        CircuitBreaker("api")(failing(ConnectionError("down"), ConnectionError("down")))
    )
    assert flaky() == "ok"
    time_out("slow")
    go_quiet("slow")
    pool = Bulkhead("pool", max_concurrent=1)
    turn_away(pool)
    assert value(reader, "resilient.retry.attempts", "api") == 2
    assert value(reader, CALLS, "api", result="failure") == 2
    assert points(reader)[DURATION][((NAME, "api"),)].count == 1
    assert value(reader, "resilient.timeout.operations", "slow") == 2
    assert value(reader, "resilient.bulkhead.executions", "pool", state="rejected") == 1
    assert value(reader, "resilient.bulkhead.executions", "pool", state="success") == 1


def test_durations_are_fed_once_whatever_the_readers() -> None:
    first, second = InMemoryMetricReader(), InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[first, second])
    uninstrument = otel.instrument(meter_provider=provider)
    breaker = CircuitBreaker("db")
    try:
        for _ in range(5):
            breaker.call(lambda: None)
        assert points(first)[DURATION][((NAME, "db"),)].count == 5
        for _ in range(2):
            breaker.call(lambda: None)
        assert points(second)[DURATION][((NAME, "db"),)].count == 7
        assert points(first)[DURATION][((NAME, "db"),)].count == 7
        assert points(first)[DURATION][((NAME, "db"),)].count == 7  # nothing new
    finally:
        uninstrument()
        provider.shutdown()


def test_uninstrumenting_stops_reporting() -> None:
    memory = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[memory])
    uninstrument = otel.instrument(meter_provider=provider)
    CircuitBreaker("db").call(lambda: None)
    assert value(memory, CALLS, "db", result="success") == 1
    uninstrument()
    uninstrument()
    assert events.GLOBAL.readers == ()
    assert not events.GLOBAL.metered
    CircuitBreaker("db").call(lambda: None)
    got = points(memory)
    assert not got.get(STATE)
    assert not got.get(CALLS)
    provider.shutdown()


def test_the_global_meter_provider_is_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    from opentelemetry import metrics

    memory = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[memory])
    monkeypatch.setattr(metrics, "get_meter_provider", lambda: provider)
    uninstrument = otel.instrument()
    try:
        CircuitBreaker("db").call(lambda: None)
        assert value(memory, CALLS, "db", result="success") == 1
    finally:
        uninstrument()
        provider.shutdown()


def test_custom_buckets_are_advised() -> None:
    memory = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[memory])
    uninstrument = otel.instrument(meter_provider=provider, buckets=[0.1, 1.0])
    try:
        CircuitBreaker("db").call(lambda: None)
        (point,) = metrics_of(memory)[DURATION].data.data_points
        assert list(point.explicit_bounds) == [0.1, 1.0]
        assert list(point.bucket_counts) == [1, 0, 0]
    finally:
        uninstrument()
        provider.shutdown()
    with pytest.raises(ValueError, match="buckets"):
        otel.instrument(meter_provider=provider, buckets=[1.0, 0.1])


def test_a_missing_extra_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry", None)
    with pytest.raises(ImportError, match=r"pip install 'resilient-kit\[otel\]'"):
        otel.instrument()


def test_one_collection_reads_the_counters_once(
    reader: InMemoryMetricReader, monkeypatch: pytest.MonkeyPatch
) -> None:
    from resilient.metrics import _export

    reads = []
    read = _export.Reading.read

    def counting(self: _export.Reading) -> _export.View:
        reads.append(self)
        return read(self)

    monkeypatch.setattr(_export.Reading, "read", counting)
    CircuitBreaker("db").call(lambda: None)
    assert value(reader, CALLS, "db", result="success") == 1
    assert len(reads) == 1
    assert value(reader, CALLS, "db", result="success") == 1
    assert len(reads) == 2


def test_rate_limiter_calls_and_budget_refusals(reader: InMemoryMetricReader) -> None:
    with fake_clock():
        limiter = resilient.RateLimiter("quota", rate=1)
        limiter.call(lambda: None)
        with pytest.raises(resilient.RateLimitExceededError):
            limiter.call(lambda: None)
        budget = resilient.RetryBudget(ratio=0.0, min_retries_per_second=0.0)
        with pytest.raises(ConnectionError):
            resilient.Retry(resilient.RetryConfig(budget=budget), name="spent").call(
                failing(ConnectionError())
            )
    calls = "resilient.rate_limiter.calls"
    assert value(reader, calls, "quota", result="admitted") == 1
    assert value(reader, calls, "quota", result="rejected") == 1
    assert value(reader, "resilient.retry.budget_refusals", "spent") == 1
    assert metrics_of(reader)[calls].unit == "{call}"


def test_failover_calls_by_the_target_that_answered(reader: InMemoryMetricReader) -> None:
    class Down(Exception):
        is_retryable = True

    def secondary() -> str:
        return "secondary"

    def primary() -> str:
        raise Down

    ask = resilient.with_failover("llm", [secondary])(primary)
    ask()
    ask()
    calls = "resilient.failover.calls"
    assert value(reader, calls, "llm", target="secondary") == 2
    assert metrics_of(reader)[calls].unit == "{call}"
