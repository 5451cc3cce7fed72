"""Commands per second one process sends to Redis, against the number of
breakers it shares, counted by Redis itself (``INFO commandstats``, which
also counts the commands a script runs).

    python benchmarks/redis_traffic.py [--seconds S] [--breakers 1,10,100,1000]

Starts its own redis-server on a free loopback port (no persistence). For
each count: a fresh ``RedisStorage`` with the default settings, that many
breakers, their first sync done, then the counters reset and read again
after ``--seconds`` of the scenario:

- idle: no calls;
- busy: every breaker serves successful calls all the time;
- failing: one breaker fails every call (and trips, and probes), the rest idle.

Measure over more than ``heartbeat_interval`` (30 s by default) to see the
heartbeat; docs/fleet.md has the figures and the arithmetic.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import contextlib

import redis

from benchmarks.bench_redis import redis_server
from resilient import CircuitBreaker, CircuitBreakerConfig, CircuitOpenError
from resilient.redis import RedisStorage


def _commands(client: redis.Redis) -> int:
    stats = client.info("commandstats")
    return sum(v["calls"] for k, v in stats.items() if "config" not in k and "info" not in k)


def _drive(breakers: list[CircuitBreaker], scenario: str, stop: threading.Event) -> None:
    def fail() -> None:
        raise ConnectionError

    while not stop.is_set():
        if scenario == "busy":
            for breaker in breakers:
                breaker.call(lambda: None)
        elif scenario == "failing":
            with contextlib.suppress(ConnectionError, CircuitOpenError):
                breakers[0].call(fail)
        stop.wait(0.001)


def measure(url: str, count: int, scenario: str, seconds: float) -> float:
    client = redis.Redis.from_url(url)
    client.flushall()
    storage = RedisStorage.from_url(url, namespace=f"traffic{count}")
    breakers = [
        CircuitBreaker(f"dep:{i}", CircuitBreakerConfig(storage=storage, recovery_timeout=5.0))
        for i in range(count)
    ]
    assert storage.sync()
    time.sleep(0.5)  # the listener's first full sync
    stop = threading.Event()
    driver = threading.Thread(target=_drive, args=(breakers, scenario, stop))
    client.config_resetstat()
    driver.start()
    time.sleep(seconds)
    sent = _commands(client)
    stop.set()
    driver.join()
    storage.close()
    client.close()
    return sent / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=65.0)
    parser.add_argument("--breakers", default="1,10,100,1000")
    parser.add_argument("--scenarios", default="idle,busy,failing")
    args = parser.parse_args()
    counts = [int(n) for n in args.breakers.split(",")]
    with redis_server() as url:
        print(f"{'scenario':<8} {'breakers':>8} {'commands/s':>11}")
        for scenario in args.scenarios.split(","):
            for count in counts:
                rate = measure(url, count, scenario, args.seconds)
                print(f"{scenario:<8} {count:>8} {rate:>11.2f}", flush=True)


if __name__ == "__main__":
    main()
