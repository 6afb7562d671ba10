"""RequestParser: pipelining, arbitrary feed boundaries, CONNECT, keep-alive, limits, framing."""

from __future__ import annotations

import pytest

from latchkey.http.h1 import ProtocolError, Request, RequestParser

POST = b"POST /x?y=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"
GET = b"GET /two HTTP/1.1\r\nHost: b\r\n\r\n"
CHUNKED = (
    b"PUT /c HTTP/1.1\r\nHost: c\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"3;ext=1\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n"
)
CONNECT = (
    b"CONNECT kms.us-east-1.amazonaws.com:443 HTTP/1.1\r\n"
    b"Host: kms.us-east-1.amazonaws.com:443\r\n\r\n"
)
CLIENT_HELLO = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"


def feed_in_steps(parser: RequestParser, data: bytes, step: int) -> list[Request]:
    out: list[Request] = []
    for i in range(0, len(data), step):
        out += parser.feed(data[i : i + step])
    return out


def summary(requests: list[Request]) -> list[tuple[str, str, list[tuple[str, str]], bytes]]:
    return [(r.method, r.target, r.headers, r.body) for r in requests]


EXPECTED_PIPELINE = [
    ("POST", "/x?y=1", [("Host", "a"), ("Content-Length", "5")], b"hello"),
    ("GET", "/two", [("Host", "b")], b""),
    ("PUT", "/c", [("Host", "c"), ("Transfer-Encoding", "chunked")], b"abcdefg"),
]


def test_pipelined_requests_in_one_feed() -> None:
    requests = RequestParser().feed(POST + GET + CHUNKED)
    assert summary(requests) == EXPECTED_PIPELINE
    assert [r.path for r in requests] == ["/x", "/two", "/c"]
    assert [r.query for r in requests] == ["y=1", "", ""]
    assert requests[0].header("content-length") == "5"
    assert requests[0].header("X-Missing") is None


def test_pipelined_requests_split_at_every_byte_boundary() -> None:
    data = POST + GET + CHUNKED
    for cut in range(len(data) + 1):
        parser = RequestParser()
        got = parser.feed(data[:cut]) + parser.feed(data[cut:])
        assert summary(got) == EXPECTED_PIPELINE, cut


def test_pipelined_requests_fed_one_byte_at_a_time() -> None:
    parser = RequestParser()
    assert feed_in_steps(parser, POST[:-1], 1) == []
    got = feed_in_steps(parser, POST[-1:] + GET + CHUNKED, 1)
    assert summary(got) == EXPECTED_PIPELINE


def test_connect_hands_back_the_tunnel_bytes_at_every_split() -> None:
    data = CONNECT + CLIENT_HELLO
    for cut in range(1, len(data) + 1):
        parser = RequestParser()
        first = parser.feed(data[:cut])
        if first:  # the CONNECT completed in this feed: the rest is the tunnel's
            assert cut >= len(CONNECT)
            assert first[-1].tail == data[len(CONNECT) : cut]
            continue
        (request,) = parser.feed(data[cut:])
        assert request.method == "CONNECT"
        assert request.target == "kms.us-east-1.amazonaws.com:443"
        assert request.tail == CLIENT_HELLO


def test_data_fed_after_connect_is_refused() -> None:
    parser = RequestParser()
    (request,) = parser.feed(CONNECT)
    assert request.tail == b""
    with pytest.raises(ProtocolError, match="tunnel") as info:
        parser.feed(b"\x16\x03")
    assert info.value.status == 400


def test_connect_after_a_pipelined_request_gets_the_tail() -> None:
    got = RequestParser().feed(GET + CONNECT + b"xyz")
    assert [(r.method, r.tail) for r in got] == [("GET", b""), ("CONNECT", b"xyz")]


def test_other_protocol_upgrades_are_refused() -> None:
    data = b"GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\nxyz"
    with pytest.raises(ProtocolError, match="upgrades are not supported"):
        RequestParser().feed(data)


@pytest.mark.parametrize(
    ("head", "keep_alive", "version"),
    [
        (b"GET / HTTP/1.1\r\nHost: a\r\n", True, "1.1"),
        (b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n", False, "1.1"),
        (b"GET / HTTP/1.1\r\nHost: a\r\nConnection: Close\r\n", False, "1.1"),
        (b"GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, close\r\n", False, "1.1"),
        (b"GET / HTTP/1.0\r\nHost: a\r\n", False, "1.0"),
        (b"GET / HTTP/1.0\r\nHost: a\r\nConnection: keep-alive\r\n", True, "1.0"),
        # RFC 9112 §6.1: HTTP/1.0 + Transfer-Encoding: framing is faulty, close afterwards.
        (b"POST / HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n", False, "1.0"),
    ],
)
def test_keep_alive_and_version(head: bytes, keep_alive: bool, version: str) -> None:
    (request,) = RequestParser().feed(head + b"\r\n")
    assert (request.keep_alive, request.http_version) == (keep_alive, version)


# --- limits -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        b"GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + b"v" * 100 + b"\r\n\r\n",
        b"GET /" + b"p" * 100 + b" HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET / HTTP/1.1\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(40)) + b"\r\n",
    ],
    ids=["one-big-value", "long-target", "many-headers"],
)
def test_header_bytes_over_the_limit_are_431(data: bytes) -> None:
    with pytest.raises(ProtocolError) as info:
        RequestParser(max_header_bytes=64).feed(data)
    assert info.value.status == 431


def test_header_limit_applies_across_feeds() -> None:
    parser = RequestParser(max_header_bytes=64)
    head = b"GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + b"v" * 100 + b"\r\n\r\n"
    with pytest.raises(ProtocolError) as info:
        feed_in_steps(parser, head, 7)
    assert info.value.status == 431


@pytest.mark.parametrize(
    ("data", "ok"),
    [
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n" + b"b" * 10, True),
        (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\n" + b"b" * 11, False),
        (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
         b"6\r\nhello \r\n6\r\nworld!\r\n0\r\n\r\n", False),
    ],
)  # fmt: skip
def test_body_bytes_over_the_limit_are_413(data: bytes, ok: bool) -> None:
    parser = RequestParser(max_body_bytes=10)
    if ok:
        assert len(parser.feed(data)[0].body) == 10
        return
    with pytest.raises(ProtocolError) as info:
        parser.feed(data)
    assert info.value.status == 413


# --- framing refusals (request smuggling and malformed messages) ------------------------------

H = b"POST / HTTP/1.1\r\nHost: a\r\n"
REFUSED = {
    "cl-and-te": H + b"Content-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    "te-and-cl": H + b"Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n",
    "duplicate-cl-differing": H + b"Content-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
    "duplicate-cl-same": H + b"Content-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
    "cl-list": H + b"Content-Length: 3, 3\r\n\r\nabc",
    "cl-negative": H + b"Content-Length: -1\r\n\r\n",
    "cl-plus-sign": H + b"Content-Length: +3\r\n\r\nabc",
    "cl-hex": H + b"Content-Length: 0x3\r\n\r\nabc",
    "cl-empty": H + b"Content-Length: \r\n\r\n",
    "cl-inner-space": H + b"Content-Length: 1 2\r\n\r\nabc",
    "cl-non-ascii-digit": H + "Content-Length: \uff13\r\n\r\nabc".encode(),
    "te-not-chunked": H + b"Transfer-Encoding: gzip\r\n\r\nabc",
    "te-chunked-not-last": H + b"Transfer-Encoding: chunked, gzip\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    "te-unknown": H + b"Transfer-Encoding: xchunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    "te-chunked-twice": H
    + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    "obs-fold": b"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n",
    "bare-lf-everywhere": b"GET / HTTP/1.1\nHost: a\n\n",
    "bare-lf-after-header": b"GET / HTTP/1.1\r\nHost: a\nX: y\r\n\r\n",
    "bare-cr": b"GET / HTTP/1.1\r\nHost: a\rX: y\r\n\r\n",
    "space-before-colon": b"GET / HTTP/1.1\r\nHost: a\r\nX-A : b\r\n\r\n",
    "leading-space-header": b"GET / HTTP/1.1\r\n Host: a\r\n\r\n",
    "header-without-colon": b"GET / HTTP/1.1\r\nHost: a\r\nXYZ\r\n\r\n",
    "nul-in-value": b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n",
    "ctl-in-value": b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x01b\r\n\r\n",
    "bad-chunk-size": H + b"Transfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
    "chunk-size-overflow": H + b"Transfer-Encoding: chunked\r\n\r\n" + b"f" * 19 + b"\r\nab\r\n",
    "chunk-bare-lf": H + b"Transfer-Encoding: chunked\r\n\r\n3\nabc\n0\n\n",
    "bad-method": b"G@T / HTTP/1.1\r\nHost: a\r\n\r\n",
    "bad-version": b"GET / HTTP/1.2\r\nHost: a\r\n\r\n",
    "non-ascii-target": "GET /café HTTP/1.1\r\nHost: a\r\n\r\n".encode(),
}


@pytest.mark.parametrize("data", REFUSED.values(), ids=REFUSED.keys())
def test_ambiguous_or_malformed_framing_is_400(data: bytes) -> None:
    with pytest.raises(ProtocolError) as info:
        RequestParser().feed(data)
    assert info.value.status == 400


@pytest.mark.parametrize("data", REFUSED.values(), ids=REFUSED.keys())
def test_refusal_also_when_fed_byte_by_byte(data: bytes) -> None:
    with pytest.raises(ProtocolError):
        feed_in_steps(RequestParser(), data, 1)


@pytest.mark.parametrize(
    ("value", "body"),
    [(b"003", b"abc"), (b" 3 ", b"abc"), (b"0", b"")],
)
def test_content_length_with_leading_zeros_or_ows_is_accepted(value: bytes, body: bytes) -> None:
    (request,) = RequestParser().feed(H + b"Content-Length:" + value + b"\r\n\r\n" + body)
    assert request.body == body


def test_obs_text_in_values_is_kept_as_latin1() -> None:
    (request,) = RequestParser().feed(b"GET / HTTP/1.1\r\nHost: a\r\nX: caf\xc3\xa9\x80\r\n\r\n")
    assert request.header("x") == "caf\xc3\xa9\x80"
    assert request.header("x").encode("latin-1") == b"caf\xc3\xa9\x80"


# --- RFC 9112 requirements the parser does not meet (see the report) --------------------------


@pytest.mark.parametrize("trailer", [b"Authorization: AWS4-HMAC-SHA256 evil", b"Host: evil"])
def test_trailer_fields_are_not_merged_into_headers(trailer: bytes) -> None:
    data = H + b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n" + trailer + b"\r\n\r\n"
    (request,) = RequestParser().feed(data)
    assert request.headers == [("Host", "a"), ("Transfer-Encoding", "chunked")]


def test_trailing_whitespace_is_not_part_of_a_field_value() -> None:
    (request,) = RequestParser().feed(b"GET / HTTP/1.1\r\nHost: a \t\r\nX: b c \t \r\n\r\n")
    assert request.headers == [("Host", "a"), ("X", "b c")]


@pytest.mark.parametrize(
    "data",
    [
        b"GET / HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    ],
    ids=["missing", "duplicate"],
)
def test_host_header_missing_or_repeated_is_400(data: bytes) -> None:
    with pytest.raises(ProtocolError) as info:
        RequestParser().feed(data)
    assert info.value.status == 400
