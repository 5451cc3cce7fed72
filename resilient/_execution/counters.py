"""The counters each policy keeps in place, and the latency histogram.

Every policy owns one ``Stats`` per name it reports under (its own
name, or for an unnamed policy the name of the function it protects).
Counting is an in-place integer add on a slotted object: no event, no
allocation, no lock. (Under the GIL an ``x += 1`` on a slot or a list item
is never interleaved with another thread's: CPython only switches threads
at calls and backward jumps. Free-threaded builds are not a target yet.)

Readers (``MetricsCollector``, the Prometheus and OpenTelemetry exporters)
find the ``Stats`` of the policies in their scope with ``within`` and
read them when asked, at scrape or collection time. A ``Stats`` lives as
long as its policy; ``keep_counts`` hands a reader each one about to
go, so what it counted is not lost with it.

Latency is a fixed-bucket histogram: ``BUCKETS_PER_OCTAVE`` logarithmic
buckets per doubling from 1 µs to about 18 minutes, plus the Prometheus
default bounds exactly, so a quantile is within ``RELATIVE_ERROR`` of the
truth and the exporters' default buckets are exact. A timed call only
appends its duration to ``pending``; ``Stats.fold`` buckets what is
pending, sorted, a bucket at a time, when ``FOLD_AT`` durations wait
and before any read. Why: finding one duration's bucket (a bisection over
the bounds) was the largest part of what metering added to a call.
"""

from __future__ import annotations

import bisect
import logging
import math
import threading
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from .._runtime import fork as _fork

if TYPE_CHECKING:
    from ..events import ListenerSet

T = TypeVar("T")

log = logging.getLogger("resilient")

__all__ = [
    "BOUNDS",
    "DEFAULT_BUCKETS",
    "FOLD_AT",
    "RELATIVE_ERROR",
    "Stats",
    "keep_counts",
    "move",
    "quantile",
    "stats_for",
    "weakly",
    "within",
]

# Seconds: 1 ms to 2 min, for calls to other services (the exporters' default).
DEFAULT_BUCKETS = (
    0.001,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
)

BUCKETS_PER_OCTAVE = 16
_STEP = 2.0 ** (1.0 / BUCKETS_PER_OCTAVE)
#: Upper bounds (seconds, inclusive) of the latency buckets; one more bucket
#: past the last holds everything longer.
BOUNDS: tuple[float, ...] = tuple(
    sorted({1e-6 * _STEP**i for i in range(BUCKETS_PER_OCTAVE * 30 + 1)} | set(DEFAULT_BUCKETS))
)
#: How far a reported quantile may be from the exact one (half a bucket).
RELATIVE_ERROR = (_STEP - 1.0) / 2.0


def bucket(duration: float, _bounds: tuple[float, ...] = BOUNDS) -> int:
    """The index of the bucket ``duration`` falls in (``bisect_left``:
    bounds are inclusive, as Prometheus's ``le``)."""
    return bisect.bisect_left(_bounds, duration)


#: Durations a ``Stats`` keeps unbucketed at most (then it folds them).
FOLD_AT = 128

_NO_LATENCY: dict[int, int] = {}  # shared, never written: see Stats.ensure_latency
# Likewise; a tuple, so a write that should never happen fails loudly.
_NO_PENDING: list[float] = ()  # type: ignore[assignment]
# Folds of every Stats, one at a time: a fold takes a batch out of a list
# other threads append to. Reentrant: the garbage collector may retire
# another Stats (and fold it) during a fold.
_fold_lock = threading.RLock()
_fork.renew_module_locks(__name__, "_fold_lock")
_NO_CHANGES: dict[tuple[str, str], int] = {}  # shared, never written: see Stats.changed


class Stats:
    """Counters of one policy under one name.

    Request level (the call as its caller saw it, counted by the outermost
    layer while a reader watches): ``latency`` (counts per bucket of the
    requests that ran, success or failure: sparse, ``bucket index -> count``,
    so a policy whose calls take much the same time keeps a few entries, not
    one per bucket), ``latency_sum``, ``failures``, ``rejections``.
    Successes are ``sum(latency.values()) - failures``.

    Policy level (always counted, off the hot path): ``retries``,
    ``rate_limited`` (retries that honoured a ``retry_after``, calls a rate
    limiter refused), ``refused`` (retries a retry budget refused),
    ``exhausted``, ``timeouts``, ``fallbacks``, ``hedges``,
    ``succeeded`` / ``failed`` / ``rejected`` (calls through a breaker or a
    bulkhead as that policy counted them), ``changes`` (state transitions,
    ``(old, new) -> count``). ``refresh``, when set, folds counts kept
    elsewhere (a breaker's lock-free successes) in before a read; ``gauges``
    reports live values (a breaker's ``state``, a bulkhead's ``limit``).

    Streams (request level): ``first_items`` (counts per bucket of the time
    each stream took to its first item) and ``first_item_sum``.
    """

    __slots__ = (
        "__weakref__",
        "changes",
        "exhausted",
        "failed",
        "failures",
        "fallbacks",
        "first_item_sum",
        "first_items",
        "folding",
        "gauges",
        "hedges",
        "kind",
        "latency",
        "latency_sum",
        "name",
        "pending",
        "rate_limited",
        "refresh",
        "refused",
        "rejected",
        "rejections",
        "retries",
        "scope",
        "succeeded",
        "timeouts",
    )

    def __init__(self, name: str, kind: str, scope: ListenerSet) -> None:
        self.name = name
        self.kind = kind
        self.scope = scope
        # Allocated by the first chain that meters into it (``ensure_latency``):
        # a policy nothing times (a breaker per key, a registry entry) stays small.
        self.latency: dict[int, int] = _NO_LATENCY
        self.pending: list[float] = _NO_PENDING  # durations not bucketed yet
        self.folding = False
        self.latency_sum = 0.0
        self.failures = self.rejections = 0
        self.retries = self.rate_limited = self.exhausted = 0
        self.timeouts = self.fallbacks = 0
        self.refused = 0  # retries a retry budget refused
        self.hedges = 0
        self.succeeded = self.failed = self.rejected = 0
        # Streams: the time each one took to its first item (its histogram
        # made on the first stream).
        self.first_items: dict[int, int] = _NO_LATENCY  # sparse, as ``latency``
        self.first_item_sum = 0.0
        self.changes: dict[tuple[str, str], int] = _NO_CHANGES  # made on the first
        self.refresh: Callable[[], object] | None = None
        self.gauges: Callable[[], dict[str, float | str] | None] | None = None

    def __repr__(self) -> str:
        return f"<Stats {self.kind} {self.name!r}>"

    def changed(self, old: str, new: str) -> None:
        """A transition from state ``old`` to ``new``."""
        changes = self.changes
        if changes is _NO_CHANGES:
            changes = self.changes = {}
        changes[old, new] = changes.get((old, new), 0) + 1

    def ensure_latency(self) -> dict[int, int]:
        """The latency histogram and the list of pending durations, made on
        first use (one each per Stats, for good: closures keep them)."""
        if self.latency is _NO_LATENCY:
            with _fold_lock:
                if self.latency is _NO_LATENCY:
                    self.pending = []
                    self.latency = {}
        return self.latency

    def fold(self) -> None:
        """Bucket the pending durations (readers call this first)."""
        if self.pending:
            with _fold_lock:
                self._fold()

    def _fold(self) -> None:
        if self.folding:
            # This thread is folding this Stats already, and something it ran
            # (a finalizer, between two lines) recorded and folded again:
            # what it added waits for the next fold.
            return
        self.folding = True
        try:
            self._fold_batch()
        finally:
            self.folding = False

    def _fold_batch(self) -> None:
        pending = self.pending
        n = len(pending)
        if not n:
            return
        batch = pending[:n]
        del pending[:n]  # what other threads append meanwhile stays
        batch.sort()
        self.latency_sum += sum(batch)
        counts, bounds = self.latency, BOUNDS
        last = len(bounds)
        where, upto = bisect.bisect_left, bisect.bisect_right
        # A bucket at a time: the durations up to its bound, from the
        # smallest left, then on to the bucket of the next one.
        lo, i = 0, where(bounds, batch[0])
        while i < last:
            hi = upto(batch, bounds[i], lo)
            counts[i] = counts.get(i, 0) + hi - lo
            if hi == n:
                return
            lo = hi
            i = where(bounds, batch[lo], i + 1)
        counts[last] = counts.get(last, 0) + n - lo  # longer than the last bound

    def __del__(self) -> None:
        # The policy is gone: readers keep what it counted (see keep_counts).
        try:
            readers = list(_READERS)
        except Exception:  # pragma: no cover - interpreter shutdown
            return
        if readers and self.pending:
            self._fold()  # no lock: nothing else can reach this Stats any more
        refresh = self.refresh
        if readers and refresh is not None:
            try:
                refresh()  # counts kept elsewhere (a breaker's lock-free successes)
            except Exception:  # pragma: no cover - a dying policy must not break collection
                log.exception("resilient: could not fold the last counts of %r", self)
        for reader in readers:
            try:
                reader.retired(self)
            except Exception:  # pragma: no cover - a reader must not break collection
                log.exception("resilient: a counter reader failed to keep %r", self)

    def first_item(self, wait: float) -> None:
        """A stream whose first item came ``wait`` seconds after it started."""
        counts = self.first_items
        if counts is _NO_LATENCY:
            counts = self.first_items = {}
        i = bucket(wait)
        counts[i] = counts.get(i, 0) + 1
        self.first_item_sum += wait

    def record(self, duration: float) -> None:
        """A request that ran for ``duration`` seconds (slow paths; the hot
        paths inline this)."""
        self.ensure_latency()
        pending = self.pending
        pending.append(duration)
        if len(pending) >= FOLD_AT:
            self.fold()


class _Weakly:
    """A bound method called through a weak reference to its object."""

    __slots__ = ("func", "ref")

    def __init__(self, method: Callable[[], T]) -> None:
        self.ref = weakref.ref(method.__self__)  # type: ignore[attr-defined]
        self.func = method.__func__  # type: ignore[attr-defined]

    def __call__(self) -> Any:
        obj = self.ref()
        return None if obj is None else self.func(obj)


def weakly(method: Callable[[], T]) -> Callable[[], T | None]:
    """``method`` (bound) called through a weak reference, so counters that
    point back at their policy do not keep it alive."""
    return _Weakly(method)


# Readers told of each Stats about to be collected (see keep_counts).
_READERS: weakref.WeakSet[Any] = weakref.WeakSet()


def keep_counts(reader: Any) -> Callable[[], None]:
    """Call ``reader.retired(stats)`` with each ``Stats`` about to be
    collected with its policy, so the reader can keep its last counts; returns
    the function that stops it. Held weakly. ``retired`` runs wherever the
    garbage collector does (any thread, inside any lock): it must take no
    lock and only read ``stats``."""
    _READERS.add(reader)
    return lambda: _READERS.discard(reader)


def stats_for(name: str, kind: str, scope: ListenerSet) -> Stats:
    """New counters for ``name``, findable by readers of ``scope``."""
    stats = Stats(name, kind, scope)
    with _keep_lock:
        _keep(scope, weakref.ref(stats))
    return stats


def move(stats: Stats, scope: ListenerSet) -> None:
    """``stats`` is found through ``scope`` from now on (its policy has a
    scope of its own now: a per-key breaker used on its own)."""
    with _keep_lock:
        old = stats.scope
        kept = old._stats
        rest = [ref for ref in kept if ref() is not stats]
        old._stats = _Kept(rest, kept.pruned_at) if isinstance(kept, _Kept) else tuple(rest)
        stats.scope = scope
        _keep(scope, weakref.ref(stats))


class _Kept(list):  # type: ignore[type-arg]
    """The weak references to the counters of a scope that keeps many (a
    registry's per-key breakers share its scope): appended in place, not
    copied whole per new one, and pruned of the dead once they have doubled
    since the last pruning (keys come and go)."""

    __slots__ = ("pruned_at",)

    def __init__(self, refs: Iterable[weakref.ref[Stats]], pruned_at: int) -> None:
        super().__init__(refs)
        self.pruned_at = pruned_at


# A scope keeps its first few in a tuple (most keep one), then a ``_Kept``.
_FEW = 8
_keep_lock = threading.Lock()
_fork.renew_module_locks(__name__, "_keep_lock")


def _keep(scope: ListenerSet, ref: weakref.ref[Stats]) -> None:
    """Under ``_keep_lock``: ``scope`` keeps ``ref``."""
    kept = scope._stats
    if not isinstance(kept, _Kept):
        if len(kept) < _FEW:
            scope._stats = (*kept, ref)
            return
        kept = scope._stats = _Kept(kept, _FEW)
    elif len(kept) >= 2 * kept.pruned_at:
        live = [r for r in kept if r() is not None]
        kept = scope._stats = _Kept(live, max(len(live), _FEW))
    kept.append(ref)


def within(scope: ListenerSet) -> list[Stats]:
    """The live counters of every policy inside ``scope``."""
    found = []
    for inside in scope.descendants():
        for ref in inside._stats:
            stats = ref()
            if stats is not None:
                found.append(stats)
    return found


def quantile(counts: Mapping[int, int] | Sequence[int], q: float) -> float:
    """The nearest-rank ``q`` quantile of a latency histogram (sparse,
    ``bucket -> count``, or dense), as the geometric middle of its bucket
    (0.0 when empty)."""
    items = sorted(counts.items()) if isinstance(counts, Mapping) else list(enumerate(counts))
    total = sum(n for _, n in items)
    if not total:
        return 0.0
    rank = max(1, math.ceil(q * total))
    seen = 0
    for i, n in items:
        seen += n
        if seen >= rank:
            if i == 0:
                return BOUNDS[0] / math.sqrt(_STEP)
            if i >= len(BOUNDS):
                return BOUNDS[-1]
            return math.sqrt(BOUNDS[i - 1] * BOUNDS[i])
    return BOUNDS[-1]  # pragma: no cover - the loop always reaches the rank
