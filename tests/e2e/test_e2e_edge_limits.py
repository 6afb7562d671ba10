"""The edge's limits and timeouts against a running node, each ending in a clear status before
anything reaches the upstream: passthrough deny (403), a stalled request head (408), an
oversize header (431) or body (413), an upstream that does not answer in time (504), and more
requests at once than the edge takes (503, shed)."""

from __future__ import annotations

import contextlib
import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest

from latchkey_testing import PLAIN_WORKLOAD as CONFIG
from latchkey_testing import QuietHandler, UpProcess, start_up_process

pytestmark = pytest.mark.e2e


DATA_DIRS: list[Path] = []  # the node's, for the access-event file


class Upstream(QuietHandler):
    requests: list[str] = []

    def do_GET(self) -> None:
        Upstream.requests.append(self.path)
        if self.path == "/slow":
            time.sleep(3)
        with contextlib.suppress(BrokenPipeError):  # /slow: the edge gave up on it, as it should
            self.answer_json(b'{"ok":true}')

    do_POST = do_GET


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Upstream)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    tmp = tmp_path_factory.mktemp("limits")
    config = tmp / "config.yaml"
    config.write_text(CONFIG.format(port=server.server_address[1]))
    up: UpProcess = start_up_process(
        tmp / "data", "--config", str(config), "--passthrough", "deny",
        "--header-timeout", "1", "--upstream-timeout", "1", "--max-body-bytes", "1024",
        "--max-inflight", "1",
    )  # fmt: skip
    DATA_DIRS.append(up.data_dir)
    try:
        yield up.edge_address
    finally:
        up.stop()
        server.shutdown()
        server.server_close()


def tunnel(edge: tuple[str, int]) -> socket.socket:
    sock = socket.create_connection(edge, timeout=10)
    sock.sendall(b"CONNECT plain.internal.example:80 HTTP/1.1\r\nHost: plain.internal.example:80"
                 b"\r\n\r\n")  # fmt: skip
    assert sock.recv(4096).startswith(b"HTTP/1.1 200 ")
    return sock


def answer(sock: socket.socket) -> bytes:
    """One response: head and (Content-Length) body."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                   if line.lower().startswith(b"content-length:")), 0)  # fmt: skip
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


def test_a_request_goes_through(edge: tuple[str, int]) -> None:
    with tunnel(edge) as sock:
        sock.sendall(b"GET /ok HTTP/1.1\r\nHost: plain.internal.example\r\n\r\n")
        assert answer(sock).startswith(b"HTTP/1.1 200 ")


def test_a_head_dribbled_byte_by_byte_still_gets_408(edge: tuple[str, int]) -> None:
    """The header timeout (1 s here) runs from the request's first byte, not from each read:
    a head sent a byte every 0.1 s (5.4 s in all) is refused, not served."""
    head = b"GET /dribbled HTTP/1.1\r\nHost: plain.internal.example\r\n\r\n"
    with tunnel(edge) as sock:
        for byte in head:
            try:
                sock.sendall(bytes([byte]))
            except OSError:  # the edge gave up and closed
                break
            time.sleep(0.1)
        reply = answer(sock)
    assert reply.startswith(b"HTTP/1.1 408 "), reply
    assert "/dribbled" not in Upstream.requests


@pytest.mark.parametrize(
    "head",
    [
        b"GET /elsewhere HTTP/1.1\r\nHost: other.example\r\n\r\n",
        b"GET http://other.example/elsewhere HTTP/1.1\r\nHost: plain.internal.example\r\n\r\n",
        b"GET http://plain.internal.example/elsewhere HTTP/1.1\r\nHost: other.example\r\n\r\n",
    ],
)
def test_a_request_for_another_host_in_a_tunnel_is_misdirected(
    edge: tuple[str, int], head: bytes
) -> None:
    with tunnel(edge) as sock:
        sock.sendall(head)
        reply = answer(sock)
    assert reply.startswith(b"HTTP/1.1 421 "), reply
    assert b"this connection is for plain.internal.example" in reply
    assert b"other.example" not in reply  # the client's text is not echoed
    assert "/elsewhere" not in Upstream.requests


def test_the_tunnel_host_in_another_spelling_is_the_same_host(edge: tuple[str, int]) -> None:
    with tunnel(edge) as sock:
        sock.sendall(b"GET /spelled HTTP/1.1\r\nHost: PLAIN.Internal.Example.:80\r\n\r\n")
        assert answer(sock).startswith(b"HTTP/1.1 200 ")
    assert "/spelled" in Upstream.requests


def test_an_absolute_form_target_for_the_tunnel_host_goes_upstream_in_origin_form(
    edge: tuple[str, int],
) -> None:
    with tunnel(edge) as sock:
        sock.sendall(b"GET http://PLAIN.internal.example/absolute?q=1 HTTP/1.1\r\n"
                     b"Host: plain.internal.example\r\n\r\n")  # fmt: skip
        assert answer(sock).startswith(b"HTTP/1.1 200 ")
    assert "/absolute?q=1" in Upstream.requests


def test_passthrough_deny(edge: tuple[str, int]) -> None:
    with socket.create_connection(edge, timeout=10) as sock:
        sock.sendall(b"CONNECT example.org:443 HTTP/1.1\r\nHost: example.org:443\r\n\r\n")
        reply = answer(sock)
    assert reply.startswith(b"HTTP/1.1 403 ")


def test_a_stalled_request_head_gets_408(edge: tuple[str, int]) -> None:
    with tunnel(edge) as sock:
        sock.sendall(b"GET /never HTTP/1.1\r\nHost: plain.internal.example\r\n")
        started = time.monotonic()
        reply = answer(sock)
        waited = time.monotonic() - started
    assert reply.startswith(b"HTTP/1.1 408 ")
    assert 0.8 < waited < 5
    assert "/never" not in Upstream.requests


def test_an_oversize_header_gets_431(edge: tuple[str, int]) -> None:
    with tunnel(edge) as sock:
        big = b"X-Filler: " + b"a" * 70_000 + b"\r\n"
        sock.sendall(
            b"GET /big-header HTTP/1.1\r\nHost: plain.internal.example\r\n" + big + b"\r\n"
        )
        assert answer(sock).startswith(b"HTTP/1.1 431 ")
    assert "/big-header" not in Upstream.requests


def test_an_oversize_body_gets_413(edge: tuple[str, int]) -> None:
    with tunnel(edge) as sock:
        sock.sendall(b"POST /big-body HTTP/1.1\r\nHost: plain.internal.example\r\n"
                     b"Content-Length: 2048\r\n\r\n" + b"b" * 2048)  # fmt: skip
        assert answer(sock).startswith(b"HTTP/1.1 413 ")
    assert "/big-body" not in Upstream.requests


def test_a_slow_upstream_gets_504(edge: tuple[str, int]) -> None:
    with tunnel(edge) as sock:
        sock.sendall(b"GET /slow HTTP/1.1\r\nHost: plain.internal.example\r\n\r\n")
        started = time.monotonic()
        reply = answer(sock)
    assert reply.startswith(b"HTTP/1.1 504 ")
    assert time.monotonic() - started < 5  # bounded by the 1 s timeout, not the 60 s default
    assert b"no answer within 1 s" in reply


def test_a_request_beyond_max_inflight_is_shed_with_503(edge: tuple[str, int]) -> None:
    """--max-inflight 1: while one request waits for the (slow) upstream, another is answered
    at once, 503 with Retry-After and the reason, and is not forwarded; then served again."""
    with tunnel(edge) as slow, tunnel(edge) as other:
        slows = Upstream.requests.count("/slow")
        slow.sendall(b"GET /slow HTTP/1.1\r\nHost: plain.internal.example\r\n\r\n")
        deadline = time.monotonic() + 5
        while Upstream.requests.count("/slow") == slows and time.monotonic() < deadline:
            time.sleep(0.01)  # until the slow request is in progress
        before = len(Upstream.requests)
        other.sendall(b"GET /shed HTTP/1.1\r\nHost: plain.internal.example\r\n\r\n")
        started = time.monotonic()
        shed = answer(other)
        assert time.monotonic() - started < 0.5  # at once, not after the slow one
        assert shed.startswith(b"HTTP/1.1 503 "), shed
        assert b"Retry-After: 1\r\n" in shed
        assert b"x-latchkey-reason: Overloaded" in shed
        assert b"limit of 1 requests at once" in shed
        assert len(Upstream.requests) == before  # never forwarded
        assert answer(slow).startswith(b"HTTP/1.1 504 ")
        other.sendall(b"GET /ok HTTP/1.1\r\nHost: plain.internal.example\r\n\r\n")
        assert answer(other).startswith(b"HTTP/1.1 200 ")  # the same connection, kept


def test_metrics(edge: tuple[str, int]) -> None:
    """After the requests above: Prometheus text on the edge listener, with what happened."""
    with tunnel(edge) as sock:
        sock.sendall(b"GET /ok HTTP/1.1\r\nHost: plain.internal.example\r\n\r\n")
        assert answer(sock).startswith(b"HTTP/1.1 200 ")
    with socket.create_connection(edge, timeout=10) as sock:
        sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: latchkey\r\n\r\n")
        reply = answer(sock).decode()
    assert reply.startswith("HTTP/1.1 200 ")
    assert "text/plain; version=0.0.4" in reply
    samples = {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in reply.partition("\r\n\r\n")[2].splitlines()
        if line and not line.startswith("#")
    }
    ok = 'latchkey_edge_requests_total{decision="allowed",reason="",server="plain"}'
    assert samples[ok] >= 2
    assert samples['latchkey_edge_connections_total{kind="refused"}'] >= 1
    assert samples['latchkey_edge_connections_total{kind="intercepted"}'] >= 5
    assert samples['latchkey_edge_upstream_seconds_count{server="plain"}'] >= 2
    assert samples['latchkey_edge_cert_cache_lookups_total{result="hit"}'] == 0  # no TLS here


def test_access_events_name_the_evidence_and_the_upstream_status(edge: tuple[str, int]) -> None:
    with tunnel(edge) as sock:
        sock.sendall(b"GET /ok?secret=query HTTP/1.1\r\nHost: plain.internal.example\r\n\r\n")
        assert answer(sock).startswith(b"HTTP/1.1 200 ")
    path = DATA_DIRS[-1] / "events" / "access.jsonl"
    deadline = time.monotonic() + 5
    events: list[dict[str, object]] = []
    while time.monotonic() < deadline:  # written off the request path, in batches
        text = path.read_text() if path.exists() else ""
        events = [json.loads(line) for line in text.splitlines()]
        if any(e.get("path") == "/ok" and e.get("upstream_status") == 200 for e in events):
            break
        time.sleep(0.1)
    ok = [e for e in events if e.get("path") == "/ok"][-1]
    assert ok["evidence"] == "sourceCidr 127.0.0.0/8"
    assert ok["upstream_status"] == 200
    assert ok["decision"] == "allowed"
    latency, stamp = ok.pop("latency_ms"), ok.pop("time")  # every field in its place:
    assert isinstance(latency, float)
    assert isinstance(stamp, str)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", stamp)
    assert ok == {
        "source": "127.0.0.1", "client": "loopback", "server": "plain",
        "policy": "loopback-to-plain", "decision": "allowed", "method": "GET", "path": "/ok",
        "status": 200, "evidence": "sourceCidr 127.0.0.0/8", "upstream_status": 200,
    }  # fmt: skip
    assert "secret=query" not in path.read_text()
    assert path.stat().st_mode & 0o777 == 0o600


def test_absolute_form_plain_http_proxying(edge: tuple[str, int]) -> None:
    """`http_proxy` clients send `GET http://host/path`: a Server Workload without TLS is
    served on that connection (keep-alive, same host); other hosts are refused here
    (passthrough: deny)."""
    with socket.create_connection(edge, timeout=10) as sock:
        for _ in range(2):
            sock.sendall(b"GET http://plain.internal.example/ok HTTP/1.1\r\n"
                         b"Host: plain.internal.example\r\n\r\n")  # fmt: skip
            assert answer(sock).startswith(b"HTTP/1.1 200 ")
        sock.sendall(b"GET http://other.internal.example/ok HTTP/1.1\r\n"
                     b"Host: other.internal.example\r\n\r\n")  # fmt: skip
        assert answer(sock).startswith(b"HTTP/1.1 400 ")
    with socket.create_connection(edge, timeout=10) as sock:
        sock.sendall(b"GET http://example.org/ HTTP/1.1\r\nHost: example.org\r\n\r\n")
        assert answer(sock).startswith(b"HTTP/1.1 403 ")


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        ("cl-te", b"POST /smuggle-clte HTTP/1.1\r\nHost: plain.internal.example\r\n"
                  b"Content-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nX"),
        ("te-cl", b"POST /smuggle-tecl HTTP/1.1\r\nHost: plain.internal.example\r\n"
                  b"Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n"
                  b"8\r\nSMUGGLED\r\n0\r\n\r\n"),
        ("two-cl", b"POST /smuggle-2cl HTTP/1.1\r\nHost: plain.internal.example\r\n"
                   b"Content-Length: 4\r\nContent-Length: 5\r\n\r\nabcde"),
        ("bad-chunk", b"POST /smuggle-chunk HTTP/1.1\r\nHost: plain.internal.example\r\n"
                      b"Transfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n"),
        ("obs-fold", b"GET /smuggle-fold HTTP/1.1\r\nHost: plain.internal.example\r\n"
                     b"X-A: a\r\n b\r\n\r\n"),
    ],
)  # fmt: skip
def test_smuggling_is_refused_before_the_upstream_sees_a_byte(
    edge: tuple[str, int], name: str, raw: bytes
) -> None:
    path = raw.split(b" ", 2)[1].decode()
    with tunnel(edge) as sock:
        sock.sendall(raw)
        assert answer(sock).startswith(b"HTTP/1.1 400 "), name
    time.sleep(0.2)
    assert path not in Upstream.requests
