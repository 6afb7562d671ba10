"""HTTP/1.1 details through a running edge, against a raw upstream: interim (1xx) responses
are forwarded, HEAD answers carry no body (passthrough included), and 204s without a length
keep the upstream connection."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from latchkey_testing import PLAIN_WORKLOAD, read_head, start_up_process

pytestmark = pytest.mark.e2e


class RawUpstream:
    """An HTTP/1.1 origin on 127.0.0.1 that answers by path with fixed bytes and counts the
    connections it accepted."""

    ANSWERS = {
        b"/hints": b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
        b"/head": b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n",  # HEAD: no body follows
        b"/empty": b"HTTP/1.1 204 No Content\r\n\r\n",
    }

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        data = b""
        with conn:
            while True:
                while b"\r\n\r\n" not in data:
                    more = conn.recv(65536)
                    if not more:
                        return
                    data += more
                head, _, data = data.partition(b"\r\n\r\n")
                path = head.split(b" ", 2)[1]
                conn.sendall(self.ANSWERS.get(path, b"HTTP/1.1 404 Not Found\r\n\r\n"))


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[tuple[str, int], RawUpstream]]:
    upstream = RawUpstream()
    tmp: Path = tmp_path_factory.mktemp("http")
    config = tmp / "config.yaml"
    config.write_text(PLAIN_WORKLOAD.format(port=upstream.port))
    up = start_up_process(tmp / "data", "--config", str(config))
    try:
        yield up.edge_address, upstream
    finally:
        up.stop()
        upstream.sock.close()


def tunnel(edge: tuple[str, int]) -> socket.socket:
    sock = socket.create_connection(edge, timeout=10)
    sock.sendall(b"CONNECT plain.internal.example:80 HTTP/1.1\r\nHost: x\r\n\r\n")
    assert read_head(sock).startswith(b"HTTP/1.1 200 ")
    return sock


def test_an_early_hints_response_reaches_the_client_before_the_answer(
    node: tuple[tuple[str, int], RawUpstream],
) -> None:
    with tunnel(node[0]) as sock:
        sock.sendall(b"GET /hints HTTP/1.1\r\nHost: plain.internal.example\r\n\r\n")
        hints = read_head(sock)
        final = read_head(sock)
        body = sock.recv(2)
    assert hints.startswith(b"HTTP/1.1 103 ")
    assert b"Link: </style.css>; rel=preload" in hints
    assert final.startswith(b"HTTP/1.1 200 ")
    assert body == b"ok"


def test_an_http10_client_gets_no_interim(node: tuple[tuple[str, int], RawUpstream]) -> None:
    with tunnel(node[0]) as sock:
        sock.sendall(b"GET /hints HTTP/1.0\r\nHost: plain.internal.example\r\n\r\n")
        assert read_head(sock).startswith(b"HTTP/1.1 200 ")


def test_head_through_the_plain_passthrough_answers_at_once(
    node: tuple[tuple[str, int], RawUpstream],
) -> None:
    edge, port = node[0], node[1].port
    with socket.create_connection(edge, timeout=10) as sock:
        started = time.monotonic()
        sock.sendall(b"HEAD http://127.0.0.1:%d/head HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" % port)
        head = read_head(sock)
        took = time.monotonic() - started
        sock.settimeout(0.5)
        try:
            extra = sock.recv(100)
        except TimeoutError:
            extra = b""
    assert head.startswith(b"HTTP/1.1 200 ")
    assert b"Content-Length: 5" in head  # the length a GET would have had
    assert extra == b""  # and no body
    assert took < 5  # not the upstream timeout (60 s)


def test_204s_without_a_length_keep_the_upstream_connection(
    node: tuple[tuple[str, int], RawUpstream],
) -> None:
    edge, upstream = node
    with tunnel(edge) as sock:
        sock.sendall(b"GET /empty HTTP/1.1\r\nHost: plain.internal.example\r\n\r\n")
        assert read_head(sock).startswith(b"HTTP/1.1 204 ")
        before = upstream.accepted
        for _ in range(3):
            sock.sendall(b"GET /empty HTTP/1.1\r\nHost: plain.internal.example\r\n\r\n")
            assert read_head(sock).startswith(b"HTTP/1.1 204 ")
        assert upstream.accepted == before  # no new upstream connection for them
