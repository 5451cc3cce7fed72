"""The CLOSED hot path with Redis storage vs in-memory, and propagation delay.

    python benchmarks/bench_redis.py [--calls N] [--rounds N]

Starts its own redis-server on a free loopback port (no persistence) and stops
it after. Two ``RedisStorage`` objects in this process stand for two
instances: each has its own connections and threads.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import timeit
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from resilient import CircuitBreaker, CircuitBreakerConfig, CircuitState
from resilient.redis import RedisStorage


@contextmanager
def redis_server() -> Iterator[str]:
    binary = shutil.which("redis-server")
    if binary is None:
        sys.exit("redis-server is not installed (apt-get install redis-server)")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with tempfile.TemporaryDirectory() as workdir:
        process = subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", workdir, "--loglevel", "warning"],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 10
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.01)
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            process.terminate()
            process.wait(timeout=10)


def per_call_ns(fn: Callable[[], object], calls: int, rounds: int) -> float:
    """Best of ``rounds`` timings of ``calls`` calls, in ns per call."""
    return min(timeit.repeat(fn, number=calls, repeat=rounds)) / calls * 1e9


def hot_path(url: str, calls: int, rounds: int) -> None:
    def ok() -> int:
        return 1

    async def aok() -> int:
        return 1

    storage = RedisStorage.from_url(url)
    local = CircuitBreaker("local", CircuitBreakerConfig())
    shared = CircuitBreaker("shared", CircuitBreakerConfig(storage=storage))
    storage.sync()
    print(f"CLOSED hot path, best of {rounds} x {calls} calls (ns per call):")
    rows = [
        ("bare function", per_call_ns(ok, calls, rounds)),
        ("breaker, in-memory", per_call_ns(lambda: local.call(ok), calls, rounds)),
        ("breaker, Redis storage", per_call_ns(lambda: shared.call(ok), calls, rounds)),
    ]
    loop = asyncio.new_event_loop()

    def async_batch(breaker: CircuitBreaker) -> Callable[[], object]:
        async def batch() -> None:
            for _ in range(calls):
                await breaker.call_async(aok)

        return lambda: loop.run_until_complete(batch())

    for label, breaker in (("in-memory", local), ("Redis storage", shared)):
        best = min(timeit.repeat(async_batch(breaker), number=1, repeat=rounds))
        rows.append((f"async breaker, {label}", best / calls * 1e9))
    loop.close()
    for label, ns in rows:
        print(f"  {label:<30} {ns:8.0f}")
    storage.close()


def propagation(url: str, rounds: int) -> None:
    a, b = RedisStorage.from_url(url), RedisStorage.from_url(url)
    fields = {"failure_threshold": 3, "recovery_timeout": 60.0}
    one = CircuitBreaker("pay", CircuitBreakerConfig(storage=a, **fields))
    two = CircuitBreaker("pay", CircuitBreakerConfig(storage=b, **fields))
    a.sync()
    b.sync()

    def wait_until(state: CircuitState, since: float) -> float:
        deadline = since + 5.0
        while two._core.state is not state:  # the hot path's own read
            if time.perf_counter() > deadline:
                raise RuntimeError(f"no {state.value} after 5 s")
            time.sleep(0.0001)
        return time.perf_counter() - since

    def fail() -> None:
        raise ConnectionError

    def settle() -> None:
        # Let both instances go idle, so each transition is measured from
        # cold, not inside the flusher's pause between two syncs.
        time.sleep(0.02)

    forced, tripped = [], []
    for _ in range(rounds):
        settle()
        start = time.perf_counter()
        one.force_open()
        forced.append(wait_until(CircuitState.FORCED_OPEN, start))
        one.reset()
        wait_until(CircuitState.CLOSED, time.perf_counter())
        settle()
        start = time.perf_counter()
        for _ in range(3):
            with suppress(ConnectionError):
                one.call(fail)
        tripped.append(wait_until(CircuitState.OPEN, start))
        one.reset()
        wait_until(CircuitState.CLOSED, time.perf_counter())
    print(f"propagation to another instance, {rounds} rounds (ms): median / p95 / max")
    for label, samples in (("force_open()", forced), ("3 failures trip the fleet", tripped)):
        samples.sort()
        p95 = samples[min(len(samples) - 1, int(len(samples) * 0.95))]
        print(
            f"  {label:<30} {statistics.median(samples) * 1e3:6.2f} / "
            f"{p95 * 1e3:6.2f} / {samples[-1] * 1e3:6.2f}"
        )
    print(f"  (bound without pub/sub: refresh_interval = {b.refresh_interval} s)")
    a.close()
    b.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--propagation-rounds", type=int, default=50)
    args = parser.parse_args()
    with redis_server() as url:
        hot_path(url, args.calls, args.rounds)
        propagation(url, args.propagation_rounds)


if __name__ == "__main__":
    main()
