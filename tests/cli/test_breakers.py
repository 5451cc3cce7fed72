"""``python -m resilient breakers`` against a real redis-server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from resilient import CircuitBreaker, CircuitBreakerConfig, CircuitState
from resilient.__main__ import main
from resilient.redis import RedisStorage
from tests.redis_server import RedisServer, wait_for
from tests.redis_worker import Worker

pytestmark = pytest.mark.redis

ROOT = Path(__file__).resolve().parent.parent.parent


@pytest.fixture
def instance(redis_server: RedisServer) -> Iterator[RedisStorage]:
    """An instance of the fleet in this process."""
    storage = RedisStorage.from_url(redis_server.url, refresh_interval=60.0)
    yield storage
    storage.close()


def cli(server: RedisServer, *args: str) -> list[str]:
    return ["breakers", "--redis", server.url, *args]


def run_json(capsys: pytest.CaptureFixture[str], argv: list[str]) -> Any:
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


def test_list_json_and_tables(redis_server, instance, capsys) -> None:
    assert main(cli(redis_server, "list")) == 0
    assert "no shared circuit breakers" in capsys.readouterr().out
    assert run_json(capsys, cli(redis_server, "list", "--json")) == []

    kept = [CircuitBreaker(n, CircuitBreakerConfig(storage=instance)) for n in ("search", "pay")]
    assert instance.sync()
    listed = run_json(capsys, cli(redis_server, "--json", "list"))
    assert [(b["name"], b["state"]) for b in listed] == [("pay", "closed"), ("search", "closed")]
    assert listed[0]["instances"] == 1

    assert main(cli(redis_server, "list")) == 0
    table = capsys.readouterr().out
    assert "pay" in table
    assert "search" in table
    assert "closed" in table
    del kept


def test_plain_text_without_rich(redis_server, instance, capsys, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "rich", None)  # as if the cli extra were missing
    monkeypatch.setitem(sys.modules, "rich.console", None)
    monkeypatch.setitem(sys.modules, "rich.table", None)
    breaker = CircuitBreaker("pay", CircuitBreakerConfig(storage=instance))
    assert instance.sync()
    assert main(cli(redis_server, "list")) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["NAME", "STATE", "REMAINING", "FAILURES", "INSTANCES", "PROBES"]
    assert lines[1].split() == ["pay", "closed", "-", "0/5", "1", "0"]
    assert main(cli(redis_server, "show", "pay")) == 0
    assert "state                       closed" in capsys.readouterr().out
    del breaker


def test_show(redis_server, instance, capsys) -> None:
    breaker = CircuitBreaker("pay", CircuitBreakerConfig(storage=instance, failure_threshold=3))
    assert instance.sync()
    shown = run_json(capsys, cli(redis_server, "show", "pay", "--json"))
    assert shown["name"] == "pay"
    assert shown["state"] == "closed"
    assert shown["failure_threshold"] == 3
    assert main(cli(redis_server, "show", "pay")) == 0
    assert "consecutive failures" in capsys.readouterr().out
    del breaker


def test_show_of_an_unknown_name_is_an_error(redis_server, capsys) -> None:
    assert main(cli(redis_server, "show", "nobody")) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "no circuit breaker named 'nobody'" in captured.err


def test_force_open_before_any_instance_creates_it(redis_server, instance, capsys) -> None:
    assert main(cli(redis_server, "force-open", "pay")) == 0
    out = capsys.readouterr().out
    assert "forced open" in out
    assert "no instance has created 'pay' yet" in out
    breaker = CircuitBreaker("pay", CircuitBreakerConfig(storage=instance))
    assert instance.sync()
    assert breaker.state is CircuitState.FORCED_OPEN

    done = run_json(capsys, cli(redis_server, "force-closed", "pay", "--json"))
    assert done == {"name": "pay", "action": "force_closed", "state": "forced_closed",
                    "created": True}  # fmt: skip
    assert instance.sync()
    assert breaker.state is CircuitState.FORCED_CLOSED

    assert main(cli(redis_server, "release", "pay")) == 0
    assert "released fleet-wide; it is now closed" in capsys.readouterr().out
    assert instance.sync()
    assert breaker.state is CircuitState.CLOSED


def test_reset(redis_server, instance, capsys) -> None:
    breaker = CircuitBreaker("pay", CircuitBreakerConfig(storage=instance, failure_threshold=1))
    assert instance.sync()
    with pytest.raises(ZeroDivisionError):
        breaker.call(lambda: 1 / 0)
    assert instance.sync()
    assert breaker.state is CircuitState.OPEN
    assert main(cli(redis_server, "reset", "pay")) == 0
    assert "reset fleet-wide; it is now closed" in capsys.readouterr().out
    assert instance.sync()
    assert breaker.state is CircuitState.CLOSED


@pytest.mark.parametrize("action", ["release", "reset"])
def test_release_or_reset_of_an_unknown_name_is_an_error(redis_server, capsys, action) -> None:
    assert main(cli(redis_server, action, "nobody")) == 1
    assert "no circuit breaker named 'nobody'" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://localhost", "bad Redis URL 'http://localhost'"),
        ("redis://127.0.0.1:1/0", "cannot reach Redis at redis://127.0.0.1:1/0"),
    ],
)
def test_bad_url(capsys, url, message) -> None:
    assert main(["breakers", "--redis", url, "list"]) == 1
    assert message in capsys.readouterr().err


def test_url_from_the_environment(redis_server, capsys, monkeypatch) -> None:
    monkeypatch.delenv("RESILIENT_REDIS_URL", raising=False)
    assert main(["breakers", "list"]) == 1
    assert "no Redis URL" in capsys.readouterr().err
    monkeypatch.setenv("RESILIENT_REDIS_URL", redis_server.url)
    assert run_json(capsys, ["breakers", "list", "--json"]) == []


def test_namespaces_are_separate(redis_server, capsys) -> None:
    with RedisStorage.from_url(redis_server.url, namespace="team-a", refresh_interval=60.0) as a:
        breaker = CircuitBreaker("pay", CircuitBreakerConfig(storage=a))
        assert a.sync()
        listed = run_json(capsys, cli(redis_server, "--namespace", "team-a", "list", "--json"))
        assert [b["name"] for b in listed] == ["pay"]
        assert run_json(capsys, cli(redis_server, "list", "--json")) == []
        del breaker


@pytest.mark.slow
def test_a_force_open_from_the_shell_reaches_a_running_process(redis_server) -> None:
    worker = Worker(redis_server.url, "pay", failure_threshold=5)
    try:
        assert worker.ask("ok") == "ok"
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        done = subprocess.run(
            [sys.executable, "-m", "resilient", "breakers", "--redis", redis_server.url,
             "force-open", "pay"],
            capture_output=True, text=True, env=env, cwd=ROOT, timeout=60,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert "forced open fleet-wide" in done.stdout
        assert "no instance has created" not in done.stdout
        wait_for(lambda: worker.ask("state") == "forced_open", what="the process to see it")
        assert worker.ask("ok") == "rejected"
    finally:
        worker.close()
