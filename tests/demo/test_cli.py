from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from resilient.__main__ import main


def test_a_short_headless_run_prints_a_summary_and_writes_the_chart(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "timeline.svg"
    code = main(["demo", "--duration", "2", "--no-live", "--seed", "3", "--out", str(out)])
    assert code == 0
    text = capsys.readouterr().out
    assert "scenario 'outage'" in text
    for row in (
        "calls made by users",
        "failed calls seen by users",
        "served from fallback",
        "calls wasted on the failing dependency",
        "breaker closed again after the dependency recovered",
        "p99 latency while the dependency was healthy",
        "p99 latency while the dependency was down",
        "slowest call",
    ):
        assert row in text
    # The latency rows come with how to read them.
    assert "bounds each attempt at 150 ms" in text
    assert "- (no breaker)" in text
    assert f"timeline chart: {out.resolve()}" in text
    root = ET.fromstring(out.read_text())
    assert root.tag.endswith("svg")
    # The protected path must have shielded users from most failures.
    failed = next(line for line in text.splitlines() if line.startswith("failed calls"))
    unprotected, protected = (int(v) for v in failed.split()[-2:])
    assert protected < unprotected


def test_plain_live_view_prints_progress(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "t.svg"
    assert main(["demo", "--duration", "2", "--scenario", "flaky", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "with_resilience:" in text
    assert "unprotected:" in text
    assert out.exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["demo", "--duration", "0.5"], "--duration must be between 2 and 600 seconds, got 0.5"),
        (["demo", "--scenario", "nope"], "invalid choice: 'nope'"),
        (["demo", "--out", "chart.png"], "--out must name an .svg file, got 'chart.png'"),
        (["demo", "--out", "/no/such/dir/x.svg"], "does not exist"),
        (["demo", "--seed", "x"], "invalid int value: 'x'"),
    ],
)
def test_bad_options_are_clear_errors(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    assert message in capsys.readouterr().err


def test_the_herd_scenario_prints_rejection_latency_and_time_to_close(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from resilient.testing import fake_clock

    with fake_clock():  # the same run, in no real time
        code = main(["demo", "--scenario", "herd", "--duration", "4", "--no-live"])
    assert code == 0
    text = capsys.readouterr().out
    rows = {line[:40].strip(): line[40:].split() for line in text.splitlines()[3:]}
    assert rows["rejected by the breaker"][0] == "0"
    assert int(rows["rejected by the breaker"][1]) > 0
    assert rows["p99 rejection latency"][0] == "-"
    assert rows["p99 rejection latency"][2] == "ms"
    assert rows["  of which for want of a probe".strip()][1] == "0"
    assert int(rows["most callers asleep on the breaker"][1]) <= 2
    closed = rows["closed after recovery"]
    assert float(closed[1]) <= 2 * float(closed[5])
