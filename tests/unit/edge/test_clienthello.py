"""The SNI server name in a buffered ClientHello: real OpenSSL hellos, hand-built ones with
every framing fault, truncations, re-framing across records, and arbitrary bytes."""

from __future__ import annotations

import functools
import ssl

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from latchkey.edge.clienthello import (
    MAX_CLIENT_HELLO,
    ClientHello,
    NeedMore,
    NotClientHello,
    looks_like_tls,
    parse_client_hello,
)


@functools.cache
def openssl_hello(server_name: str | None) -> bytes:
    """The first flight a real Python/OpenSSL client sends."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if server_name is None:
        ctx.check_hostname = False
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(incoming, outgoing, server_hostname=server_name)
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    return outgoing.read()


def vec(length_size: int, data: bytes) -> bytes:
    return len(data).to_bytes(length_size, "big") + data


def ext(ext_type: int, data: bytes) -> bytes:
    return ext_type.to_bytes(2, "big") + vec(2, data)


def sni(*names: bytes, name_type: int = 0) -> bytes:
    return ext(0, vec(2, b"".join(bytes([name_type]) + vec(2, n) for n in names)))


def hello_body(
    *extensions: bytes,
    version: bytes = b"\x03\x03",
    session_id: bytes = b"\x11" * 32,
    suites: bytes = b"\x13\x01\x13\x02",
    with_extensions: bool = True,
) -> bytes:
    body = version + b"\x22" * 32 + vec(1, session_id) + vec(2, suites) + vec(1, b"\x00")
    if with_extensions:
        body += vec(2, b"".join(extensions))
    return body


def handshake(body: bytes, msg_type: int = 1) -> bytes:
    return bytes([msg_type]) + vec(3, body)


def records(message: bytes, *sizes: int, content_type: int = 22) -> bytes:
    """``message`` split into handshake records of ``sizes`` (the rest in a last one)."""
    out, pos = b"", 0
    for size in (*sizes, len(message)):
        chunk = message[pos : pos + size]
        if chunk:
            out += bytes([content_type, 3, 1]) + vec(2, chunk)
        pos += len(chunk)
    return out


def hello(*extensions: bytes, **kw: object) -> bytes:
    return records(handshake(hello_body(*extensions, **kw)))  # type: ignore[arg-type]


# -- real clients -------------------------------------------------------------------------------


def test_openssl_hello_names_its_server() -> None:
    data = openssl_hello("kms.us-east-1.amazonaws.com")
    assert parse_client_hello(data) == ClientHello("kms.us-east-1.amazonaws.com", len(data))


def test_openssl_hello_without_sni() -> None:
    data = openssl_hello(None)
    assert parse_client_hello(data) == ClientHello(None, len(data))


def test_trailing_bytes_after_the_hello_are_not_read() -> None:
    data = openssl_hello("example.com")
    found = parse_client_hello(data + b"\x17\x03\x03\x00\x05early")
    assert found == ClientHello("example.com", len(data))


def test_every_truncation_needs_more() -> None:
    data = openssl_hello("kms.us-east-1.amazonaws.com")
    for cut in range(len(data)):
        assert parse_client_hello(data[:cut]) == NeedMore(), cut


def test_hello_split_across_records() -> None:
    message = handshake(hello_body(sni(b"Kms.US-East-1.amazonaws.com")))
    for sizes in [(1,), (3,), (4,), (10, 1, 50), tuple([7] * (len(message) // 7))]:
        data = records(message, *sizes)
        found = parse_client_hello(data)
        assert found == ClientHello("kms.us-east-1.amazonaws.com", len(data)), sizes
        for cut in range(len(data)):
            assert parse_client_hello(data[:cut]) == NeedMore()


@pytest.mark.parametrize(
    "name", [b"a", b"x.y", b"under_score.example", b"a" * 63 + b".com", b"-x.com".lstrip(b"-")]
)
def test_accepted_names(name: bytes) -> None:
    found = parse_client_hello(hello(sni(name)))
    assert isinstance(found, ClientHello)
    assert found.server_name == name.decode().lower()


def test_no_extensions_at_all_means_no_sni() -> None:
    found = parse_client_hello(hello(with_extensions=False))
    assert isinstance(found, ClientHello)
    assert found.server_name is None


def test_other_extensions_only() -> None:
    found = parse_client_hello(
        hello(ext(16, vec(2, vec(1, b"http/1.1"))), ext(43, b"\x02\x03\x04"))
    )
    assert isinstance(found, ClientHello)
    assert found.server_name is None


# -- not TLS, or TLS we will not trust -----------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        b"GET / HTTP/1.1\r\nHost: kms.us-east-1.amazonaws.com\r\n\r\n",
        b"SSH-2.0-OpenSSH_9.2\r\n",
        b"\x80\x2e\x01\x03\x01",  # an SSLv2-compatible hello
        b"\x16\x02\x00\x00\x05",  # record version 2
        b"\x16\x04",
    ],
)
def test_not_tls(data: bytes) -> None:
    assert isinstance(parse_client_hello(data), NotClientHello)


def test_looks_like_tls() -> None:
    assert looks_like_tls(b"\x16")
    assert looks_like_tls(b"\x16\x03\x01")
    assert not looks_like_tls(b"")
    assert not looks_like_tls(b"\x16\x02")
    assert not looks_like_tls(b"G")


BAD = {
    "record type": records(handshake(hello_body()), content_type=23),
    "empty record": b"\x16\x03\x01\x00\x00",
    "oversized record": b"\x16\x03\x01\x40\x01" + b"\x01" * 10,
    "server hello": records(handshake(hello_body(), msg_type=2)),
    "oversized hello": b"\x16\x03\x01\x00\x04\x01" + (MAX_CLIENT_HELLO + 1).to_bytes(3, "big"),
    "second message in the record": records(handshake(hello_body()) + b"\x14\x00\x00\x00"),
    "alert mid-hello": records(handshake(hello_body(sni(b"a.com")))[:10])
    + b"\x15\x03\x03\x00\x02\x02\x28",
    "hello version": hello(version=b"\x02\x00"),
    "long session id": hello(session_id=b"\x00" * 33),
    "odd suites": hello(suites=b"\x13\x01\x13"),
    "no suites": hello(suites=b""),
    "ip literal": hello(sni(b"10.0.0.1")),
    "trailing dot": hello(sni(b"example.com.")),
    "not ascii": hello(sni("bücher.example".encode())),
    "not a dns name": hello(sni(b"a b.example")),
    "empty name": hello(sni(b"")),
    "long label": hello(sni(b"a" * 64 + b".com")),
    "long name": hello(sni(b".".join([b"a" * 60] * 5))),
    "two names": hello(sni(b"a.com", b"b.com")),
    "unknown name type": hello(sni(b"a.com", name_type=1)),
    "empty name list": hello(ext(0, vec(2, b""))),
    "bytes after name list": hello(ext(0, vec(2, b"\x00" + vec(2, b"a.com")) + b"\x00")),
    "duplicate extension": hello(sni(b"a.com"), sni(b"b.com")),
    "extension past the list": records(
        handshake(hello_body()[:-2] + b"\x00\x08" + b"\x00\x00\x00\x20\x00\x00\x00\x00")
    ),
    "extensions past the body": records(handshake(hello_body(with_extensions=False) + b"\x00\x10")),
    "bytes after extensions": records(handshake(hello_body(sni(b"a.com")) + b"\x00")),
    "session id past the body": records(handshake(b"\x03\x03" + b"\x00" * 32 + b"\x20")),
    "short random": records(handshake(b"\x03\x03" + b"\x00" * 31)),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_malformed(case: str) -> None:
    found = parse_client_hello(BAD[case])
    assert isinstance(found, NotClientHello), found
    assert found.reason


# -- arbitrary input never escapes as an exception ------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes(data: bytes) -> None:
    found = parse_client_hello(data)
    assert isinstance(found, ClientHello | NeedMore | NotClientHello)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_mutated_real_hello(data: st.DataObject) -> None:
    original = bytearray(openssl_hello("kms.us-east-1.amazonaws.com"))
    for _ in range(data.draw(st.integers(1, 4))):
        index = data.draw(st.integers(0, len(original) - 1))
        original[index] = data.draw(st.integers(0, 255))
    found = parse_client_hello(bytes(original))
    assert isinstance(found, ClientHello | NeedMore | NotClientHello)
    if isinstance(found, ClientHello):
        assert found.size <= len(original)
        assert found.server_name is None or found.server_name.isascii()
