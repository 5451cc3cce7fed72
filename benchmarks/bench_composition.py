"""The cost of a successful call through each layer and through the whole
``with_resilience`` stack, next to a ``functools.wraps`` pass-through.

    python benchmarks/bench_composition.py [--calls N] [--rounds N]

Best of ``--rounds`` runs, in nanoseconds per call. The sync timeout runs
each call in a worker thread, and costs what a thread hand-off costs: it is
shown apart from the rest of the stack.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from resilient import (
    Bulkhead,
    BulkheadConfig,
    CircuitBreaker,
    Fallback,
    Registry,
    Resilience,
    ResiliencePolicy,
    Retry,
)


def work(x: int) -> int:
    return x


async def awork(x: int) -> int:
    return x


def wraps(fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return fn(*args, **kwargs)

    return wrapper


def awraps(fn: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        return await fn(*args, **kwargs)

    return wrapper


def best(run: Callable[[int], None], calls: int, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        run(calls)
        times.append(time.perf_counter() - start)
    return min(times) / calls * 1e9


def sync_case(fn: Callable[[int], int]) -> Callable[[int], None]:
    def run(n: int) -> None:
        for _ in range(n):
            fn(1)

    return run


def async_case(fn: Callable[[int], Awaitable[int]]) -> Callable[[int], None]:
    async def loop(n: int) -> None:
        for _ in range(n):
            await fn(1)

    return lambda n: asyncio.run(loop(n))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=7)
    options = parser.parse_args()
    reg = Registry()

    def stack(name: str, **fields: Any) -> Resilience:
        return Resilience(name, ResiliencePolicy(**fields), registry=reg)

    full = {"bulkhead": BulkheadConfig(10), "fallback": Fallback(value=0)}
    sync_cases: list[tuple[str, Callable[[int], int]]] = [
        ("bare function", work),
        ("functools.wraps pass-through", wraps(work)),
        ("bulkhead", Bulkhead("b", max_concurrent=10)(work)),
        ("circuit breaker", CircuitBreaker("c")(work)),
        ("retry", Retry()(work)),
        ("breaker + retry", stack("s1", timeout=None)(work)),
        ("whole stack, no timeout", stack("s2", timeout=None, **full)(work)),
    ]
    async_cases: list[tuple[str, Callable[[int], Awaitable[int]]]] = [
        ("bare coroutine function", awork),
        ("functools.wraps pass-through", awraps(awork)),
        ("whole stack, no timeout", stack("a1", timeout=None, **full)(awork)),
        ("whole stack with timeout", stack("a2", **full)(awork)),
    ]
    calls, rounds = options.calls, options.rounds
    print("sync (ns per call)")
    base = 0.0
    for label, fn in sync_cases:
        ns = best(sync_case(fn), calls, rounds)
        base = ns if label.startswith("functools") else base
        ratio = f"{ns / base:5.1f}x" if base else ""
        print(f"  {label:32s} {ns:8.0f} {ratio}")
    threaded = best(sync_case(stack("s3", **full)(work)), calls // 20, rounds)
    print(f"  {'whole stack, thread timeout':32s} {threaded:8.0f}")
    print("async (ns per call)")
    base = 0.0
    for label, afn in async_cases:
        ns = best(async_case(afn), calls, rounds)
        base = ns if label.startswith("functools") else base
        ratio = f"{ns / base:5.1f}x" if base else ""
        print(f"  {label:32s} {ns:8.0f} {ratio}")


if __name__ == "__main__":
    main()
