"""What a run shows: per-second series and the protected-vs-unprotected summary."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from .chart import Timeline
from .runner import PROTECTED, UNPROTECTED, CallRecord, Run

__all__ = ["PathSummary", "percentile", "summarize", "timeline", "window_stats"]


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


def _per_second(records: Sequence[CallRecord], path: str, seconds: int) -> list[list[CallRecord]]:
    buckets: list[list[CallRecord]] = [[] for _ in range(seconds)]
    for record in records:
        if record.path == path and 0 <= record.second < seconds:
            buckets[record.second].append(record)
    return buckets


def _error_rate(bucket: Sequence[CallRecord]) -> float:
    return sum(r.outcome == "failed" for r in bucket) / len(bucket) if bucket else 0.0


def _recovery(run: Run, path: str, seconds: int) -> float | None:
    """Seconds from the dependency's recovery until this path served fresh
    data again with under 5 % errors for a whole second."""
    start = run.scenario.recovery_start()
    if start is None:
        return None
    first = int(start * run.duration)
    for second, bucket in enumerate(_per_second(run.records, path, seconds)):
        if second < first or not bucket:
            continue
        ok = sum(r.outcome == "ok" for r in bucket)
        if ok / len(bucket) >= 0.95:
            return float(max(0, second - first))
    return None


def summarize(run: Run) -> dict[str, PathSummary]:
    seconds = max(1, math.ceil(run.duration))
    result = {}
    for path in (UNPROTECTED, PROTECTED):
        mine = [r for r in run.records if r.path == path]
        latencies = [r.latency for r in mine]
        result[path] = PathSummary(
            calls=len(mine),
            ok=sum(r.outcome == "ok" for r in mine),
            fallbacks=sum(r.outcome == "fallback" for r in mine),
            failed=sum(r.outcome == "failed" for r in mine),
            wasted=run.wasted_calls.get(path, 0),
            recover_seconds=_recovery(run, path, seconds),
            p50=percentile(latencies, 50),
            p99=percentile(latencies, 99),
        )
    return result


def window_stats(run: Run, path: str, now: float, width: float = 1.0) -> tuple[float, float]:
    """Calls per second and success rate over the last ``width`` seconds."""
    recent = [r for r in run.records[-4000:] if r.path == path and r.second >= int(now - width)]
    if not recent:
        return 0.0, 1.0
    ok = sum(r.outcome == "ok" for r in recent)
    return len(recent) / width, ok / len(recent)


def timeline(run: Run) -> Timeline:
    seconds = max(1, math.ceil(run.duration))
    phases = []
    states = []
    last_phase = run.scenario.phases[0]
    last_state = "closed"
    for second in range(seconds):
        last_phase = run.phases.get(second, last_phase)
        last_state = run.breaker_states.get(second, last_state)
        phases.append((last_phase.name, last_phase.healthy))
        states.append(last_state)
    return Timeline(
        seconds=list(range(seconds)),
        phases=phases,
        breaker_states=states,
        protected_error_rate=[
            _error_rate(b) for b in _per_second(run.records, PROTECTED, seconds)
        ],
        unprotected_error_rate=[
            _error_rate(b) for b in _per_second(run.records, UNPROTECTED, seconds)
        ],
    )
