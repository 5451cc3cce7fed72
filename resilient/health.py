"""The health report and graceful degradation: pure functions of a snapshot.

The registry reads its breakers, bulkheads and features once and hands the
snapshot here; nothing in this module touches a lock or a clock.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .circuit_breaker.state import CircuitState

__all__ = [
    "DEGRADED_UTILIZATION",
    "CircuitState",
    "BulkheadHealth",
    "RateLimiterHealth",
    "DegradationLevel",
    "Feature",
    "HealthReport",
    "HealthStatus",
    "build_report",
    "available",
    "degradation_level",
    "dependency_states",
    "is_down",
]

# A bulkhead this busy leaves little headroom: the service is degraded.
DEGRADED_UTILIZATION = 0.8


class HealthStatus(enum.StrEnum):
    HEALTHY = "healthy"
    DEGRADED = "degraded"
    UNHEALTHY = "unhealthy"
    CRITICAL = "critical"


class DegradationLevel(enum.StrEnum):
    NONE = "none"
    MINOR = "minor"
    MODERATE = "moderate"
    SEVERE = "severe"
    CRITICAL = "critical"


_UP = CircuitState.CLOSED


def is_down(state: CircuitState) -> bool:
    """Whether a breaker in ``state`` stops calls to its dependency."""
    return state is CircuitState.OPEN or state is CircuitState.FORCED_OPEN


@dataclass(frozen=True, slots=True)
class Feature:
    """A named capability that works only while its breakers let calls through.

    Attributes:
        name: the feature's name.
        depends_on: the names of the breakers it needs."""

    name: str
    depends_on: tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class BulkheadHealth:
    """One bulkhead as the report sees it. ``rejecting``: it rejected a call
    recently (within the report's rejection window)."""

    name: str
    active: int
    queued: int
    max_concurrent: int
    max_queue: int
    utilization: float
    rejected: int
    rejecting: bool
    #: The current limit: ``max_concurrent``, or where an adaptive limit stands.
    limit: int = 0

    @property
    def strained(self) -> bool:
        return self.utilization >= DEGRADED_UTILIZATION or self.rejecting


@dataclass(frozen=True, slots=True, kw_only=True)
class RateLimiterHealth:
    """One rate limiter as the report sees it. ``rejecting``: it refused a
    call recently (within the report's rejection window): degraded."""

    name: str
    rate: float
    period: float
    burst: int
    available: int
    rejected: int
    rejecting: bool

    @property
    def strained(self) -> bool:
        return self.rejecting


@dataclass(frozen=True, slots=True, kw_only=True)
class HealthReport:
    """What ``registry.health()`` returns; ``to_dict`` is ready for JSON.

    Attributes:
        status: healthy, degraded, unhealthy or critical.
        breakers: each breaker's state, by name.
        bulkheads: each bulkhead's load, by name.
        features: whether each feature is available, by name.
        degradation: the share of features unavailable, as a level.
        issues: one line per thing that is not healthy.
        rate_limiters: each rate limiter's recent refusals, by name."""

    status: HealthStatus
    breakers: Mapping[str, CircuitState]
    bulkheads: Mapping[str, BulkheadHealth]
    features: Mapping[str, bool]
    degradation: DegradationLevel
    issues: tuple[str, ...]
    rate_limiters: Mapping[str, RateLimiterHealth] = field(default_factory=dict)

    @property
    def healthy(self) -> bool:
        return self.status is HealthStatus.HEALTHY

    @property
    def by_state(self) -> dict[CircuitState, list[str]]:
        """Breaker names grouped by state, every state present."""
        groups: dict[CircuitState, list[str]] = {state: [] for state in CircuitState}
        for name, state in self.breakers.items():
            groups[state].append(name)
        return groups

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status.value,
            "breakers": {name: state.value for name, state in self.breakers.items()},
            "breakers_by_state": {
                state.value: len(names) for state, names in self.by_state.items()
            },
            "bulkheads": {
                name: {
                    "active": b.active,
                    "queued": b.queued,
                    "max_concurrent": b.max_concurrent,
                    "max_queue": b.max_queue,
                    "limit": b.limit,
                    "utilization": b.utilization,
                    "rejected": b.rejected,
                    "rejecting": b.rejecting,
                }
                for name, b in self.bulkheads.items()
            },
            "rate_limiters": {
                name: {
                    "rate": r.rate,
                    "period": r.period,
                    "burst": r.burst,
                    "available": r.available,
                    "rejected": r.rejected,
                    "rejecting": r.rejecting,
                }
                for name, r in self.rate_limiters.items()
            },
            "features": dict(self.features),
            "degradation": self.degradation.value,
            "issues": list(self.issues),
        }


def _status(
    breakers: Mapping[str, CircuitState],
    bulkheads: Iterable[BulkheadHealth | RateLimiterHealth],
) -> HealthStatus:
    down = sum(1 for state in breakers.values() if is_down(state))
    if down and 2 * down >= len(breakers):
        return HealthStatus.CRITICAL
    if down:
        return HealthStatus.UNHEALTHY
    if any(state is CircuitState.HALF_OPEN for state in breakers.values()) or any(
        b.strained for b in bulkheads
    ):
        return HealthStatus.DEGRADED
    return HealthStatus.HEALTHY


def degradation_level(unavailable: int, total: int) -> DegradationLevel:
    """The level for ``unavailable`` of ``total`` features: none, then
    < 25 %, < 50 %, < 100 %, all."""
    if unavailable == 0 or total == 0:
        return DegradationLevel.NONE
    share = unavailable / total
    if share >= 1:
        return DegradationLevel.CRITICAL
    if share >= 0.5:
        return DegradationLevel.SEVERE
    if share >= 0.25:
        return DegradationLevel.MODERATE
    return DegradationLevel.MINOR


def _issues(
    breakers: Mapping[str, CircuitState],
    bulkheads: Iterable[BulkheadHealth],
    features: Mapping[str, Feature],
    available: Mapping[str, bool],
    states: Mapping[str, CircuitState],
    rate_limiters: Iterable[RateLimiterHealth] = (),
) -> list[str]:
    issues = []
    for name, state in breakers.items():
        if is_down(state) or state is CircuitState.HALF_OPEN:
            issues.append(f"circuit {name!r} is {state.value}")
    for b in bulkheads:
        if b.utilization >= DEGRADED_UTILIZATION:
            issues.append(
                f"bulkhead {b.name!r} is at {b.utilization:.0%} of its "
                f"{b.limit or b.max_concurrent} slots ({b.queued} queued)"
            )
        if b.rejecting:
            issues.append(f"bulkhead {b.name!r} is rejecting calls")
    for r in rate_limiters:
        if r.rejecting:
            issues.append(f"rate limiter {r.name!r} is rejecting calls")
    for name, ok in available.items():
        if not ok:
            down = [d for d in features[name].depends_on if is_down(states.get(d, _UP))]
            issues.append(f"feature {name!r} is unavailable ({', '.join(map(repr, down))} down)")
    return issues


def available(feature: Feature, states: Mapping[str, CircuitState]) -> bool:
    """Whether every breaker ``feature`` depends on lets calls through. A
    dependency with no breaker (yet) counts as up."""
    return not any(is_down(states.get(dep, _UP)) for dep in feature.depends_on)


def dependency_states(
    breakers: Mapping[str, CircuitState], pending_open: Iterable[str] = ()
) -> dict[str, CircuitState]:
    """What features see: the breakers, and names forced open before their
    breaker exists (the force applies the moment it is created)."""
    states = dict.fromkeys(pending_open, CircuitState.FORCED_OPEN)
    states.update(breakers)
    return states


def build_report(
    breakers: Mapping[str, CircuitState],
    bulkheads: Iterable[BulkheadHealth],
    features: Mapping[str, Feature],
    *,
    pending_open: Iterable[str] = (),
    rate_limiters: Iterable[RateLimiterHealth] = (),
) -> HealthReport:
    """The report for one snapshot: ``breakers`` maps names to current states."""
    bulkheads = list(bulkheads)
    limiters = list(rate_limiters)
    states = dependency_states(breakers, pending_open)
    availability = {name: available(f, states) for name, f in features.items()}
    unavailable = sum(1 for ok in availability.values() if not ok)
    return HealthReport(
        status=_status(breakers, [*bulkheads, *limiters]),
        breakers=dict(breakers),
        bulkheads={b.name: b for b in bulkheads},
        features=availability,
        degradation=degradation_level(unavailable, len(availability)),
        issues=tuple(_issues(breakers, bulkheads, features, availability, states, limiters)),
        rate_limiters={r.name: r for r in limiters},
    )
