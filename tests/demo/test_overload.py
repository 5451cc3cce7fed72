"""``--scenario overload`` and the chart of docs/bulkhead.md."""

from __future__ import annotations

import argparse
import io
from pathlib import Path

from resilient._demo import add_arguments, run
from resilient._demo.overload import docs_chart

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_the_docs_chart_is_what_the_simulation_draws() -> None:
    assert (DOCS / "adaptive-limit.svg").read_text() == docs_chart()


def test_the_overload_scenario_compares_a_fixed_and_an_adaptive_bulkhead(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    out_svg = tmp_path / "overload.svg"
    args = parser.parse_args(["--scenario", "overload", "--duration", "4", "--out", str(out_svg)])
    out = io.StringIO()
    assert run(args, out) == 0
    text = out.getvalue()
    rows = {line.split("  ")[0].strip(): line.split() for line in text.splitlines() if line}
    final = rows["final limit"]
    assert final[-2] == "500"
    assert 25 <= int(final[-1]) <= 100
    p99 = [float(v) for v in rows["p99 latency (last half)"] if v.replace(".", "").isdigit()]
    assert p99[0] >= 5 * p99[1]  # the fixed limit queues at the dependency
    assert out_svg.read_text().startswith("<svg")
