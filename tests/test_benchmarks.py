"""The benchmark code runs: every case does what its name says (``--check``),
and one case goes through pyperf end to end (``--fast``). No timings are
asserted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import imports, report, run
from benchmarks.cases import CASES, available, installed

ROOT = Path(__file__).resolve().parent.parent
PEERS = sorted({m for c in CASES for m in (c.peer, *c.requires) if m is not None and m != "wrapt"})
MISSING = [p for p in PEERS if not installed(p)]


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


def test_the_performance_page_block_is_replaced_and_its_charts_copied(tmp_path: Path) -> None:
    page = tmp_path / "performance.md"
    page.write_text(f"# x\n\n{run.BEGIN}\nold\n{run.END}\n\nafter\n")
    charts = tmp_path / "results"
    charts.mkdir()
    (charts / "overhead.svg").write_text("<svg/>")
    results = "# Benchmark results\n\n## Targets\n\n![chart](overhead.svg)\n"
    assert run.update_page(results, page, charts)
    assert page.read_text() == (
        f"# x\n\n{run.BEGIN}\n### Targets\n\n![chart](performance/overhead.svg)\n"
        f"{run.END}\n\nafter\n"
    )
    assert (tmp_path / "performance" / "overhead.svg").read_text() == "<svg/>"


def test_the_repository_performance_page_has_the_block() -> None:
    text = run.PAGE.read_text()
    assert run.BEGIN in text
    assert run.END in text


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


OBSERVED = [c for c in CASES if c.observer is not None]


def test_observed_cases_are_measured_with_what_they_are_compared_with() -> None:
    chosen, _ = run.select("observed")
    names = [c.name for c in chosen]
    assert {c.name for c in OBSERVED if available(c) is None} <= set(names)
    for c in OBSERVED:
        assert c.baseline in {x.name for x in CASES}, c.name
        if available(c) is None:
            assert c.baseline in names
    if installed("tenacity"):
        assert "sync retry: tenacity" in names
    assert names == [c.name for c in CASES if c.name in names]  # the workers' order


def test_observed_cases_leave_the_process_as_they_found_it() -> None:
    from resilient import events

    cases = [c for c in OBSERVED if available(c) is None]
    if not cases:
        pytest.skip("no observed case can run here")
    stamina_hooks = None
    if installed("stamina"):
        from stamina._config import CONFIG

        stamina_hooks = CONFIG._on_retry
    times = run.check(cases, loops=3)
    assert set(times) == {c.name for c in cases}
    assert events.GLOBAL.listeners == ()
    assert getattr(events.GLOBAL, "readers", ()) == ()
    assert not any(c.name in run._built for c in cases)
    if installed("stamina") and stamina_hooks is None:
        assert CONFIG._on_retry is None  # back to stamina's defaults, set at a first retry
    assert run.extras(cases).get(report.PER_EVENT, 0) >= 1
    assert events.GLOBAL.listeners == ()


def test_installed_imports_nothing() -> None:
    before = set(sys.modules)
    assert installed("json.decoder")
    assert not installed("json.no_such_module")
    assert not installed("no_such_package.sub")
    installed("opentelemetry.sdk.metrics")
    installed("prometheus_client")
    assert not {m for m in set(sys.modules) - before if m.startswith(("opentelemetry", "prom"))}


def test_observed_targets_and_table(tmp_path: Path) -> None:
    cb, m, e, p = "circuit breaker", report.METRICS, report.ELSEWHERE, report.PER_CALL
    times = {
        f"sync {cb}: resilient": 500e-9,
        f"sync {cb}, {m}: resilient": 900e-9,
        f"sync {cb}, {e}: resilient": 520e-9,
        f"sync {cb}, {p}: resilient": 3_500e-9,
        "sync stack: resilient": 1_000e-9,
        f"sync stack, {m}: resilient": 1_600e-9,
        f"sync stack, {e}: resilient": 1_050e-9,
        "async stack: resilient": 1_500e-9,
        f"async stack, {m}: resilient": 2_000e-9,
        "sync retry: tenacity": 40_000e-9,
    }
    text = report.write(
        tmp_path, CASES, times, skipped={}, memory=[], meta={}, extra={report.PER_EVENT: 3.0}
    )
    rows = {line.split(" | ")[0][2:]: line for line in text.splitlines() if " | " in line}
    assert "| 1.80x | ≤ 2x | met |" in rows[f"closed breaker (sync): {m} / unobserved"]
    assert "| 1.60x | ≤ 1.5x | **missed** by 7 % |" in rows[f"full stack (sync): {m} / unobserved"]
    assert "| 1.33x | ≤ 1.5x | met |" in rows[f"full stack (async): {m} / unobserved"]
    assert "| 25.00x | ≥ 10x | met |" in rows[f"tenacity retry / resilient full stack (sync) {m}"]
    assert (
        "| 1.04x | ≤ 1.1x | met |"
        in rows["closed breaker (sync): a listener on another policy / none"]
    )
    assert (
        "| 1.05x | ≤ 1.1x | met |" in rows["full stack (sync): a listener on another policy / none"]
    )
    per_event = rows["a listener on the breaker (sync): cost per event delivered"]
    assert "| 1.00 µs | ≤ 1.5 µs | met |" in per_event
    assert "## Observed" in text
    assert "| 900 | 500 | 1.80x |" in text
    # Observed calls stay out of the main table (their own section holds them).
    main = text.split("## Time per call")[1].split("## Observed")[0]
    assert "observed" not in main


# -- import times (benchmarks/imports.py) -------------------------------------------


def _import_rows(text: str) -> dict[str, list[str]]:
    section = text.split(report.IMPORT_TIME, 1)[1]
    rows = [line for line in section.splitlines() if line.startswith("| ") and "`" in line]
    found = {}
    for row in rows:
        first, *cells = (cell.strip() for cell in row.split("|")[1:-1])
        code, *setup = first.split("`")[1::2]
        # Statement.key: what ran untimed before the statement, then the statement.
        found[f"{setup[0]}; {code}" if " after `" in first else code] = cells
    return found


def test_import_times_check_writes_their_section(tmp_path: Path) -> None:
    # --only import picks no per-call case: only the import times run, one
    # fresh process per statement (no warm-up under --check).
    assert run.select("import")[0] == []
    (tmp_path / "results.md").write_text("# Benchmark results\n\n## Memory\n\nkept\n")
    assert run.main(["--check", "--only", "import", "--out", str(tmp_path)]) == 0
    text = (tmp_path / "results.md").read_text()
    assert "## Memory\n\nkept\n" in text  # the rest of the file is left alone
    rows = _import_rows(text)
    measured = {s.key for s in imports.available()[0]}
    assert {"import resilient", "from resilient import with_resilience"} <= measured
    assert measured <= set(rows)
    assert all(float(rows[code][0]) > 0 for code in measured)
    # The first real use loads the policies that `import resilient` leaves alone.
    assert int(rows["from resilient import with_resilience"][2]) > int(rows["import resilient"][2])
    plugin, helpers = (
        "import pytest; import resilient._pytest_plugin",
        "import pytest; import resilient.testing",
    )
    if plugin in measured:
        assert int(rows[plugin][2]) < int(rows[helpers][2])


def test_import_section_targets_and_ratios() -> None:
    def timed(code: str, ms: float) -> imports.ImportTime:
        return imports.ImportTime(imports.Statement(code), ms / 1e3, ms / 1e3, 10, 20, 1)

    found = [
        timed("import resilient", 20.0),
        timed("from resilient import with_resilience", 80.0),
        timed(imports.BASELINE, 40.0),
    ]
    text = "\n".join(report.import_section(found, {"date": "today"}, {"import x": "absent"}))
    assert text.startswith(f"{report.IMPORT_TIME}\n\n- date: today\n")
    assert "| `import resilient` | 20.00 ms | ≤ 60 ms | met |" in text
    assert "| `import resilient` / `import stamina` | 0.50x | ≤ 1.3x | met |" in text
    assert "20 timed runs each, after 1 warm-up run writing the `.pyc` files" in text
    rows = _import_rows(text)
    assert rows["import resilient"] == ["20.0", "20.0", "10", "0.50x"]
    assert rows["from resilient import with_resilience"][-1] == "2.00x"
    assert "- not measured: `import x`: absent" in text
    slow = [timed("import resilient", 70.0), timed(imports.BASELINE, 40.0)]
    text = "\n".join(report.import_section(slow))
    assert "| `import resilient` / `import stamina` | 1.75x | ≤ 1.3x | **missed** by 35 % |" in text
    assert report.import_section([]) == []


def test_a_section_is_replaced_appended_or_dropped() -> None:
    text = "# R\n\n## A\n\na\n\n## Import time\n\nold\n\n## B\n\nb\n"
    new = "## Import time\n\nnew\n"
    assert report.splice_section(text, report.IMPORT_TIME, new) == (
        "# R\n\n## A\n\na\n\n## Import time\n\nnew\n\n## B\n\nb\n"
    )
    assert report.drop_section(text, report.IMPORT_TIME) == "# R\n\n## A\n\na\n\n## B\n\nb\n"
    assert report.splice_section("# R\n\n## A\n\na\n", report.IMPORT_TIME, new) == (
        "# R\n\n## A\n\na\n\n## Import time\n\nnew\n"
    )


def test_the_performance_page_keeps_the_import_times_in_their_own_block(tmp_path: Path) -> None:
    page = tmp_path / "performance.md"
    page.write_text(
        f"# x\n\n{run.BEGIN}\nold\n{run.END}\n\n## Import time\n\n"
        f"{run.IMPORT_BEGIN}\nold\n{run.IMPORT_END}\n"
    )
    results = "# Benchmark results\n\n## Targets\n\nt\n\n## Import time\n\nimports\n"
    assert run.update_page(results, page, tmp_path)
    assert run.update_imports(["## Import time", "", "fresh"], page)
    assert page.read_text() == (
        f"# x\n\n{run.BEGIN}\n### Targets\n\nt\n{run.END}\n\n## Import time\n\n"
        f"{run.IMPORT_BEGIN}\nfresh\n{run.IMPORT_END}\n"
    )


def test_the_repository_performance_page_has_the_import_block() -> None:
    text = run.PAGE.read_text()
    assert text.index(run.IMPORT_BEGIN) < text.index(run.IMPORT_END)
    assert "## Import time" in text


@pytest.mark.slow
def test_the_service_benchmark_runs_fast(tmp_path: Path) -> None:
    """``python -m benchmarks service --fast``: every variant through every
    phase; what it measures is not checked, only that it all ran."""
    for peer in ("uvicorn", "fastapi", "httpx", "tenacity", "stamina", "pybreaker"):
        pytest.importorskip(peer)
    raw = tmp_path / "service.json"
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "service", "--fast", "--json", str(raw)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    from benchmarks import service

    results = json.loads(raw.read_text())
    assert [r["variant"] for r in results] == list(service.VARIANTS)
    for result in results:
        assert [p["phase"] for p in result["phases"]] == list(service.PHASES)
        assert sum(p["requests"] for p in result["phases"]) > 0
    assert "| variant | phase | goodput /s |" in done.stdout
    assert "| variant | time to open |" in done.stdout


@pytest.mark.slow
def test_the_service_benchmarks_cpu_added_per_call_runs(tmp_path: Path) -> None:
    """``python -m benchmarks service --added``: one thread's CPU per call,
    interleaved, with the paired difference to plain httpx per variant."""
    raw = tmp_path / "added.json"
    done = subprocess.run(
        [
            *(sys.executable, "-m", "benchmarks", "service", "--added", "--fast"),
            *("--variants", "resilient,httpx", "--json", str(raw)),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    added = json.loads(raw.read_text())
    from benchmarks import service

    # httpx without its own timeout comes along: the layers alone are the
    # difference to it.
    assert sorted(added) == sorted(["httpx", "resilient", service.UNTIMED])
    assert added["httpx"]["added_us"] == 0.0  # each call less itself
    for row in added.values():
        assert 0.0 < row["p25_us"] <= row["median_us"] <= row["p75_us"]
    assert "| CPU added over plain httpx (one call, median of paired differences)" in done.stdout
    assert "| CPU added over plain httpx without its timeout: resilient |" in done.stdout


def test_the_service_benchmark_refuses_an_unknown_variant() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "service", "--fast", "--variants", "nope"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "unknown variants ['nope']" in done.stderr
