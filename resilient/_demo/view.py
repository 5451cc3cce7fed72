"""The terminal: a live view while the scenario runs, and the closing summary.
Uses rich when the ``cli`` extra is installed, plain text otherwise."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TextIO

from .runner import ATTEMPT_TIMEOUT, ATTEMPTS, POLICY_NAME, PROTECTED, UNPROTECTED, Run
from .summary import PathSummary, percentile, window_stats

__all__ = ["LiveView", "Rejections", "policy_line", "print_table", "summary_rows"]


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


class Rejections:
    """Counts the breaker's and bulkhead's refusals of the demo policy, also
    those a fallback then answered (the collector counts requests, and a
    request the fallback answered succeeded)."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, event: object) -> None:
        from ..events import CallRejected

        if (
            isinstance(event, CallRejected)
            and event.name == POLICY_NAME
            and event.level == "policy"
        ):
            self.count += 1


def policy_line(collector: Any, rejections: Rejections) -> str:
    stats = collector.statistics.by_name.get(POLICY_NAME)
    retries = stats.total_retries if stats else 0
    timeouts = stats.timeouts if stats else 0
    fallbacks = stats.fallbacks if stats else 0
    return (
        f"retries {retries} · rejected by the breaker {rejections.count} · "
        f"timeouts {timeouts} · fallbacks {fallbacks}"
    )


def _breaker_state() -> str:
    from .._registry.registry import registry

    breaker = registry.get(POLICY_NAME)
    return breaker.state.value if breaker is not None else "closed"


def _latency(run: Run, path: str) -> tuple[float, float]:
    recent = [r.latency for r in run.records[-3000:] if r.path == path]
    return percentile(recent, 50), percentile(recent, 99)


class LiveView:
    """Redraws a few times a second; ``tick`` is called by the runner."""

    def __init__(self, out: TextIO, collector: Any, rejections: Rejections, use_rich: bool) -> None:
        self._out = out
        self._collector = collector
        self._rejections = rejections
        self._live: Any = None
        self._last_plain = -1
        self._rich = use_rich
        self.tick: Callable[[Run], None] = self._tick_rich if use_rich else self._tick_plain

    def _rows(self, run: Run) -> list[tuple[str, str, str, str, str, str]]:
        now = run.elapsed()
        rows = []
        for path, label in ((PROTECTED, "with_resilience"), (UNPROTECTED, "unprotected")):
            rate, success = window_stats(run, path, now)
            p50, p99 = _latency(run, path)
            state = _breaker_state() if path == PROTECTED else "-"
            rows.append((label, state, f"{rate:.0f}", f"{success:.0%}", _ms(p50), _ms(p99)))
        return rows

    def _tick_plain(self, run: Run) -> None:
        second = int(run.elapsed())
        if second == self._last_plain and not run.done:
            return
        self._last_plain = second
        phase = run.scenario.phase_at(run.fraction()).name
        parts = [f"[{min(run.elapsed(), run.duration):5.1f}s {phase:<10}]"]
        for label, state, rate, success, p50, p99 in self._rows(run):
            parts.append(f"{label}: {state:<9} {rate:>4}/s fresh {success:>4} p50 {p50} p99 {p99}")
        parts.append(policy_line(self._collector, self._rejections))
        print(" | ".join(parts), file=self._out, flush=True)

    def _render(self, run: Run) -> Any:
        from rich.console import Group
        from rich.progress_bar import ProgressBar
        from rich.table import Table
        from rich.text import Text

        table = Table(title=f"scenario {run.scenario.name!r}: {run.scenario.description}")
        for column in ("policy", "breaker", "calls/s", "fresh data", "p50", "p99"):
            table.add_column(column, justify="right" if column != "policy" else "left")
        for row in self._rows(run):
            table.add_row(*row)
        phase = run.scenario.phase_at(run.fraction()).name
        footer = (
            f"dependency: {phase} · {min(run.elapsed(), run.duration):.1f}/{run.duration:.0f} s"
            f" · {policy_line(self._collector, self._rejections)}"
        )
        bar = ProgressBar(total=run.duration, completed=min(run.elapsed(), run.duration))
        return Group(table, Text(footer), bar)

    def _tick_rich(self, run: Run) -> None:
        if self._live is None:
            from rich.console import Console
            from rich.live import Live

            console = Console(file=self._out)
            self._live = Live(self._render(run), console=console, refresh_per_second=8)
            self._live.start()
        self._live.update(self._render(run))
        if run.done:
            self._live.stop()


def print_table(
    rows: list[tuple[str, str, str]], heads: tuple[str, str], out: TextIO, cell: int = 15
) -> None:
    """The closing table: a label column, then the two runs side by side."""
    width = max(len(r[0]) for r in rows)
    print(file=out)
    for label, left, right in [("", *heads), *rows]:
        print(f"{label:<{width}}  {left:>{cell}}  {right:>{cell}}", file=out)


def summary_rows(summaries: dict[str, PathSummary]) -> list[tuple[str, str, str]]:
    u, p = summaries[UNPROTECTED], summaries[PROTECTED]
    closed = "did not close" if p.recover_seconds is None else f"{p.recover_seconds:.1f} s"
    return [
        ("calls made by users", str(u.calls), str(p.calls)),
        ("failed calls seen by users", str(u.failed), str(p.failed)),
        ("served from fallback", "-", str(p.fallbacks)),
        ("calls wasted on the failing dependency", str(u.wasted), str(p.wasted)),
        ("breaker closed again after the dependency recovered", "- (no breaker)", closed),
        ("p50 latency while the dependency was healthy", _ms(u.p50_healthy), _ms(p.p50_healthy)),
        ("p99 latency while the dependency was healthy", _ms(u.p99_healthy), _ms(p.p99_healthy)),
        ("p99 latency while the dependency was down", _ms(u.p99_unhealthy), _ms(p.p99_unhealthy)),
        ("slowest call", _ms(u.slowest), _ms(p.slowest)),
    ]


def summary_notes() -> list[str]:
    """How to read the latency rows."""
    return [
        f"with_resilience bounds each attempt at {ATTEMPT_TIMEOUT * 1000:.0f} ms "
        f"({ATTEMPTS} attempts, then the fallback answers), so its calls stay short "
        "while the dependency is slow; unprotected calls wait as long as it takes.",
        "While the dependency is healthy, with_resilience's p99 is higher: the few "
        "calls that fail are retried after a short wait instead of failing.",
        "Latency counts each call once: an unprotected worker stuck in a slow call "
        "makes fewer calls, so compare the rows per phase, not over the whole run.",
    ]
