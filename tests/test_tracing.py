"""``resilient.tracing``: a span per protected call, span events for what
resilience did, checked with the OpenTelemetry SDK's in-memory exporter."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

import resilient._execution.request
import resilient.tracing
from resilient import (
    CircuitBreakerConfig,
    CircuitOpenError,
    Fallback,
    Registry,
    RetryConfig,
    events,
    with_bulkhead,
    with_circuit_breaker,
    with_resilience,
)
from resilient.testing import FakeClock
from tests.conftest import CountingLock

RETRY = RetryConfig(max_attempts=3, initial_delay=0.5, jitter=0.0)


@pytest.fixture
def traced() -> Iterator[tuple[InMemorySpanExporter, TracerProvider]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    stop = resilient.tracing.instrument(provider)
    try:
        yield exporter, provider
    finally:
        stop()
        provider.shutdown()


def _events(span: Any) -> list[tuple[str, dict[str, Any]]]:
    return [(e.name, dict(e.attributes)) for e in span.events]


def _check_retried_then_fallen_back(exporter: InMemorySpanExporter, name: str) -> None:
    spans = {s.name: s for s in exporter.get_finished_spans()}
    outer, inner = spans[f"resilient {name}"], spans["dependency"]
    assert outer.attributes is not None
    assert outer.attributes["resilient.policy.name"] == name
    assert outer.attributes["resilient.retries"] == 2
    assert outer.attributes["http.request.resend_count"] == 2
    assert "resilient.outcome" not in outer.attributes  # a success: the fallback answered
    names = [event for event, _ in _events(outer)]
    assert names == [
        "resilient.retry",
        "resilient.retry",
        "resilient.retries_exhausted",
        "resilient.fallback",
    ]
    first, second = (attrs for event, attrs in _events(outer) if event == "resilient.retry")
    assert (first["resilient.attempt"], second["resilient.attempt"]) == (1, 2)
    assert first["resilient.retry.delay"] == 0.5
    assert first["exception.type"] == "ConnectionError"
    # The span the call made is a child of the call's span, once per attempt.
    assert inner.parent is not None
    assert inner.parent.span_id == outer.context.span_id
    assert sum(1 for s in exporter.get_finished_spans() if s.name == "dependency") == 3


def test_a_retried_then_fallen_back_call_sync(
    clock: FakeClock, traced: tuple[InMemorySpanExporter, TracerProvider]
) -> None:
    exporter, provider = traced
    tracer = provider.get_tracer("test")

    @with_resilience(
        "quotes", registry=Registry(), retry=RETRY, fallback=Fallback(value=0), timeout=None
    )
    def quote() -> int:
        with tracer.start_as_current_span("dependency"):
            raise ConnectionError("down")

    assert quote() == 0
    _check_retried_then_fallen_back(exporter, "quotes")


def test_a_retried_then_fallen_back_call_async(
    clock: FakeClock, traced: tuple[InMemorySpanExporter, TracerProvider]
) -> None:
    exporter, provider = traced
    tracer = provider.get_tracer("test")

    @with_resilience(
        "aquotes", registry=Registry(), retry=RETRY, fallback=Fallback(value=0), timeout=None
    )
    async def quote() -> int:
        with tracer.start_as_current_span("dependency"):
            raise ConnectionError("down")

    assert asyncio.run(quote()) == 0
    _check_retried_then_fallen_back(exporter, "aquotes")


def test_concurrent_async_calls_get_a_span_each(
    traced: tuple[InMemorySpanExporter, TracerProvider],
) -> None:
    exporter, provider = traced
    tracer = provider.get_tracer("test")

    @with_resilience("many", registry=Registry(), retry=None, timeout=None)
    async def call(i: int) -> int:
        with tracer.start_as_current_span(f"inner {i}"):
            await asyncio.sleep(0)
        return i

    async def main() -> list[int]:
        return await asyncio.gather(*(call(i) for i in range(5)))

    assert asyncio.run(main()) == list(range(5))
    spans = exporter.get_finished_spans()
    outers = {s.context.span_id for s in spans if s.name == "resilient many"}
    assert len(outers) == 5
    parents = {s.parent.span_id for s in spans if s.name.startswith("inner") and s.parent}
    assert parents == outers


def test_a_rejection_and_a_state_change_are_span_events(
    clock: FakeClock, traced: tuple[InMemorySpanExporter, TracerProvider]
) -> None:
    exporter, _ = traced
    reg = Registry()

    @with_circuit_breaker("flaky", registry=reg, config=CircuitBreakerConfig(failure_threshold=1))
    def call() -> None:
        raise ConnectionError("down")

    with pytest.raises(ConnectionError):
        call()
    with pytest.raises(CircuitOpenError):
        call()
    first, second = exporter.get_finished_spans()
    assert ("resilient.state_change") in [name for name, _ in _events(first)]
    (change,) = [attrs for name, attrs in _events(first) if name == "resilient.state_change"]
    assert change["resilient.circuit_breaker.to_state"] == "open"
    assert first.status.status_code is StatusCode.ERROR
    assert first.attributes is not None
    assert first.attributes["resilient.outcome"] == "failure"
    (rejected,) = [attrs for name, attrs in _events(second) if name == "resilient.rejected"]
    assert rejected["resilient.rejection.state"] == "open"
    assert second.attributes is not None
    assert second.attributes["resilient.outcome"] == "rejected"


def test_a_stream_is_one_span(traced: tuple[InMemorySpanExporter, TracerProvider]) -> None:
    exporter, _ = traced

    @with_bulkhead("feed", max_concurrent=2, registry=Registry())
    async def feed() -> AsyncIterator[int]:
        for i in range(3):
            yield i

    async def main() -> list[int]:
        return [i async for i in feed()]

    assert asyncio.run(main()) == [0, 1, 2]
    (span,) = exporter.get_finished_spans()
    assert span.name == "resilient feed"
    assert span.attributes is not None
    assert "resilient.outcome" not in span.attributes  # a success


def test_stopping_ends_tracing_and_instrumenting_twice_is_an_error() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))

    @with_resilience("stopped", registry=Registry(), retry=None, timeout=None)
    def call() -> int:
        return 1

    stop = resilient.tracing.instrument(provider)
    with pytest.raises(ValueError, match="instrumented already"):
        resilient.tracing.instrument(provider)
    assert call() == 1
    stop()
    stop()  # twice is fine
    assert call() == 1
    assert [s.name for s in exporter.get_finished_spans()] == ["resilient stopped"]
    again = resilient.tracing.instrument(provider)
    again()


def test_a_call_under_way_when_stopped_still_ends_its_span() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    stop = resilient.tracing.instrument(provider)

    @with_resilience("underway", registry=Registry(), retry=None, timeout=None)
    def call() -> int:
        stop()
        return 1

    assert call() == 1
    (span,) = exporter.get_finished_spans()
    assert span.name == "resilient underway"
    from opentelemetry import trace

    assert not trace.get_current_span().get_span_context().is_valid  # nothing left current


def test_nothing_is_traced_without_instrument() -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))

    @with_resilience("quiet", registry=Registry(), retry=None, timeout=None)
    def call() -> int:
        return 1

    assert call() == 1
    assert exporter.get_finished_spans() == ()


def test_a_failover_is_a_span_event(traced: tuple[InMemorySpanExporter, TracerProvider]) -> None:
    from resilient import with_failover

    exporter, _ = traced

    def backup(region: str) -> str:
        return f"backup {region}"

    @with_failover("regions", [backup])
    def primary(region: str) -> str:
        raise CircuitOpenError("primary", "open", 5.0)

    assert primary("eu") == "backup eu"
    (span,) = exporter.get_finished_spans()
    (moved,) = [attrs for name, attrs in _events(span) if name == "resilient.failover"]
    assert moved["exception.type"] == "CircuitOpenError"
    assert "backup" in moved["resilient.failover.target"]


def test_traced_calls_keep_every_layer_on_its_fast_path(
    traced: tuple[InMemorySpanExporter, TracerProvider],
) -> None:
    exporter, _ = traced
    reg = Registry()
    heard: list[Any] = []
    stop_listening = events.GLOBAL.subscribe(heard.append, every_call=False)

    @with_resilience("fast", registry=reg, timeout=None, fallback=Fallback(value=None))
    def call(x: int) -> int:
        return x

    breaker = reg.get("fast")
    assert breaker is not None
    lock = breaker._lock = CountingLock(breaker._lock)  # type: ignore[assignment]
    try:
        for i in range(50):
            assert call(i) == i
    finally:
        stop_listening()
    assert lock.taken == 0  # the closed breaker counted each success without its lock
    assert heard == []  # no layer built a per-call event for a listener that wants none
    assert [s.name for s in exporter.get_finished_spans()] == ["resilient fast"] * 50


def test_a_rejection_inside_a_stack_is_one_span_event(
    clock: FakeClock, traced: tuple[InMemorySpanExporter, TracerProvider]
) -> None:
    exporter, _ = traced

    @with_resilience(
        "inner-open",
        registry=Registry(),
        retry=None,
        timeout=None,
        circuit_breaker=CircuitBreakerConfig(failure_threshold=1),
    )
    def call() -> None:
        raise ConnectionError("down")

    with pytest.raises(ConnectionError):
        call()
    for _ in range(2):  # rejected by the open breaker's lock-free path
        with pytest.raises(CircuitOpenError):
            call()
    _, *rejected_spans = exporter.get_finished_spans()
    for span in rejected_spans:
        names = [name for name, _ in _events(span) if name.startswith("resilient.")]
        assert names == ["resilient.rejected"]  # once, whichever path rejected it
        assert span.attributes is not None
        assert span.attributes["resilient.outcome"] == "rejected"


def test_stopping_tracing_leaves_the_never_traced_path() -> None:
    scope = events.GLOBAL
    hooks = resilient._execution.request
    before = (scope.listeners, scope.events, scope.calls, scope.metered, hooks.tracer)

    @with_resilience("restored", registry=Registry(), timeout=None)
    def call() -> int:
        return 1

    provider = TracerProvider()
    stop = resilient.tracing.instrument(provider)
    assert scope.events
    assert not scope.calls
    assert call() == 1
    stop()
    assert (scope.listeners, scope.events, scope.calls, scope.metered, hooks.tracer) == before
