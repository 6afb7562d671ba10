"""`explain` and the edge agree: 50 generated (caller address, host, action) cases, each asked
of the control API and then actually sent through the edge from that loopback address."""

from __future__ import annotations

import json
import random
import socket
import ssl
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from latchkey_testing import UpProcess, start_with_config

pytestmark = pytest.mark.e2e

DOCS = """\
apiVersion: latchkey/v1
kind: ClientWorkload
metadata: {name: encrypters}
spec: {identities: [{sourceCidr: 127.0.0.2/32}]}
---
apiVersion: latchkey/v1
kind: ClientWorkload
metadata: {name: admins}
spec: {identities: [{sourceCidr: 127.0.0.3/32}]}
---
apiVersion: latchkey/v1
kind: ClientWorkload
metadata: {name: strangers}
spec: {identities: [{sourceCidr: 127.0.0.4/32}]}
---
apiVersion: latchkey/v1
kind: AccessCondition
metadata: {name: encrypt-only}
spec: {aws: {actions: ["kms:Encrypt", "kms:ListKeys"]}}
---
apiVersion: latchkey/v1
kind: AccessPolicy
metadata: {name: encrypters-to-kms}
spec: {clients: [encrypters], server: aws-kms, credentialProvider: kms-federation,
       conditions: [encrypt-only]}
---
apiVersion: latchkey/v1
kind: AccessPolicy
metadata: {name: admins-to-kms}
spec: {clients: [admins], server: aws-kms, credentialProvider: kms-federation}
"""

SOURCES = ["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"]
ACTIONS = ["ListKeys", "Encrypt", "Decrypt", "DescribeKey"]


def through_edge(up: UpProcess, source: str, host: str, action: str) -> tuple[str, str | None]:
    """Send one request from ``source`` through the edge: (outcome, x-latchkey-reason)."""
    edge = urlsplit(up.info.edge)
    cloud = urlsplit(up.info.cloud)
    raw = socket.create_connection((str(edge.hostname), int(edge.port or 0)), timeout=10,
                                   source_address=(source, 0))  # fmt: skip
    with raw:
        target = f"{host}:443" if host != "127.0.0.1" else f"127.0.0.1:{cloud.port}"
        raw.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
        assert raw.recv(1024).startswith(b"HTTP/1.1 200")
        ctx = ssl.create_default_context(cafile=up.info.ca_bundle)
        with ctx.wrap_socket(raw, server_hostname=host) as tls:
            if host == "127.0.0.1":  # not a server workload: the cloud's own certificate
                return "tunnelled", None
            body = b'{"KeyId": "alias/x", "Plaintext": "eA=="}'
            tls.sendall(
                f"POST / HTTP/1.1\r\nHost: {host}\r\nX-Amz-Target: TrentService.{action}\r\n"
                f"Content-Type: application/x-amz-json-1.1\r\nContent-Length: {len(body)}\r\n"
                "Connection: close\r\n\r\n".encode()
                + body
            )
            answer = b""
            while chunk := tls.recv(65536):
                answer += chunk
    head = answer.split(b"\r\n\r\n", 1)[0].decode()
    reason = None
    for line in head.split("\r\n")[1:]:
        name, _, value = line.partition(":")
        if name.lower() == "x-latchkey-reason":
            reason = value.strip()
    return ("denied", reason) if reason else ("allowed", None)


def test_fifty_cases_agree(tmp_path: Path) -> None:
    proc = start_with_config(tmp_path, DOCS)
    rng = random.Random(1128)
    token = (proc.data_dir / "control-token").read_text().strip()
    ctx = ssl.create_default_context(cafile=proc.info.ca_bundle)
    seen = set()
    try:
        with httpx.Client(verify=ctx, trust_env=False,
                          headers={"Authorization": f"Bearer {token}"}) as api:  # fmt: skip
            for _ in range(50):
                source = rng.choice(SOURCES)
                host = rng.choice(["kms.us-east-1.amazonaws.com", "127.0.0.1"])
                action = rng.choice(ACTIONS)
                asked = {"clientIp": source, "host": host, "action": f"kms:{action}"}
                if host == "127.0.0.1":
                    asked["port"] = int(urlsplit(proc.info.cloud).port or 0)
                said = api.post(proc.info.idp_listen + "/api/v1/explain", json=asked).json()
                done = through_edge(proc, source, host, action)
                assert (said["outcome"], said["reason"]) == done, json.dumps(asked)
                seen.add(done)
    finally:
        proc.stop()
    assert seen >= {
        ("allowed", None),
        ("tunnelled", None),
        ("denied", "ConditionFailed"),
        ("denied", "IdentityNotMatched"),
        ("denied", "NoMatchingPolicy"),
    }
