"""The benchmark code runs: every case does what its name says (``--check``),
and one case goes through pyperf end to end (``--fast``). No timings are
asserted."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import run
from benchmarks.cases import CASES, available

ROOT = Path(__file__).resolve().parent.parent
PEERS = sorted({c.peer for c in CASES if c.peer is not None and c.peer != "wrapt"})
MISSING = [p for p in PEERS if importlib.util.find_spec(p) is None]


def test_resilient_cases_check_and_report(tmp_path: Path) -> None:
    cases = [c for c in CASES if c.peer is None and available(c) is None]
    assert any(c.lib == "resilient" for c in cases)
    times = run.check(cases, loops=3)
    assert set(times) == {c.name for c in cases}
    assert all(t > 0 for t in times.values())

    text = run.report.write(
        tmp_path, cases, times, skipped={}, memory=run.memory.per_breaker(50), meta={}
    )
    assert (tmp_path / "results.md").read_text() == text
    assert "| sync circuit breaker, closed, call succeeds | **resilient** |" in text
    assert "| memory per breaker (10,000 breakers) |" in text
    for chart in ("overhead.svg", "windows.svg"):
        svg = (tmp_path / chart).read_text()
        assert svg.startswith("<svg")
        assert svg.rstrip().endswith("</svg>")


@pytest.mark.skipif(
    bool(MISSING),
    reason=f"peer libraries not installed ({', '.join(MISSING)}): pip install '.[bench]'",
)
def test_peer_cases_check() -> None:
    cases = [c for c in CASES if c.peer is not None]
    times = run.check(cases, loops=3)
    assert set(times) == {c.name for c in cases}


def test_a_case_that_does_not_do_its_job_is_caught() -> None:
    opened = next(c for c in CASES if c.name == "sync rejection: resilient")
    wrong = type(opened)(opened.mode, opened.job, "mislabelled", opened.make, rejects="KeyError")
    with pytest.raises(AssertionError, match="expected KeyError"):
        run.verify(wrong)


def test_readme_block_is_replaced(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\n{run.BEGIN}\nold\n{run.END}\n\nafter\n")
    results = "# Benchmark results\n\n## Targets\n\n![chart](overhead.svg)\n"
    assert run.update_readme(results, readme)
    assert readme.read_text() == (
        f"# x\n\n{run.BEGIN}\n#### Targets\n\n![chart](benchmarks/results/overhead.svg)\n"
        f"{run.END}\n\nafter\n"
    )


def test_fast_run_through_pyperf(tmp_path: Path) -> None:
    pytest.importorskip("pyperf")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks",
            "--fast",
            "--only",
            "sync circuit breaker: resilient",
            "--out",
            str(tmp_path),
            "--quiet",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    text = (tmp_path / "results.md").read_text()
    assert "| sync circuit breaker, closed, call succeeds | **resilient** |" in text
