"""One instance of a fleet, in its own process, for the Redis tests.

    python tests/redis_worker.py URL NAME '{"failure_threshold": 3, ...}' [QUORUM]

Reads one command per line on stdin and answers one line on stdout:
``fail`` / ``ok`` (a call through the breaker: failed, ok or rejected),
``hold`` (enter the breaker and stay inside: admitted or rejected),
``leave ok|fail`` (end the held call), ``state``, ``quit``.
"""

from __future__ import annotations

import json
import logging
import sys

from resilient import CircuitBreaker, CircuitBreakerConfig, CircuitOpenError
from resilient.redis import RedisStorage


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
