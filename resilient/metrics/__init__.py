"""Metrics: ``MetricsCollector`` (statistics and async event streams) here;
exporters in ``resilient.metrics.prometheus`` and ``resilient.metrics.otel``
(extras, imported only when used)."""

from __future__ import annotations

from ._stream import EventStream
from .collector import MetricsCollector, Statistics

__all__ = ["EventStream", "MetricsCollector", "Statistics"]
