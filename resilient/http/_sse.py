"""Server-sent events: a pure, incremental decoder (WHATWG HTML §9.2.6) and
iteration over an httpx response with it."""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

from .errors import StreamError

__all__ = ["SSEDecoder", "ServerSentEvent", "aiter_sse", "iter_sse"]

# Only these end a line in an event stream (str.splitlines knows many more).
_EOL = re.compile(r"\r\n|\r|\n")


@dataclass(frozen=True, slots=True)
class ServerSentEvent:
    """One event. ``id`` is the last event id seen on the stream so far."""

    event: str = "message"
    data: str = ""
    id: str | None = None
    retry: int | None = None

    def json(self) -> Any:
        """``data`` parsed as JSON (LLM APIs send one JSON object per event)."""
        return json.loads(self.data)


class SSEDecoder:
    """Feed it bytes as they arrive; it returns the events they complete."""

    __slots__ = ("_bytes", "_data", "_event", "_id", "_pending", "_retry", "_started")

    def __init__(self) -> None:
        self._bytes = codecs.getincrementaldecoder("utf-8")("strict")
        self._pending = ""  # text after the last line break
        self._started = False
        self._event = ""
        self._data: list[str] = []
        self._id: str | None = None
        self._retry: int | None = None

    def feed(self, chunk: bytes) -> list[ServerSentEvent]:
        try:
            text = self._bytes.decode(chunk)
        except UnicodeDecodeError as exc:
            raise StreamError(f"event stream is not valid UTF-8: {exc}") from exc
        if not self._started and text:
            self._started = True
            text = text.removeprefix("\ufeff")
        text = self._pending + text
        # A CR at the very end may be the first half of a CRLF: wait for more.
        held = "\r" if text.endswith("\r") else ""
        lines = _EOL.split(text[: len(text) - len(held)])
        self._pending = lines.pop() + held
        return self._lines(lines)

    def _lines(self, lines: list[str]) -> list[ServerSentEvent]:
        events = []
        for line in lines:
            event = self._line(line)
            if event is not None:
                events.append(event)
        return events

    def end(self) -> list[ServerSentEvent]:
        """The stream ended: the events a last, held-back CR completes. An
        event without its closing blank line is dropped, as the standard says."""
        try:
            self._bytes.decode(b"", final=True)
        except UnicodeDecodeError as exc:
            raise StreamError(f"event stream is not valid UTF-8: {exc}") from exc
        pending, self._pending = self._pending, ""
        return self._lines(_EOL.split(pending)[:-1] if pending.endswith("\r") else [])

    def _line(self, line: str) -> ServerSentEvent | None:
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id":
            if "\0" not in value:
                self._id = value
        elif name == "retry" and value.isascii() and value.isdigit():
            self._retry = int(value)
        return None

    def _dispatch(self) -> ServerSentEvent | None:
        data, event = self._data, self._event
        self._data, self._event = [], ""
        if not data:
            return None
        return ServerSentEvent(
            event=event or "message", data="\n".join(data), id=self._id, retry=self._retry
        )


def _check_content_type(response: Any) -> None:
    content_type = response.headers.get("content-type", "")
    if content_type.partition(";")[0].strip().lower() != "text/event-stream":
        raise StreamError(
            f"expected an event stream (text/event-stream), got {content_type or 'no'} "
            "content type",
            status_code=response.status_code,
            request_id=_request_id(response),
        )


def _request_id(response: Any) -> str | None:
    try:
        rid: str | None = response.request.headers.get("x-request-id")
    except RuntimeError:  # a response built by hand has no request
        return None
    return rid


def _stamp(error: StreamError, response: Any) -> None:
    if error.status_code is None:
        error.status_code = response.status_code
    if error.request_id is None:
        error.request_id = _request_id(response)


def iter_sse(response: Any) -> Iterator[ServerSentEvent]:
    """The events of a streamed ``httpx.Response`` as they arrive."""
    _check_content_type(response)
    decoder = SSEDecoder()
    try:
        for chunk in response.iter_bytes():
            yield from decoder.feed(chunk)
        yield from decoder.end()
    except StreamError as error:
        _stamp(error, response)
        raise


async def aiter_sse(response: Any) -> AsyncIterator[ServerSentEvent]:
    """The events of a streamed ``httpx.Response`` from an ``AsyncClient``."""
    _check_content_type(response)
    decoder = SSEDecoder()
    try:
        async for chunk in response.aiter_bytes():
            for event in decoder.feed(chunk):
                yield event
        for event in decoder.end():
            yield event
    except StreamError as error:
        _stamp(error, response)
        raise
