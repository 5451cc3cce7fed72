"""Counts are exact under threads and under asyncio, with a collector and
both exporters reading at once (and scraping while the calls run)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from typing import Any, NamedTuple

import prometheus_client
import pytest
from _support import retrying
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from prometheus_client.parser import text_string_to_metric_families

import resilient
from resilient import Bulkhead, CircuitBreaker, CircuitBreakerConfig, MetricsCollector
from resilient.metrics import otel, prometheus

NAME = "resilient.policy.name"


class Readers(NamedTuple):
    collector: MetricsCollector
    registry: prometheus_client.CollectorRegistry
    memory: InMemoryMetricReader


@pytest.fixture
def readers() -> Iterator[Readers]:
    collector = MetricsCollector()
    registry = prometheus_client.CollectorRegistry()
    memory = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[memory])
    stops = [
        resilient.subscribe(collector),
        prometheus.instrument(registry),
        otel.instrument(meter_provider=provider),
    ]
    yield Readers(collector, registry, memory)
    for stop in stops:
        stop()
    provider.shutdown()


def policies() -> tuple[Any, CircuitBreaker, Bulkhead]:
    """A retry (two attempts) around a breaker that never opens around a bulkhead."""
    breaker = CircuitBreaker("api", CircuitBreakerConfig(failure_threshold=10**9))
    return retrying("api", 2), breaker, Bulkhead("api", max_concurrent=1000)


def fails(i: int) -> bool:
    return i % 5 == 0  # both attempts fail: a retry, then a failed request


def prometheus_samples(registry: prometheus_client.CollectorRegistry) -> dict[Any, float]:
    text = prometheus_client.generate_latest(registry).decode()
    return {
        (s.name, *sorted(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def otel_points(memory: InMemoryMetricReader) -> dict[Any, Any]:
    data = memory.get_metrics_data()
    assert data is not None
    return {
        (metric.name, *sorted(p.attributes.items())): p
        for metric in data.resource_metrics[0].scope_metrics[0].metrics
        for p in metric.data.data_points
    }


def check(readers: Readers, calls: int) -> None:
    failed = calls // 5
    stats = readers.collector.statistics
    assert (stats.total_requests, stats.successes, stats.failures, stats.rejections) == (
        calls,
        calls - failed,
        failed,
        0,
    )
    assert stats.total_retries == failed
    assert list(stats.by_name) == ["api"]

    got = prometheus_samples(readers.registry)
    for result, count in (("success", calls - failed), ("failure", 2 * failed), ("rejected", 0)):
        assert got[("circuit_breaker_calls_total", ("name", "api"), ("result", result))] == count
        assert got[("bulkhead_executions_total", ("name", "api"), ("state", result))] == count
    assert got[("retry_attempts_total", ("name", "api"))] == failed
    assert got[("resilient_operation_duration_seconds_count", ("name", "api"))] == calls
    assert got[("resilient_operation_duration_seconds_bucket", ("le", "+Inf"), ("name", "api"))]

    points = otel_points(readers.memory)
    for result, count in (("success", calls - failed), ("failure", 2 * failed), ("rejected", 0)):
        key = ("resilient.circuit_breaker.calls", (NAME, "api"), ("result", result))
        assert points[key].value == count
        key = ("resilient.bulkhead.executions", (NAME, "api"), ("state", result))
        assert points[key].value == count
    assert points[("resilient.retry.attempts", (NAME, "api"))].value == failed
    assert points[("resilient.operation.duration", (NAME, "api"))].count == calls


def test_counts_are_exact_under_threads(readers: Readers) -> None:
    retry, breaker, bulkhead = policies()

    @retry
    @breaker
    @bulkhead
    def work(i: int) -> int:
        if fails(i):
            raise ValueError(i)
        return i

    threads_n, each = 8, 1000
    done = threading.Event()

    def hammer() -> None:
        for i in range(each):
            with contextlib.suppress(ValueError):
                work(i)

    def scrape() -> None:  # reads racing the writes change nothing
        while not done.is_set():
            prometheus_client.generate_latest(readers.registry)
            readers.memory.get_metrics_data()
            _ = readers.collector.statistics

    scraper = threading.Thread(target=scrape)
    scraper.start()
    threads = [threading.Thread(target=hammer) for _ in range(threads_n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    done.set()
    scraper.join()
    check(readers, threads_n * each)


async def test_counts_are_exact_under_asyncio(readers: Readers) -> None:
    retry, breaker, bulkhead = policies()

    @retry
    @breaker
    @bulkhead
    async def work(i: int) -> int:
        await asyncio.sleep(0)
        if fails(i):
            raise ValueError(i)
        return i

    tasks_n, each = 200, 20

    async def task() -> None:
        for i in range(each):
            with contextlib.suppress(ValueError):
                await work(i)

    async def scrape() -> None:
        for _ in range(20):
            prometheus_client.generate_latest(readers.registry)
            readers.memory.get_metrics_data()
            await asyncio.sleep(0)

    await asyncio.gather(scrape(), *(task() for _ in range(tasks_n)))
    check(readers, tasks_n * each)
