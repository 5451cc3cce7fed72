"""Run the benchmarks: ``python -m benchmarks`` (about 7 minutes) or
``python -m benchmarks --fast`` (under a minute, rough).

Every case runs in pyperf worker processes of its own, so what one case
subscribes never reaches another; the parent (which builds every case once
to calibrate its loops) and ``--check`` (one process for all) undo each
case's process-wide subscriptions before building the next. The parent writes
``benchmarks/results/results.md`` and the charts, and after a full run of
every case refreshes the tables of docs/performance.md (and its charts).
Options:
``--only TEXT`` runs the cases whose name contains TEXT (and those an
observed one among them is compared with); ``--check`` runs
each case a few times in this process, without pyperf (a smoke test);
``--out DIR`` writes the results elsewhere; pyperf's own options apply too.

The import times (``imports.py``: ``import resilient`` and the peers'
imports, each in fresh processes) are measured by the parent after the
cases, or alone with ``--only import``: such a run replaces only the
"Import time" section of results.md, and of docs/performance.md when it
writes to the default place. ``--import-runs N`` sets how many timed runs
each statement gets (default 20).
"""

from __future__ import annotations

import argparse
import inspect
import os
import re
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    # Benchmark the checkout, wherever the command is run from.
    sys.path.insert(0, str(ROOT))

from benchmarks import imports, memory, report, timing  # noqa: E402
from benchmarks.cases import CASES, Case, available, release  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
PAGE = ROOT / "docs" / "performance.md"
BEGIN = "<!-- benchmarks: begin -->"
END = "<!-- benchmarks: end -->"
IMPORT_BEGIN = "<!-- import time: begin -->"
IMPORT_END = "<!-- import time: end -->"
CHECK_IMPORTS = "--check: one run each, no warm-up; the numbers mean nothing"

_built: dict[str, Callable[..., Any]] = {}


def build(case: Case) -> Callable[..., Any]:
    """The case's callable, built once per process."""
    call = _built.get(case.name)
    if call is None:
        made = case.make()
        if inspect.iscoroutine(made):
            made = timing.event_loop().run_until_complete(made)
        call = _built[case.name] = made
    return call


def discard(case: Case) -> None:
    """Forget ``case``'s callable and undo what building it did to the process."""
    _built.pop(case.name, None)
    release()


def timer(case: Case) -> Callable[[int], float]:
    """``loops -> seconds`` for ``case``; each loop makes ``inner_loops(case)`` calls."""
    if case.threads:
        return lambda loops: timing.time_threads(loops, build(case), case.threads)
    if case.mode == "async":
        run = timing.time_async_guarded if case.guarded else timing.time_async
    else:
        run = timing.time_guarded if case.guarded else timing.time_sync
    return lambda loops: run(loops, build(case))


def inner_loops(case: Case) -> int:
    return 1 if case.guarded else timing.INNER


def select(only: str | None) -> tuple[list[Case], dict[str, str]]:
    """The cases whose name holds ``only`` and those they are compared with,
    in the order of ``CASES``; and why the others asked for cannot run."""
    wanted = {c.name for c in CASES if only is None or only in c.name}
    wanted |= {name for c in CASES if c.name in wanted for name in c.companions}
    chosen: list[Case] = []
    skipped: dict[str, str] = {}
    for case in CASES:
        if case.name not in wanted:
            continue
        why = available(case)
        if why is None:
            chosen.append(case)
        else:
            skipped[case.name] = why
    return chosen, skipped


def verify(case: Case) -> None:
    """Fail loudly if a case does not do what its name says."""
    call = build(case)
    if case.mode == "window":
        return
    try:
        if case.mode == "async":
            result = timing.event_loop().run_until_complete(call(1))
        else:
            result = call(1)
    except Exception as exc:
        if case.rejects is None:
            raise AssertionError(f"{case.name}: the call failed: {exc!r}") from exc
        if type(exc).__name__ != case.rejects:
            raise AssertionError(f"{case.name}: expected {case.rejects}, got {exc!r}") from exc
        return
    if case.rejects is not None:
        raise AssertionError(f"{case.name}: expected {case.rejects}, got result {result!r}")
    if result != 1 and not (case.job in ("fallback", "stack") and result is None):
        raise AssertionError(f"{case.name}: expected 1, got {result!r}")


def check(cases: Sequence[Case], loops: int = 50) -> dict[str, float]:
    """Build, verify and briefly time every case in this process."""
    times: dict[str, float] = {}
    for case in cases:
        try:
            verify(case)
            seconds = timer(case)(loops)
        finally:
            discard(case)
        times[case.name] = seconds / (loops * inner_loops(case))
    return times


def extras(cases: Sequence[Case]) -> dict[str, float]:
    """What the report needs besides the timings (``Case.extra``), computed here."""
    found: dict[str, float] = {}
    for case in cases:
        if case.extra is not None:
            try:
                found.update(case.extra())
            finally:
                release()
    return found


def calibrate(case: Case, min_time: float) -> int:
    """The loops (a power of two) for one value of ``case`` to last ``min_time``."""
    run = timer(case)
    loops = 1
    try:
        while run(loops) < min_time and loops < 2**32:
            loops *= 2
    finally:
        discard(case)
    return loops


def update_page(results: str, page: Path = PAGE, charts: Path = RESULTS) -> bool:
    """Replace the performance page's generated block with ``results``'
    tables, and copy the charts they show beside it (``performance/``)."""
    text = page.read_text()
    if BEGIN not in text or END not in text:
        return False
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    folder = page.with_suffix("")
    body = results.split("\n", 2)[2].replace("](", f"]({folder.name}/")
    # The import times have a section of their own on the page (update_imports).
    body = report.drop_section(body, report.IMPORT_TIME)
    body = re.sub(r"^## ", "### ", body, flags=re.MULTILINE)
    folder.mkdir(exist_ok=True)
    for chart in re.findall(rf"\]\({re.escape(folder.name)}/([^)]+)\)", body):
        shutil.copyfile(charts / chart, folder / chart)
    page.write_text(f"{head}{BEGIN}\n{body.strip()}\n{END}{tail}")
    return True


def update_imports(section: Sequence[str], page: Path = PAGE) -> bool:
    """Replace the block of the performance page's "Import time" section
    with ``section`` (``report.import_section``), less its heading."""
    text = page.read_text()
    if IMPORT_BEGIN not in text or IMPORT_END not in text:
        return False
    head, rest = text.split(IMPORT_BEGIN, 1)
    _, tail = rest.split(IMPORT_END, 1)
    body = "\n".join(line for line in section if line != report.IMPORT_TIME).strip()
    page.write_text(f"{head}{IMPORT_BEGIN}\n{body}\n{IMPORT_END}{tail}")
    return True


def _import_meta(started: str, load: tuple[float, ...], argv: Sequence[str]) -> dict[str, str]:
    end = os.getloadavg()
    return {
        "date": started,
        **report.machine(),
        "command": f"`python -m benchmarks {' '.join(argv)}`".replace(" `", "`"),
        "load average (1 min) at start / end": f"{load[0]:.2f} / {end[0]:.2f}"
        + (" (other work was running)" if max(load[0], end[0]) >= 0.5 else ""),
    }


def _imports_alone(options: argparse.Namespace, argv: Sequence[str]) -> int:
    """``--only import``: measure the import times, and replace their section
    of results.md (and of the performance page) with them."""
    load = os.getloadavg()
    started = time.strftime("%Y-%m-%d %H:%M")
    if options.check:
        found, skipped = imports.measure(runs=1, warmups=0)
        meta = {"mode": CHECK_IMPORTS}
    else:
        found, skipped = imports.measure(options.import_runs)
        meta = _import_meta(started, load, argv)
    section = report.import_section(found, meta, skipped)
    options.out.mkdir(parents=True, exist_ok=True)
    results = options.out / "results.md"
    text = results.read_text() if results.exists() else "# Benchmark results\n"
    results.write_text(report.splice_section(text, report.IMPORT_TIME, "\n".join(section)))
    print("\n".join(section))
    print(f"wrote the import times into {results}")
    if not options.check and options.out == RESULTS and update_imports(section):
        print(f"updated the import times of {PAGE}")
    return 0


def _options() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument(
        "--only",
        metavar="TEXT",
        help="run only the cases whose name has TEXT (and what they are compared with)",
    )
    parser.add_argument(
        "--out",
        metavar="DIR",
        type=Path,
        default=RESULTS,
        help=f"where to write results.md and the charts (default: {RESULTS})",
    )
    parser.add_argument(
        "--check", action="store_true", help="run each case a few times in-process, without pyperf"
    )
    parser.add_argument(
        "--import-runs",
        metavar="N",
        type=int,
        default=imports.RUNS,
        help=f"timed runs of each import statement (default: {imports.RUNS})",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["service"]:
        from benchmarks import service

        return service.main(argv[1:])
    options, _ = _options().parse_known_args(argv)
    cases, skipped = select(options.only)
    load = os.getloadavg()
    started = time.strftime("%Y-%m-%d %H:%M")

    timing_imports = imports.selected(options.only)
    if timing_imports and not cases:
        return _imports_alone(options, argv)

    if options.check:
        times = check(cases)
        meta = {"mode": "--check: a few calls each, in one process; the numbers mean nothing"}
        found, not_found = imports.measure(runs=1, warmups=0) if timing_imports else ([], {})
        report.write(
            options.out,
            cases,
            times,
            skipped=skipped,
            memory=memory.per_breaker(200),
            extra=extras(cases),
            meta=meta,
            imports=found,
            import_meta={"mode": CHECK_IMPORTS},
            import_skipped=not_found,
        )
        print(f"checked {len(cases)} cases ({len(skipped)} not available); wrote {options.out}")
        return 0

    import pyperf

    def forward(cmd: list[str], args: argparse.Namespace) -> None:
        if options.only is not None:
            cmd.extend(["--only", options.only])

    runner = pyperf.Runner(
        processes=5,
        values=3,
        warmups=1,
        min_time=0.1,
        program_args=(str(Path(__file__).resolve()),),
        add_cmdline_args=forward,
    )
    for action in _options()._actions:
        runner.argparser._add_action(action)
    args = runner.parse_args(argv)
    # Loops are calibrated here, in the parent, rather than by pyperf in one
    # more worker per case: the run is shorter by a process per case.
    calibrating = not args.worker and not args.loops
    if args.fast and not args.worker:
        # pyperf's --fast still spawns 3 processes per case; one is enough
        # for a rough pass.
        args.processes, args.values, args.min_time = 1, 2, 0.02

    times: dict[str, float] = {}
    for case in cases:
        if calibrating:
            args.loops = calibrate(case, args.min_time)
        bench = runner.bench_time_func(case.name, timer(case), inner_loops=inner_loops(case))
        if bench is not None and not args.worker:
            # The least disturbed value: on a shared machine, other work only
            # ever adds time, to whichever case it lands on.
            times[case.name] = min(bench.get_values())
    if args.worker:
        return 0

    found: list[imports.ImportTime] = []
    not_found: dict[str, str] = {}
    import_meta: dict[str, str] = {}
    if timing_imports:
        import_load, import_started = os.getloadavg(), time.strftime("%Y-%m-%d %H:%M")
        runs = min(options.import_runs, 5) if args.fast else options.import_runs
        found, not_found = imports.measure(runs)
        import_meta = _import_meta(import_started, import_load, argv)

    end_load = os.getloadavg()
    how = "--fast (rough)" if args.fast else f"{args.processes} processes x {args.values} values"
    meta = {
        "date": started,
        **report.machine(),
        "run": f"pyperf, {how}; the fastest value of each case",
        "command": f"`python -m benchmarks {' '.join(argv)}`".replace(" `", "`"),
        "load average (1 min) at start / end": f"{load[0]:.2f} / {end_load[0]:.2f}"
        + (" (other work was running)" if max(load[0], end_load[0]) >= 0.5 else ""),
    }
    results = report.write(
        options.out,
        cases,
        times,
        skipped=skipped,
        memory=memory.per_breaker(),
        extra=extras(cases),
        meta=meta,
        imports=found,
        import_meta=import_meta,
        import_skipped=not_found,
    )
    print(f"\nwrote {options.out / 'results.md'}")
    if not args.fast and options.only is None and options.out == RESULTS and update_page(results):
        print(f"updated the tables of {PAGE}")
    if found and not args.fast and options.out == RESULTS:
        update_imports(report.import_section(found, import_meta, not_found))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
