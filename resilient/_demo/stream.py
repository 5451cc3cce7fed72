"""``python -m resilient demo --scenario stream``: a streaming LLM client.

A simulated model streams tokens. Some answers fail with a 5xx before the
first token, some stall before it, some stall or break mid-stream. The
same traffic runs unprotected (a consumer that gives up after ``PATIENCE``
seconds) and through ``with_resilience`` with a first-item and an
inactivity timeout and a retry before the first token. Reported: streams
completed, time to first item p50/p99, items delivered.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

__all__ = ["StreamRun", "run_streams", "stream_rows"]

TOKENS = 20
FIRST = 0.03  # seconds to a healthy first token
GAP = 0.004  # between tokens
STALL = 30.0  # a stalled answer, left to itself
PATIENCE = 1.0  # an unprotected consumer gives up after this long
WORKERS = 8


class UpstreamError(Exception):
    """The model's server answered 5xx."""


@dataclass
class StreamRun:
    started: int = 0
    completed: int = 0
    items: int = 0
    first_items: list[float] = field(default_factory=list)


def _fate(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.15:
        return "5xx"  # before the first token
    if roll < 0.25:
        return "silent"  # stalls before the first token
    if roll < 0.32:
        return "stall"  # stalls mid-stream
    if roll < 0.38:
        return "break"  # breaks mid-stream
    return "ok"


def _model(rng: random.Random) -> Callable[[str], AsyncIterator[str]]:
    async def tokens(prompt: str) -> AsyncIterator[str]:
        fate = _fate(rng)
        if fate == "5xx":
            await asyncio.sleep(0.005)
            raise UpstreamError("503 Service Unavailable")
        await asyncio.sleep(STALL if fate == "silent" else FIRST)
        for i in range(TOKENS):
            if i == TOKENS // 2 and fate == "stall":
                await asyncio.sleep(STALL)
            if i == TOKENS // 2 and fate == "break":
                raise ConnectionError("connection reset mid-stream")
            yield f"t{i}"
            await asyncio.sleep(GAP)

    return tokens


async def _consume(
    stream: Callable[[str], AsyncIterator[str]], run: StreamRun, patience: float | None
) -> None:
    run.started += 1
    start = time.monotonic()
    first = True
    try:
        async with asyncio.timeout(patience):
            async for _ in stream("hello"):
                if first:
                    run.first_items.append(time.monotonic() - start)
                    first = False
                run.items += 1
    except (Exception, TimeoutError):
        return
    run.completed += 1


async def _drive(
    stream: Callable[[str], AsyncIterator[str]], seconds: float, patience: float | None
) -> StreamRun:
    run = StreamRun()
    ends = time.monotonic() + seconds

    async def worker() -> None:
        while time.monotonic() < ends:
            await _consume(stream, run, patience)

    await asyncio.gather(*(worker() for _ in range(WORKERS)))
    return run


def run_streams(seconds: float, seed: int) -> tuple[StreamRun, StreamRun]:
    """``seconds`` unprotected, then ``seconds`` protected, the same fates."""
    from .. import Registry, RetryConfig, TimeoutConfig, with_resilience

    unprotected = asyncio.run(_drive(_model(random.Random(seed)), seconds, PATIENCE))
    protected_stream = with_resilience(
        "demo-stream",
        registry=Registry(),
        retry=RetryConfig(max_attempts=4, initial_delay=0.01, max_delay=0.05),
        timeout=TimeoutConfig(PATIENCE, first_item=0.2, inactivity=0.1),
        circuit_breaker=None,
    )(_model(random.Random(seed)))
    protected = asyncio.run(_drive(protected_stream, seconds, None))
    return unprotected, protected


def _ms(values: list[float], q: float) -> str:
    if not values:
        return "-"
    ordered = sorted(values)
    return f"{ordered[max(0, math.ceil(q * len(ordered)) - 1)] * 1000:.0f} ms"


def stream_rows(unprotected: StreamRun, protected: StreamRun) -> list[tuple[str, str, str]]:
    rows = []
    reads: tuple[tuple[str, Callable[[StreamRun], str]], ...] = (
        ("streams started", lambda r: str(r.started)),
        ("streams completed", lambda r: str(r.completed)),
        (
            "completed",
            lambda r: f"{100 * r.completed / r.started:.0f} %" if r.started else "-",
        ),
        ("time to first item p50", lambda r: _ms(r.first_items, 0.50)),
        ("time to first item p99", lambda r: _ms(r.first_items, 0.99)),
        ("items delivered", lambda r: str(r.items)),
    )
    for label, read in reads:
        rows.append((label, read(unprotected), read(protected)))
    return rows
