"""Streamed messages: request heads handed over early, bodies as events, responses likewise."""

from __future__ import annotations

from latchkey.http.h1 import (
    BodyEnd,
    BodyPart,
    Request,
    RequestParser,
    Response,
    ResponseStreamParser,
    encode_response_head,
)
from latchkey.http.stream import stream_request_if

SIGV4 = stream_request_if(declared_hash_streams=True)
OTHER = stream_request_if(declared_hash_streams=False)


def test_which_requests_stream() -> None:
    assert SIGV4([("Transfer-Encoding", "chunked")])
    assert OTHER([("Expect", "100-continue"), ("Content-Length", "5")])
    assert SIGV4([("x-amz-content-sha256", "UNSIGNED-PAYLOAD"), ("Content-Length", "9")])
    assert not SIGV4([("x-amz-content-sha256", "UNSIGNED-PAYLOAD")])  # no body
    assert not OTHER([("x-amz-content-sha256", "UNSIGNED-PAYLOAD"), ("Content-Length", "9")])
    assert not SIGV4([("Content-Length", "9"), ("X-Amz-Target", "TrentService.Encrypt")])


def test_a_chunked_request_is_handed_over_at_its_head_then_as_parts() -> None:
    parser = RequestParser(stream_if=SIGV4, max_body_bytes=4)
    head = b"PUT /o HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
    events = parser.feed_events(head)
    assert len(events) == 1
    assert isinstance(events[0], Request)
    assert events[0].streamed
    events = parser.feed_events(
        b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n"
    )
    assert events[:3] == [BodyPart(b"hello"), BodyPart(b" world"), BodyEnd()]  # over the limit
    assert isinstance(events[3], Request)
    assert (events[3].method, events[3].streamed) == ("GET", False)


def test_a_response_streams_and_interims_are_skipped() -> None:
    parser = ResponseStreamParser()
    events = parser.feed(
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nab"
    )
    assert isinstance(events[0], Response)
    assert events[0].status == 200
    assert events[1:] == [BodyPart(b"ab")]
    assert parser.feed(b"cd") == [BodyPart(b"cd"), BodyEnd()]


def test_a_head_response_ends_at_its_head() -> None:
    parser = ResponseStreamParser(head_request=True)
    events = parser.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 400\r\n\r\n")
    assert isinstance(events[0], Response)
    assert events[1:] == [BodyEnd()]
    head = encode_response_head(events[0], 400, no_body=True)
    assert b"Content-Length: 400\r\n" in head
    assert b"chunked" not in head
