"""A scripted HTTP server on loopback, for testing code that calls HTTP APIs.

It answers each request with the next ``Reply`` of its script (the last
one repeats), in a thread, on a free port of 127.0.0.1. Standard library only.

    with LoopbackServer(Reply(status=503), Reply(json={"ok": True})) as server:
        ...  # call server.url; server.requests records what arrived
"""

from __future__ import annotations

import contextlib
import json as jsonlib
import math
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .._runtime.exc_info import ExcInfo

__all__ = ["LoopbackServer", "RecordedRequest", "Reply", "event"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Reply:
    """One scripted answer.

    ``delay`` holds the status line back (a slow server); ``events`` are sent
    one chunk at a time as ``text/event-stream`` (``event(...)`` writes one,
    with an id and a ``retry:`` field if wanted); ``stall`` then keeps the
    connection open without a byte (``math.inf``: until the server stops);
    ``broken`` then drops the connection in the middle of the body (the
    client sees the body break off); ``drop`` closes the connection without
    answering at all.
    """

    status: int = 200
    body: bytes | str = b""
    json: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)
    delay: float = 0.0
    events: Sequence[str] = ()
    stall: float = 0.0
    broken: bool = False
    drop: bool = False


def event(
    data: str, *, id: str | None = None, event: str | None = None, retry: int | None = None
) -> str:
    """One server-sent event as the server writes it (``retry`` in milliseconds)."""
    lines = []
    if event is not None:
        lines.append(f"event: {event}")
    if id is not None:
        lines.append(f"id: {id}")
    if retry is not None:
        lines.append(f"retry: {retry}")
    lines.extend(f"data: {line}" for line in data.split("\n"))
    return "\n".join(lines) + "\n\n"


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request as it arrived, in ``server.requests``: its ``method``,
    ``path``, ``headers`` (names in lower case) and ``body``."""

    method: str
    path: str
    headers: dict[str, str]  # names in lower case
    body: bytes


class LoopbackServer:
    """Start with ``with`` (or ``start``); stopped on exit."""

    def __init__(self, *script: Reply | int) -> None:
        if not script:
            script = (Reply(),)
        self._script = [r if isinstance(r, Reply) else Reply(status=r) for r in script]
        self._arrived = threading.Condition()
        self._stopping = threading.Event()
        self.requests: list[RecordedRequest] = []
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._url: str | None = None

    @property
    def url(self) -> str:
        """``http://127.0.0.1:{port}``; it stays readable after the server stopped."""
        if self._url is None:
            raise RuntimeError("LoopbackServer has not been started")
        return self._url

    def _next(self, request: RecordedRequest) -> Reply:
        with self._arrived:
            self.requests.append(request)
            self._arrived.notify_all()
            return self._script.pop(0) if len(self._script) > 1 else self._script[0]

    def wait_for(self, count: int = 1, timeout: float = 10.0) -> bool:
        """Block until ``count`` requests have arrived; False if ``timeout`` passed first."""
        with self._arrived:
            return self._arrived.wait_for(lambda: len(self.requests) >= count, timeout)

    def start(self) -> LoopbackServer:
        server = self

        class Handler(_Handler):
            owner = server

        httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        httpd.daemon_threads = True
        self._httpd = httpd
        host, port = httpd.server_address[:2]
        self._url = f"http://{host!s}:{port}"
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        self._stopping.set()  # wakes handlers that delay or stall
        httpd.shutdown()
        httpd.server_close()
        if self._thread is not None:
            self._thread.join()

    def __enter__(self) -> LoopbackServer:
        return self.start()

    def __exit__(self, *exc_info: *ExcInfo) -> None:
        self.stop()

    def _wait(self, seconds: float) -> None:
        if seconds > 0:
            self._stopping.wait(None if math.isinf(seconds) else seconds)


class _Handler(BaseHTTPRequestHandler):
    # Buffered: the head of a reply goes out with its first event, in one
    # write, so no client sees headers and then a silence a loaded machine
    # made (the first byte's wait is part of what tests time).
    wbufsize = -1
    owner: LoopbackServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _answer(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        reply = self.owner._next(RecordedRequest(self.command, self.path, headers, body))
        owner = self.owner
        owner._wait(reply.delay)
        if reply.drop or owner._stopping.is_set():
            self.close_connection = True
            return
        if reply.json is not None:
            content = jsonlib.dumps(reply.json).encode()
            content_type = "application/json"
        else:
            raw = reply.body
            content = raw.encode() if isinstance(raw, str) else raw
            content_type = "text/event-stream" if reply.events else "text/plain"
        self.send_response(reply.status)
        self.send_header("Content-Type", content_type)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        if reply.broken:
            # Promise more than is sent: closing early breaks the body off.
            sent = len(content) + sum(len(chunk.encode()) for chunk in reply.events)
            self.send_header("Content-Length", str(sent + 1024))
        elif not reply.events and not reply.stall:
            self.send_header("Content-Length", str(len(content)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(content)
        for chunk in reply.events:
            self.wfile.write(chunk.encode())
            self.wfile.flush()
        self.wfile.flush()
        owner._wait(reply.stall)
        self.close_connection = True

    def handle_one_request(self) -> None:
        with contextlib.suppress(ConnectionError):
            super().handle_one_request()

    def do_GET(self) -> None:
        self._answer()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = do_GET
