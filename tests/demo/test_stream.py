"""``python -m resilient demo --scenario stream``: the same token streams
unprotected and through ``with_resilience``, side by side."""

from __future__ import annotations

import pytest

from resilient.__main__ import main


@pytest.mark.slow  # real time: two seconds a side
def test_the_stream_scenario_reports_both_sides(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["demo", "--scenario", "stream", "--duration", "4", "--no-live"])
    assert code == 0
    text = capsys.readouterr().out
    rows = {
        line[:28].strip(): line[28:].split()
        for line in text.splitlines()
        if line[:1].isalpha() and not line.startswith("resilient")
    }
    started = [int(n) for n in rows["streams started"]]
    completed = [int(n) for n in rows["streams completed"]]
    assert all(n > 0 for n in started)
    # Retried before the first token, cut short when silent: more complete.
    assert completed[1] / started[1] > completed[0] / started[0]
    assert int(rows["items delivered"][1]) > 0
    assert rows["time to first item p99"][1] == "ms"
