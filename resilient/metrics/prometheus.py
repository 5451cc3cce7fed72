"""Prometheus exporter (extra ``prometheus``): ``instrument()`` registers the
series described in :mod:`resilient.metrics._export` and keeps them up to
date from the event stream."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from .. import events
from ._export import DEFAULT_BUCKETS, known_states, listener

__all__ = ["instrument"]


def _require() -> Any:
    try:
        import prometheus_client
    except ImportError as exc:
        raise ImportError(
            "resilient.metrics.prometheus needs prometheus_client: "
            "pip install 'resilient[prometheus]'"
        ) from exc
    return prometheus_client


class _Sink:
    def __init__(self, prom: Any, registry: Any, buckets: Sequence[float]) -> None:
        self.registry = registry
        # Created unregistered, then registered together: a failure leaves nothing behind.
        self.metrics = [
            prom.Gauge(
                "circuit_breaker_state",
                "Circuit breaker state: 0 closed (or forced closed), 1 open (or forced open), "
                "2 half-open",
                ["name"],
                registry=None,
            ),
            prom.Counter(
                "circuit_breaker_state_changes_total",
                "Circuit breaker state transitions",
                ["name", "from_state", "to_state"],
                registry=None,
            ),
            prom.Counter(
                "circuit_breaker_calls_total",
                "Calls through a circuit breaker, by how the breaker counted them",
                ["name", "result"],
                registry=None,
            ),
            prom.Counter(
                "retry_attempts_total",
                "Retries (attempts after the first)",
                ["name"],
                registry=None,
            ),
            prom.Counter(
                "timeout_operations_total", "Calls that timed out", ["name"], registry=None
            ),
            prom.Counter(
                "bulkhead_executions_total",
                "Calls through a bulkhead: success, failure or rejected",
                ["name", "state"],
                registry=None,
            ),
            prom.Histogram(
                "resilient_operation_duration_seconds",
                "Duration of each call of a protected function, retries included",
                ["name"],
                buckets=tuple(buckets),
                registry=None,
            ),
        ]
        (
            self._state,
            self._changes,
            self._calls,
            self._retries,
            self._timeouts,
            self._bulkhead,
            self._duration,
        ) = self.metrics
        done = []
        try:
            for metric in self.metrics:
                registry.register(metric)
                done.append(metric)
        except ValueError as exc:
            for metric in done:
                registry.unregister(metric)
            raise ValueError(
                "resilient's metrics are already in this Prometheus registry: call the "
                f"function the first instrument() returned before instrumenting again ({exc})"
            ) from exc

    def unregister(self) -> None:
        for metric in self.metrics:
            self.registry.unregister(metric)

    def state(self, name: str, value: int) -> None:
        self._state.labels(name).set(value)

    def state_change(self, name: str, old: str, new: str) -> None:
        self._changes.labels(name, old, new).inc()

    def breaker_call(self, name: str, result: str) -> None:
        self._calls.labels(name, result).inc()

    def retry(self, name: str) -> None:
        self._retries.labels(name).inc()

    def timeout(self, name: str) -> None:
        self._timeouts.labels(name).inc()

    def bulkhead(self, name: str, state: str) -> None:
        self._bulkhead.labels(name, state).inc()

    def duration(self, name: str, seconds: float) -> None:
        self._duration.labels(name).observe(seconds)


def instrument(
    registry: Any = None, *, buckets: Sequence[float] = DEFAULT_BUCKETS
) -> Callable[[], None]:
    """Export every policy's events as Prometheus metrics.

    ``registry`` is a ``prometheus_client.CollectorRegistry`` (default: the
    global ``prometheus_client.REGISTRY``); ``buckets`` are the duration
    histogram's upper bounds in seconds. Returns a function that stops
    exporting and removes the metrics from ``registry``.
    """
    prom = _require()
    sink = _Sink(prom, registry if registry is not None else prom.REGISTRY, buckets)
    states = known_states()
    for name, value in states.items():
        sink.state(name, value)
    unsubscribe = events.subscribe(listener(sink, states))
    done = False

    def uninstrument() -> None:
        nonlocal done
        if not done:
            done = True
            unsubscribe()
            sink.unregister()

    return uninstrument
