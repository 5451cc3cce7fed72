"""``resilient.config.load`` and ``watch``: a document of named policies,
applied all or nothing, and again whenever its file changes."""

from __future__ import annotations

import contextlib
import json
import logging
import sys
import threading
from pathlib import Path

import pytest

import resilient.config
from resilient import (
    BulkheadConfig,
    CircuitBreakerConfig,
    CircuitState,
    RateLimitConfig,
    Reconfigured,
    Registry,
    with_resilience,
)
from resilient.testing import FakeClock

DOCUMENT = """
[breakers.payments]
failure_threshold = 3
recovery_timeout = "45s"

[bulkheads.payments]
max_concurrent = 10
max_queue = 20

[rate_limits.openai]
rate = 50
period = "1m"

[policies.checkout]
timeout = "5s"
retry = { max_attempts = 2 }
circuit_breaker = { failure_threshold = 4 }
bulkhead = { max_concurrent = 8 }
fallback = { value = "sorry" }
"""


def boom() -> None:
    raise OSError("down")


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_load_creates_every_named_policy(tmp_path: Path) -> None:
    reg = Registry()
    loaded = resilient.config.load(write(tmp_path / "resilience.toml", DOCUMENT), reg)
    payments = reg.get("payments")
    assert payments is not None
    assert payments.config == CircuitBreakerConfig(failure_threshold=3, recovery_timeout=45.0)
    assert reg.get_bulkhead("payments") is not None
    assert reg.get_bulkhead("payments").config == BulkheadConfig(10, max_queue=20)  # type: ignore[union-attr]
    limiter = reg.get_rate_limiter("openai")
    assert limiter is not None
    assert limiter.config == RateLimitConfig(50, period=60.0)
    checkout = reg.get("checkout")
    assert checkout is not None
    assert checkout.config.failure_threshold == 4
    policy = loaded.policies["checkout"]
    assert policy.timeout == 5.0

    @with_resilience("checkout", policy, registry=reg)
    def pay() -> str:
        raise OSError("down")

    assert pay() == "sorry"
    assert reg.get("checkout") is checkout


def test_load_reads_json_and_mappings(tmp_path: Path) -> None:
    document = {"breakers": {"db": {"failure_threshold": 2}}}
    reg = Registry()
    resilient.config.load(write(tmp_path / "r.json", json.dumps(document)), reg)
    assert reg.get("db").config.failure_threshold == 2  # type: ignore[union-attr]
    resilient.config.load({"breakers": {"db": {"failure_threshold": 7}}}, reg)
    assert reg.get("db").config.failure_threshold == 7  # type: ignore[union-attr]


def test_load_reconfigures_running_policies_in_place(clock: FakeClock) -> None:
    reg = Registry()
    predicate = lambda result: result is None  # noqa: E731
    breaker = reg.get_or_create(
        "db", CircuitBreakerConfig(failure_threshold=5, result_predicate=predicate)
    )
    for _ in range(2):
        with contextlib.suppress(OSError):
            breaker.call(boom)
    resilient.config.load({"breakers": {"db": {"failure_threshold": 3}}}, reg)
    assert reg.get("db") is breaker
    assert breaker.config.failure_threshold == 3
    assert breaker.config.result_predicate is predicate  # a file cannot hold it: kept
    with contextlib.suppress(OSError):
        breaker.call(boom)
    assert breaker.state is CircuitState.OPEN


def test_a_bad_entry_changes_nothing_and_names_its_key() -> None:
    reg = Registry()
    resilient.config.load({"breakers": {"a": {"failure_threshold": 2}}}, reg)
    bad = {
        "breakers": {"a": {"failure_threshold": 9}, "b": {}},
        "bulkheads": {"c": {"max_concurrent": 0}},
    }
    with pytest.raises(ValueError, match=r"^bulkheads\.c: BulkheadConfig\.max_concurrent"):
        resilient.config.load(bad, reg)
    assert reg.get("a").config.failure_threshold == 2  # type: ignore[union-attr]
    assert reg.get("b") is None
    with pytest.raises(
        ValueError, match=r"^bulkheads\.c \(BulkheadConfig\) needs 'max_concurrent'"
    ):
        resilient.config.load({"bulkheads": {"c": {}}}, reg)
    with pytest.raises(ValueError, match="no table 'breaker'"):
        resilient.config.load({"breaker": {}}, reg)
    with pytest.raises(ValueError, match=r"breakers\.x and policies\.x\.circuit_breaker"):
        resilient.config.load(
            {"breakers": {"x": {}}, "policies": {"x": {"circuit_breaker": {}}}}, reg
        )
    assert reg.names() == ["a"]


def test_a_file_that_is_not_a_document(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a valid document"):
        resilient.config.load(write(tmp_path / "r.toml", "[breakers.a\n"), Registry())


def test_load_uses_the_global_registry_by_default() -> None:
    with resilient.registry.isolated() as reg:
        resilient.config.load({"breakers": {"global-db": {"failure_threshold": 2}}})
        assert reg.get("global-db") is not None


def _threshold(reg: Registry, name: str) -> int:
    breaker = reg.get(name)
    assert breaker is not None
    return breaker.config.failure_threshold


def test_watch_applies_an_edited_file_under_a_running_workload(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    reg = Registry()
    path = write(tmp_path / "r.toml", "[breakers.api]\nfailure_threshold = 5\n")
    # The thread never gets to check by itself here: the test checks.
    stop = resilient.config.watch(path, interval=3600.0, registry=reg)
    try:
        assert _threshold(reg, "api") == 5

        @with_resilience("api", registry=reg, retry=None, timeout=None)
        def ok(i: int) -> int:
            return i

        failures: list[BaseException] = []
        calls = [0]
        running = threading.Event()
        stopping = threading.Event()

        def work() -> None:
            while not stopping.is_set():
                try:
                    ok(1)
                except BaseException as exc:  # pragma: no cover - the test fails
                    failures.append(exc)
                calls[0] += 1
                running.set()

        workers = [threading.Thread(target=work) for _ in range(4)]
        for worker in workers:
            worker.start()
        assert running.wait(10)
        write(path, "[breakers.api]\nfailure_threshold = 2\n")
        assert stop.check() is True
        assert _threshold(reg, "api") == 2
        assert stop.check() is False  # unchanged since
        write(path, "[breakers.api]\nfailure_threshold = 0\n")
        with caplog.at_level(logging.ERROR, logger="resilient"):
            assert stop.check() is False
        assert "not applied" in caplog.text
        assert "breakers.api" in caplog.text
        assert _threshold(reg, "api") == 2
        write(path, "[breakers.api]\nfailure_threshold = 4\n")
        assert stop.check() is True
        assert _threshold(reg, "api") == 4
        stopping.set()
        for worker in workers:
            worker.join()
        assert failures == []
        assert calls[0] > 0
    finally:
        stop()
    assert not [t for t in threading.enumerate() if t.name == "resilient-config-watch"]
    write(path, "[breakers.api]\nfailure_threshold = 3\n")
    assert stop.check() is False  # stopped: nothing is read any more
    assert _threshold(reg, "api") == 4


def test_watch_logs_a_missing_file_and_keeps_going(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    reg = Registry()
    path = tmp_path / "later.toml"
    with caplog.at_level(logging.ERROR, logger="resilient"):
        stop = resilient.config.watch(path, interval=3600.0, registry=reg)
    try:
        assert "cannot read" in caplog.text
        write(path, "[bulkheads.pool]\nmax_concurrent = 3\n")
        assert stop.check() is True
        assert reg.get_bulkhead("pool") is not None
    finally:
        stop()


def test_watch_checks_by_itself_every_interval(tmp_path: Path) -> None:
    reg = Registry()
    path = write(tmp_path / "r.toml", "[breakers.api]\nfailure_threshold = 5\n")
    applied = threading.Event()
    seen: list[object] = []

    def listener(event: object) -> None:
        if isinstance(event, Reconfigured):
            seen.append(event)
            applied.set()

    reg.subscribe(listener)
    stop = resilient.config.watch(path, interval=0.01, registry=reg)
    try:
        write(path, "[breakers.api]\nfailure_threshold = 2\n")
        assert applied.wait(30)  # the Reconfigured event of the thread's check
        assert _threshold(reg, "api") == 2
    finally:
        stop()


def test_watch_rejects_a_bad_interval(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="interval"):
        resilient.config.watch(tmp_path / "r.toml", interval=0)


@pytest.mark.skipif(sys.platform == "win32", reason="fork")
def test_a_forked_child_watches_on_its_own(tmp_path: Path) -> None:
    from tests.test_fork import in_child

    reg = Registry()
    path = write(tmp_path / "r.toml", "[breakers.api]\nfailure_threshold = 5\n")
    stop = resilient.config.watch(path, interval=3600.0, registry=reg)
    try:

        def child() -> list[object]:
            alive = [t.name for t in threading.enumerate() if t.name == "resilient-config-watch"]
            write(path, "[breakers.api]\nfailure_threshold = 2\n")
            applied = stop.check()
            stop()
            return [alive, applied, _threshold(reg, "api")]

        assert in_child(child) == [["resilient-config-watch"], True, 2]
        assert _threshold(reg, "api") == 5  # the parent's own settings
    finally:
        stop()
