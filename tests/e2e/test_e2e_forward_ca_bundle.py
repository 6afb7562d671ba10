"""A Server Workload's own CA bundle: the edge verifies an upstream whose certificate comes from
a private CA (not in the system store) when `forward.caBundle` names that CA, refuses it (502,
verification failed) for a workload without the bundle, and a bad bundle path is a
configuration error naming the file and line."""

from __future__ import annotations

import datetime as dt
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest

from latchkey.crypto.tls import server_ssl_context
from latchkey.crypto.x509 import load_or_create_ca
from latchkey_testing import VENV_BIN, QuietHandler, UpProcess, start_up_process

pytestmark = pytest.mark.e2e

CONFIG = """\
apiVersion: latchkey/v1
kind: ServerWorkload
metadata: {{name: private-api}}
spec:
  host: private.internal.example
  port: 443
  tls: true
  forward: {{host: 127.0.0.1, port: {port}, tls: true, caBundle: {bundle}}}
  authentication: {{method: http, scheme: none}}
---
apiVersion: latchkey/v1
kind: ServerWorkload
metadata: {{name: unbundled-api}}
spec:
  host: unbundled.internal.example
  port: 443
  tls: true
  forward: {{host: 127.0.0.1, port: {port}, tls: true}}
  authentication: {{method: http, scheme: none}}
---
apiVersion: latchkey/v1
kind: ClientWorkload
metadata: {{name: loopback}}
spec: {{identities: [{{sourceCidr: 127.0.0.0/8}}]}}
---
apiVersion: latchkey/v1
kind: AccessPolicy
metadata: {{name: to-private}}
spec: {{clients: [loopback], server: private-api}}
---
apiVersion: latchkey/v1
kind: AccessPolicy
metadata: {{name: to-unbundled}}
spec: {{clients: [loopback], server: unbundled-api}}
"""


class Upstream(QuietHandler):
    def do_GET(self) -> None:
        self.answer_json(b'{"private":true}')


@dataclass
class Node:
    up: UpProcess
    edge: tuple[str, int]


def _private_upstream(tmp: Path) -> tuple[ThreadingHTTPServer, Path]:
    """A TLS upstream on 127.0.0.1 with a leaf from a CA of its own; the CA's PEM path."""
    now = dt.datetime.now(dt.UTC)
    ca = load_or_create_ca(tmp / "private-ca.pem", tmp / "private-ca.key", now=now)
    cert_pem, key_pem = ca.mint_leaf(["127.0.0.1"], now=now)
    server = ThreadingHTTPServer(("127.0.0.1", 0), Upstream)
    context = server_ssl_context(cert_pem, key_pem)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, tmp / "private-ca.pem"


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    tmp = tmp_path_factory.mktemp("bundle")
    server, bundle = _private_upstream(tmp)
    config = tmp / "config.yaml"
    config.write_text(CONFIG.format(port=server.server_address[1], bundle=bundle))
    up = start_up_process(tmp / "data", "--config", str(config))
    try:
        yield Node(up, up.edge_address)
    finally:
        up.stop()
        server.shutdown()
        server.server_close()


def _get(node: Node, host: str) -> tuple[int, bytes]:
    sock = socket.create_connection(node.edge, timeout=10)
    sock.sendall(f"CONNECT {host}:443 HTTP/1.1\r\nHost: {host}:443\r\n\r\n".encode())
    assert sock.recv(4096).startswith(b"HTTP/1.1 200 ")
    context = ssl.create_default_context(cafile=node.up.info.ca_bundle)
    with context.wrap_socket(sock, server_hostname=host) as tls:
        tls.sendall(f"GET /x HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := tls.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def test_the_workloads_bundle_verifies_its_private_upstream(node: Node) -> None:
    status, body = _get(node, "private.internal.example")
    assert (status, body) == (200, b'{"private":true}')


def test_a_workload_without_the_bundle_refuses_the_same_upstream(node: Node) -> None:
    status, body = _get(node, "unbundled.internal.example")
    assert status == 502
    assert b"TLS verification" in body


@pytest.mark.parametrize(
    ("bundle", "why"),
    [
        ("relative/ca.pem", "must be an absolute path"),
        ("/nonexistent/ca.pem", "is not a readable file"),
    ],
)
def test_a_bad_bundle_is_a_configuration_error(tmp_path: Path, bundle: str, why: str) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG.format(port=4443, bundle=bundle))
    result = subprocess.run(
        [str(VENV_BIN / "latchkey"), "up", "--data-dir", str(tmp_path / "data"),
         "--config", str(config), "--edge", "0", "--cloud", "0", "--idp", "0"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert why in output
    assert f"{config}:" in output  # the file, with the line of the bad document
