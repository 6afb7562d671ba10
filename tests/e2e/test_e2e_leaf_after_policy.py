"""A leaf is minted only for a caller whose access policy passed (security promise 8).

A refused caller's CONNECT is answered 403 with the reason before any TLS, and nothing is
minted; once a caller whose policy passed has had the host's leaf made, a refused caller is
served by that leaf and refused inside TLS in the target's protocol, as any other refusal."""

from __future__ import annotations

import base64
import json
import re
import socket
import ssl
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from latchkey_testing import (
    TokenClients,
    UpProcess,
    access_events,
    aws,
    read_head,
    start_with_config,
)

pytestmark = pytest.mark.e2e

KMS = "kms.us-east-1.amazonaws.com"


def mints(up: UpProcess) -> float:
    edge = urlsplit(up.info.edge)
    with urllib.request.urlopen(f"http://{edge.hostname}:{edge.port}/metrics", timeout=10) as r:
        text = r.read().decode()
    found = re.search(r"^latchkey_edge_cert_mints(?:_total)? (\S+)$", text, re.MULTILINE)
    assert found is not None, "the edge exports latchkey_edge_cert_mints"
    return float(found.group(1))


def connect(up: UpProcess, token: str) -> tuple[bytes, socket.socket]:
    """CONNECT to KMS presenting ``token``: the edge's answer head, and the socket."""
    edge = urlsplit(up.info.edge)
    raw = socket.create_connection((str(edge.hostname), int(edge.port or 0)), timeout=10)
    basic = base64.b64encode(f"workload:{token}".encode()).decode()
    raw.sendall(
        f"CONNECT {KMS}:443 HTTP/1.1\r\nHost: {KMS}:443\r\n"
        f"Proxy-Authorization: Basic {basic}\r\n\r\n".encode()
    )
    return read_head(raw), raw


def test_a_refused_caller_gets_no_leaf(tmp_path: Path) -> None:
    clients = TokenClients.generate()
    billing = clients.token("repo:acme/billing:main")
    other = clients.token("repo:acme/other:main")
    up = start_with_config(tmp_path, clients.docs)
    try:
        port = up.env()["HTTPS_PROXY"].rsplit(":", 1)[1]

        def env(tok: str) -> dict[str, str]:
            return up.env() | {"HTTPS_PROXY": f"http://workload:{tok}@127.0.0.1:{port}"}

        # 1. A fresh edge: the refused caller's CONNECT is answered 403, before any TLS.
        answer, raw = connect(up, other)
        with raw:
            head, body = answer, b""
            assert head.startswith(b"HTTP/1.1 403"), head
            assert b"x-latchkey-reason: NoMatchingPolicy" in head
            assert b"Connection: close" in head
            length = re.search(rb"Content-Length: (\d+)", head)
            assert length is not None
            while len(body) < int(length.group(1)):
                body += raw.recv(65536)
            doc = json.loads(body)
            assert doc["reason"] == "NoMatchingPolicy"
            assert "client workload(s) other reach" in doc["message"]
            assert raw.recv(1) == b""  # closed
        refused_cli = aws(env(other), "kms", "list-keys", check=False)
        assert refused_cli.returncode != 0
        assert "AccessDeniedException" not in refused_cli.stderr  # no TLS: a proxy refusal
        assert mints(up) == 0

        # 2. The allowed caller: the leaf is made now.
        allowed = aws(env(billing), "kms", "list-keys")
        assert json.loads(allowed.stdout)["Keys"] == []
        assert mints(up) == 1

        # 3. The refused caller again: the leaf made for billing serves, and the refusal comes
        # inside TLS in KMS's own shape; nothing more is minted.
        refused = aws(env(other), "kms", "list-keys", check=False)
        assert refused.returncode != 0
        assert "AccessDeniedException" in refused.stderr
        assert "NoMatchingPolicy" in refused.stderr
        answer, raw = connect(up, other)
        with raw:
            assert answer.startswith(b"HTTP/1.1 200"), answer
            ctx = ssl.create_default_context(cafile=up.info.ca_bundle)
            with ctx.wrap_socket(raw, server_hostname=KMS) as tls:
                tls.sendall(f"GET / HTTP/1.1\r\nHost: {KMS}\r\n\r\n".encode())
                inner = tls.recv(65536)
            assert inner.startswith(b"HTTP/1.1 403")
            assert b"x-latchkey-reason: NoMatchingPolicy" in inner
        assert mints(up) == 1
    finally:
        up.stop()
    events = access_events(up.data_dir)
    connects = [e for e in events if e["method"] == "CONNECT"]
    # the raw CONNECT and the CLI's (which retries a failed proxy connection), before any leaf
    assert len(connects) >= 2
    for event in connects:
        assert (event["decision"], event["reason"], event["status"]) == (
            "denied",
            "NoMatchingPolicy",
            403,
        )
        assert (event["server"], event["path"]) == ("aws-kms", f"{KMS}:443")
    inside = [e for e in events if e["method"] != "CONNECT"]
    assert [(e["decision"], e.get("reason")) for e in inside] == [
        ("allowed", None),
        ("denied", "NoMatchingPolicy"),
        ("denied", "NoMatchingPolicy"),
    ]
