from __future__ import annotations

from resilient._demo.runner import PROTECTED, UNPROTECTED, CallRecord, Run
from resilient._demo.scenario import SCENARIOS
from resilient._demo.summary import BINS, percentile, summarize, timeline


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile([], 99) == 0.0


def _run() -> Run:
    scenario = SCENARIOS["outage"]  # recovering from 70 %
    run = Run(scenario=scenario, duration=10.0)
    for i in range(100):
        t = i / 10
        bad = not scenario.phase_at(t / 10).healthy
        run.records.append(
            CallRecord(t, UNPROTECTED, "failed" if bad else "ok", 0.5 if bad else 0.01)
        )
        outcome = "fallback" if bad else ("ok" if t >= 7.5 or t < 2.5 else "fallback")
        run.records.append(CallRecord(t, PROTECTED, outcome, 0.02))
    run.wasted_calls[UNPROTECTED] = 45
    run.wasted_calls[PROTECTED] = 3
    run.transitions += [(3.0, "open"), (7.5, "half_open"), (7.75, "closed")]
    return run


def test_summarize_counts_each_path() -> None:
    summary = summarize(_run())
    u, p = summary[UNPROTECTED], summary[PROTECTED]
    assert (u.calls, u.failed, u.ok, u.wasted) == (100, 45, 55, 45)
    assert (p.calls, p.failed, p.fallbacks, p.wasted) == (100, 0, 50, 3)
    assert u.recover_seconds is None  # no breaker
    assert p.recover_seconds == 0.75  # recovering from 7.0 s, closed at 7.75 s
    assert u.p99_unhealthy == 0.5
    assert p.p99_unhealthy == 0.02
    assert (u.p50_healthy, u.p99_healthy, p.p99_healthy) == (0.01, 0.01, 0.02)
    assert (u.slowest, p.slowest) == (0.5, 0.02)


def test_recovery_is_zero_when_the_breaker_was_closed_already_and_none_when_it_stays_open() -> None:
    run = _run()
    run.transitions[:] = [(3.0, "open"), (5.0, "half_open"), (5.1, "closed")]
    assert summarize(run)[PROTECTED].recover_seconds == 0.0
    run.transitions[:] = [(3.0, "open")]
    assert summarize(run)[PROTECTED].recover_seconds is None
    run.transitions[:] = []
    assert summarize(run)[PROTECTED].recover_seconds == 0.0


def test_timeline_bins_the_run() -> None:
    line = timeline(_run())
    assert [name for name, _, _ in line.phases] == ["healthy", "failing", "slow", "recovering"]
    assert [start for _, start, _ in line.phases] == [0.0, 2.5, 5.0, 7.0]
    assert line.breaker == [(0.0, "closed"), (3.0, "open"), (7.5, "half_open"), (7.75, "closed")]
    assert len(line.unprotected_error_rate) == len(line.protected_latency) == BINS
    assert max(line.unprotected_error_rate) == 1.0
    assert max(line.protected_error_rate) == 0.0
    assert max(line.unprotected_latency) == 0.5
    assert max(line.protected_latency) == 0.02
