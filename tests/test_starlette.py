"""resilient.starlette with Starlette's and FastAPI's test clients, and once
through a real uvicorn on loopback."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Annotated, Literal

import httpx
import pytest
import uvicorn
from fastapi import Depends, FastAPI, Query
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

import resilient
from resilient import (
    BulkheadFullError,
    CircuitBreakerConfig,
    get_request_id,
    with_bulkhead,
    with_circuit_breaker,
    with_resilience,
)
from resilient.starlette import RequestIdMiddleware, error_response, health_endpoint, install


def _starlette_app() -> Starlette:
    @with_circuit_breaker("inventory", failure_threshold=1, recovery_timeout=12.2)
    async def stock(request: Request) -> JSONResponse:
        if request.query_params.get("fail"):
            raise ConnectionError("inventory down")
        return JSONResponse({"request_id": get_request_id()})

    @with_circuit_breaker("inventory-sync")
    def sync_stock(request: Request) -> JSONResponse:
        return JSONResponse({"request_id": get_request_id()})

    app = Starlette(
        routes=[
            Route("/stock", stock),
            Route("/sync-stock", sync_stock),
            Route("/health", health_endpoint()),
        ]
    )
    return install(app)


@pytest.fixture
def starlette_client() -> Iterator[TestClient]:
    with TestClient(_starlette_app(), raise_server_exceptions=False) as client:
        yield client


def test_an_open_breaker_answers_503_with_retry_after(starlette_client: TestClient) -> None:
    assert starlette_client.get("/stock?fail=1").status_code == 500  # the real failure
    answer = starlette_client.get("/stock")
    assert answer.status_code == 503
    assert answer.headers["Retry-After"] == "13"  # 12.2 s, rounded up
    assert answer.json()["error"] == "circuit_open"
    assert answer.json()["name"] == "inventory"


def test_a_forced_open_breaker_has_no_retry_after(starlette_client: TestClient) -> None:
    with resilient.registry.forced_open("inventory"):
        answer = starlette_client.get("/stock")
    assert answer.status_code == 503
    assert "Retry-After" not in answer.headers  # the wait is infinite


def test_request_id_comes_in_and_goes_out(starlette_client: TestClient) -> None:
    answer = starlette_client.get("/stock", headers={"X-Request-ID": "abc-123"})
    assert answer.headers["X-Request-ID"] == "abc-123"
    assert answer.json() == {"request_id": "abc-123"}
    # a sync endpoint, run on Starlette's thread pool, sees it too
    answer = starlette_client.get("/sync-stock", headers={"X-Request-ID": "def-456"})
    assert answer.json() == {"request_id": "def-456"}


def test_a_missing_or_unprintable_request_id_is_generated(starlette_client: TestClient) -> None:
    first = starlette_client.get("/stock")
    second = starlette_client.get("/stock", headers={"X-Request-ID": "x" * 500})
    ids = {first.headers["X-Request-ID"], second.headers["X-Request-ID"]}
    assert len(ids) == 2
    assert all(rid and len(rid) < 100 for rid in ids)
    assert first.json()["request_id"] == first.headers["X-Request-ID"]


def test_health_endpoint_follows_the_registry(starlette_client: TestClient) -> None:
    healthy = starlette_client.get("/health")
    assert healthy.status_code == 200
    assert healthy.json()["status"] == "healthy"
    resilient.registry.force_open("inventory")
    resilient.registry.force_open("inventory-sync")
    failing = starlette_client.get("/health")
    assert failing.status_code == 503
    # unhealthy or critical, by how many other breakers this process holds
    assert failing.json()["status"] in ("unhealthy", "critical")
    assert failing.json()["breakers"]["inventory"] == "forced_open"


def test_health_endpoint_of_its_own_registry() -> None:
    own = resilient.Registry()
    own.get_or_create("a")
    own.get_or_create("b")
    own.get_or_create("c")
    app = Starlette(routes=[Route("/health", health_endpoint(own))])
    with TestClient(app) as client:
        assert client.get("/health").status_code == 200
        own.get_or_create("c", CircuitBreakerConfig()).force_open()
        answer = client.get("/health")
    assert answer.status_code == 503
    assert answer.json()["status"] == "unhealthy"


@pytest.mark.parametrize(
    ("fail_on", "one_open", "two_open"),
    [("unhealthy", 503, 503), ("critical", 200, 503), ("never", 200, 200)],
)
def test_health_endpoint_fails_on_its_level(
    fail_on: Literal["unhealthy", "critical", "never"], one_open: int, two_open: int
) -> None:
    own = resilient.Registry()
    for name in ("a", "b", "c", "d"):
        own.get_or_create(name)
    app = Starlette(routes=[Route("/health", health_endpoint(own, fail_on=fail_on))])
    with TestClient(app) as client:
        assert client.get("/health").status_code == 200
        own.force_open("a")
        answer = client.get("/health")
        assert (answer.status_code, answer.json()["status"]) == (one_open, "unhealthy")
        own.force_open("b")
        answer = client.get("/health")
        assert (answer.status_code, answer.json()["status"]) == (two_open, "critical")


def test_health_endpoint_refuses_an_unknown_level() -> None:
    with pytest.raises(ValueError, match=r"fail_on.*'sometimes'"):
        health_endpoint(fail_on="sometimes")  # type: ignore[arg-type]


def test_health_endpoint_refuses_a_non_registry() -> None:
    with pytest.raises(TypeError, match="must be a Registry"):
        health_endpoint("global")  # type: ignore[arg-type]


def test_install_refuses_what_is_not_an_app() -> None:
    with pytest.raises(TypeError, match="Starlette or FastAPI"):
        install(object())


def test_a_full_bulkhead_answers_503_without_retry_after() -> None:
    answer = error_response(BulkheadFullError("pool", 4, 0))
    assert answer.status_code == 503
    assert "retry-after" not in answer.headers


def test_retry_after_is_whole_seconds_rounded_up() -> None:
    error = resilient.CircuitOpenError("x", "open", 0.01)
    assert error_response(error).headers["retry-after"] == "1"
    error = resilient.CircuitOpenError("x", "open", 0.0)
    assert error_response(error).headers["retry-after"] == "0"


def test_a_rate_limit_answers_429_when_the_error_exists() -> None:
    answer = error_response(resilient.RateLimitExceededError("api", 2.5))
    assert answer.status_code == 429
    assert answer.headers["retry-after"] == "3"


def test_websockets_pass_the_request_id_middleware() -> None:
    from starlette.routing import WebSocketRoute
    from starlette.websockets import WebSocket

    async def echo(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text(await websocket.receive_text())
        await websocket.close()

    app = Starlette(routes=[WebSocketRoute("/ws", echo)], middleware=[])
    app.add_middleware(RequestIdMiddleware)
    with TestClient(app) as client, client.websocket_connect("/ws") as ws:
        ws.send_text("hi")
        assert ws.receive_text() == "hi"


# -- FastAPI ---------------------------------------------------------------------


def tenant(x_tenant: Annotated[str, Query()] = "acme") -> str:
    return x_tenant


async def _bad_gateway(request: Request, error: Exception) -> JSONResponse:
    return JSONResponse({"error": str(error)}, status_code=502)


def _fastapi_app() -> FastAPI:
    app = FastAPI()
    install(app)
    app.add_exception_handler(ConnectionError, _bad_gateway)
    app.add_api_route("/health", health_endpoint())

    @app.get("/quote")
    @with_resilience("pricing", retry=None, timeout=5.0)
    async def quote(
        amount: Annotated[int, Query(gt=0)],
        who: Annotated[str, Depends(tenant)],
        fail: bool = False,
    ) -> dict[str, object]:
        if fail:
            raise ConnectionError("pricing down")
        return {"amount": amount, "tenant": who, "request_id": get_request_id()}

    @app.get("/report")
    @with_bulkhead(resilient.registry.bulkhead("reports", max_concurrent=1))
    def report() -> dict[str, str]:
        return {"ok": "yes"}

    return app


@pytest.fixture
def fastapi_client() -> Iterator[TestClient]:
    with TestClient(_fastapi_app(), raise_server_exceptions=False) as client:
        yield client


def test_fastapi_keeps_query_depends_and_validation(fastapi_client: TestClient) -> None:
    ok = fastapi_client.get("/quote", params={"amount": 3, "x_tenant": "globex"})
    assert ok.status_code == 200
    assert ok.json()["amount"] == 3
    assert ok.json()["tenant"] == "globex"
    assert fastapi_client.get("/quote", params={"amount": 0}).status_code == 422


def test_fastapi_open_breaker_answers_503_with_retry_after_and_the_callers_id(
    fastapi_client: TestClient,
) -> None:
    for _ in range(5):  # the default breaker opens after 5 failures, for 30 s
        failed = fastapi_client.get("/quote", params={"amount": 1, "fail": True})
        assert failed.status_code == 502
    answer = fastapi_client.get("/quote", params={"amount": 1}, headers={"X-Request-ID": "r-1"})
    assert answer.status_code == 503
    assert answer.headers["X-Request-ID"] == "r-1"
    assert answer.headers["Retry-After"] == "30"
    assert answer.json()["name"] == "pricing"


def test_fastapi_forced_open_answers_503_with_the_callers_id(fastapi_client: TestClient) -> None:
    with resilient.registry.forced_open("pricing"):
        forced = fastapi_client.get("/quote", params={"amount": 1}, headers={"X-Request-ID": "r-2"})
        health = fastapi_client.get("/health")
    assert forced.status_code == 503
    assert forced.headers["X-Request-ID"] == "r-2"
    # Forced open has no known end: no Retry-After rather than a made-up one.
    assert "Retry-After" not in forced.headers
    assert health.status_code == 503
    assert health.json()["breakers"]["pricing"] == "forced_open"


def test_fastapi_full_bulkhead_answers_503(fastapi_client: TestClient) -> None:
    bulkhead = resilient.registry.bulkhead("reports", max_concurrent=1)
    with bulkhead:  # the only slot is taken
        answer = fastapi_client.get("/report")
    assert answer.status_code == 503
    assert answer.json()["error"] == "bulkhead_full"
    assert fastapi_client.get("/report").json() == {"ok": "yes"}


# -- a real server -------------------------------------------------------------------


@pytest.fixture
def served() -> Iterator[str]:
    """The FastAPI app behind a real uvicorn on a free loopback port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)  # connections queue here until uvicorn accepts them
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(_fastapi_app(), log_level="warning", lifespan="off", access_log=False)
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
    assert not thread.is_alive()


def test_through_a_real_uvicorn(served: str) -> None:
    with httpx.Client(base_url=served, timeout=10) as client:
        ok = client.get("/quote", params={"amount": 2}, headers={"X-Request-ID": "live-1"})
        assert ok.status_code == 200
        assert ok.json()["request_id"] == "live-1"
        assert ok.headers["X-Request-ID"] == "live-1"
        for _ in range(5):
            assert client.get("/quote", params={"amount": 1, "fail": True}).status_code == 502
        opened = client.get("/quote", params={"amount": 1}, headers={"X-Request-ID": "live-2"})
        health = client.get("/health")
    assert opened.status_code == 503
    assert opened.headers["Retry-After"] == "30"
    assert opened.headers["X-Request-ID"] == "live-2"
    assert health.status_code == 503
    assert health.json()["breakers"]["pricing"] == "open"


@pytest.mark.parametrize(("module", "extra"), [("starlette", "starlette"), ("aiohttp", "aiohttp")])
def test_a_missing_extra_names_what_to_install(module: str, extra: str) -> None:
    code = (
        "import sys\n"
        f"sys.modules[{module!r}] = None\n"
        "try:\n"
        f"    import resilient.{module}\n"
        "except ImportError as error:\n"
        "    print(error)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert f"pip install 'resilient-kit[{extra}]'" in out.stdout
