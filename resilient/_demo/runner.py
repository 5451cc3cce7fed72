"""Runs one scenario: the same traffic through ``with_resilience`` and unprotected."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

from .scenario import Phase, Scenario

__all__ = ["CallRecord", "Run", "run_scenario"]

PROTECTED = "protected"
UNPROTECTED = "unprotected"
POLICY_NAME = "demo.dependency"
ATTEMPT_TIMEOUT = 0.15  # seconds per attempt, for the protected arm
ATTEMPTS = 2


@dataclass(frozen=True, slots=True)
class CallRecord:
    t: float  # seconds since the start, when the call began
    path: str
    outcome: str  # ok | fallback | failed
    latency: float


@dataclass
class Run:
    """Everything measured in one run, for the live view, summary and chart."""

    scenario: Scenario
    duration: float
    started: float = 0.0
    records: list[CallRecord] = field(default_factory=list)
    dependency_calls: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    wasted_calls: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    samples: list[tuple[float, str, Phase]] = field(default_factory=list)  # t, breaker, phase
    transitions: list[tuple[float, str]] = field(default_factory=list)  # t, the breaker's new state
    done: bool = False

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def fraction(self) -> float:
        return min(1.0, self.elapsed() / self.duration)


class Dependency:
    """The simulated remote service: a healthy function whose faults and
    latency come from one ``resilient.chaos`` policy per phase (seeded, so a
    run is reproducible). Each path's calls are counted."""

    def __init__(self, run: Run, seed: int) -> None:
        from ..chaos import Chaos, with_chaos

        self._run = run

        async def answer() -> str:
            return "fresh data"

        self._by_phase = {
            phase.name: with_chaos(
                Chaos(
                    fault_rate=phase.fault_rate,
                    exception=ConnectionError,
                    latency=(phase.latency * 0.6, phase.latency * 1.4),
                    seed=seed + index,
                    name=f"dependency.{phase.name}",
                )
            )(answer)
            for index, phase in enumerate(run.scenario.phases)
        }

    async def __call__(self, path: str) -> str:
        run = self._run
        phase = run.scenario.phase_at(run.fraction())
        run.dependency_calls[path] += 1
        if not phase.healthy:
            run.wasted_calls[path] += 1
        return await self._by_phase[phase.name]()


def build_protected(dependency: Dependency, duration: float) -> Callable[[str], object]:
    from ..bulkhead.bulkhead import BulkheadConfig
    from ..circuit_breaker.breaker import CircuitBreakerConfig
    from ..decorators import with_resilience
    from ..fallback import Fallback
    from ..policy import ResiliencePolicy
    from ..retry.retry import RetryConfig

    policy = ResiliencePolicy(
        circuit_breaker=CircuitBreakerConfig(
            failure_threshold=5,
            failure_rate_threshold=0.5,
            minimum_calls=10,
            window_size=50,
            recovery_timeout=max(0.5, duration * 0.06),
            success_threshold=2,
        ),
        retry=RetryConfig(max_attempts=ATTEMPTS, initial_delay=0.05, max_delay=0.2, jitter=0.1),
        timeout=ATTEMPT_TIMEOUT,
        bulkhead=BulkheadConfig(max_concurrent=16, max_queue=16, queue_timeout=0.2),
        fallback=Fallback(value="cached data"),
    )

    @with_resilience(POLICY_NAME, policy=policy)
    async def fetch(path: str) -> str:
        return await dependency(path)

    return fetch


async def _worker(run: Run, path: str, call: Callable[[str], object], pace: float) -> None:
    while run.elapsed() < run.duration:
        start = time.monotonic()
        try:
            result = await call(path)  # type: ignore[misc]
            outcome = "fallback" if result == "cached data" else "ok"
        except Exception:
            outcome = "failed"
        end = time.monotonic()
        run.records.append(CallRecord(start - run.started, path, outcome, end - start))
        await asyncio.sleep(pace)


async def _sampler(run: Run, on_tick: Callable[[Run], None] | None) -> None:
    from .._registry.registry import registry

    while run.elapsed() < run.duration:
        breaker = registry.get(POLICY_NAME)
        state = breaker.state.value if breaker is not None else "closed"
        run.samples.append((run.elapsed(), state, run.scenario.phase_at(run.fraction())))
        if on_tick is not None:
            on_tick(run)
        await asyncio.sleep(0.05)


async def _run(
    scenario: Scenario,
    duration: float,
    seed: int,
    workers: int,
    on_tick: Callable[[Run], None] | None,
) -> Run:
    from .._registry.registry import registry
    from ..events import StateChanged

    run = Run(scenario=scenario, duration=duration)
    dependency = Dependency(run, seed)
    protected = build_protected(dependency, duration)

    def transition(event: object) -> None:
        if isinstance(event, StateChanged):
            run.transitions.append((run.elapsed(), event.new_state))

    breaker = registry.get(POLICY_NAME)
    unsubscribe = breaker.subscribe(transition) if breaker is not None else None

    async def unprotected(path: str) -> str:
        return await dependency(path)

    run.started = time.monotonic()
    tasks = [asyncio.create_task(_sampler(run, on_tick))]
    for _ in range(workers):
        tasks.append(asyncio.create_task(_worker(run, PROTECTED, protected, 0.01)))
        tasks.append(asyncio.create_task(_worker(run, UNPROTECTED, unprotected, 0.01)))
    try:
        await asyncio.gather(*tasks)
    finally:
        if unsubscribe is not None:
            unsubscribe()
    run.done = True
    if on_tick is not None:
        on_tick(run)
    return run


def run_scenario(
    scenario: Scenario,
    duration: float,
    seed: int,
    workers: int = 6,
    on_tick: Callable[[Run], None] | None = None,
) -> Run:
    return asyncio.run(_run(scenario, duration, seed, workers, on_tick))
