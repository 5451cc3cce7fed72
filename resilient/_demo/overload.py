"""Overload: a fixed bulkhead against an adaptive one, in simulated time.

A dependency of capacity ``C`` answers in ``base`` seconds while at most
``C`` calls are in flight, and proportionally slower beyond (it queues):
a call that finds ``n > C`` in flight takes ``base * n / C``. Closed-loop
clients call it through a bulkhead without a queue; a client turned away
tries again ``base`` seconds later.

The bulkhead is the real thing's rules, driven without threads or a clock:
a ``LimiterCore`` for the permits and an
algorithm of ``resilient.adaptive`` fed a window of samples at a time,
exactly as ``Bulkhead`` feeds them. Deterministic:
the same arguments give the same run.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from html import escape
from typing import Any, TextIO

from ..bulkhead.adaptive import TIMED, WINDOW, AdaptiveLimit, estimator
from ..bulkhead.state import LimiterCore

__all__ = ["Overload", "docs_chart", "p99", "render_limits_svg", "run_overload", "simulate"]


@dataclass(slots=True)
class Overload:
    """One simulated run. Per finished call, in order: the limit after it,
    its latency, the capacity it met and the clients calling at the time."""

    limits: list[int] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    capacities: list[int] = field(default_factory=list)
    clients: list[int] = field(default_factory=list)
    rejected: int = 0


def p99(latencies: list[float]) -> float:
    """The exact nearest-rank 99th percentile."""
    ordered = sorted(latencies)
    if not ordered:
        return 0.0
    return ordered[max(0, -(-99 * len(ordered) // 100) - 1)]


def simulate(
    adaptive: AdaptiveLimit | None,
    *,
    max_concurrent: int,
    calls: int,
    capacity: Callable[[int], int],
    clients: Callable[[int], int],
    base: float = 0.01,
    jitter: float = 0.1,
    seed: int = 1,
) -> Overload:
    """Run until ``calls`` calls have finished. ``capacity(n)`` and
    ``clients(n)`` give the dependency's capacity and how many clients call
    after ``n`` finished calls; ``jitter`` spreads each latency by ± that
    fraction."""
    rng = random.Random(seed)
    algorithm = None if adaptive is None else estimator(adaptive, max_concurrent)
    core = LimiterCore(max_concurrent, 0, None if algorithm is None else int(algorithm.estimate))
    run = Overload()
    order = itertools.count()
    # (time, order, client, began, timed) — began < 0: a client about to try
    events: list[tuple[float, int, int, float, bool]] = []
    calling = 0

    def add_clients(now: float, wanted: int) -> None:
        nonlocal calling
        while calling < wanted:
            heapq.heappush(events, (now, next(order), calling, -1.0, False))
            calling += 1

    add_clients(0.0, clients(0))
    in_flight = 0
    window_sum, window_timed, window_n, started = 0.0, 0, 0, 0
    while len(run.latencies) < calls and events:
        now, _, client, began, timed = heapq.heappop(events)
        if client >= calling:
            continue  # a client gone since (load fell)
        if began < 0:
            try:
                core.take()
            except IndexError:
                run.rejected += 1
                heapq.heappush(events, (now + base, next(order), client, -1.0, False))
                continue
            in_flight += 1
            started += 1
            c = capacity(len(run.latencies))
            took = base * max(1.0, in_flight / c) * (1.0 + jitter * (2.0 * rng.random() - 1.0))
            timed = TIMED[started & 63]  # the calls the bulkhead times
            heapq.heappush(events, (now + took, next(order), client, now, timed))
            continue
        latency = now - began
        n = len(run.latencies)
        if algorithm is not None:
            # The bulkhead's window: WINDOW calls handed over as one, with
            # the mean latency of those of them it timed.
            if timed:
                window_sum += latency
                window_timed += 1
            window_n += 1
            if window_n >= WINDOW and window_timed:
                mean = window_sum / window_timed
                new = int(algorithm.update(mean, core.active, 0, window_n))
                window_sum, window_timed, window_n = 0.0, 0, 0
                if new != core.limit:
                    core.resize(new)
        in_flight -= 1
        if not core.settle():
            core.give()
        run.latencies.append(latency)
        run.limits.append(core.limit)
        run.capacities.append(capacity(n))
        run.clients.append(calling)
        wanted = clients(n + 1)
        if wanted > calling:
            add_clients(now, wanted)
        elif wanted < calling:
            calling = wanted
        heapq.heappush(events, (now, next(order), client, -1.0, False))
    return run


# -- the chart: the limit over a run -------------------------------------------------------

_COLOURS = ("#1f5fa8", "#2e9d4f", "#f0ad4e", "#d43f3a")


def render_limits_svg(
    series: dict[str, list[int]], capacity: list[int], title: str, *, points: int = 300
) -> str:
    """An SVG of each limit (one line per name) and the capacity (dashed),
    against finished calls, in the demo's timeline style."""
    width, height, left, right, top, bottom = 900, 400, 60, 20, 40, 70
    plot_w, plot_h = width - left - right, height - top - bottom
    calls = max((len(v) for v in series.values()), default=0) or 1
    peak = max([*capacity, *(x for v in series.values() for x in v), 1])
    scale = 10 ** len(str(int(peak))) / 10
    high = scale * -(-peak // scale)

    def xy(i: int, v: float) -> str:
        return f"{left + plot_w * i / calls:.1f},{top + plot_h * (1 - v / high):.1f}"

    def thin(values: list[int]) -> list[tuple[int, int]]:
        step = max(1, len(values) // points)
        return [(i, values[i]) for i in range(0, len(values), step)]

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
        f'<text x="{left}" y="22" font-size="15" font-weight="bold">{escape(title)}</text>',
        f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" '
        'fill="none" stroke="#cccccc"/>',
    ]
    for frac in (0.0, 0.5, 1.0):
        y = top + plot_h * (1 - frac)
        parts.append(f'<text x="{left - 44}" y="{y + 4:.1f}">{frac * high:g}</text>')
    parts.append(f'<text x="4" y="{top - 6}">concurrency limit</text>')
    lines = [("capacity", capacity, "#777777", ' stroke-dasharray="5,4"')]
    for j, (label, values) in enumerate(series.items()):
        lines.append((label, values, _COLOURS[j % len(_COLOURS)], ""))
    for j, (label, values, colour, dash) in enumerate(lines):
        path = " ".join(xy(i, v) for i, v in thin(values))
        parts.append(
            f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"{dash}/>'
        )
        parts.append(
            f'<text x="{left + 10 + 150 * j}" y="{height - 30}" fill="{colour}">'
            f"{escape(label)}</text>"
        )
    parts.append(f'<text x="{width - right - 140}" y="{height - 8}">finished calls: {calls}</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


# -- the figures the docs and the demo show --------------------------------------------------


def capacity_drop(n: int) -> int:
    """The docs' run: capacity 50, falling to 10 after 4,000 calls."""
    return 50 if n < 4000 else 10


def docs_chart() -> str:
    """The chart in docs/bulkhead.md: each algorithm from ``initial=20`` with
    500 clients, capacity 50 then 10."""
    from ..bulkhead.adaptive import ALGORITHMS

    runs = {
        name: simulate(
            AdaptiveLimit(name, initial=20, max_limit=500),  # type: ignore[arg-type]
            max_concurrent=500,
            calls=6000,
            capacity=capacity_drop,
            clients=lambda n: 500,
        )
        for name in ALGORITHMS
    }
    capacity = [capacity_drop(n) for n in range(6000)]
    return render_limits_svg(
        {name: run.limits for name, run in runs.items()},
        capacity,
        "adaptive limit, 500 clients: capacity 50, then 10 after 4,000 calls",
    )


def rising_load(calls: int, capacity: int) -> Callable[[int], int]:
    """Clients from half the capacity up to ten times it, evenly over the run."""
    return lambda n: max(1, int(capacity * (0.5 + 9.5 * min(n, calls) / calls)))


def run_overload(args: Any, out: TextIO) -> int:
    """``python -m resilient demo --scenario overload``: a fixed bulkhead of
    10 x capacity against an adaptive one, as load rises from half the
    capacity to ten times it (simulated time: instant, deterministic)."""
    capacity, base = 50, 0.01
    calls = max(2000, int(args.duration * 500))
    clients = rising_load(calls, capacity)
    fixed, adaptive = (
        simulate(
            limit,
            max_concurrent=10 * capacity,
            calls=calls,
            capacity=lambda n: capacity,
            clients=clients,
            base=base,
            seed=args.seed,
        )
        for limit in (None, AdaptiveLimit(initial=20, max_limit=10 * capacity))
    )
    print(
        f"resilient demo: scenario 'overload' (clients rise from {capacity // 2} to "
        f"{10 * capacity} against a dependency of capacity {capacity}, {base * 1000:g} ms "
        f"unloaded), {calls} calls, seed {args.seed}",
        file=out,
    )
    rows = [
        ("final limit", fixed.limits[-1], adaptive.limits[-1]),
        ("p99 latency (last half)", _ms(p99(fixed.latencies[calls // 2 :])), ""),
        ("rejected attempts", fixed.rejected, adaptive.rejected),
    ]
    rows[1] = (rows[1][0], rows[1][1], _ms(p99(adaptive.latencies[calls // 2 :])))
    width = max(len(r[0]) for r in rows)
    print(f"\n{'':<{width}}  {'fixed (500)':>15}  {'adaptive':>15}", file=out)
    for label, a, b in rows:
        print(f"{label:<{width}}  {a!s:>15}  {b!s:>15}", file=out)
    args.out.write_text(
        render_limits_svg(
            {"fixed": fixed.limits, "adaptive (gradient)": adaptive.limits},
            [capacity] * calls,
            f"resilient demo: overload (clients {capacity // 2} -> {10 * capacity}, "
            f"capacity {capacity})",
        )
    )
    print(f"\nlimit chart: {args.out.resolve()}", file=out)
    return 0


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"
