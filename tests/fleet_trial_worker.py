"""One process of the fleet trial (tests/test_fleet_trial.py).

    python tests/fleet_trial_worker.py CONFIG_JSON OUT_JSON

Shares 5 breakers and one rate limit through a Redis Cluster and calls
through them until the trial ends, following the dependencies' health
schedule (wall-clock windows in which a breaker's dependency fails). Writes
what it saw: its breakers' states sampled every iteration, the rate limit's
admissions, every error that was not the dependency's own or a rejection,
and the worst call latency.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

from resilient import (
    CircuitBreaker,
    CircuitBreakerConfig,
    CircuitOpenError,
    RateLimitConfig,
    RateLimiter,
    RateLimitExceededError,
)
from resilient.redis import RedisStorage


class Boom(Exception):
    """The dependency's own failure."""


def main() -> None:
    config: dict[str, Any] = json.loads(sys.argv[1])
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    storage = RedisStorage.from_url(config["url"], refresh_interval=0.2)
    breakers = [
        CircuitBreaker(
            name,
            CircuitBreakerConfig(
                storage=storage, failure_threshold=3, recovery_timeout=1.0, success_threshold=1
            ),
        )
        for name in config["breakers"]
    ]
    limit = config["limit"]
    limiter = RateLimiter(
        "trial-limit",
        RateLimitConfig(storage=storage, rate=limit["rate"], burst=limit["burst"]),
    )
    failing: dict[str, list[list[float]]] = config["failing"]
    samples: list[list[Any]] = []
    admitted: list[float] = []
    errors: list[str] = []
    worst = 0.0
    print("ready", flush=True)
    while time.time() < config["end"]:
        now = time.time()
        for breaker in breakers:
            down = any(a <= now < b for a, b in failing.get(breaker.name, []))

            def call(down: bool = down) -> None:
                if down:
                    raise Boom

            began = time.monotonic()
            try:
                breaker.call(call)
            except (Boom, CircuitOpenError):
                pass
            except Exception as exc:  # caused by Redis: the trial counts them
                errors.append(f"{breaker.name}: {type(exc).__name__}: {exc}")
            worst = max(worst, time.monotonic() - began)
        began = time.monotonic()
        try:
            limiter.call(lambda: None)
            admitted.append(time.time())
        except RateLimitExceededError:
            pass
        except Exception as exc:
            errors.append(f"limit: {type(exc).__name__}: {exc}")
        worst = max(worst, time.monotonic() - began)
        samples.append([time.time(), [b.state.value for b in breakers]])
        time.sleep(0.01)  # pacing the load, not waiting for a state
    storage.close()
    with open(sys.argv[2], "w") as out:
        json.dump({"samples": samples, "admitted": admitted, "errors": errors, "worst": worst}, out)


if __name__ == "__main__":
    main()
