"""Transfer codings: chunked is the only one decoded, so the only one accepted. A request with
another is 501 (RFC 9112 §6.1), one whose length cannot be told 400; a response with another is
a bad gateway (a proxy must not pass on, as content, a coding it did not decode)."""

from __future__ import annotations

import pytest

from latchkey.http.h1 import ProtocolError, RequestParser, ResponseParser, ResponseStreamParser

H = b"POST / HTTP/1.1\r\nHost: a\r\n"
BODY = b"\r\n3\r\nabc\r\n0\r\n\r\n"


@pytest.mark.parametrize(
    "value",
    [b"chunked", b"Chunked", b"CHUNKED", b" chunked  ", b"\tchunked", b", chunked"],
)
def test_chunked_alone_is_accepted_in_any_case(value: bytes) -> None:
    (request,) = RequestParser().feed(H + b"Transfer-Encoding:" + value + b"\r\n" + BODY)
    assert request.body == b"abc"


@pytest.mark.parametrize(
    "codings",
    [
        b"Transfer-Encoding: gzip, chunked\r\n",
        b"Transfer-Encoding: GZIP ,\tchunked\r\n",
        b"Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n",
        b"Transfer-Encoding: deflate, gzip, chunked\r\n",
        b"Transfer-Encoding: identity, chunked\r\n",
    ],
)
def test_a_request_with_another_coding_is_501(codings: bytes) -> None:
    data = H + codings + BODY
    with pytest.raises(ProtocolError, match="not implemented") as info:
        RequestParser().feed(data)
    assert info.value.status == 501
    parser = RequestParser()
    head = data[: data.index(b"\r\n\r\n") + 3]
    for i in range(len(head)):  # byte by byte, up to its last byte
        parser.feed(head[i : i + 1])
    with pytest.raises(ProtocolError, match="not implemented") as info:
        parser.feed(b"\n")
    assert info.value.status == 501


@pytest.mark.parametrize(
    "codings",
    [
        b"Transfer-Encoding: chunked, chunked\r\n",
        b"Transfer-Encoding: chunked, identity\r\n",
        b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
        b"Transfer-Encoding: gzip\r\n",
        b"Transfer-Encoding: chunked, gzip\r\n",
        b"Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
    ],
)
def test_a_request_whose_length_cannot_be_told_stays_400(codings: bytes) -> None:
    with pytest.raises(ProtocolError) as info:
        RequestParser().feed(H + codings + BODY)
    assert info.value.status == 400


def test_a_streamed_request_with_another_coding_is_501_before_its_head_is_handed_over() -> None:
    parser = RequestParser(stream_if=lambda headers: True)
    with pytest.raises(ProtocolError) as info:
        parser.feed_events(H + b"Transfer-Encoding: gzip, chunked\r\n\r\n")
    assert info.value.status == 501


RESPONSE_CODINGS = [
    b"Transfer-Encoding: gzip, chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    b"Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    b"Transfer-Encoding: gzip\r\n\r\nabc",
    b"Transfer-Encoding: chunked, gzip\r\n\r\nabc",
]


@pytest.mark.parametrize("codings", RESPONSE_CODINGS)
def test_a_response_with_another_coding_is_a_bad_gateway(codings: bytes) -> None:
    data = b"HTTP/1.1 200 OK\r\n" + codings
    for parser in (ResponseStreamParser(), ResponseParser()):
        with pytest.raises(ProtocolError) as info:
            parser.feed(data)
        assert info.value.status == 502


def test_a_chunked_response_still_streams() -> None:
    events = ResponseStreamParser().feed(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
    )
    assert len(events) == 3
