"""Hedges and adaptive limits, as the collector and both exporters report them."""

from __future__ import annotations

from typing import Any

import prometheus_client
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from prometheus_client.parser import text_string_to_metric_families

from resilient import AdaptiveLimit, Bulkhead, BulkheadConfig, Hedging
from resilient.metrics import otel, prometheus

NAME = "resilient.policy.name"


def _hedge_once(name: str) -> Hedging:
    """A hedged call whose first attempt fails: one hedge, counted under ``name``."""
    policy = Hedging(delay=10.0, name=name)
    attempts = []

    def call() -> str:
        attempts.append(1)
        if len(attempts) == 1:
            raise ConnectionError()
        return "ok"

    assert policy.call(call) == "ok"
    return policy


def _adaptive(name: str) -> Bulkhead:
    return Bulkhead(name, BulkheadConfig(100, adaptive=AdaptiveLimit(initial=33)))


def test_prometheus_exports_hedges_and_the_adaptive_limit() -> None:
    registry = prometheus_client.CollectorRegistry()
    uninstrument = prometheus.instrument(registry)
    try:
        policy = _hedge_once("search")
        bulkhead = _adaptive("pool")
        text = prometheus_client.generate_latest(registry).decode()
    finally:
        uninstrument()
    got = {
        (s.name, *sorted(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    assert got[("hedging_attempts_total", ("name", "search"))] == 1
    assert got[("bulkhead_limit", ("name", "pool"))] == 33
    assert policy is not None
    assert bulkhead.metrics().limit == 33


def test_opentelemetry_exports_hedges_and_the_adaptive_limit() -> None:
    memory = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[memory])
    uninstrument = otel.instrument(meter_provider=provider)
    try:
        policy = _hedge_once("search")
        bulkhead = _adaptive("pool")
        data = memory.get_metrics_data()
    finally:
        uninstrument()
        provider.shutdown()
    assert data is not None
    values: dict[tuple[str, Any], Any] = {}
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                for point in metric.data.data_points:
                    values[metric.name, point.attributes.get(NAME)] = getattr(point, "value", None)
    assert values["resilient.hedging.attempts", "search"] == 1
    assert values["resilient.bulkhead.limit", "pool"] == 33
    assert policy is not None
    assert bulkhead is not None


def test_the_collector_reads_a_bulkheads_current_limit() -> None:
    from resilient import MetricsCollector, ResiliencePolicy, with_resilience

    collector = MetricsCollector()
    import resilient

    unsubscribe = resilient.subscribe(collector)
    try:

        @with_resilience(
            "limited",
            ResiliencePolicy(
                retry=None,
                timeout=None,
                circuit_breaker=None,
                bulkhead=BulkheadConfig(100, adaptive=AdaptiveLimit(initial=12)),
            ),
        )
        def call() -> int:
            return 1

        assert call() == 1
        stats = collector.statistics
    finally:
        unsubscribe()
    assert stats.by_name["limited"].limit == 12
    assert stats.limit is None
