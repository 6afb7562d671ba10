"""Interim (1xx) responses a proxy must forward, and bodiless answers that keep the connection."""

from __future__ import annotations

import pytest

from latchkey.http.h1 import (
    BodyEnd,
    BodyPart,
    ProtocolError,
    Response,
    ResponseStreamParser,
    encode_interim,
)

HINTS = b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>; rel=preload\r\n\r\n"
FINAL = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


def test_interims_a_proxy_forwards_come_before_the_answer() -> None:
    data = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 102 Processing\r\n\r\n" + HINTS + FINAL
    for cut in range(len(data) + 1):
        parser = ResponseStreamParser(interims=True)
        events = parser.feed(data[:cut]) + parser.feed(data[cut:])
        heads = [e for e in events if isinstance(e, Response)]
        assert [r.status for r in heads] == [102, 103, 200], cut  # never the 100
        assert heads[1].header("link") == "</s.css>; rel=preload"
        assert b"".join(e.data for e in events if isinstance(e, BodyPart)) == b"ok"
        assert events[-1] == BodyEnd()


def test_interims_are_skipped_unless_asked_for() -> None:
    events = ResponseStreamParser().feed(HINTS + FINAL)
    assert isinstance(events[0], Response)
    assert events[0].status == 200


def test_an_unsolicited_101_is_a_bad_gateway() -> None:
    data = b"HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: x\r\n\r\nzz"
    with pytest.raises(ProtocolError) as info:
        ResponseStreamParser(interims=True).feed(data)
    assert info.value.status == 502


def test_encode_interim_keeps_end_to_end_headers_only() -> None:
    hints = Response(
        103,
        [("Link", "</a>"), ("Connection", "x-hop"), ("X-Hop", "1"), ("Content-Length", "0")],
    )
    assert encode_interim(hints) == b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
    with pytest.raises(ValueError, match="interim"):
        encode_interim(Response(200))


@pytest.mark.parametrize(
    ("head", "keep_alive"),
    [
        (b"HTTP/1.1 200 OK\r\n\r\n", True),
        (b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n", False),
        (b"HTTP/1.0 200 OK\r\n\r\n", False),
        (b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n\r\n", True),
    ],
)
def test_a_head_answer_without_a_length_keeps_the_connection(head: bytes, keep_alive: bool) -> None:
    events = ResponseStreamParser(head_request=True).feed(head)
    assert isinstance(events[0], Response)
    assert events[0].keep_alive is keep_alive
    assert events[1:] == [BodyEnd()]


@pytest.mark.parametrize("status", [204, 304])
def test_no_content_and_not_modified_without_a_length_keep_the_connection(status: int) -> None:
    parser = ResponseStreamParser()
    events = parser.feed(b"HTTP/1.1 %d X\r\n\r\n" % status + FINAL)
    assert [(e.status, e.keep_alive) for e in events if isinstance(e, Response)] == [
        (status, True),
        (200, True),
    ]
