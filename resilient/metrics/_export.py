"""Reading the counters policies keep in place: one place for
``MetricsCollector`` and both exporters.

A ``Reading`` is a counter reader (it has ``_watch``): subscribed to a
scope (a policy's, a registry's, the process's) it makes the policies
there time their requests, and reads their ``Stats``
when asked, as differences from a baseline taken when each came into view
(subscribing, ``reset``, re-enabling). What it has seen of a ``Stats`` that
leaves its view (the policy was collected, or the scope unsubscribed) is
kept, per kind and name, so totals never go back.

The exporters' series (label ``name`` is the policy's name everywhere):

- ``circuit_breaker_state``: 0 closed, 1 open, 2 half-open. A breaker forced
  open reads 1 and one forced closed reads 0: dashboards and alerts see what
  callers get (rejections or not); ``circuit_breaker_state_changes_total``
  says whether it was forced (``to_state="forced_open"``). Read live at
  scrape time; should two live breakers share a name, the least healthy
  state wins (open, then half-open, then closed).
- ``circuit_breaker_shadow``: 1 for a shadow breaker
  (``CircuitBreakerConfig(shadow=True)``), whose states, changes and
  ``rejected`` calls are what it would have done: it rejects nothing.
  Absent for a real breaker.
- ``circuit_breaker_state_changes_total{from_state, to_state}``
- ``circuit_breaker_calls_total{result}``: every call through a breaker
  (every attempt of a retry), ``success`` / ``failure`` / ``rejected``, as
  the breaker counted it.
- ``retry_attempts_total``: retries (attempts after the first).
- ``hedging_attempts_total``: hedges (attempts a hedged call started after
  the first).
- ``timeout_operations_total``: calls that timed out (a stream's inactivity
  timeout included).
- ``bulkhead_executions_total{state}``: ``success`` / ``failure`` for calls a
  bulkhead admitted, ``rejected`` for calls it turned away.
- ``bulkhead_limit``: a bulkhead's ``max_concurrent``, read live.
- ``rate_limiter_calls_total{result}``: ``admitted`` / ``rejected`` by a
  rate limiter.
- ``retry_budget_refusals_total``: retries a retry budget refused (under the
  retry's name).
- ``failover_calls_total{target}``: calls a failover's target answered
  (``primary``: the decorated function; an alternate: its name).
- ``resilient_operation_duration_seconds``: the duration of each request
  (one call of a decorated function, retries included) that ran.
"""

from __future__ import annotations

import bisect
import itertools
import math
import threading
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, NamedTuple, TypeVar

from .. import events
from .._execution import counters as _stats
from .._execution.counters import BOUNDS, BUCKETS_PER_OCTAVE, DEFAULT_BUCKETS, Stats
from .._runtime import fork as _fork

if TYPE_CHECKING:
    from ..events import ListenerSet

__all__ = [
    "FAMILIES",
    "Family",
    "exporting",
    "DEFAULT_BUCKETS",
    "STATE_VALUES",
    "Counts",
    "Reading",
    "Series",
    "View",
    "check_buckets",
    "cumulative",
    "cutoffs",
    "middle",
    "outermost",
    "series",
]

STATE_VALUES = {
    "closed": 0,
    "open": 1,
    "half_open": 2,
    "forced_open": 1,
    "forced_closed": 0,
}
# Which state a name reports when live breakers share it: the least healthy.
_SEVERITY = {0: 0, 2: 1, 1: 2}
K = TypeVar("K")

# The plain integer and float fields of a Stats, summed and subtracted alike.
FIELDS = (
    "latency_sum",
    "first_item_sum",
    "failures",
    "rejections",
    "retries",
    "rate_limited",
    "refused",
    "exhausted",
    "timeouts",
    "fallbacks",
    "hedges",
    "succeeded",
    "failed",
    "rejected",
)


class Counts:
    """What was counted under one kind of policy and one name: one ``Stats``
    between two moments, or several summed. ``latency`` is sparse (bucket
    index to count, the buckets of ``_stats.BOUNDS``)."""

    __slots__ = ("changes", "first_items", "latency", *FIELDS)

    latency_sum: float
    first_item_sum: float
    failures: int
    rejections: int
    retries: int
    rate_limited: int
    refused: int
    exhausted: int
    timeouts: int
    fallbacks: int
    hedges: int
    succeeded: int
    failed: int
    rejected: int

    def __init__(self) -> None:
        for f in FIELDS:
            setattr(self, f, 0)
        self.latency_sum = self.first_item_sum = 0.0
        self.latency: dict[int, int] = {}
        self.first_items: dict[int, int] = {}
        self.changes: dict[tuple[str, str], int] = {}

    @classmethod
    def of(cls, stats: Stats) -> Counts:
        """What ``stats`` holds now."""
        counts = cls()
        counts.add(stats, None)
        return counts

    def add(self, stats: Stats, base: Counts | None) -> None:
        """Add what ``stats`` counted since ``base`` (``None``: ever)."""
        stats.fold()
        for f in FIELDS:
            now = getattr(stats, f)
            setattr(self, f, getattr(self, f) + (now if base is None else now - getattr(base, f)))
        for mine, theirs, before in (
            (self.latency, stats.latency, base.latency if base is not None else {}),
            (self.first_items, stats.first_items, base.first_items if base is not None else {}),
        ):
            for i, n in list(theirs.items()):  # list(): taken at once, under the GIL
                if n:
                    n -= before.get(i, 0)
                    if n:
                        mine[i] = mine.get(i, 0) + n
        changes = self.changes
        previous = base.changes if base is not None else {}
        for key, n in _copy(stats.changes).items():
            n -= previous.get(key, 0)
            if n:
                changes[key] = changes.get(key, 0) + n

    def merge(self, other: Counts) -> None:
        for f in FIELDS:
            setattr(self, f, getattr(self, f) + getattr(other, f))
        _add(self.latency, other.latency)
        _add(self.first_items, other.first_items)
        _add(self.changes, other.changes)

    def copy(self) -> Counts:
        counts = Counts()
        counts.merge(self)
        return counts

    def __bool__(self) -> bool:
        return bool(
            self.latency
            or self.first_items
            or self.changes
            or any(getattr(self, f) for f in FIELDS)
        )

    # -- request level ---------------------------------------------------------

    @property
    def ran(self) -> int:
        """Requests that ran (succeeded or failed): those with a duration."""
        return sum(self.latency.values())

    @property
    def streams(self) -> int:
        """Streams that yielded a first item (those with a time to it)."""
        return sum(self.first_items.values())


def _add(mine: dict[K, int], theirs: dict[K, int]) -> None:
    """Add ``theirs`` counts into ``mine``, key by key."""
    for key, n in theirs.items():
        mine[key] = mine.get(key, 0) + n


def _copy(changes: dict[tuple[str, str], int]) -> dict[tuple[str, str], int]:
    # A breaker may add a key while we copy (from another thread).
    while True:
        try:
            return dict(changes)
        except RuntimeError:  # pragma: no cover - a resize mid-copy
            continue


Key = tuple[str, str]  # (kind, name)


class View(NamedTuple):
    """One read: ``counts`` per (kind, name) of every ``Stats`` seen (zeros
    included), and the live ``Stats`` in view (for their gauges)."""

    counts: dict[Key, Counts]
    live: list[Stats]


class Reading:
    """A counter reader: what it has seen of the ``Stats`` in the scopes it
    watches (see the module's docstring). Thread-safe; reads are a pass over
    the counters, off every request's path.

    ``active=False`` counts nothing until ``activate`` rebaselines.
    """

    def __init__(self, *, active: bool = True) -> None:
        self._lock = threading.Lock()
        _fork.renew_in_child(self, _fork.locks("_lock"))
        self.scopes: tuple[ListenerSet, ...] = ()
        # Baselines of the Stats in view that had counts when they came into
        # view, by id (no weak dictionary: the garbage collector clears weak
        # references before ``Stats.__del__`` hands a Stats over).
        self._base: dict[int, tuple[weakref.ref[Stats], Counts]] = {}
        # What left the view, by (kind, name): bounded by the names seen.
        self._kept: dict[Key, Counts] = {}
        # Handed over by Stats being collected, not yet in _kept (no lock
        # may be taken where they are handed over).
        self._gone: deque[tuple[int, Key, Counts]] = deque()
        self._epoch = 0
        self.active = active
        self._stop_keeping = _stats.keep_counts(self)

    def __repr__(self) -> str:
        return f"<Reading scopes={len(self.scopes)} active={self.active}>"

    # -- the reader protocol (ListenerSet.subscribe) ---------------------------

    def _watch(self, scope: ListenerSet) -> Callable[[], None]:
        self.watch(scope)
        return lambda: self.unwatch(scope)

    def watch(self, scope: ListenerSet) -> None:
        """Read ``scope`` too, from now on."""
        with self._lock:
            seen = {id(s) for s in self._in_view(self.scopes)} if self.active else set()
            self.scopes = (*self.scopes, scope)
            if self.active:
                for stats in self._in_view(self.scopes):
                    if id(stats) not in seen:
                        self._baseline(stats)

    def unwatch(self, scope: ListenerSet) -> None:
        """Stop reading ``scope``; what was seen of it is kept."""
        with self._lock:
            before = self._in_view(self.scopes)
            scopes = list(self.scopes)
            scopes.remove(scope)
            self.scopes = tuple(scopes)
            if not self.active:
                return
            still = {id(s) for s in self._in_view(self.scopes)}
            for stats in before:
                if id(stats) not in still:
                    self._keep(stats)

    def close(self) -> None:
        """Stop hearing of collected policies (the reader is done)."""
        self._stop_keeping()

    # -- counting on and off ---------------------------------------------------

    def activate(self, active: bool) -> None:
        """Count (from now on) or stop counting (keeping what was counted)."""
        with self._lock:
            if active == self.active:
                return
            self._drain()
            self._epoch += 1
            if not active:
                for stats in self._in_view(self.scopes):
                    self._keep(stats)
            self.active = active
            self._rebaseline()

    def reset(self) -> None:
        """Forget everything counted: count from now on."""
        with self._lock:
            self._epoch += 1
            self._gone.clear()
            self._kept = {}
            self._rebaseline()

    # -- reading -----------------------------------------------------------------

    def read(self) -> View:
        """What was counted, per (kind, name), and the live Stats in view."""
        with self._lock:
            self._drain()
            counts = {key: kept.copy() for key, kept in self._kept.items()}
            live = self._in_view(self.scopes)
            if self.active:
                base = self._base
                for stats in live:
                    key = (stats.kind, stats.name)
                    total = counts.get(key)
                    if total is None:
                        total = counts[key] = Counts()
                    total.add(stats, _base_of(base, stats))
        return View(counts, live)

    # -- internals (under the lock) ----------------------------------------------

    def _in_view(self, scopes: Iterable[ListenerSet]) -> list[Stats]:
        found: dict[int, Stats] = {}
        for scope in outermost(scopes):
            for stats in _stats.within(scope):
                found[id(stats)] = stats
        for stats in found.values():
            refresh = stats.refresh
            if refresh is not None:
                refresh()
        return list(found.values())

    def _baseline(self, stats: Stats) -> None:
        counts = Counts.of(stats)
        if counts:
            self._base[id(stats)] = (weakref.ref(stats), counts)
        else:
            self._base.pop(id(stats), None)

    def _rebaseline(self) -> None:
        self._base = {}
        if self.active:
            for stats in self._in_view(self.scopes):
                self._baseline(stats)

    def _keep(self, stats: Stats) -> None:
        """``stats`` leaves the view: keep what was seen of it."""
        counts = Counts()
        counts.add(stats, _base_of(self._base, stats))
        self._base.pop(id(stats), None)
        if counts:
            self._add_kept((stats.kind, stats.name), counts)

    def _add_kept(self, key: Key, counts: Counts) -> None:
        kept = self._kept.get(key)
        if kept is None:
            self._kept[key] = counts
        else:
            kept.merge(counts)

    def _drain(self) -> None:
        gone = self._gone
        while gone:
            epoch, key, counts = gone.popleft()
            if epoch == self._epoch:
                self._add_kept(key, counts)

    # -- a policy was collected (see _stats.keep_counts) ---------------------------

    def retired(self, stats: Stats) -> None:
        # Runs wherever the garbage collector does, maybe inside our own lock
        # in this very thread: takes no lock, only reads and appends.
        if not self.active:
            return
        scopes = self.scopes
        if not any(stats.scope.within(scope) for scope in scopes):
            return
        epoch = self._epoch
        entry = self._base.pop(id(stats), None)
        base = None
        if entry is not None:
            target = entry[0]()
            # Dead already when the collector broke a cycle: still this Stats,
            # which is alive at that address until __del__ returns.
            if target is stats or target is None:
                base = entry[1]
        counts = Counts()
        counts.add(stats, base)
        if counts:
            self._gone.append((epoch, (stats.kind, stats.name), counts))
            if len(self._gone) > 256 and self._lock.acquire(blocking=False):
                try:
                    self._drain()
                finally:
                    self._lock.release()


class Family(NamedTuple):
    """One counted series as both exporters name and describe it."""

    name: str  # Prometheus's (before any namespace)
    instrument: str  # OpenTelemetry's
    kind: str  # "gauge" or "counter"
    field: str  # the Series field with its rows: (policy name, *labels, value)
    labels: tuple[str, ...]  # after the policy's name
    unit: str  # OpenTelemetry's
    text: str  # the help / description


FAMILIES = (
    Family(
        "circuit_breaker_state",
        "resilient.circuit_breaker.state",
        "gauge",
        "states",
        (),
        "",
        "Circuit breaker state: 0 closed (or forced closed), 1 open (or forced open), 2 half-open",
    ),
    Family(
        "circuit_breaker_shadow",
        "resilient.circuit_breaker.shadow",
        "gauge",
        "shadows",
        (),
        "",
        "1 for a shadow circuit breaker: its states, changes and rejections are what "
        "it would have done (it rejects nothing)",
    ),
    Family(
        "circuit_breaker_state_changes",
        "resilient.circuit_breaker.state_changes",
        "counter",
        "changes",
        ("from_state", "to_state"),
        "{transition}",
        "Circuit breaker state transitions",
    ),
    Family(
        "circuit_breaker_calls",
        "resilient.circuit_breaker.calls",
        "counter",
        "breaker_calls",
        ("result",),
        "{call}",
        "Calls through a circuit breaker, by how the breaker counted them",
    ),
    Family(
        "retry_attempts",
        "resilient.retry.attempts",
        "counter",
        "retries",
        (),
        "{call}",
        "Retries (attempts after the first)",
    ),
    Family(
        "hedging_attempts",
        "resilient.hedging.attempts",
        "counter",
        "hedges",
        (),
        "{call}",
        "Hedges (attempts a hedged call started after the first)",
    ),
    Family(
        "timeout_operations",
        "resilient.timeout.operations",
        "counter",
        "timeouts",
        (),
        "{call}",
        "Calls that timed out",
    ),
    Family(
        "bulkhead_executions",
        "resilient.bulkhead.executions",
        "counter",
        "bulkhead",
        ("state",),
        "{call}",
        "Calls through a bulkhead: success, failure or rejected",
    ),
    Family(
        "bulkhead_limit",
        "resilient.bulkhead.limit",
        "gauge",
        "limits",
        (),
        "{call}",
        "A bulkhead's limit of concurrent calls",
    ),
    Family(
        "rate_limiter_calls",
        "resilient.rate_limiter.calls",
        "counter",
        "rate_limiter",
        ("result",),
        "{call}",
        "Calls a rate limiter admitted or rejected",
    ),
    Family(
        "retry_budget_refusals",
        "resilient.retry.budget_refusals",
        "counter",
        "budget_refusals",
        (),
        "{call}",
        "Retries a retry budget refused",
    ),
    Family(
        "failover_calls",
        "resilient.failover.calls",
        "counter",
        "failover",
        ("target",),
        "{call}",
        "Calls through a failover, by the target that answered",
    ),
)


def exporting(reading: Reading, stop: Callable[[], object]) -> Callable[[], None]:
    """Feed ``reading`` every event from now on. Returns the function that
    ends an exporter, once: ``stop()`` (the exporter's own end), then the
    subscription and the reading."""
    unsubscribe = events.GLOBAL.subscribe(reading)
    done = False

    def uninstrument() -> None:
        nonlocal done
        if not done:
            done = True
            try:
                stop()
            finally:  # fed no more events, whatever the exporter's end raised
                unsubscribe()
                reading.close()

    return uninstrument


def _base_of(base: dict[int, tuple[weakref.ref[Stats], Counts]], stats: Stats) -> Counts | None:
    entry = base.get(id(stats))
    if entry is None or entry[0]() is not stats:
        return None  # came into view with nothing counted, or after
    return entry[1]


def outermost(scopes: Iterable[ListenerSet]) -> list[ListenerSet]:
    """``scopes`` without those inside another one of them (or repeated)."""
    distinct: list[ListenerSet] = []
    for scope in scopes:
        if not any(scope is s for s in distinct):
            distinct.append(scope)
    return [s for s in distinct if not any(o is not s and s.within(o) for o in distinct)]


# -- the exporters' series ---------------------------------------------------------


class Series(NamedTuple):
    """Every exported value, backend-neutral, sorted by name then labels."""

    states: list[tuple[str, int]]  # name, STATE_VALUES
    changes: list[tuple[str, str, str, int]]  # name, from_state, to_state, count
    breaker_calls: list[tuple[str, str, int]]  # name, result, count
    retries: list[tuple[str, int]]
    hedges: list[tuple[str, int]]
    timeouts: list[tuple[str, int]]
    bulkhead: list[tuple[str, str, int]]  # name, state, count
    limits: list[tuple[str, float]]
    durations: list[tuple[str, Counts]]  # name, the requests' latency (and sum)
    first_items: list[tuple[str, Counts]]  # name, the streams' time to first item
    rate_limiter: list[tuple[str, str, int]]  # name, result, count
    budget_refusals: list[tuple[str, int]]
    shadows: list[tuple[str, int]]  # name, 1: the breakers that only watch
    failover: list[tuple[str, str, int]]  # name, target that answered, count


def series(view: View) -> Series:
    """The exporters' values from one read."""
    states: dict[str, int] = {}
    limits: dict[str, float] = {}
    shadows: dict[str, int] = {}
    for stats in view.live:
        gauges = stats.gauges() if stats.gauges is not None else None
        if gauges is None:
            continue
        if stats.kind == "circuit_breaker":
            value = STATE_VALUES.get(str(gauges.get("state")), 1)
            held = states.get(stats.name)
            if held is None or _SEVERITY[value] > _SEVERITY[held]:
                states[stats.name] = value
            if gauges.get("shadow"):
                shadows[stats.name] = 1
        elif stats.kind == "bulkhead":
            limit = gauges.get("limit")
            if isinstance(limit, (int, float)):
                limits[stats.name] = float(limit)

    changes: list[tuple[str, str, str, int]] = []
    breaker_calls: list[tuple[str, str, int]] = []
    bulkhead: list[tuple[str, str, int]] = []
    rate_limiter: list[tuple[str, str, int]] = []
    failover: list[tuple[str, str, int]] = []
    refusals: dict[str, int] = {}
    retries: dict[str, int] = {}
    hedges: dict[str, int] = {}
    timeouts: dict[str, int] = {}
    durations: dict[str, Counts] = {}
    first_items: dict[str, Counts] = {}
    for (kind, name), counts in sorted(view.counts.items(), key=lambda item: item[0][::-1]):
        if kind == "circuit_breaker":
            for (old, new), n in sorted(counts.changes.items()):
                changes.append((name, old, new, n))
            breaker_calls += [
                (name, "failure", counts.failed),
                (name, "rejected", counts.rejected),
                (name, "success", counts.succeeded),
            ]
        elif kind == "bulkhead":
            bulkhead += [
                (name, "failure", counts.failed),
                (name, "rejected", counts.rejected),
                (name, "success", counts.succeeded),
            ]
        elif kind == "rate_limiter":
            rate_limiter += [
                (name, "admitted", counts.succeeded),
                (name, "rejected", counts.rejected),
            ]
        elif kind == "failover":
            # A failover counts the primary's answers as succeeded, and the
            # alternates' in its changes table: (target, "answered").
            failover.append((name, "primary", counts.succeeded))
            failover += [(name, target, n) for (target, _), n in sorted(counts.changes.items())]
        if counts.refused:
            refusals[name] = refusals.get(name, 0) + counts.refused
        if counts.retries or kind == "retry":
            retries[name] = retries.get(name, 0) + counts.retries
        if counts.hedges or kind == "hedging":
            hedges[name] = hedges.get(name, 0) + counts.hedges
        if counts.timeouts or kind == "timeout":
            timeouts[name] = timeouts.get(name, 0) + counts.timeouts
        if counts.latency:
            total = durations.setdefault(name, Counts())
            total.latency_sum += counts.latency_sum
            _add(total.latency, counts.latency)
        if counts.first_items:
            total = first_items.setdefault(name, Counts())
            total.first_item_sum += counts.first_item_sum
            _add(total.first_items, counts.first_items)
    return Series(
        states=sorted(states.items()),
        changes=sorted(changes),
        breaker_calls=sorted(breaker_calls),
        retries=sorted(retries.items()),
        hedges=sorted(hedges.items()),
        timeouts=sorted(timeouts.items()),
        bulkhead=sorted(bulkhead),
        limits=sorted(limits.items()),
        durations=sorted(durations.items(), key=lambda item: item[0]),
        first_items=sorted(first_items.items(), key=lambda item: item[0]),
        rate_limiter=sorted(rate_limiter),
        budget_refusals=sorted(refusals.items()),
        shadows=sorted(shadows.items()),
        failover=sorted(failover),
    )


# -- the duration histogram ----------------------------------------------------------


def check_buckets(buckets: Sequence[float]) -> tuple[float, ...]:
    """``buckets`` as upper bounds in seconds: finite, positive, increasing
    (a trailing infinity is dropped: every exporter has its own)."""
    try:
        bounds = [float(b) for b in buckets]
    except (TypeError, ValueError):
        raise TypeError(f"buckets must be numbers (seconds), got {buckets!r}") from None
    if bounds and bounds[-1] == math.inf:
        bounds.pop()
    if not bounds:
        raise ValueError("buckets must hold at least one finite bound")
    if any(not math.isfinite(b) or b <= 0 for b in bounds):
        raise ValueError(f"buckets must be finite and positive, got {list(buckets)!r}")
    if any(a >= b for a, b in itertools.pairwise(bounds)):
        raise ValueError(f"buckets must be increasing, got {list(buckets)!r}")
    return tuple(bounds)


def cutoffs(bounds: Sequence[float]) -> list[int]:
    """For each bound, how many internal buckets lie wholly at or below it:
    those whose upper bound is ``<=`` it (all of them, for the bounds of
    ``DEFAULT_BUCKETS``, which are internal bounds too)."""
    return [bisect.bisect_right(BOUNDS, b) for b in bounds]


def cumulative(latency: dict[int, int], cuts: Sequence[int]) -> list[int]:
    """Cumulative counts at each cutoff of ``cutoffs`` (Prometheus' ``le``
    buckets, without ``+Inf``)."""
    out = []
    ordered = sorted(latency.items())
    seen = j = 0
    for cut in cuts:
        while j < len(ordered) and ordered[j][0] < cut:
            seen += ordered[j][1]
            j += 1
        out.append(seen)
    return out


_HALF_STEP = math.sqrt(2.0 ** (1.0 / BUCKETS_PER_OCTAVE))


def middle(index: int) -> float:
    """The value standing for the durations of internal bucket ``index``: its
    geometric middle (as ``_stats.quantile`` reports), within
    ``_stats.RELATIVE_ERROR`` of each of them (below a microsecond and
    beyond the last bound, where the buckets are open, less so)."""
    if index <= 0:
        return BOUNDS[0] / _HALF_STEP
    if index >= len(BOUNDS):
        return BOUNDS[-1]
    return math.sqrt(BOUNDS[index - 1] * BOUNDS[index])
