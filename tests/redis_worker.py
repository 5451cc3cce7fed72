"""One instance of a fleet, in its own process, for the Redis tests.

    python tests/redis_worker.py URL NAME '{"failure_threshold": 3, ...}' [QUORUM]

Reads one command per line on stdin and answers one line on stdout:
``fail`` / ``ok`` (a call through the breaker: failed, ok or rejected),
``hold`` (enter the breaker and stay inside: admitted or rejected),
``leave ok|fail`` (end the held call), ``state``, ``sync`` (a full sync
now, as the background thread makes: ``synced`` once Redis answered, or
``down``), ``quit``.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from resilient import CircuitBreaker, CircuitBreakerConfig, CircuitOpenError
from resilient.redis import RedisStorage

ROOT = Path(__file__).resolve().parent.parent


class Worker:
    """One instance of the fleet in its own process (tests/redis_worker.py)."""

    def __init__(self, url: str, name: str, quorum: int = 1, **fields: Any) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.process = subprocess.Popen(
            [sys.executable, __file__, url, name,
             json.dumps(fields), str(quorum)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT,
        )  # fmt: skip
        assert self.read() == "ready"

    def read(self) -> str:
        assert self.process.stdout is not None
        return self.process.stdout.readline().strip()

    def ask(self, command: str) -> str:
        assert self.process.stdin is not None
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        return self.read()

    def close(self) -> None:
        if self.process.poll() is None:
            self.ask("quit")
            self.process.wait(timeout=10)
        assert self.process.returncode == 0


class Boom(Exception):
    pass


def _fail() -> None:
    raise Boom("dependency down")


def main() -> None:
    url, name, fields = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    quorum = int(sys.argv[4]) if len(sys.argv) > 4 else 1
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    storage = RedisStorage.from_url(url, refresh_interval=0.2, quorum=quorum)
    breaker = CircuitBreaker(name, CircuitBreakerConfig(storage=storage, **fields))
    held = False
    print("ready", flush=True)
    for line in sys.stdin:
        command, *rest = line.split()
        if command == "quit":
            break
        if command == "state":
            answer = breaker.state.value
        elif command == "sync":
            answer = "synced" if storage.sync() else "down"
        elif command in ("fail", "ok"):
            try:
                breaker.call(_fail if command == "fail" else (lambda: None))
                answer = "ok"
            except Boom:
                answer = "failed"
            except CircuitOpenError:
                answer = "rejected"
        elif command == "hold":
            try:
                breaker.__enter__()
                held = True
                answer = "admitted"
            except CircuitOpenError:
                answer = "rejected"
        elif command == "leave":
            assert held
            held = False
            error = Boom("probe failed") if rest == ["fail"] else None
            breaker.__exit__(type(error) if error else None, error, None)
            answer = "left"
        else:
            answer = f"unknown command {command!r}"
        print(answer, flush=True)
    storage.close()


if __name__ == "__main__":
    main()
