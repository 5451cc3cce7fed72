"""What observing costs: a successful call through each layer with nobody
listening, with a no-op listener, and with a ``MetricsCollector``.

    python benchmarks/bench_observability.py [--calls N] [--rounds N]

Best of ``--rounds`` runs, in nanoseconds per call. Run it against an older
checkout (``PYTHONPATH=that/checkout``) to compare the no-listener column.
"""

from __future__ import annotations

import argparse
import sys
import timeit
from collections.abc import Callable
from pathlib import Path
from typing import Any

if "resilient" not in sys.modules:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import resilient
from resilient import (
    CircuitBreaker,
    MetricsCollector,
    Registry,
    with_bulkhead,
    with_fallback,
    with_resilience,
    with_retry,
)


def work(x: int) -> int:
    return x


def cases() -> dict[str, Callable[..., Any]]:
    registry = Registry()
    return {
        "function": work,
        "circuit breaker": CircuitBreaker("bench")(work),
        "retry": with_retry()(work),
        "fallback": with_fallback(0)(work),
        "bulkhead": with_bulkhead("bench", max_concurrent=8, registry=registry)(work),
        "with_resilience (no timeout)": with_resilience("bench", timeout=None)(work),
    }


def best(fn: Callable[..., Any], calls: int, rounds: int) -> float:
    timings = timeit.repeat(lambda: fn(1), number=calls, repeat=rounds)
    return min(timings) / calls * 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    print(f"{'ns per call':32} {'no listener':>12} {'no-op':>12} {'collector':>12}")
    for name, fn in cases().items():
        quiet = best(fn, args.calls, args.rounds)
        unsubscribe = resilient.subscribe(lambda event: None)
        noop = best(fn, args.calls // 10, args.rounds)
        unsubscribe()
        unsubscribe = resilient.subscribe(MetricsCollector())
        collected = best(fn, args.calls // 10, args.rounds)
        unsubscribe()
        print(f"{name:32} {quiet:12.0f} {noop:12.0f} {collected:12.0f}")


if __name__ == "__main__":
    main()
