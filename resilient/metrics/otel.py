"""OpenTelemetry exporter (extra ``otel``): the series of
``resilient.metrics._export`` through the OpenTelemetry metrics API,
read from every policy's counters at collection time.

Instruments, on the meter ``resilient``:

| name | kind | unit |
|---|---|---|
| ``resilient.circuit_breaker.state`` | observable gauge | (0, 1 or 2) |
| ``resilient.circuit_breaker.state_changes`` | observable counter | ``{transition}`` |
| ``resilient.circuit_breaker.calls`` | observable counter | ``{call}`` |
| ``resilient.retry.attempts`` | observable counter | ``{call}`` |
| ``resilient.hedging.attempts`` | observable counter | ``{call}`` |
| ``resilient.timeout.operations`` | observable counter | ``{call}`` |
| ``resilient.bulkhead.executions`` | observable counter | ``{call}`` |
| ``resilient.bulkhead.limit`` | observable gauge | ``{call}`` |
| ``resilient.rate_limiter.calls`` | observable counter | ``{call}`` |
| ``resilient.retry.budget_refusals`` | observable counter | ``{call}`` |
| ``resilient.failover.calls`` | observable counter | ``{call}`` |
| ``resilient.operation.duration`` | histogram | ``s`` |
| ``resilient.stream.time_to_first_item`` | histogram | ``s`` |

The policy's name is the attribute ``resilient.policy.name``; ``result``,
``state``, ``from_state``, ``to_state`` and ``target`` are as the Prometheus labels.

OpenTelemetry has no observable histogram, so the two histograms are
synchronous ones fed at collection time: each collection records, for every
request that ran since the last one, the geometric middle of the internal
bucket its duration fell in (``resilient._execution.counters``, 16 per doubling). Each
recorded value is within ``resilient._execution.counters.RELATIVE_ERROR`` (about 2.2 %)
of the true duration, so the sum is too; the counts of the default bucket
bounds are exact (they are internal bounds). That is one ``record`` per
request, in the collecting thread, never on the request's path. (With the
SDK the values land in the collection that fed them.)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from .. import __version__
from .._runtime import fork as _fork
from ._export import (
    DEFAULT_BUCKETS,
    FAMILIES,
    Family,
    Reading,
    Series,
    check_buckets,
    exporting,
    middle,
    series,
)

__all__ = ["NAME", "instrument"]

NAME = "resilient.policy.name"
"""The attribute holding the policy's name."""
# How long one read may serve the callbacks that follow the first one.
_SAME_COLLECTION = 1.0


def _require() -> Any:
    try:
        from opentelemetry import metrics
    except ImportError as exc:
        raise ImportError(
            "resilient.metrics.otel needs the OpenTelemetry API: pip install 'resilient-kit[otel]'"
        ) from exc
    return metrics


class _Exporter:
    def __init__(self, api: Any, meter: Any, reading: Reading, buckets: Sequence[float]) -> None:
        self._observation = api.Observation
        self._reading = reading
        self._lock = threading.Lock()
        _fork.renew_in_child(self, _fork.locks("_lock"))
        self.active = True
        # The last read, for the other callbacks of the same collection.
        self._read_at = 0.0
        self._values: Series | None = None
        # Per name: the latency bucket counts already recorded.
        self._fed: dict[str, dict[int, int]] = {}
        # The state gauge's callback is the first of each collection: it
        # reads the counters (see _read).
        for family in FAMILIES:
            create = getattr(meter, f"create_observable_{family.kind}")
            callback = self._callback(family, fresh=family.field == "states")
            create(
                family.instrument, callbacks=[callback], unit=family.unit, description=family.text
            )
        self._duration = meter.create_histogram(
            "resilient.operation.duration",
            unit="s",
            description="Duration of each call of a protected function, retries included",
            explicit_bucket_boundaries_advisory=list(buckets),
        )

        self._first_item = meter.create_histogram(
            "resilient.stream.time_to_first_item",
            unit="s",
            description="Time from the start of each stream of a protected function "
            "to its first item",
            explicit_bucket_boundaries_advisory=list(buckets),
        )
        self._fed_first: dict[str, dict[int, int]] = {}

    def stop(self) -> None:
        with self._lock:
            self.active = False
            self._values = None

    def _read(self, fresh: bool) -> Series | None:
        """The values to report. The state gauge's callback, the first of
        each collection, reads the counters (and feeds the duration
        histogram); the other callbacks of the collection reuse that read,
        so one collection reports one consistent snapshot."""
        with self._lock:
            if not self.active:
                return None
            now = time.monotonic()
            if fresh or self._values is None or now - self._read_at >= _SAME_COLLECTION:
                self._values = series(self._reading.read())
                self._read_at = now
                self._feed(self._values)
            return self._values

    def _feed(self, values: Series) -> None:
        for histogram, fed_by_name, rows in (
            (self._duration, self._fed, [(name, c.latency) for name, c in values.durations]),
            (
                self._first_item,
                self._fed_first,
                [(name, c.first_items) for name, c in values.first_items],
            ),
        ):
            record = histogram.record
            for name, buckets in rows:
                fed = fed_by_name.setdefault(name, {})
                attributes = {NAME: name}
                for index, n in buckets.items():
                    new = n - fed.get(index, 0)
                    if new > 0:
                        value = middle(index)
                        for _ in range(new):
                            record(value, attributes)
                    fed[index] = n

    def _observe(self, rows: Iterable[tuple[Any, ...]], labels: tuple[str, ...]) -> list[Any]:
        observation = self._observation
        return [observation(row[-1], dict(zip(labels, row[:-1], strict=True))) for row in rows]

    def _callback(self, family: Family, *, fresh: bool) -> Callable[[Any], list[Any]]:
        """The callback of the instrument of ``family``."""
        field, labels = family.field, (NAME, *family.labels)

        def observe(options: Any) -> list[Any]:
            values = self._read(fresh=fresh)
            return [] if values is None else self._observe(getattr(values, field), labels)

        return observe


def instrument(
    meter_provider: Any = None, *, buckets: Sequence[float] = DEFAULT_BUCKETS
) -> Callable[[], None]:
    """Export every policy's counters through the OpenTelemetry metrics API,
    read at collection time (see the module's docstring for the instruments).

    ``meter_provider`` defaults to the global one
    (``opentelemetry.metrics.get_meter_provider()``); ``buckets`` are the
    advised duration histogram bounds in seconds. Counts start from zero at
    ``instrument()``. Returns a function that stops exporting
    (OpenTelemetry cannot remove instruments: the observable ones stop
    reporting, and the histogram stops changing).
    """
    api = _require()
    bounds = check_buckets(buckets)
    provider = meter_provider if meter_provider is not None else api.get_meter_provider()
    reading = Reading()
    exporter = _Exporter(api, provider.get_meter("resilient", __version__), reading, bounds)
    return exporting(reading, exporter.stop)
