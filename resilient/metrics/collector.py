"""``MetricsCollector``: a listener that keeps request statistics and feeds
async event streams.

Request accounting (see docs/observability.md): a request is one call of a
decorated function, counted from the request-level events its outermost
layer emits; every request ends exactly one way, so
``total_requests == successes + failures + rejections``. Retries, rate
limits, timeouts and fallbacks count the policy events themselves, at any
layer.
"""

from __future__ import annotations

import threading
import types
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from .. import events
from ..events import Event
from ._histogram import RELATIVE_ERROR, LogHistogram
from ._stream import EventStream

__all__ = ["MetricsCollector", "Statistics"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Statistics:
    """A snapshot of what a collector has counted. Latencies are seconds.

    ``success_rate`` is ``successes / total_requests`` (1.0 before the first
    request: nothing has failed). Latency covers requests that ran (succeeded
    or failed), not rejected ones; ``p50``/``p95``/``p99`` are within 1 %
    of the exact nearest-rank percentile. ``by_name`` holds the same fields
    per policy name (its own ``by_name`` is empty).
    """

    total_requests: int = 0
    successes: int = 0
    failures: int = 0
    rejections: int = 0
    success_rate: float = 1.0
    average_latency: float = 0.0
    p50: float = 0.0
    p95: float = 0.0
    p99: float = 0.0
    total_retries: int = 0
    rate_limit_count: int = 0
    timeouts: int = 0
    fallbacks: int = 0
    by_name: Mapping[str, Statistics] = field(default_factory=lambda: types.MappingProxyType({}))

    def to_dict(self) -> dict[str, object]:
        """Plain data, ready for ``json.dumps``."""
        out: dict[str, object] = {
            f: getattr(self, f) for f in self.__dataclass_fields__ if f != "by_name"
        }
        out["by_name"] = {name: stats.to_dict() for name, stats in self.by_name.items()}
        return out


class _Tally:
    __slots__ = (
        "failures",
        "fallbacks",
        "latency",
        "rate_limits",
        "rejections",
        "retries",
        "successes",
        "timeouts",
    )

    def __init__(self) -> None:
        self.successes = self.failures = self.rejections = 0
        self.retries = self.rate_limits = self.timeouts = self.fallbacks = 0
        self.latency = LogHistogram()

    def merge(self, other: _Tally) -> None:
        self.successes += other.successes
        self.failures += other.failures
        self.rejections += other.rejections
        self.retries += other.retries
        self.rate_limits += other.rate_limits
        self.timeouts += other.timeouts
        self.fallbacks += other.fallbacks
        self.latency.merge(other.latency)

    def snapshot(self, by_name: Mapping[str, Statistics] | None = None) -> Statistics:
        total = self.successes + self.failures + self.rejections
        p50, p95, p99 = self.latency.quantiles(0.50, 0.95, 0.99)
        return Statistics(
            total_requests=total,
            successes=self.successes,
            failures=self.failures,
            rejections=self.rejections,
            success_rate=self.successes / total if total else 1.0,
            average_latency=self.latency.mean,
            p50=p50,
            p95=p95,
            p99=p99,
            total_retries=self.retries,
            rate_limit_count=self.rate_limits,
            timeouts=self.timeouts,
            fallbacks=self.fallbacks,
            by_name=types.MappingProxyType(dict(by_name or {})),
        )


def _succeeded(t: _Tally, e: Event) -> None:
    t.successes += 1
    t.latency.add(e.duration)  # type: ignore[attr-defined]


def _failed(t: _Tally, e: Event) -> None:
    t.failures += 1
    t.latency.add(e.duration)  # type: ignore[attr-defined]


def _rejected(t: _Tally, e: Event) -> None:
    t.rejections += 1


def _retried(t: _Tally, e: Event) -> None:
    t.retries += 1


def _rate_limited(t: _Tally, e: Event) -> None:
    t.rate_limits += 1


def _timed_out(t: _Tally, e: Event) -> None:
    t.timeouts += 1


def _fell_back(t: _Tally, e: Event) -> None:
    t.fallbacks += 1


_COUNT: dict[type[Event], Callable[[_Tally, Event], None]] = {
    events.CallSucceeded: _succeeded,
    events.CallFailed: _failed,
    events.CallRejected: _rejected,
    events.RetryAttempted: _retried,
    events.RateLimited: _rate_limited,
    events.TimedOut: _timed_out,
    events.StreamInactive: _timed_out,
    events.FallbackUsed: _fell_back,
}


# Call events count only at request level: the policy level is one layer's view.
_REQUEST_ONLY = frozenset({events.CallSucceeded, events.CallFailed, events.CallRejected})


class MetricsCollector:
    """A listener: ``resilient.subscribe(collector)`` (or a registry's or a
    policy's ``subscribe``), then read ``collector.statistics`` or iterate
    ``collector.events()``.

    Memory is bounded: per name a few counters and a histogram of at most
    ``LogHistogram``'s bucket limit. Thread-safe; a short lock per event.
    ``enabled=False`` (or setting ``collector.enabled``) ignores events.
    """

    RELATIVE_ERROR = RELATIVE_ERROR

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = bool(enabled)
        self._lock = threading.Lock()
        # Counted per name only; the totals are summed when read.
        self._by_name: dict[str, _Tally] = {}
        self._streams: tuple[weakref.ref[EventStream], ...] = ()

    def __repr__(self) -> str:
        state = "enabled" if self.enabled else "disabled"
        return f"<MetricsCollector {state} names={sorted(self._by_name)}>"

    def __call__(self, event: Event) -> None:
        if not self.enabled:
            return
        kind = type(event)
        count = _COUNT.get(kind)
        if count is not None and (
            kind not in _REQUEST_ONLY or event.level == events.REQUEST  # type: ignore[attr-defined]
        ):
            with self._lock:
                tally = self._by_name.get(event.name)
                if tally is None:
                    tally = self._by_name[event.name] = _Tally()
                count(tally, event)
        for ref in self._streams:
            stream = ref()
            if stream is not None:
                stream._push(event)

    @property
    def statistics(self) -> Statistics:
        total = _Tally()
        with self._lock:
            tallies = sorted(self._by_name.items())
            for _, tally in tallies:
                total.merge(tally)
            by_name = {name: tally.snapshot() for name, tally in tallies}
        return total.snapshot(by_name)

    def reset(self) -> None:
        """Forget every count and latency (open event streams stay open)."""
        with self._lock:
            self._by_name = {}

    def events(self, maxsize: int = 1000) -> EventStream:
        """An async iterator over every event this collector receives from now
        on, buffering at most ``maxsize`` (the oldest are dropped and counted
        in ``stream.dropped``). Close it with ``aclose()`` or ``async with``;
        a stream nobody references any more stops receiving by itself."""
        stream = EventStream(maxsize, self._forget)
        with self._lock:
            # Dead references (streams dropped without closing) are pruned
            # here rather than from a weakref callback, which could run
            # inside this very lock.
            live = tuple(r for r in self._streams if r() is not None)
            self._streams = (*live, weakref.ref(stream))
        return stream

    def _forget(self, stream: EventStream) -> None:
        with self._lock:
            self._streams = tuple(r for r in self._streams if r() not in (stream, None))
