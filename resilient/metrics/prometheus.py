"""Prometheus exporter (extra ``prometheus``): ``instrument()`` registers a
collector that reads every policy's counters at scrape time, as the series
described in ``resilient.metrics._export``. Nothing is done per call."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from ._export import (
    DEFAULT_BUCKETS,
    FAMILIES,
    Reading,
    check_buckets,
    cumulative,
    cutoffs,
    exporting,
    series,
)

__all__ = ["instrument"]

_NAMESPACE = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")


def _require() -> Any:
    try:
        import prometheus_client
    except ImportError as exc:
        raise ImportError(
            "resilient.metrics.prometheus needs prometheus_client: "
            "pip install 'resilient-kit[prometheus]'"
        ) from exc
    return prometheus_client


class _Collector:
    """A ``prometheus_client`` custom collector over a ``Reading``."""

    def __init__(
        self, prom: Any, reading: Reading, namespace: str, buckets: tuple[float, ...]
    ) -> None:
        from prometheus_client.core import (
            CounterMetricFamily,
            GaugeMetricFamily,
            HistogramMetricFamily,
        )
        from prometheus_client.utils import floatToGoString

        self._gauge = GaugeMetricFamily
        self._counter = CounterMetricFamily
        self._histogram = HistogramMetricFamily
        self._reading = reading
        prefix = f"{namespace}_" if namespace else ""
        self._names = {
            name: name if name.startswith(prefix) else prefix + name
            for name in (
                *(family.name for family in FAMILIES),
                "resilient_operation_duration_seconds",
                "resilient_time_to_first_item_seconds",
            )
        }
        self._les = [floatToGoString(b) for b in buckets]  # type: ignore[no-untyped-call]
        self._cuts = cutoffs(buckets)

    def describe(self) -> list[Any]:
        """The families, without samples: what the registry checks for clashes."""
        return list(self._families(None))

    def collect(self) -> Iterator[Any]:
        return self._families(series(self._reading.read()))

    def _families(self, values: Any) -> Iterator[Any]:
        n = self._names
        for family in FAMILIES:
            make = self._gauge if family.kind == "gauge" else self._counter
            metric = make(n[family.name], family.text, labels=["name", *family.labels])
            if values is not None:
                for policy, *rest in getattr(values, family.field):
                    metric.add_metric([_label(policy), *rest[:-1]], rest[-1])
            yield metric
        duration = self._histogram(
            n["resilient_operation_duration_seconds"],
            "Duration of each call of a protected function, retries included",
            labels=["name"],
        )
        first_item = self._histogram(
            n["resilient_time_to_first_item_seconds"],
            "Time from the start of each stream of a protected function to its first item",
            labels=["name"],
        )
        if values is not None:
            for name, counts in values.durations:
                below = cumulative(counts.latency, self._cuts)
                buckets = [*zip(self._les, below, strict=True), ("+Inf", counts.ran)]
                duration.add_metric([_label(name)], buckets, counts.latency_sum)
            for name, counts in values.first_items:
                below = cumulative(counts.first_items, self._cuts)
                buckets = [*zip(self._les, below, strict=True), ("+Inf", counts.streams)]
                first_item.add_metric([_label(name)], buckets, counts.first_item_sum)
        yield duration
        yield first_item


def instrument(
    registry: Any = None,
    *,
    namespace: str = "",
    buckets: Sequence[float] = DEFAULT_BUCKETS,
) -> Callable[[], None]:
    """Export every policy's counters as Prometheus metrics, read at scrape time.

    ``registry`` is a ``prometheus_client.CollectorRegistry`` (default: the
    global ``prometheus_client.REGISTRY``). ``namespace`` prefixes every
    series not already starting with it (``namespace="resilient"`` gives
    ``resilient_circuit_breaker_state`` and leaves
    ``resilient_operation_duration_seconds`` as it is).

    ``buckets`` are the duration histogram's upper bounds in seconds. Its
    counts come from the fixed internal buckets of ``resilient._execution.counters``:
    each bound counts the requests of the internal buckets whose upper bound
    is at or below it. The default bounds are internal bounds too, so they
    are exact; another bound may leave out durations just below it (those
    sharing an internal bucket with it, at most ``2 *
    resilient._execution.counters.RELATIVE_ERROR`` of the bound away). ``_sum`` and
    ``_count`` are exact.

    Counts start from zero at ``instrument()``; what a policy counted is
    kept after the policy is collected. Breaker states and bulkhead limits
    are read live. Returns a function that stops exporting and removes the
    metrics from ``registry``; instrumenting a registry twice is a
    ``ValueError``.
    """
    prom = _require()
    if not isinstance(namespace, str) or (namespace and not _NAMESPACE.fullmatch(namespace)):
        raise ValueError(f"namespace must be a Prometheus name (or ''), got {namespace!r}")
    bounds = check_buckets(buckets)
    target = registry if registry is not None else prom.REGISTRY
    reading = Reading()
    collector = _Collector(prom, reading, namespace, bounds)
    try:
        target.register(collector)
    except ValueError as exc:
        reading.close()
        raise ValueError(
            "resilient's metrics are already in this Prometheus registry: call the "
            f"function the first instrument() returned before instrumenting again ({exc})"
        ) from exc
    return exporting(reading, lambda: target.unregister(collector))


def _label(name: str) -> str:
    """``name`` as a label value the exposition can encode: names are data,
    and a lone surrogate (any str is a policy's name) is shown escaped."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return name.encode("utf-8", "backslashreplace").decode("utf-8")
    return name
