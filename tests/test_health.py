from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

import resilient
from resilient import (
    CircuitBreaker,
    CircuitBreakerConfig,
    CircuitState,
    DegradationLevel,
    HealthStatus,
    Registry,
)
from resilient.health import BulkheadHealth, Feature, build_report, degradation_level
from resilient.testing import FakeClock, fake_clock


@pytest.fixture
def clock() -> Iterator[FakeClock]:
    with fake_clock() as c:
        yield c


def trip(reg: Registry, name: str) -> CircuitBreaker:
    """A breaker called ``name`` that is OPEN after one failure."""
    breaker = reg.get_or_create(name, CircuitBreakerConfig(failure_threshold=1))

    def boom() -> None:
        raise OSError("down")

    with pytest.raises(OSError):
        breaker.call(boom)
    assert breaker.state is CircuitState.OPEN
    return breaker


def closed(reg: Registry, *names: str) -> None:
    for name in names:
        reg.get_or_create(name)


def test_an_empty_registry_is_healthy() -> None:
    report = Registry().health()
    assert report.status is HealthStatus.HEALTHY
    assert report.healthy
    assert report.to_dict() == {
        "status": "healthy",
        "breakers": {},
        "breakers_by_state": {state.value: 0 for state in CircuitState},
        "bulkheads": {},
        "rate_limiters": {},
        "features": {},
        "degradation": "none",
        "issues": [],
    }


def test_closed_and_forced_closed_breakers_are_healthy() -> None:
    reg = Registry()
    closed(reg, "a", "b")
    reg.force_closed("b")
    report = reg.health()
    assert report.status is HealthStatus.HEALTHY
    assert report.breakers == {"a": CircuitState.CLOSED, "b": CircuitState.FORCED_CLOSED}
    assert report.issues == ()


def test_a_half_open_breaker_degrades(clock: FakeClock) -> None:
    reg = Registry()
    closed(reg, "a", "b", "c")
    trip(reg, "d")
    clock.advance(30.0)  # its recovery timeout: the next read sees HALF_OPEN
    report = reg.health()
    assert report.status is HealthStatus.DEGRADED
    assert report.breakers["d"] is CircuitState.HALF_OPEN
    assert report.issues == ("circuit 'd' is half_open",)


@pytest.mark.parametrize(
    ("up", "down", "status"),
    [
        (3, 1, HealthStatus.UNHEALTHY),  # fewer than half open
        (2, 1, HealthStatus.UNHEALTHY),
        (2, 2, HealthStatus.CRITICAL),  # exactly half
        (1, 2, HealthStatus.CRITICAL),
        (0, 1, HealthStatus.CRITICAL),
    ],
)
def test_open_breakers_make_it_unhealthy_then_critical_at_half(
    up: int, down: int, status: HealthStatus
) -> None:
    reg = Registry()
    closed(reg, *(f"up{i}" for i in range(up)))
    for i in range(down):
        trip(reg, f"down{i}")
    assert reg.health().status is status


def test_forced_open_counts_as_open() -> None:
    reg = Registry()
    closed(reg, "a", "b", "c")
    reg.force_open("a")
    report = reg.health()
    assert report.status is HealthStatus.UNHEALTHY
    assert report.issues == ("circuit 'a' is forced_open",)
    reg.force_open("b")
    assert reg.health().status is HealthStatus.CRITICAL


def test_a_force_for_a_breaker_not_created_yet_is_not_a_breaker() -> None:
    reg = Registry()
    closed(reg, "a")
    reg.force_open("later")
    assert reg.health().status is HealthStatus.HEALTHY


def test_a_busy_bulkhead_degrades_from_80_percent() -> None:
    reg = Registry()
    closed(reg, "a")
    bh = reg.bulkhead("db", max_concurrent=5)
    with bh, bh, bh:
        assert reg.health().status is HealthStatus.HEALTHY  # 60 %
        with bh:
            report = reg.health()  # 80 %
            assert report.status is HealthStatus.DEGRADED
            assert report.bulkheads["db"].utilization == 0.8
            assert report.issues == ("bulkhead 'db' is at 80% of its 5 slots (0 queued)",)
    assert reg.health().status is HealthStatus.HEALTHY


def test_a_rejecting_bulkhead_degrades_for_the_rejection_window(clock: FakeClock) -> None:
    reg = Registry()
    bh = reg.bulkhead("db", max_concurrent=2)
    with bh, bh, pytest.raises(resilient.BulkheadFullError):
        bh.call(lambda: None)
    report = reg.health()
    assert report.status is HealthStatus.DEGRADED
    assert report.bulkheads["db"].rejecting
    assert report.issues == ("bulkhead 'db' is rejecting calls",)
    clock.advance(59.0)
    assert reg.health().status is HealthStatus.DEGRADED
    clock.advance(2.0)
    assert reg.health().status is HealthStatus.HEALTHY
    assert reg.health(rejection_window=120.0).status is HealthStatus.DEGRADED


def test_the_worst_finding_wins() -> None:
    reg = Registry()
    closed(reg, "a", "b")
    trip(reg, "c")
    bh = reg.bulkhead("db", max_concurrent=1)
    with bh:
        assert reg.health().status is HealthStatus.UNHEALTHY


def test_to_dict_is_json_ready_with_status_on_top() -> None:
    reg = Registry()
    closed(reg, "a", "b")
    trip(reg, "c")
    reg.feature("search", depends_on=["a"])
    reg.feature("chat", depends_on=["c"])
    bh = reg.bulkhead("db", max_concurrent=4, max_queue=2)
    with bh:
        data = json.loads(json.dumps(reg.health().to_dict()))
    assert data["status"] == "unhealthy"
    assert data["breakers"] == {"a": "closed", "b": "closed", "c": "open"}
    assert data["breakers_by_state"]["closed"] == 2
    assert data["breakers_by_state"]["open"] == 1
    assert data["bulkheads"]["db"] == {
        "active": 1,
        "queued": 0,
        "max_concurrent": 4,
        "max_queue": 2,
        "limit": 4,
        "utilization": 0.25,
        "rejected": 0,
        "rejecting": False,
    }
    assert data["features"] == {"chat": False, "search": True}
    assert data["degradation"] == "severe"
    assert data["issues"] == ["circuit 'c' is open", "feature 'chat' is unavailable ('c' down)"]


def test_by_state_groups_breaker_names() -> None:
    reg = Registry()
    closed(reg, "a", "b")
    trip(reg, "c")
    groups = reg.health().by_state
    assert groups[CircuitState.CLOSED] == ["a", "b"]
    assert groups[CircuitState.OPEN] == ["c"]
    assert groups[CircuitState.HALF_OPEN] == []


def test_the_global_registry_reports_too() -> None:
    resilient.registry.get_or_create("global-a")
    assert resilient.registry.health().breakers["global-a"] is CircuitState.CLOSED


# -- features and degradation ------------------------------------------------------


def test_a_feature_is_available_while_its_breakers_let_calls_through(clock: FakeClock) -> None:
    reg = Registry()
    reg.feature("ai_assistant", depends_on=["ai", "search"])
    assert reg.is_available("ai_assistant")  # no breaker yet: nothing known down
    closed(reg, "search")
    trip(reg, "ai")
    assert not reg.is_available("ai_assistant")
    clock.advance(30.0)
    assert reg.is_available("ai_assistant")  # half-open lets probes through
    reg.force_open("search")
    assert not reg.is_available("ai_assistant")
    reg.release("search")
    assert reg.is_available("ai_assistant")


def test_a_pending_force_open_makes_a_feature_unavailable() -> None:
    reg = Registry()
    reg.feature("ai_assistant", depends_on=["ai"])
    reg.force_open("ai")
    assert not reg.is_available("ai_assistant")
    assert reg.health().features == {"ai_assistant": False}


def test_feature_declarations_are_checked() -> None:
    reg = Registry()
    first = reg.feature("f", depends_on=["a"])
    assert first == Feature("f", ("a",))
    assert reg.feature("f", depends_on=("a",)) is first
    with pytest.raises(ValueError, match=r"feature 'f' already depends on \['a'\]; got \['b'\]"):
        reg.feature("f", depends_on=["b"])
    with pytest.raises(TypeError, match="list of breaker names"):
        reg.feature("g", depends_on="a")
    with pytest.raises(ValueError, match="non-empty str"):
        reg.feature("")
    with pytest.raises(KeyError, match="no feature named 'nope'"):
        reg.is_available("nope")


@pytest.mark.parametrize(
    ("down", "level"),
    [
        (0, DegradationLevel.NONE),
        (1, DegradationLevel.MINOR),  # 12.5 %
        (2, DegradationLevel.MODERATE),  # 25 %
        (3, DegradationLevel.MODERATE),
        (4, DegradationLevel.SEVERE),  # 50 %
        (7, DegradationLevel.SEVERE),
        (8, DegradationLevel.CRITICAL),
    ],
)
def test_degradation_level_follows_the_share_of_unavailable_features(
    down: int, level: DegradationLevel
) -> None:
    reg = Registry()
    for i in range(8):
        reg.feature(f"f{i}", depends_on=[f"dep{i}"])
        closed(reg, f"dep{i}")
    for i in range(down):
        reg.force_open(f"dep{i}")
    assert reg.degradation_level() is level
    assert reg.health().degradation is level


def test_no_features_means_no_degradation() -> None:
    assert Registry().degradation_level() is DegradationLevel.NONE
    assert degradation_level(0, 0) is DegradationLevel.NONE


def test_build_report_is_a_pure_function_of_its_snapshot() -> None:
    strained = BulkheadHealth(
        name="db",
        active=1,
        queued=0,
        max_concurrent=10,
        max_queue=0,
        utilization=0.1,
        rejected=3,
        rejecting=True,
    )
    report = build_report(
        {"a": CircuitState.CLOSED},
        [strained],
        {"f": Feature("f", ("x",))},
        pending_open=["x"],
    )
    assert report.status is HealthStatus.DEGRADED
    assert report.features == {"f": False}
    assert report.degradation is DegradationLevel.CRITICAL
    assert "feature 'f' is unavailable ('x' down)" in report.issues
