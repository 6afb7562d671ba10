"""Transparent mode's parts that need no namespace: sockaddr decoding, classifying first
bytes, peeking without consuming (then a real TLS handshake over the same socket) and the
loop guard that recognises this process's own connections. The whole path through iptables
is tests/e2e/test_e2e_transparent.py."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
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
from latchkey.edge import peer, transparent
from latchkey.edge.transparent import (
    FirstBytes,
    Kind,
    Redirected,
    TransparentListener,
    classify,
    decode_sockaddr_in,
    decode_sockaddr_in6,
    http_host,
    is_listener_address,
    is_local_address,
    is_own_outbound,
    open_outbound,
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
        # bare LF line endings: the head is whole; the HTTP parser decides whether it is fine
        (b"GET / HTTP/1.1\nHost: plain.example\n\n", False, FirstBytes(Kind.HTTP, "plain.example")),
        (b"GET / HTTP/1.1\r\nHost: plain.example\n\r\n", False,
         FirstBytes(Kind.HTTP, "plain.example")),
        (b"GET / HTTP/1.1\nHost: a.example\n", False, None),
        (b"GET / HTTP/1.1\nHost: a.example\n", True,
         FirstBytes(Kind.OPAQUE, why="incomplete request head")),
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
        (b"GET / HTTP/1.1\nAccept: */*\nHost: a.example", "a.example"),
        (b"GET / HTTP/1.1\nHost: a.example\r\nhost: b.example", None),
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
    assert is_listener_address(("::ffff:127.0.0.1", 8001), ("127.0.0.1", 8001))


def test_a_wildcard_listener_is_every_local_address(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any address of this machine's reaches a wildcard listener, not only loopback ones."""
    monkeypatch.setattr(transparent, "is_local_address", lambda address: address == "10.9.9.9")
    assert is_listener_address(("10.9.9.9", 8001), ("0.0.0.0", 8001))
    assert not is_listener_address(("10.9.9.8", 8001), ("0.0.0.0", 8001))
    assert not is_listener_address(("10.9.9.9", 443), ("0.0.0.0", 8001))
    assert not is_listener_address(("10.9.9.9", 8001), ("::", 8001))  # an IPv6-only listener
    assert not is_listener_address(("10.9.9.9", 8001), ("10.9.9.8", 8001))


def local_non_loopback_address() -> str:
    """One of this machine's own addresses that is not loopback (the source the kernel would
    pick for a documentation address; a UDP connect sends nothing); skip without one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))
        except OSError:
            pytest.skip("no route off this machine, so no non-loopback address to test")
        address = str(probe.getsockname()[0])
    if address.startswith("127."):
        pytest.skip("no non-loopback address")
    return address


def test_is_local_address() -> None:
    assert is_local_address("127.0.0.1")
    assert is_local_address("::1")
    assert is_local_address("::ffff:127.0.0.1")
    assert not is_local_address("0.0.0.0")
    assert not is_local_address("224.0.0.1")
    assert not is_local_address("not an address")
    ours = local_non_loopback_address()
    assert is_local_address(ours)
    assert is_listener_address((ours, 8001), ("0.0.0.0", 8001))


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


def test_own_connections_are_recognised_after_their_fin(monkeypatch: pytest.MonkeyPatch) -> None:
    """The edge passes a client's FIN on at once: by the time the check runs, the edge's own
    connection may have sent its FIN (FIN_WAIT1/2). Through the kernel and through /proc."""
    for diag in (True, False):
        if not diag:
            monkeypatch.setattr(peer, "_diag_works", False)
        with socket.create_server(("127.0.0.1", 0)) as server:
            listening = server.getsockname()[:2]
            with socket.create_connection(listening) as mine:
                conn, _ = server.accept()
                with conn:
                    mine.shutdown(socket.SHUT_WR)
                    assert conn.recv(1) == b""  # the FIN has arrived, and been acknowledged
                    assert opened_by_this_process(mine.getsockname()[:2], listening), diag


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


@RUNNERS
def test_open_outbound_registers_its_connection_while_it_is_open(tmp_path: Path, run: Any) -> None:
    """From before the handshake completes (the accepting side already sees it) until it is
    closed; and found with no /proc at all (``tmp_path`` stands in for an empty one)."""

    async def scenario() -> None:
        seen: list[bool] = []

        async def accepted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            here, there = writer.get_extra_info("sockname")[:2], writer.get_extra_info("peername")
            seen.append(is_own_outbound(there[:2], here))
            await reader.read()
            writer.close()

        server = await asyncio.start_server(accepted, "127.0.0.1", 0)
        listening = server.sockets[0].getsockname()[:2]
        reader, writer = await open_outbound(listening)
        mine = writer.get_extra_info("sockname")[:2]
        assert is_own_outbound(mine, listening)
        assert is_own_outbound(("::ffff:127.0.0.1", mine[1]), listening)
        assert opened_by_this_process(mine, listening, proc=tmp_path)
        writer.write(b"x")
        writer.write_eof()
        assert await asyncio.wait_for(reader.read(), 5) == b""
        writer.close()
        await writer.wait_closed()
        await asyncio.sleep(0)
        assert not is_own_outbound(mine, listening)
        assert not opened_by_this_process(mine, listening, proc=tmp_path)
        assert seen == [True]
        server.close()
        await server.wait_closed()
        with pytest.raises(ConnectionRefusedError):  # nothing listens there any more
            await open_outbound(listening)
        assert not transparent._OUTBOUND

    run(scenario())


@RUNNERS
def test_a_direct_connection_to_a_wildcard_listener_is_closed(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch, run: Any
) -> None:
    """A connection to the transparent port on one of the machine's own non-loopback
    addresses was not redirected: its original destination is where it was accepted. It is
    closed as such, not tunnelled back to the edge."""
    ours = local_non_loopback_address()
    # what conntrack reports for a connection it did not rewrite: its own destination
    monkeypatch.setattr(transparent, "original_destination", lambda s: s.getsockname()[:2])

    async def scenario() -> list[Redirected]:
        handled: list[Redirected] = []

        async def handler(conn: Redirected) -> None:
            handled.append(conn)

        listener = TransparentListener(handler)
        _, port = await listener.start("0.0.0.0", 0)
        try:
            reader, writer = await asyncio.open_connection(ours, port)
            assert await asyncio.wait_for(reader.read(), 5) == b""  # closed by the listener
            writer.close()
        finally:
            await listener.close()
        return handled

    with caplog.at_level(logging.WARNING, logger="latchkey.edge.transparent"):
        handled = run(scenario())
    assert handled == []
    assert "connected to the listener itself, not redirected" in caplog.text
    assert "redirected back" not in caplog.text
