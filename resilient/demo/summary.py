"""What a run shows: binned series and the protected-vs-unprotected summary."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from .chart import Timeline
from .runner import PROTECTED, UNPROTECTED, CallRecord, Run

__all__ = ["BINS", "PathSummary", "percentile", "summarize", "timeline", "window_stats"]

BINS = 60
_SEVERITY = {"closed": 0, "forced_closed": 0, "half_open": 1, "open": 2, "forced_open": 2}


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile; 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass(frozen=True, slots=True)
class PathSummary:
    calls: int
    ok: int
    fallbacks: int
    failed: int
    wasted: int
    recover_seconds: float | None
    p50: float
    p99: float
    p99_unhealthy: float  # over calls made while the dependency was failing or slow


def _binned(records: Sequence[CallRecord], path: str, run: Run) -> list[list[CallRecord]]:
    width = run.duration / BINS
    bins: list[list[CallRecord]] = [[] for _ in range(BINS)]
    for record in records:
        if record.path == path:
            bins[min(BINS - 1, max(0, int(record.t / width)))].append(record)
    return bins


def _rate(bucket: Sequence[CallRecord], outcome: str) -> float:
    return sum(r.outcome == outcome for r in bucket) / len(bucket) if bucket else 0.0


def _recovery(run: Run, path: str) -> float | None:
    """Seconds from the dependency's recovery until this path served fresh
    data again (>= 95 % of a bin's calls)."""
    start = run.scenario.recovery_start()
    if start is None:
        return None
    begin = start * run.duration
    width = run.duration / BINS
    for index, bucket in enumerate(_binned(run.records, path, run)):
        if (index + 1) * width <= begin or not bucket:
            continue
        if _rate(bucket, "ok") >= 0.95:
            return max(0.0, index * width - begin)
    return None


def summarize(run: Run) -> dict[str, PathSummary]:
    result = {}
    for path in (UNPROTECTED, PROTECTED):
        mine = [r for r in run.records if r.path == path]
        latencies = [r.latency for r in mine]
        unhealthy = [
            r.latency for r in mine if not run.scenario.phase_at(r.t / run.duration).healthy
        ]
        result[path] = PathSummary(
            calls=len(mine),
            ok=sum(r.outcome == "ok" for r in mine),
            fallbacks=sum(r.outcome == "fallback" for r in mine),
            failed=sum(r.outcome == "failed" for r in mine),
            wasted=run.wasted_calls.get(path, 0),
            recover_seconds=_recovery(run, path),
            p50=percentile(latencies, 50),
            p99=percentile(latencies, 99),
            p99_unhealthy=percentile(unhealthy, 99),
        )
    return result


def window_stats(run: Run, path: str, now: float, width: float = 1.0) -> tuple[float, float]:
    """Calls per second and fresh-data rate over the last ``width`` seconds."""
    recent = [r for r in run.records[-4000:] if r.path == path and r.t >= now - width]
    if not recent:
        return 0.0, 1.0
    return len(recent) / width, _rate(recent, "ok")


def timeline(run: Run) -> Timeline:
    width = run.duration / BINS
    phases: list[tuple[str, bool]] = []
    states: list[str] = []
    first = run.scenario.phases[0]
    worst: list[str | None] = [None] * BINS
    phase_of: list[tuple[str, bool] | None] = [None] * BINS
    for t, state, phase in run.samples:
        index = min(BINS - 1, int(t / width))
        old = worst[index]
        if old is None or _SEVERITY[state] > _SEVERITY[old]:
            worst[index] = state
        if phase_of[index] is None:
            phase_of[index] = (phase.name, phase.healthy)
    last_state, last_phase = "closed", (first.name, first.healthy)
    for index in range(BINS):
        last_state = worst[index] or last_state
        last_phase = phase_of[index] or last_phase
        states.append(last_state)
        phases.append(last_phase)
    protected = _binned(run.records, PROTECTED, run)
    return Timeline(
        duration=run.duration,
        phases=phases,
        breaker_states=states,
        protected_error_rate=[_rate(b, "failed") for b in protected],
        protected_fallback_rate=[_rate(b, "fallback") for b in protected],
        unprotected_error_rate=[_rate(b, "failed") for b in _binned(run.records, UNPROTECTED, run)],
    )
