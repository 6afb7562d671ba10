"""Transparent mode's parts that need no namespace: sockaddr decoding, classifying first
bytes, peeking without consuming (then a real TLS handshake over the same socket) and the
loop guard that recognises this process's own connections. The whole path through iptables
is tests/e2e/test_e2e_transparent.py."""

from __future__ import annotations

import asyncio
import datetime as dt
import socket
import ssl
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import uvloop

from latchkey.crypto.tls import server_ssl_context
from latchkey.crypto.x509 import load_or_create_ca
from latchkey.edge.transparent import (
    FirstBytes,
    Kind,
    classify,
    decode_sockaddr_in,
    decode_sockaddr_in6,
    http_host,
    is_listener_address,
    open_streams,
    opened_by_this_process,
    peek_first_bytes,
)


def openssl_hello(server_name: str) -> bytes:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = ctx.wrap_bio(incoming, outgoing, server_hostname=server_name)
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    return outgoing.read()


def test_decode_sockaddr_in() -> None:
    raw = struct.pack("=H", socket.AF_INET) + struct.pack("!H", 443) + bytes([52, 1, 2, 3])
    assert decode_sockaddr_in(raw + b"\0" * 8) == ("52.1.2.3", 443)
    with pytest.raises(ValueError, match="AF_INET"):
        decode_sockaddr_in(struct.pack("=H", socket.AF_INET6) + raw[2:])
    with pytest.raises(ValueError, match="short"):
        decode_sockaddr_in(raw[:6])


def test_decode_sockaddr_in6() -> None:
    address = socket.inet_pton(socket.AF_INET6, "2001:db8::7")
    head = struct.pack("=H", socket.AF_INET6) + struct.pack("!H", 443) + b"\0" * 4
    assert decode_sockaddr_in6(head + address + b"\0" * 4) == ("2001:db8::7", 443)
    with pytest.raises(ValueError, match="short"):
        decode_sockaddr_in6(head + address[:8])


HELLO = openssl_hello("kms.us-east-1.amazonaws.com")


@pytest.mark.parametrize(
    ("data", "final", "expected"),
    [
        (HELLO, False, FirstBytes(Kind.TLS, "kms.us-east-1.amazonaws.com")),
        (HELLO[:40], False, None),
        (HELLO[:40], True, FirstBytes(Kind.OPAQUE, why="incomplete ClientHello")),
        (b"GET /x HTTP/1.1\r\nHost: Plain.Example:8080\r\n\r\n", False,
         FirstBytes(Kind.HTTP, "plain.example")),
        (b"GET / HTTP/1.1\r\nhost: [::1]:80\r\n\r\n", False, FirstBytes(Kind.HTTP, "::1")),
        (b"GET / HTTP/1.1\r\nHost: a.example\r\n", False, None),
        (b"GE", False, None),
        (b"", False, None),
        (b"", True, FirstBytes(Kind.OPAQUE, why="no data")),
        (b"SSH-2.0-OpenSSH_9.2\r\n", False, FirstBytes(Kind.OPAQUE, why="neither TLS nor HTTP")),
        (b"CONNECT a.example:443 HTTP/1.1\r\n\r\n", False,
         FirstBytes(Kind.OPAQUE, why="neither TLS nor HTTP")),
    ],
)  # fmt: skip
def test_classify(data: bytes, final: bool, expected: FirstBytes | None) -> None:
    assert classify(data, final=final) == expected


def test_classify_without_a_usable_name() -> None:
    twice = b"GET / HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\n\r\n"
    assert classify(twice, final=False) == FirstBytes(Kind.HTTP, None, "no usable Host header")
    broken = classify(b"\x16\x03\x01\x00\x00", final=False)
    assert broken is not None
    assert broken.kind is Kind.OPAQUE
    assert broken.why == "empty handshake record"


@pytest.mark.parametrize(
    ("head", "host"),
    [
        (b"GET / HTTP/1.1\r\nHost: a.example", "a.example"),
        (b"GET / HTTP/1.1\r\nHost: a.example\r\nHOST: a.example", None),
        (b"GET / HTTP/1.1\r\nX: 1", None),
        (b"GET / HTTP/1.1\r\nHost: a b", None),
        (b"GET / HTTP/1.1\r\nHost: a.example:99999x", None),
    ],
)
def test_http_host(head: bytes, host: str | None) -> None:
    assert http_host(head) == host


def test_is_listener_address() -> None:
    assert is_listener_address(("127.0.0.1", 8001), ("127.0.0.1", 8001))
    assert not is_listener_address(("127.0.0.2", 8001), ("127.0.0.1", 8001))
    assert not is_listener_address(("127.0.0.1", 443), ("127.0.0.1", 8001))
    assert is_listener_address(("127.0.0.5", 8001), ("0.0.0.0", 8001))
    assert not is_listener_address(("52.1.2.3", 8001), ("0.0.0.0", 8001))


# -- real loopback sockets -------------------------------------------------------------------------


async def _accepted() -> tuple[socket.socket, socket.socket]:
    """A connected pair: (client, the server side as accepted), both non-blocking."""
    loop = asyncio.get_running_loop()
    with socket.create_server(("127.0.0.1", 0)) as server:
        server.setblocking(False)
        client = socket.socket()
        client.setblocking(False)
        await loop.sock_connect(client, server.getsockname())
        conn, _ = await loop.sock_accept(server)
    conn.setblocking(False)
    return client, conn


RUNNERS = pytest.mark.parametrize("run", [asyncio.run, uvloop.run], ids=["asyncio", "uvloop"])


@RUNNERS
def test_peek_leaves_the_hello_for_the_tls_handshake(tmp_path: Path, run: Any) -> None:
    now = dt.datetime.now(dt.UTC)
    ca = load_or_create_ca(tmp_path / "ca.pem", tmp_path / "ca-key.pem", now=now)
    server_ctx = server_ssl_context(*ca.mint_leaf(["kms.us-east-1.amazonaws.com"], now=now))
    client_ctx = ssl.create_default_context(cadata=ca.cert_pem.decode())

    async def scenario() -> tuple[FirstBytes, bytes]:
        loop = asyncio.get_running_loop()
        client, conn = await _accepted()
        # the client's TLS over the raw socket, driven by hand: its hello goes in two pieces
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls = client_ctx.wrap_bio(incoming, outgoing, server_hostname="kms.us-east-1.amazonaws.com")
        with pytest.raises(ssl.SSLWantReadError):
            tls.do_handshake()
        hello = outgoing.read()
        await loop.sock_sendall(client, hello[:30])
        peeking = asyncio.create_task(peek_first_bytes(conn, first_wait=2, total_wait=5))
        await asyncio.sleep(0.05)
        await loop.sock_sendall(client, hello[30:])
        first = await peeking

        async def client_side() -> None:
            while True:
                try:
                    tls.do_handshake()
                    break
                except ssl.SSLWantReadError:
                    if data := outgoing.read():
                        await loop.sock_sendall(client, data)
                    incoming.write(await loop.sock_recv(client, 65536))
            if data := outgoing.read():
                await loop.sock_sendall(client, data)
            tls.write(b"ping")
            await loop.sock_sendall(client, outgoing.read())

        handshake = asyncio.create_task(client_side())
        reader, writer = await open_streams(conn, server_ctx, handshake_timeout=5)
        got = await asyncio.wait_for(reader.readexactly(4), 5)
        await handshake
        writer.close()
        client.close()
        return first, got

    first, got = run(scenario())
    assert first == FirstBytes(Kind.TLS, "kms.us-east-1.amazonaws.com")
    assert got == b"ping"


def test_peek_gives_up_on_a_silent_client() -> None:
    async def scenario() -> FirstBytes:
        client, conn = await _accepted()
        try:
            return await peek_first_bytes(conn, first_wait=0.1, total_wait=1)
        finally:
            client.close()
            conn.close()

    assert asyncio.run(scenario()) == FirstBytes(Kind.OPAQUE, why="no data")


@RUNNERS
def test_peek_does_not_consume(run: Any) -> None:
    async def scenario() -> tuple[FirstBytes, bytes]:
        loop = asyncio.get_running_loop()
        client, conn = await _accepted()
        request = b"GET / HTTP/1.1\r\nHost: plain.example\r\n\r\n"
        await loop.sock_sendall(client, request)
        first = await peek_first_bytes(conn, first_wait=2, total_wait=2)
        reader, writer = await open_streams(conn)
        data = await asyncio.wait_for(reader.readexactly(len(request)), 5)
        writer.close()
        client.close()
        return first, data

    first, data = run(scenario())
    assert first == FirstBytes(Kind.HTTP, "plain.example")
    assert data.startswith(b"GET / HTTP/1.1")


def test_own_connections_are_recognised() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        listening = server.getsockname()[:2]
        with socket.create_connection(listening) as mine:
            assert opened_by_this_process(mine.getsockname()[:2], listening)
        code = (
            "import socket,sys,time; s=socket.create_connection(('127.0.0.1', int(sys.argv[1])));"
        )
        code += "print(s.getsockname()[1], flush=True); time.sleep(5)"
        argv = [sys.executable, "-c", code, str(listening[1])]
        with subprocess.Popen(argv, stdout=subprocess.PIPE, text=True) as other:
            try:
                assert other.stdout is not None
                port = int(other.stdout.readline())
                assert not opened_by_this_process(("127.0.0.1", port), listening)
            finally:
                other.kill()
