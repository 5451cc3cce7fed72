"""Scenarios: how the simulated dependency behaves over the run. Pure data."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["SCENARIOS", "Phase", "Scenario"]


@dataclass(frozen=True, slots=True)
class Phase:
    """One stretch of the dependency's life, as a share of the whole run."""

    name: str
    start: float  # fraction of the run, 0..1
    fault_rate: float
    latency: float  # seconds per call
    healthy: bool


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    description: str
    phases: tuple[Phase, ...]

    def phase_at(self, fraction: float) -> Phase:
        current = self.phases[0]
        for phase in self.phases:
            if fraction >= phase.start:
                current = phase
        return current

    def recovery_start(self) -> float | None:
        """Where the dependency is healthy again after its last bad phase."""
        seen_bad = False
        start = None
        for phase in self.phases:
            if not phase.healthy:
                seen_bad = True
                start = None
            elif seen_bad and start is None:
                start = phase.start
        return start


_FAST = 0.004
_SLOW = 0.5
# Every scenario starts healthy and ends recovering at 70 % of the run.
_HEALTHY = Phase("healthy", 0.0, 0.02, _FAST, True)
_RECOVERING = Phase("recovering", 0.7, 0.02, _FAST, True)

SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in [
        Scenario(
            "outage",
            "healthy -> failing -> slow -> recovering",
            (
                _HEALTHY,
                Phase("failing", 0.25, 0.95, _FAST, False),
                Phase("slow", 0.5, 0.05, _SLOW, False),
                _RECOVERING,
            ),
        ),
        Scenario(
            "flaky",
            "healthy -> flaky (40% errors) -> healthy",
            (_HEALTHY, Phase("flaky", 0.3, 0.4, _FAST, False), _RECOVERING),
        ),
        Scenario(
            "slow",
            "healthy -> slow (0.5 s per call) -> healthy",
            (_HEALTHY, Phase("slow", 0.3, 0.02, _SLOW, False), _RECOVERING),
        ),
    ]
}
