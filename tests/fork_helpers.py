"""Module-level policies and decorated functions for tests/test_fork.py: a
``multiprocessing`` pool (fork, forkserver, spawn) imports them by name."""

from __future__ import annotations

import os

from resilient import (
    CircuitBreaker,
    CircuitBreakerConfig,
    TimeoutConfig,
    with_circuit_breaker,
    with_hedging,
    with_resilience,
)

breaker = CircuitBreaker("fork-helpers", CircuitBreakerConfig(timeout=0.5))


@with_circuit_breaker(breaker)
def through_breaker(x: int) -> tuple[int, int]:
    """``(x * 2, pid)``: the call ran under the breaker's timeout, on a worker
    thread of this process."""
    return x * 2, os.getpid()


@with_resilience("fork-helpers-stack", timeout=TimeoutConfig(0.5, mode="thread"))
def through_stack(x: int) -> int:
    return x + 1


@with_hedging(0.2)
def hedged(x: int) -> int:
    return x - 1


def task(x: int) -> tuple[int, int, int, int]:
    """One task of a pool: a first call through each decorated function."""
    doubled, pid = through_breaker(x)
    return doubled, through_stack(x), hedged(x), pid
