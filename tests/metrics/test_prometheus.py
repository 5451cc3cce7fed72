from __future__ import annotations

import gc
import sys
from collections.abc import Iterator
from typing import Any

import prometheus_client
import pytest
from _support import failing, go_quiet, retrying, time_out, turn_away
from prometheus_client.parser import text_string_to_metric_families

import resilient
from resilient import Bulkhead, CircuitBreaker, CircuitBreakerConfig, CircuitOpenError, events
from resilient._execution.counters import BOUNDS, DEFAULT_BUCKETS
from resilient.metrics import prometheus
from resilient.testing import fake_clock


@pytest.fixture
def registry() -> Iterator[prometheus_client.CollectorRegistry]:
    reg = prometheus_client.CollectorRegistry()
    uninstrument = prometheus.instrument(reg)
    yield reg
    uninstrument()


def samples(registry: prometheus_client.CollectorRegistry) -> dict[tuple[Any, ...], float]:
    """Every sample of the real exposition text, by name and sorted labels."""
    text = prometheus_client.generate_latest(registry).decode()
    return {
        (s.name, *sorted(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if not s.name.endswith("_created")
    }


def state_of(registry: prometheus_client.CollectorRegistry, name: str) -> float | None:
    return samples(registry).get(("circuit_breaker_state", ("name", name)))


def test_a_breaker_lifecycle_in_the_exposition(
    registry: prometheus_client.CollectorRegistry,
) -> None:
    breaker = CircuitBreaker(
        "db", CircuitBreakerConfig(failure_threshold=1, recovery_timeout=10.0, success_threshold=1)
    )

    def fail() -> None:
        clock.advance(0.5)
        raise ConnectionError("down")

    with fake_clock() as clock:
        breaker.call(lambda: None)
        assert state_of(registry, "db") == 0
        with pytest.raises(ConnectionError):
            breaker.call(fail)
        assert state_of(registry, "db") == 1
        with pytest.raises(CircuitOpenError):
            breaker.call(lambda: None)
        clock.advance(10.0)
        assert breaker.state.value == "half_open"
        assert state_of(registry, "db") == 2
        breaker.call(lambda: None)
        assert state_of(registry, "db") == 0

    got = samples(registry)
    calls = {
        r: got[("circuit_breaker_calls_total", ("name", "db"), ("result", r))]
        for r in ("success", "failure", "rejected")
    }
    assert calls == {"success": 2, "failure": 1, "rejected": 1}
    change = "circuit_breaker_state_changes_total", ("from_state", "closed"), ("name", "db")
    assert got[(*change, ("to_state", "open"))] == 1
    assert (
        got[
            (
                "circuit_breaker_state_changes_total",
                ("from_state", "open"),
                ("name", "db"),
                ("to_state", "half_open"),
            )
        ]
        == 1
    )
    assert (
        got[
            (
                "circuit_breaker_state_changes_total",
                ("from_state", "half_open"),
                ("name", "db"),
                ("to_state", "closed"),
            )
        ]
        == 1
    )
    # Three requests ran (one was rejected): their durations, in seconds.
    assert got[("resilient_operation_duration_seconds_count", ("name", "db"))] == 3
    assert got[("resilient_operation_duration_seconds_sum", ("name", "db"))] == 0.5
    assert got[("resilient_operation_duration_seconds_bucket", ("le", "0.25"), ("name", "db"))] == 2
    assert got[("resilient_operation_duration_seconds_bucket", ("le", "0.5"), ("name", "db"))] == 3


def test_forced_states_read_as_what_callers_get(
    registry: prometheus_client.CollectorRegistry,
) -> None:
    breaker = CircuitBreaker("db")
    breaker.force_open()
    assert state_of(registry, "db") == 1
    breaker.force_closed()
    assert state_of(registry, "db") == 0
    got = samples(registry)
    assert (
        got[
            (
                "circuit_breaker_state_changes_total",
                ("from_state", "closed"),
                ("name", "db"),
                ("to_state", "forced_open"),
            )
        ]
        == 1
    )


def test_breakers_that_exist_before_instrumenting_are_exported() -> None:
    resilient.registry.get_or_create("early")
    resilient.registry.force_open("forced-early")
    resilient.registry.get_or_create("forced-early")
    reg = prometheus_client.CollectorRegistry()
    uninstrument = prometheus.instrument(reg)
    try:
        assert state_of(reg, "early") == 0
        assert state_of(reg, "forced-early") == 1
        # Counted from instrument(): the forcing before it is not a change seen.
        assert not any(k[0] == "circuit_breaker_state_changes_total" for k in samples(reg))
    finally:
        uninstrument()


def test_attempts_count_per_breaker_call_and_duration_per_request(
    registry: prometheus_client.CollectorRegistry,
) -> None:
    flaky = retrying("api", 3)(
        CircuitBreaker("api")(failing(ConnectionError("down"), ConnectionError("down")))
    )
    assert flaky() == "ok"
    got = samples(registry)
    assert got[("circuit_breaker_calls_total", ("name", "api"), ("result", "failure"))] == 2
    assert got[("circuit_breaker_calls_total", ("name", "api"), ("result", "success"))] == 1
    assert got[("retry_attempts_total", ("name", "api"))] == 2
    assert got[("resilient_operation_duration_seconds_count", ("name", "api"))] == 1


def test_timeouts_and_bulkheads(registry: prometheus_client.CollectorRegistry) -> None:
    time_out("slow")
    go_quiet("slow")
    pool = Bulkhead("pool", max_concurrent=1)
    turn_away(pool)  # a rejection, and the block holding the slot succeeded
    pool.call(lambda: None)
    with pytest.raises(ValueError):
        pool.call(failing(ValueError()))
    got = samples(registry)
    assert got[("timeout_operations_total", ("name", "slow"))] == 2
    for state, count in (("rejected", 1), ("success", 2), ("failure", 1)):
        assert got[("bulkhead_executions_total", ("name", "pool"), ("state", state))] == count
    assert got[("bulkhead_limit", ("name", "pool"))] == 1


def test_what_a_collected_policy_counted_stays(
    registry: prometheus_client.CollectorRegistry,
) -> None:
    for _ in range(3):
        retrying("gone", 2)(failing(ConnectionError()))()
    before = samples(registry)[("retry_attempts_total", ("name", "gone"))]
    gc.collect()
    assert before == samples(registry)[("retry_attempts_total", ("name", "gone"))] == 3


def test_a_collected_breaker_keeps_its_lock_free_successes(
    registry: prometheus_client.CollectorRegistry,
) -> None:
    CircuitBreaker("gone").call(lambda: None)
    gc.collect()
    got = samples(registry)
    assert got[("circuit_breaker_calls_total", ("name", "gone"), ("result", "success"))] == 1


def test_nothing_is_done_per_call(registry: prometheus_client.CollectorRegistry) -> None:
    # A reader: requests are timed into the counters, no event is built.
    assert events.GLOBAL.metered
    assert not events.GLOBAL.events
    assert events.GLOBAL.listeners == ()


def test_uninstrumenting_removes_the_metrics_and_stops_reading() -> None:
    reg = prometheus_client.CollectorRegistry()
    uninstrument = prometheus.instrument(reg)
    assert events.GLOBAL.metered
    uninstrument()
    uninstrument()
    assert not events.GLOBAL.metered
    assert events.GLOBAL.readers == ()
    assert samples(reg) == {}
    again = prometheus.instrument(reg)  # the names are free again
    again()


def test_uninstrumenting_stops_reading_even_when_the_registry_lost_the_collector() -> None:
    reg = prometheus_client.CollectorRegistry()
    uninstrument = prometheus.instrument(reg)
    for collector in list(reg._collector_to_names):  # the application reset it
        reg.unregister(collector)
    with pytest.raises(KeyError):
        uninstrument()  # its own end fails, as prometheus_client says
    assert not events.GLOBAL.metered  # but it reads nothing more
    assert events.GLOBAL.readers == ()


def test_instrumenting_one_registry_twice_is_a_clear_error(
    registry: prometheus_client.CollectorRegistry,
) -> None:
    CircuitBreaker("db").call(lambda: None)
    with pytest.raises(ValueError, match="already in this Prometheus registry"):
        prometheus.instrument(registry)
    assert state_of(registry, "db") == 0  # the first instrumentation is intact
    assert len(events.GLOBAL.readers) == 1  # the failed one reads nothing


def test_custom_buckets_and_the_default_registry() -> None:
    uninstrument = prometheus.instrument(buckets=[0.1, 1.0])
    try:
        CircuitBreaker("db").call(lambda: None)
        got = samples(prometheus_client.REGISTRY)
        assert got[("resilient_operation_duration_seconds_bucket", ("le", "0.1"), ("name", "db"))]
        assert (
            "resilient_operation_duration_seconds_bucket",
            ("le", "0.25"),
            ("name", "db"),
        ) not in got
    finally:
        uninstrument()
    assert "circuit_breaker_state" not in prometheus_client.generate_latest().decode()


def test_a_custom_bound_counts_the_internal_buckets_wholly_below_it() -> None:
    assert set(DEFAULT_BUCKETS) <= set(BOUNDS)  # the default bounds are exact
    inside = next(b for b in BOUNDS if b > 0.3)  # an internal bound
    bound = inside * 1.01  # not one: it shares the next internal bucket
    reg = prometheus_client.CollectorRegistry()
    uninstrument = prometheus.instrument(reg, buckets=[inside, bound])
    breaker = CircuitBreaker("db")
    try:
        with fake_clock() as clock:
            for seconds in (inside, inside * 1.005, inside * 1.02):
                breaker.call(clock.advance, seconds)
        got = samples(reg)
    finally:
        uninstrument()
    le = prometheus_client.utils.floatToGoString  # type: ignore[attr-defined]
    bucket = "resilient_operation_duration_seconds_bucket"
    assert got[(bucket, ("le", le(inside)), ("name", "db"))] == 1
    # inside * 1.005 is below ``bound`` but shares an internal bucket with it.
    assert got[(bucket, ("le", le(bound)), ("name", "db"))] == 1
    assert got[(bucket, ("le", "+Inf"), ("name", "db"))] == 3


@pytest.mark.parametrize("buckets", [[], [0.5, 0.1], [-1.0], [0.1, float("nan")], ["x"]])
def test_buckets_are_validated(buckets: Any) -> None:
    with pytest.raises((ValueError, TypeError), match="buckets"):
        prometheus.instrument(prometheus_client.CollectorRegistry(), buckets=buckets)
    assert events.GLOBAL.readers == ()


def test_a_trailing_infinity_is_the_exporter_own() -> None:
    reg = prometheus_client.CollectorRegistry()
    uninstrument = prometheus.instrument(reg, buckets=[1.0, float("inf")])
    CircuitBreaker("db").call(lambda: None)
    got = samples(reg)
    uninstrument()
    buckets = [k for k in got if k[0] == "resilient_operation_duration_seconds_bucket"]
    assert sorted(dict(k[1:])["le"] for k in buckets) == ["+Inf", "1.0"]


def test_a_namespace_prefixes_every_series_but_its_own() -> None:
    reg = prometheus_client.CollectorRegistry()
    uninstrument = prometheus.instrument(reg, namespace="resilient")
    try:
        CircuitBreaker("db").call(lambda: None)
        retrying("api", 2)(failing(ConnectionError()))()
        turn_away(Bulkhead("pool", max_concurrent=1))
        time_out("slow")
        names = {k[0] for k in samples(reg)}
    finally:
        uninstrument()
    assert names == {
        "resilient_circuit_breaker_state",
        "resilient_circuit_breaker_calls_total",
        "resilient_retry_attempts_total",
        "resilient_timeout_operations_total",
        "resilient_bulkhead_executions_total",
        "resilient_bulkhead_limit",
        "resilient_operation_duration_seconds_bucket",
        "resilient_operation_duration_seconds_count",
        "resilient_operation_duration_seconds_sum",
    }


def test_another_namespace_prefixes_everything() -> None:
    reg = prometheus_client.CollectorRegistry()
    uninstrument = prometheus.instrument(reg, namespace="shop")
    try:
        CircuitBreaker("db").call(lambda: None)
        names = {k[0] for k in samples(reg)}
    finally:
        uninstrument()
    assert "shop_circuit_breaker_state" in names
    assert "shop_resilient_operation_duration_seconds_count" in names
    assert not any(n.startswith("circuit") for n in names)


def test_namespaced_and_plain_series_share_a_registry() -> None:
    reg = prometheus_client.CollectorRegistry()
    plain = prometheus.instrument(reg)
    with pytest.raises(ValueError, match="already in this Prometheus registry"):
        prometheus.instrument(reg, namespace="resilient")  # the duration histogram clashes
    other = prometheus.instrument(reg, namespace="other")
    other()
    plain()


@pytest.mark.parametrize("namespace", ["has space", "1st", "dash-ed", 3])
def test_the_namespace_is_validated(namespace: Any) -> None:
    with pytest.raises(ValueError, match="namespace"):
        prometheus.instrument(prometheus_client.CollectorRegistry(), namespace=namespace)


def test_a_missing_extra_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "prometheus_client", None)
    with pytest.raises(ImportError, match=r"pip install 'resilient-kit\[prometheus\]'"):
        prometheus.instrument()


def test_rate_limiter_calls_and_budget_refusals(
    registry: prometheus_client.CollectorRegistry,
) -> None:
    with fake_clock():
        limiter = resilient.RateLimiter("quota", rate=2)
        for _ in range(2):
            limiter.call(lambda: None)
        for _ in range(3):
            with pytest.raises(resilient.RateLimitExceededError):
                limiter.call(lambda: None)
        budget = resilient.RetryBudget(ratio=0.0, min_retries_per_second=0.0)
        with pytest.raises(ConnectionError):
            resilient.Retry(resilient.RetryConfig(budget=budget), name="spent").call(
                failing(ConnectionError())
            )
    got = samples(registry)
    assert got[("rate_limiter_calls_total", ("name", "quota"), ("result", "admitted"))] == 2
    assert got[("rate_limiter_calls_total", ("name", "quota"), ("result", "rejected"))] == 3
    assert got[("retry_budget_refusals_total", ("name", "spent"))] == 1


def test_failover_calls_by_the_target_that_answered(
    registry: prometheus_client.CollectorRegistry,
) -> None:
    class Down(Exception):
        is_retryable = True

    def secondary() -> str:
        return "secondary"

    state = {"down": False}

    def primary() -> str:
        if state["down"]:
            raise Down
        return "primary"

    ask = resilient.with_failover("llm", [secondary])(primary)
    ask()
    state["down"] = True
    ask()
    ask()
    got = samples(registry)
    assert got[("failover_calls_total", ("name", "llm"), ("target", "primary"))] == 1
    assert got[("failover_calls_total", ("name", "llm"), ("target", "secondary"))] == 2


def test_a_name_with_a_lone_surrogate_is_exported_escaped(
    registry: prometheus_client.CollectorRegistry,
) -> None:
    # Names are data: any str names a breaker, and the exposition (UTF-8)
    # must not fail for every breaker because of one.
    breaker = CircuitBreaker("lone \ud800 surrogate")
    assert breaker.call(lambda: 1) == 1
    assert state_of(registry, "lone \\ud800 surrogate") == 0
