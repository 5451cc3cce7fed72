"""``python -m resilient demo``: a dependency that fails, slows down and
recovers, with the same traffic through ``with_resilience`` and unprotected."""

from __future__ import annotations

import argparse
import sys
import textwrap
from pathlib import Path
from typing import TextIO

from .scenario import SCENARIOS

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--duration", type=float, default=20.0, help="seconds to run (default 20, 2..600)"
    )
    parser.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    parser.add_argument(
        "--scenario",
        choices=sorted([*SCENARIOS, "herd", "overload", "quota", "stream"]),
        default="outage",
        help="what the dependency does (default: outage); herd: 200 callers with "
        "retry against one breaker, measured at half-open; stream: a streaming "
        "LLM client through stalls, mid-stream errors and 5xx before the first token",
    )
    parser.add_argument("--no-live", action="store_true", help="no live view, summary only")
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("resilient-demo.svg"),
        help="where to write the timeline chart (default ./resilient-demo.svg)",
    )


def validate(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    if not 2.0 <= args.duration <= 600.0:
        parser.error(f"--duration must be between 2 and 600 seconds, got {args.duration:g}")
    if args.out.suffix.lower() != ".svg":
        parser.error(f"--out must name an .svg file, got {str(args.out)!r}")
    if not args.out.parent.exists():
        parser.error(f"--out: directory {str(args.out.parent)!r} does not exist")


def _has_rich() -> bool:
    try:
        import rich  # noqa: F401
    except ImportError:
        return False
    return True


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    from ..events import subscribe
    from ..metrics import MetricsCollector
    from .chart import render_svg
    from .runner import run_scenario
    from .summary import summarize, timeline
    from .view import LiveView, Rejections, policy_line, print_table, summary_notes, summary_rows

    out = out if out is not None else sys.stdout
    if args.scenario == "overload":
        from .overload import run_overload

        return run_overload(args, out)
    if args.scenario == "herd":
        return _run_herd(args, out)
    if args.scenario == "quota":
        from .quota import run_quota

        return run_quota(args, out)
    if args.scenario == "stream":
        return _run_stream(args, out)
    scenario = SCENARIOS[args.scenario]
    collector = MetricsCollector()
    rejections = Rejections()
    unsubscribers = [subscribe(collector), subscribe(rejections)]
    use_rich = _has_rich() and out.isatty()
    view = None if args.no_live else LiveView(out, collector, rejections, use_rich)
    print(
        f"resilient demo: scenario {scenario.name!r} ({scenario.description}), "
        f"{args.duration:g} s, seed {args.seed}",
        file=out,
    )
    try:
        result = run_scenario(
            scenario, args.duration, args.seed, on_tick=view.tick if view else None
        )
    finally:
        for unsubscribe in unsubscribers:
            unsubscribe()
    summaries = summarize(result)
    print_table(summary_rows(summaries), ("unprotected", "with_resilience"), out)
    print(file=out)
    for note in summary_notes():
        print(textwrap.fill(note, 78, initial_indent="- ", subsequent_indent="  "), file=out)
    print(f"\nwith_resilience: {policy_line(collector, rejections)}", file=out)
    args.out.write_text(
        render_svg(timeline(result), f"resilient demo: {scenario.name} ({scenario.description})")
    )
    print(f"\ntimeline chart: {args.out.resolve()}", file=out)
    return 0


def _run_herd(args: argparse.Namespace, out: TextIO) -> int:
    import asyncio

    from .herd import herd_rows, run_herd
    from .view import print_table

    half = args.duration / 2
    shape = {
        "duration": half,
        "fail_for": half * 0.4,
        "open_time": max(0.25, half * 0.05),
    }
    print(
        f"resilient demo: scenario 'herd' (200 callers with retry, one breaker; "
        f"the dependency fails for {shape['fail_for']:g} s, then recovers), "
        f"{half:g} s unprotected then {half:g} s protected",
        file=out,
    )
    unprotected = asyncio.run(run_herd(protected=False, **shape))
    protected = asyncio.run(run_herd(protected=True, **shape))
    print_table(herd_rows(unprotected, protected), ("unprotected", "with breaker"), out)
    return 0


def _run_stream(args: argparse.Namespace, out: TextIO) -> int:
    from .stream import run_streams, stream_rows
    from .view import print_table

    half = args.duration / 2
    print(
        "resilient demo: scenario 'stream' (a model streaming tokens: 5xx and "
        "silence before the first token, stalls and breaks mid-stream), "
        f"{half:g} s unprotected then {half:g} s through with_resilience",
        file=out,
    )
    unprotected, protected = run_streams(half, args.seed)
    print_table(stream_rows(unprotected, protected), ("unprotected", "with_resilience"), out)
    print(
        "\n- with_resilience: retry before the first token, first_item=0.2 s, "
        "inactivity=0.1 s; errors after the first token are not retried.",
        file=out,
    )
    return 0
