"""``MetricsCollector``: request statistics read from the counters policies
keep in place, and async event streams.

Request accounting (see docs/observability.md): a request is one call of a
decorated function, counted by the outermost layer of its chain; every
request ends exactly one way, so
``total_requests == successes + failures + rejections``. Retries, rate
limits, timeouts and fallbacks are the policies' own counts, at any layer.
"""

from __future__ import annotations

import threading
import types
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .._execution import counters as _stats
from .._runtime import fork as _fork
from ..events import Event
from ._export import Counts, Reading, outermost
from ._stream import EventStream

if TYPE_CHECKING:
    from ..events import ListenerSet

__all__ = ["MetricsCollector", "Statistics"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Statistics:
    """A snapshot of what a collector has counted. Latencies are seconds.

    ``success_rate`` is ``successes / total_requests`` (1.0 before the first
    request: nothing has failed). Latency covers requests that ran (succeeded
    or failed), not rejected ones; ``average_latency`` is exact, and
    ``p50``/``p95``/``p99`` are within ``resilient._execution.counters.RELATIVE_ERROR``
    (about 2.2 %) of the exact nearest-rank percentile for durations from
    1 µs to about 18 minutes (read from fixed logarithmic buckets, 16 per
    doubling). ``streams`` counts the streams (generator functions, async
    generator functions) that yielded a first item; ``average_first_item``
    and ``first_item_p50``/``p95``/``p99`` are their time to it, read the
    same way. ``by_name`` holds the same fields per policy name (its own
    ``by_name`` is empty).
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
    budget_refusals: int = 0
    timeouts: int = 0
    fallbacks: int = 0
    hedges: int = 0
    #: Streams that yielded a first item, and the time they took to it.
    streams: int = 0
    average_first_item: float = 0.0
    first_item_p50: float = 0.0
    first_item_p95: float = 0.0
    first_item_p99: float = 0.0
    #: Per name only: a bulkhead's current limit (``max_concurrent``, or where
    #: an adaptive limit stands), read live; None elsewhere.
    limit: int | None = None
    by_name: Mapping[str, Statistics] = field(default_factory=lambda: types.MappingProxyType({}))

    def to_dict(self) -> dict[str, object]:
        """Plain data, ready for ``json.dumps``."""
        out: dict[str, object] = {
            f: getattr(self, f) for f in self.__dataclass_fields__ if f != "by_name"
        }
        out["by_name"] = {name: stats.to_dict() for name, stats in self.by_name.items()}
        return out


def _counted(counts: Counts) -> bool:
    """Whether ``counts`` holds anything ``Statistics`` reports."""
    return bool(
        counts.latency
        or counts.first_items
        or counts.rejections
        or counts.retries
        or counts.rate_limited
        or counts.refused
        or counts.timeouts
        or counts.fallbacks
        or counts.hedges
    )


def _limits(live: list[_stats.Stats]) -> dict[str, int]:
    """The current limit of each live bulkhead, by name."""
    found: dict[str, int] = {}
    for stats in live:
        if stats.kind == "bulkhead" and stats.gauges is not None:
            limit = (stats.gauges() or {}).get("limit")
            if isinstance(limit, (int, float)):
                found[stats.name] = int(limit)
    return found


def _snapshot(
    counts: Counts, by_name: Mapping[str, Statistics] | None = None, limit: int | None = None
) -> Statistics:
    ran = counts.ran
    total = ran + counts.rejections
    successes = ran - counts.failures
    p50 = p95 = p99 = 0.0
    if ran:
        p50, p95, p99 = (_stats.quantile(counts.latency, q) for q in (0.50, 0.95, 0.99))
    streams = counts.streams
    first = (0.0, 0.0, 0.0)
    if streams:
        waits = counts.first_items
        first = tuple(_stats.quantile(waits, q) for q in (0.50, 0.95, 0.99))  # type: ignore[assignment]
    return Statistics(
        streams=streams,
        average_first_item=counts.first_item_sum / streams if streams else 0.0,
        first_item_p50=first[0],
        first_item_p95=first[1],
        first_item_p99=first[2],
        total_requests=total,
        successes=successes,
        failures=counts.failures,
        rejections=counts.rejections,
        success_rate=successes / total if total else 1.0,
        average_latency=counts.latency_sum / ran if ran else 0.0,
        p50=p50,
        p95=p95,
        p99=p99,
        total_retries=counts.retries,
        rate_limit_count=counts.rate_limited,
        budget_refusals=counts.refused,
        timeouts=counts.timeouts,
        fallbacks=counts.fallbacks,
        hedges=counts.hedges,
        limit=limit,
        by_name=types.MappingProxyType(dict(by_name or {})),
    )


class MetricsCollector:
    """Request statistics of a scope: ``resilient.subscribe(collector)`` (or
    a registry's or a policy's ``subscribe``), then read
    ``collector.statistics`` or iterate ``collector.events()``.

    A collector is a counter reader, not an event listener: subscribed, it
    makes the policies in that scope time their requests into the counters
    they keep in place, and reads those counters when ``statistics`` is
    read, as differences from when it subscribed (or was reset, or
    re-enabled). No event is built for it. Subscribe it to several scopes
    and it reads each policy once. What it counted of a policy that is
    since collected, or of a scope it left, is kept.

    Memory is bounded: a baseline per policy it watches and a tally per
    kind of policy and name it has seen. ``enabled=False`` (or setting
    ``collector.enabled``) counts nothing until enabled again.

    While a stream from ``events`` is open, the collector also listens
    to events in its scopes (so they are built only then).
    """

    RELATIVE_ERROR = _stats.RELATIVE_ERROR

    def __init__(self, enabled: bool = True) -> None:
        self._reading = Reading(active=bool(enabled))
        self._lock = threading.Lock()
        _fork.renew_in_child(self, _fork.locks("_lock"))
        self._streams: tuple[weakref.ref[EventStream], ...] = ()
        # The scopes the event listener is subscribed to, while streams are open.
        self._listening: list[tuple[ListenerSet, Callable[[], None]]] = []

    def __repr__(self) -> str:
        state = "enabled" if self.enabled else "disabled"
        return f"<MetricsCollector {state} scopes={len(self._reading.scopes)}>"

    @property
    def enabled(self) -> bool:
        return self._reading.active

    @enabled.setter
    def enabled(self, value: bool) -> None:
        self._reading.activate(bool(value))

    # -- the reader protocol (ListenerSet.subscribe) -------------------------------

    def _watch(self, scope: ListenerSet) -> Callable[[], None]:
        self._reading.watch(scope)
        with self._lock:
            self._listen()

        def detach() -> None:
            self._reading.unwatch(scope)
            with self._lock:
                self._listen()

        return detach

    # -- statistics ---------------------------------------------------------------

    @property
    def statistics(self) -> Statistics:
        by_name: dict[str, Counts] = {}
        view = self._reading.read()
        limits = _limits(view.live)
        for (_, name), counts in view.counts.items():
            if not _counted(counts):
                continue
            total = by_name.get(name)
            if total is None:
                by_name[name] = counts
            else:
                total.merge(counts)
        grand = Counts()
        named = {}
        for name in sorted(by_name):
            grand.merge(by_name[name])
            named[name] = _snapshot(by_name[name], limit=limits.get(name))
        return _snapshot(grand, named)

    def reset(self) -> None:
        """Forget every count and latency: count from now on (open event
        streams stay open)."""
        self._reading.reset()

    # -- event streams ---------------------------------------------------------------

    def events(self, maxsize: int = 1000) -> EventStream:
        """An async iterator over every event of this collector's scopes from
        now on, buffering at most ``maxsize`` (the oldest are dropped and
        counted in ``stream.dropped``). Close it with ``aclose()`` or
        ``async with``; a stream nobody references any more stops receiving
        by itself. While any stream is open the collector listens to events
        (and the policies in its scopes build them)."""
        stream = EventStream(maxsize, self._forget)
        with self._lock:
            # Dead references (streams dropped without closing) are pruned
            # here rather than from a weakref callback, which could run
            # inside this very lock.
            live = tuple(r for r in self._streams if r() is not None)
            self._streams = (*live, weakref.ref(stream))
            self._listen()
        return stream

    def _forget(self, stream: EventStream) -> None:
        with self._lock:
            self._streams = tuple(r for r in self._streams if r() not in (stream, None))
            self._listen()

    def _deliver(self, event: Event) -> None:
        """The event listener, subscribed while streams are open."""
        if not self._reading.active:
            return
        delivered = False
        for ref in self._streams:
            stream = ref()
            if stream is not None:
                stream._push(event)
                delivered = True
        if not delivered and self._lock.acquire(blocking=False):
            # Every stream was dropped without closing: stop listening.
            try:
                self._streams = tuple(r for r in self._streams if r() is not None)
                self._listen()
            finally:
                self._lock.release()

    def _listen(self) -> None:
        """Subscribe the event listener to the outermost scopes watched while
        a stream is open, and nowhere otherwise (under ``_lock``)."""
        wanted = (
            outermost(self._reading.scopes) if any(r() is not None for r in self._streams) else []
        )
        keep = []
        for scope, unsubscribe in self._listening:
            if any(scope is w for w in wanted):
                keep.append((scope, unsubscribe))
            else:
                unsubscribe()
        for scope in wanted:
            if not any(scope is s for s, _ in keep):
                keep.append((scope, scope.subscribe(self._deliver)))
        self._listening = keep
