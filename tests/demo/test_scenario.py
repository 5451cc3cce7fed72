from __future__ import annotations

import pytest

from resilient._demo.scenario import SCENARIOS


def test_phase_at_follows_the_schedule() -> None:
    outage = SCENARIOS["outage"]
    assert [outage.phase_at(f).name for f in (0.0, 0.3, 0.6, 0.9, 1.0)] == [
        "healthy",
        "failing",
        "slow",
        "recovering",
        "recovering",
    ]


@pytest.mark.parametrize(("name", "start"), [("outage", 0.7), ("flaky", 0.7), ("slow", 0.7)])
def test_recovery_starts_after_the_last_bad_phase(name: str, start: float) -> None:
    assert SCENARIOS[name].recovery_start() == start


def test_every_scenario_starts_healthy_and_has_a_bad_phase() -> None:
    for scenario in SCENARIOS.values():
        assert scenario.phases[0].start == 0.0
        assert scenario.phases[0].healthy
        assert any(not p.healthy for p in scenario.phases)
