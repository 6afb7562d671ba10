"""The head limit holds while a head is still arriving, not only once a field line is whole:
llhttp gathers an unfinished line by repeated concatenation, so a late check costs quadratic
CPU and memory before any 431."""

from __future__ import annotations

import time

import pytest

from latchkey.http.h1 import (
    BodyEnd,
    BodyPart,
    ProtocolError,
    Request,
    RequestParser,
    ResponseParser,
    ResponseStreamParser,
)

LIMIT = 1024
UNFINISHED = b"GET / HTTP/1.1\r\nHost: x\r\nX-Long: "


def head_of(size: int) -> bytes:
    """A whole request head of exactly ``size`` bytes."""
    start, end = b"GET / HTTP/1.1\r\nHost: x\r\nX-Pad: ", b"\r\n\r\n"
    return start + b"a" * (size - len(start) - len(end)) + end


def test_an_unfinished_line_one_byte_over_the_limit_is_431_at_once() -> None:
    data = UNFINISHED + b"a" * (LIMIT + 1 - len(UNFINISHED))
    with pytest.raises(ProtocolError) as info:
        RequestParser(max_header_bytes=LIMIT).feed(data)
    assert info.value.status == 431


def test_the_byte_past_the_limit_is_refused_in_a_later_feed_too() -> None:
    parser = RequestParser(max_header_bytes=LIMIT)
    assert parser.feed(UNFINISHED + b"a" * (LIMIT - len(UNFINISHED))) == []
    with pytest.raises(ProtocolError) as info:
        parser.feed(b"a")
    assert info.value.status == 431


@pytest.mark.parametrize("size", [LIMIT - 1, LIMIT])
def test_a_head_up_to_the_limit_parses(size: int) -> None:
    head = head_of(size)
    assert len(head) == size
    for step in (1, 7, size):
        parser = RequestParser(max_header_bytes=LIMIT)
        got: list[Request] = []
        for i in range(0, size, step):
            got += parser.feed(head[i : i + step])
        assert [r.target for r in got] == ["/"], step


def test_a_huge_unfinished_header_costs_little() -> None:
    parser = RequestParser()  # the default limit
    started = time.process_time()
    parser.feed(UNFINISHED + b"a" * 50_000)  # under the limit: nothing to say yet
    with pytest.raises(ProtocolError) as info:  # the first read past it is refused
        parser.feed(b"a" * 65536)
    assert info.value.status == 431
    assert time.process_time() - started < 0.5


def test_bodies_past_the_limit_are_not_counted_as_head() -> None:
    body = b"b" * (4 * LIMIT)
    post = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body) + body
    chunks = b"".join(b"1\r\nc\r\n" for _ in range(LIMIT)) + b"0\r\n\r\n"
    put = b"PUT / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks
    data = post + head_of(LIMIT) + put + head_of(LIMIT)
    parser = RequestParser(max_header_bytes=LIMIT, max_body_bytes=len(body))
    got = parser.feed(data)
    assert [(r.method, len(r.body)) for r in got] == [
        ("POST", len(body)),
        ("GET", 0),
        ("PUT", LIMIT),
        ("GET", 0),
    ]


def test_an_over_limit_head_after_a_body_in_the_same_feed_is_431() -> None:
    post = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
    with pytest.raises(ProtocolError) as info:
        RequestParser(max_header_bytes=LIMIT).feed(post + UNFINISHED + b"a" * (3 * LIMIT))
    assert info.value.status == 431


def test_an_unfinished_trailer_section_is_bounded_too() -> None:
    head = b"PUT / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n"
    parser = RequestParser(max_header_bytes=LIMIT)
    parser.feed(head)
    with pytest.raises(ProtocolError) as info:
        parser.feed(b"X-Trailer: " + b"t" * (3 * LIMIT))
    assert info.value.status == 431


def test_connect_tail_offsets_survive_a_feed_split_at_the_limit() -> None:
    body = b"b" * (2 * LIMIT)
    post = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(body) + body
    connect = b"CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n"
    tail = b"\x16\x03\x01" + b"t" * LIMIT
    got = RequestParser(max_header_bytes=LIMIT).feed(post + connect + tail)
    assert [(r.method, r.tail) for r in got] == [("POST", b""), ("CONNECT", tail)]


def test_an_upstream_head_over_the_limit_is_502_at_once() -> None:
    data = b"HTTP/1.1 200 OK\r\nX-Long: " + b"a" * (2 << 20)
    for parser in (ResponseStreamParser(), ResponseParser()):
        started = time.process_time()
        with pytest.raises(ProtocolError, match="too large") as info:
            parser.feed(data)
        assert info.value.status == 502
        assert time.process_time() - started < 0.5


def test_a_streamed_response_body_is_not_counted_as_head() -> None:
    parser = ResponseStreamParser()
    parser.feed(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")
    data = b"x" * (1 << 20)
    events = parser.feed(data)  # (fed to llhttp a limit's worth at a time)
    assert all(isinstance(e, BodyPart) for e in events)
    assert b"".join(e.data for e in events if isinstance(e, BodyPart)) == data
    events = parser.feed(b"HTTP/1.1 200 OK\r\n\r\n")  # (still body, to the close)
    assert events == [BodyPart(b"HTTP/1.1 200 OK\r\n\r\n")]
    assert BodyEnd() not in events
