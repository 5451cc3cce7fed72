"""A small, self-contained scenario: a dependency that fails for a while,
behind a circuit breaker, on a simulated clock so it runs instantly."""

from __future__ import annotations

import argparse
import random

from .circuit_breaker import CircuitBreaker, CircuitBreakerConfig
from .errors import CircuitOpenError
from .testing import fake_clock

__all__ = ["run"]


class _FlakyService:
    """Healthy, then failing between t=10 s and t=30 s, then healthy again."""

    def __init__(self, rng: random.Random, clock_now: object) -> None:
        self._rng = rng
        self._now = clock_now
        self.calls = 0

    def __call__(self, now: float) -> str:
        self.calls += 1
        if 10.0 <= now < 30.0 or self._rng.random() < 0.02:
            raise ConnectionError("service unavailable")
        return "ok"


def run(args: argparse.Namespace) -> int:
    rng = random.Random(args.seed)
    breaker = CircuitBreaker(
        "demo-service",
        CircuitBreakerConfig(failure_threshold=3, recovery_timeout=5.0, success_threshold=2),
    )
    outcomes = {"ok": 0, "failed": 0, "rejected": 0}
    with fake_clock() as clock:
        service = _FlakyService(rng, clock.now)
        print(f"{'t(s)':>6}  {'state':<12} outcome")
        last_state = None
        for _ in range(args.calls):
            now = clock.now()
            try:
                breaker.call(service, now)
                outcome = "ok"
            except CircuitOpenError:
                outcome = "rejected"
            except ConnectionError:
                outcome = "failed"
            outcomes[outcome] += 1
            state = breaker.state.value
            if state != last_state or outcome != "ok":
                print(f"{now:6.1f}  {state:<12} {outcome}")
            last_state = state
            clock.advance(0.75)
    print()
    print(
        f"{args.calls} calls: {outcomes['ok']} ok, {outcomes['failed']} failed, "
        f"{outcomes['rejected']} rejected without touching the service "
        f"(the service saw {service.calls} calls)"
    )
    return 0
