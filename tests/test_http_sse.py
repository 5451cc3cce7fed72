"""The event-stream decoder (WHATWG HTML §9.2.6) and iteration over responses."""

from __future__ import annotations

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from resilient.http import ServerSentEvent, SSEDecoder, StreamError, aiter_sse, iter_sse


def decode(*chunks: bytes) -> list[ServerSentEvent]:
    decoder = SSEDecoder()
    events = [event for chunk in chunks for event in decoder.feed(chunk)]
    return events + decoder.end()


def test_data_lines_join_with_newlines_and_a_blank_line_dispatches() -> None:
    assert decode(b"data: first\ndata: second\n\ndata: next\n\n") == [
        ServerSentEvent(data="first\nsecond"),
        ServerSentEvent(data="next"),
    ]


def test_event_id_and_retry_fields() -> None:
    events = decode(b"event: delta\nid: 42\nretry: 3000\ndata: {}\n\ndata: x\n\n")
    assert events == [
        ServerSentEvent(event="delta", data="{}", id="42", retry=3000),
        # The id and retry persist; the event type does not.
        ServerSentEvent(event="message", data="x", id="42", retry=3000),
    ]


def test_comments_unknown_fields_and_empty_events_are_skipped() -> None:
    assert decode(b": keep-alive\n\nfoo: bar\n\nevent: ping\n\ndata: x\n\n") == [
        ServerSentEvent(data="x")
    ]


def test_one_leading_space_is_stripped_only() -> None:
    assert decode(b"data:no space\n\ndata:  two\n\ndata\n\n") == [
        ServerSentEvent(data="no space"),
        ServerSentEvent(data=" two"),
        ServerSentEvent(data=""),
    ]


def test_bad_retry_and_id_with_nul_are_ignored() -> None:
    assert decode(b"retry: soon\nid: a\x00b\ndata: x\n\n") == [ServerSentEvent(data="x")]


@pytest.mark.parametrize("eol", [b"\n", b"\r\n", b"\r"])
def test_every_line_ending(eol: bytes) -> None:
    stream = eol.join([b"event: e", b"data: a", b"", b"data: b", b"", b""])
    assert decode(stream) == [ServerSentEvent(event="e", data="a"), ServerSentEvent(data="b")]


def test_crlf_split_across_chunks_is_one_line_break() -> None:
    assert decode(b"data: a\r", b"\n\r", b"\n") == [ServerSentEvent(data="a")]


def test_other_unicode_line_breaks_are_data() -> None:
    assert decode("data: a\u2028b\x0bc\n\n".encode()) == [ServerSentEvent(data="a\u2028b\x0bc")]


def test_leading_bom_is_dropped_once() -> None:
    assert decode(b"\xef\xbb", b"\xbfdata: x\n\n") == [ServerSentEvent(data="x")]


def test_an_unterminated_last_event_is_dropped() -> None:
    assert decode(b"data: done\n\ndata: half") == [ServerSentEvent(data="done")]


def test_multibyte_character_split_across_chunks() -> None:
    raw = "data: héllo ✓\n\n".encode()
    assert decode(*[raw[i : i + 1] for i in range(len(raw))]) == [ServerSentEvent(data="héllo ✓")]


def test_invalid_utf8_is_a_stream_error() -> None:
    with pytest.raises(StreamError, match="not valid UTF-8"):
        decode(b"data: \xff\n\n")


def test_truncated_utf8_at_the_end_is_a_stream_error() -> None:
    with pytest.raises(StreamError, match="not valid UTF-8"):
        decode(b"data: ok\n\n\xe2\x9c")


def test_json_data() -> None:
    assert ServerSentEvent(data='{"a": [1]}').json() == {"a": [1]}


@given(st.binary(max_size=200).map(lambda b: b.replace(b"\xff", b"")), st.data())
def test_chunking_never_changes_the_events(raw: bytes, data: st.DataObject) -> None:
    text = raw.decode("latin-1").encode()  # valid UTF-8 with CRs, LFs and colons aplenty
    cuts = sorted(data.draw(st.lists(st.integers(0, len(text)), max_size=8)))
    pieces = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]
    assert decode(*pieces) == decode(text)


def _response(content: bytes, content_type: str = "text/event-stream") -> httpx.Response:
    return httpx.Response(
        200,
        headers={"content-type": content_type},
        content=content,
        request=httpx.Request("GET", "http://x/", headers={"X-Request-ID": "r-1"}),
    )


def test_iter_sse_over_a_response() -> None:
    response = _response(b"data: a\n\ndata: [DONE]\n\n")
    assert [e.data for e in iter_sse(response)] == ["a", "[DONE]"]


async def test_aiter_sse_over_a_response() -> None:
    response = _response(b"data: a\n\ndata: b\n\n")
    assert [e.data async for e in aiter_sse(response)] == ["a", "b"]


def test_iter_sse_refuses_what_is_not_an_event_stream() -> None:
    response = _response(b'{"error": "nope"}', "application/json")
    with pytest.raises(StreamError, match="got application/json") as info:
        list(iter_sse(response))
    assert info.value.status_code == 200
    assert info.value.request_id == "r-1"


async def test_aiter_sse_stamps_decoding_errors_with_the_request() -> None:
    response = _response(b"data: \xff\n\n", "text/event-stream; charset=utf-8")
    with pytest.raises(StreamError) as info:
        [e async for e in aiter_sse(response)]
    assert info.value.request_id == "r-1"
    assert info.value.status_code == 200
