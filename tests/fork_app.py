"""The app tests/test_fork.py serves with ``gunicorn --preload``: its policies
are made (and used once) at import, in the master, before the workers fork.

``app`` is WSGI (sync workers); ``asgi`` is ASGI (``-k uvicorn.workers.UvicornWorker``).
Each request answers ``ok <pid>`` through a breaker with a timeout (a call on
a worker thread of the process that serves it), or 500 with the error.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from resilient import CircuitBreaker, CircuitBreakerConfig

breaker = CircuitBreaker("fork-app", CircuitBreakerConfig(timeout=0.5))
abreaker = CircuitBreaker("fork-app-async", CircuitBreakerConfig(timeout=0.5))


def answer() -> str:
    return f"ok {os.getpid()}"


async def aanswer() -> str:
    return f"ok {os.getpid()}"


# Used in the master once, as an app warming up at import would: its worker
# pool has a thread there, which no forked worker inherits.
assert breaker.call(answer).startswith("ok")


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    try:
        body, status = breaker.call(answer), "200 OK"
    except Exception as exc:  # reported to the test, not hidden
        body, status = repr(exc), "500 Internal Server Error"
    start_response(status, [("Content-Type", "text/plain")])
    return [body.encode()]


async def asgi(
    scope: dict[str, Any],
    receive: Callable[[], Awaitable[Any]],
    send: Callable[[dict[str, Any]], Awaitable[None]],
) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    try:
        # Both flavours: the async call, and a sync one on a worker thread.
        body, status = await abreaker.call_async(aanswer), 200
        body = breaker.call(answer)
    except Exception as exc:
        body, status = repr(exc), 500
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"text/plain")],
        }
    )
    await send({"type": "http.response.body", "body": body.encode()})
