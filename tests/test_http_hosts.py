"""The transport's per-host breakers are per-key breakers: at most
``MAX_HOSTS`` of them, by the LRU rule, their routes with them."""

from __future__ import annotations

import httpx
import pytest

from resilient import CircuitBreakerConfig, CircuitState, Registry, ResiliencePolicy
from resilient.http import ResilientTransport
from resilient.http import _routing as routing_module


def test_per_host_breakers_are_bounded_by_the_lru_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(routing_module, "MAX_HOSTS", 8)
    reg = Registry()
    down = {"down.test"}

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503 if request.url.host in down else 200)

    policy = ResiliencePolicy(
        retry=None, timeout=None, circuit_breaker=CircuitBreakerConfig(failure_threshold=1)
    )
    transport = ResilientTransport(policy, transport=httpx.MockTransport(answer), registry=reg)
    with httpx.Client(transport=transport) as http:
        with pytest.raises(Exception, match="503"):
            http.get("http://down.test/")
        for i in range(50):
            assert http.get(f"http://host-{i}.test/").status_code == 200
    names = reg.names()
    # The open breaker stays; the rest are the most recently used hosts.
    assert "http:down.test" in names
    assert reg.get("http", key="down.test").state is CircuitState.OPEN  # type: ignore[union-attr]
    assert len(names) == 8
    assert "http:host-49.test" in names
    assert "http:host-0.test" not in names
    assert len(transport._routes) <= 8
