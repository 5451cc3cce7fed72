"""OpenTelemetry exporter (extra ``otel``): the series of
:mod:`resilient.metrics.prometheus` through the OpenTelemetry metrics API.

OpenTelemetry names carry no ``_total`` or unit suffix (its Prometheus
exporter adds them back): ``circuit_breaker_state``,
``circuit_breaker_state_changes``, ``circuit_breaker_calls``,
``retry_attempts``, ``timeout_operations``, ``bulkhead_executions`` and
``resilient_operation_duration`` (unit ``s``). Attributes are the Prometheus
labels (``name``, ``result``, ``state``, ``from_state``, ``to_state``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from .. import __version__, events
from ._export import DEFAULT_BUCKETS, known_states, listener

__all__ = ["instrument"]


def _require() -> Any:
    try:
        from opentelemetry import metrics
    except ImportError as exc:
        raise ImportError(
            "resilient.metrics.otel needs the OpenTelemetry API: pip install 'resilient[otel]'"
        ) from exc
    return metrics


class _Sink:
    def __init__(self, api: Any, meter: Any, buckets: Sequence[float]) -> None:
        self.api = api
        self.states: dict[str, int] = {}
        self.active = True
        meter.create_observable_gauge(
            "circuit_breaker_state",
            callbacks=[self._observe],
            description="Circuit breaker state: 0 closed (or forced closed), "
            "1 open (or forced open), 2 half-open",
        )
        self._changes = meter.create_counter(
            "circuit_breaker_state_changes", description="Circuit breaker state transitions"
        )
        self._calls = meter.create_counter(
            "circuit_breaker_calls",
            description="Calls through a circuit breaker, by how the breaker counted them",
        )
        self._retries = meter.create_counter(
            "retry_attempts", description="Retries (attempts after the first)"
        )
        self._timeouts = meter.create_counter(
            "timeout_operations", description="Calls that timed out"
        )
        self._bulkhead = meter.create_counter(
            "bulkhead_executions",
            description="Calls through a bulkhead: success, failure or rejected",
        )
        self._duration = meter.create_histogram(
            "resilient_operation_duration",
            unit="s",
            description="Duration of each call of a protected function, retries included",
            explicit_bucket_boundaries_advisory=list(buckets),
        )

    def _observe(self, options: Any) -> Iterable[Any]:
        if not self.active:
            return []
        observation = self.api.Observation
        return [observation(v, {"name": n}) for n, v in sorted(self.states.items())]

    def state(self, name: str, value: int) -> None:
        pass  # read by the observable gauge from ``states``

    def state_change(self, name: str, old: str, new: str) -> None:
        self._changes.add(1, {"name": name, "from_state": old, "to_state": new})

    def breaker_call(self, name: str, result: str) -> None:
        self._calls.add(1, {"name": name, "result": result})

    def retry(self, name: str) -> None:
        self._retries.add(1, {"name": name})

    def timeout(self, name: str) -> None:
        self._timeouts.add(1, {"name": name})

    def bulkhead(self, name: str, state: str) -> None:
        self._bulkhead.add(1, {"name": name, "state": state})

    def duration(self, name: str, seconds: float) -> None:
        self._duration.record(seconds, {"name": name})


def instrument(
    meter_provider: Any = None, *, buckets: Sequence[float] = DEFAULT_BUCKETS
) -> Callable[[], None]:
    """Export every policy's events through the OpenTelemetry metrics API.

    ``meter_provider`` defaults to the global one
    (``opentelemetry.metrics.get_meter_provider()``); ``buckets`` are the
    advised duration histogram bounds in seconds. Returns a function that
    stops exporting (OpenTelemetry cannot remove instruments; they stop
    changing and the state gauge stops reporting).
    """
    api = _require()
    provider = meter_provider if meter_provider is not None else api.get_meter_provider()
    sink = _Sink(api, provider.get_meter("resilient", __version__), buckets)
    sink.states.update(known_states())
    unsubscribe = events.subscribe(listener(sink, sink.states))

    def uninstrument() -> None:
        sink.active = False
        unsubscribe()

    return uninstrument
