"""Overload: a fixed bulkhead against an adaptive one, in simulated time.

A dependency of capacity ``C`` answers in ``base`` seconds while at most
``C`` calls are in flight, and proportionally slower beyond (it queues):
a call that finds ``n > C`` in flight takes ``base * n / C``. Closed-loop
clients call it through a bulkhead without a queue; a client turned away
tries again ``base`` seconds later.

The bulkhead is the real thing's rules, driven without threads or a clock:
a :class:`~resilient._bulkhead_core.LimiterCore` for the permits and an
algorithm of :mod:`resilient.adaptive` fed a window of samples at a time,
exactly as :class:`~resilient.bulkhead.Bulkhead` feeds them. Deterministic:
the same arguments give the same run.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from .._bulkhead_core import LimiterCore
from ..adaptive import WINDOW, AdaptiveLimit, estimator

__all__ = ["Overload", "p99", "simulate"]


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
    # (time, order, client, began) — began < 0: a client about to try
    events: list[tuple[float, int, int, float]] = []
    calling = 0

    def add_clients(now: float, wanted: int) -> None:
        nonlocal calling
        while calling < wanted:
            heapq.heappush(events, (now, next(order), calling, -1.0))
            calling += 1

    add_clients(0.0, clients(0))
    in_flight = 0
    window_sum, window_n = 0.0, 0
    while len(run.latencies) < calls and events:
        now, _, client, began = heapq.heappop(events)
        if client >= calling:
            continue  # a client gone since (load fell)
        if began < 0:
            try:
                core.take()
            except IndexError:
                run.rejected += 1
                heapq.heappush(events, (now + base, next(order), client, -1.0))
                continue
            in_flight += 1
            c = capacity(len(run.latencies))
            took = base * max(1.0, in_flight / c) * (1.0 + jitter * (2.0 * rng.random() - 1.0))
            heapq.heappush(events, (now + took, next(order), client, now))
            continue
        latency = now - began
        n = len(run.latencies)
        if algorithm is not None:
            # The bulkhead's window: WINDOW samples handed over as one.
            window_sum += latency
            window_n += 1
            if window_n >= WINDOW:
                new = int(algorithm.update(window_sum / window_n, core.active, 0, window_n))
                window_sum, window_n = 0.0, 0
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
        heapq.heappush(events, (now, next(order), client, -1.0))
    return run
