"""What a run shows: binned series and the protected-vs-unprotected summary."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from .chart import Timeline
from .runner import PROTECTED, UNPROTECTED, CallRecord, Run

__all__ = ["BINS", "PathSummary", "percentile", "summarize", "timeline", "window_stats"]

BINS = 60


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile; 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass(frozen=True, slots=True)
class PathSummary:
    """What users of one arm saw over a run (latencies in seconds)."""

    calls: int
    ok: int
    fallbacks: int
    failed: int
    wasted: int
    # From the dependency's recovery until the breaker closed again (None:
    # it did not, or there is no breaker: the unprotected arm).
    recover_seconds: float | None
    p50_healthy: float  # over calls made while the dependency was healthy
    p99_healthy: float
    p99_unhealthy: float  # over calls made while the dependency was failing or slow
    slowest: float


def _binned(records: Sequence[CallRecord], path: str, run: Run) -> list[list[CallRecord]]:
    width = run.duration / BINS
    bins: list[list[CallRecord]] = [[] for _ in range(BINS)]
    for record in records:
        if record.path == path:
            bins[min(BINS - 1, max(0, int(record.t / width)))].append(record)
    return bins


def _rate(bucket: Sequence[CallRecord], outcome: str) -> float:
    return sum(r.outcome == outcome for r in bucket) / len(bucket) if bucket else 0.0


def _recovery(run: Run) -> float | None:
    """Seconds from the dependency's recovery until the breaker was closed
    again (0.0 when it already was); None when it never closed again."""
    start = run.scenario.recovery_start()
    if start is None:
        return None
    begin = start * run.duration
    state = "closed"
    for t, new_state in run.transitions:
        if t > begin:
            if state == "closed":
                return 0.0
            if new_state == "closed":
                return t - begin
        state = new_state
    return 0.0 if state == "closed" else None


def summarize(run: Run) -> dict[str, PathSummary]:
    result = {}
    for path in (UNPROTECTED, PROTECTED):
        mine = [r for r in run.records if r.path == path]
        healthy: list[float] = []
        unhealthy: list[float] = []
        for r in mine:
            bad = not run.scenario.phase_at(r.t / run.duration).healthy
            (unhealthy if bad else healthy).append(r.latency)
        result[path] = PathSummary(
            calls=len(mine),
            ok=sum(r.outcome == "ok" for r in mine),
            fallbacks=sum(r.outcome == "fallback" for r in mine),
            failed=sum(r.outcome == "failed" for r in mine),
            wasted=run.wasted_calls.get(path, 0),
            recover_seconds=_recovery(run) if path == PROTECTED else None,
            p50_healthy=percentile(healthy, 50),
            p99_healthy=percentile(healthy, 99),
            p99_unhealthy=percentile(unhealthy, 99),
            slowest=max((r.latency for r in mine), default=0.0),
        )
    return result


def window_stats(run: Run, path: str, now: float, width: float = 1.0) -> tuple[float, float]:
    """Calls per second and fresh-data rate over the last ``width`` seconds."""
    recent = [r for r in run.records[-4000:] if r.path == path and r.t >= now - width]
    if not recent:
        return 0.0, 1.0
    return len(recent) / width, _rate(recent, "ok")


def timeline(run: Run) -> Timeline:
    protected = _binned(run.records, PROTECTED, run)
    unprotected = _binned(run.records, UNPROTECTED, run)
    return Timeline(
        duration=run.duration,
        phases=[(p.name, p.start * run.duration, p.healthy) for p in run.scenario.phases],
        breaker=[(0.0, "closed"), *run.transitions],
        protected_error_rate=[_rate(b, "failed") for b in protected],
        protected_fallback_rate=[_rate(b, "fallback") for b in protected],
        unprotected_error_rate=[_rate(b, "failed") for b in unprotected],
        protected_latency=[percentile([r.latency for r in b], 99) for b in protected],
        unprotected_latency=[percentile([r.latency for r in b], 99) for b in unprotected],
    )
