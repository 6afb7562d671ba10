"""Non-AWS Server Workloads through a running node: the edge injects a static secret as
`bearer`, a named `header` or `basic` credentials (the client's own placeholder removed), or
nothing for `none`; a rotated secret file takes effect on the next request, a missing one gives
503 CredentialUnavailable naming the file; no secret reaches the node's log or the events."""

from __future__ import annotations

import base64
import json
import os
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest

from latchkey_testing import VENV_BIN, QuietHandler, UpProcess, start_up_process

pytestmark = pytest.mark.e2e

BEARER = "bearer-5ecret-first"
ROTATED = "bearer-5ecret-rotated"
AUDIT = "audit-5ecret-token"
API_KEY = "api-key-5ecret-from-env"
BASIC = "ci-bot:b4sic 5ecret"
ENV = "LATCHKEY_E2E_API_KEY"
SECRETS = (BEARER, ROTATED, AUDIT, API_KEY, BASIC, base64.b64encode(BASIC.encode()).decode())

CONFIG = """\
apiVersion: latchkey/v1
kind: ServerWorkload
metadata: {{name: bearer-api}}
spec:
  host: bearer.internal.example
  port: 443
  tls: true
  forward: {{host: 127.0.0.1, port: {port}, tls: false}}
  authentication: {{method: http, scheme: bearer}}
---
apiVersion: latchkey/v1
kind: ServerWorkload
metadata: {{name: header-api}}
spec:
  host: header.internal.example
  port: 80
  tls: false
  forward: {{host: 127.0.0.1, port: {port}}}
  authentication: {{method: http, scheme: header, header: X-Api-Key}}
---
apiVersion: latchkey/v1
kind: ServerWorkload
metadata: {{name: basic-api}}
spec:
  host: basic.internal.example
  port: 80
  tls: false
  forward: {{host: 127.0.0.1, port: {port}}}
  authentication: {{method: http, scheme: basic}}
---
apiVersion: latchkey/v1
kind: ServerWorkload
metadata: {{name: open-api}}
spec:
  host: open.internal.example
  port: 80
  tls: false
  forward: {{host: 127.0.0.1, port: {port}}}
  authentication: {{method: http, scheme: none}}
---
apiVersion: latchkey/v1
kind: CredentialProvider
metadata: {{name: bearer-token}}
spec: {{type: static, secretFile: {bearer_file}}}
---
apiVersion: latchkey/v1
kind: CredentialProvider
metadata: {{name: audit}}
spec: {{type: static, secretFile: {audit_file}}}
---
apiVersion: latchkey/v1
kind: CredentialProvider
metadata: {{name: api-key}}
spec: {{type: static, secretEnv: {env}}}
---
apiVersion: latchkey/v1
kind: CredentialProvider
metadata: {{name: basic-login}}
spec: {{type: static, secretFile: {basic_file}}}
---
apiVersion: latchkey/v1
kind: ClientWorkload
metadata: {{name: loopback}}
spec: {{identities: [{{sourceCidr: 127.0.0.0/8}}]}}
---
apiVersion: latchkey/v1
kind: AccessPolicy
metadata: {{name: to-bearer}}
spec: {{clients: [loopback], server: bearer-api, credentialProviders: [bearer-token, audit]}}
---
apiVersion: latchkey/v1
kind: AccessPolicy
metadata: {{name: to-header}}
spec: {{clients: [loopback], server: header-api, credentialProvider: api-key}}
---
apiVersion: latchkey/v1
kind: AccessPolicy
metadata: {{name: to-basic}}
spec: {{clients: [loopback], server: basic-api, credentialProvider: basic-login}}
---
apiVersion: latchkey/v1
kind: AccessPolicy
metadata: {{name: to-open}}
spec: {{clients: [loopback], server: open-api}}
"""


class Upstream(QuietHandler):
    """Records the credentials each request arrived with, by path."""

    seen: dict[str, dict[str, list[str]]] = {}

    def do_GET(self) -> None:
        Upstream.seen[self.path] = {
            name: self.headers.get_all(name) or []
            for name in ("Authorization", "X-Api-Key", "Proxy-Authorization")
        }
        if self.path == "/echo-401":  # an API that quotes the key it refused
            key = (self.headers.get("X-Api-Key") or "").encode()
            self.answer_json(b'{"error":"invalid api key %s"}' % key, 401)
            return
        self.answer_json(b'{"ok":true}')


@dataclass
class Node:
    up: UpProcess
    edge: tuple[str, int]
    bearer_file: Path
    basic_file: Path


def _secret_file(path: Path, text: str) -> None:
    """Replace ``path`` atomically with a fresh 0600 file (how a secret is rotated)."""
    tmp = path.with_name(path.name + ".new")
    fd = os.open(tmp, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
    os.write(fd, (text + "\n").encode())
    os.close(fd)
    tmp.replace(path)


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Upstream)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    tmp = tmp_path_factory.mktemp("schemes")
    files = {name: tmp / f"{name}.secret" for name in ("bearer", "audit", "basic")}
    _secret_file(files["bearer"], BEARER)
    _secret_file(files["audit"], AUDIT)
    _secret_file(files["basic"], BASIC)
    config = tmp / "config.yaml"
    config.write_text(
        CONFIG.format(
            port=server.server_address[1],
            env=ENV,
            bearer_file=files["bearer"],
            audit_file=files["audit"],
            basic_file=files["basic"],
        )
    )
    os.environ[ENV] = API_KEY  # the node's environment (start_up_process copies os.environ)
    try:
        up = start_up_process(tmp / "data", "--config", str(config))
    finally:
        del os.environ[ENV]
    try:
        yield Node(up, up.edge_address, files["bearer"], files["basic"])
    finally:
        up.stop()
        server.shutdown()
        server.server_close()


def _connect(node: Node, host: str, port: int) -> socket.socket:
    sock = socket.create_connection(node.edge, timeout=10)
    sock.sendall(f"CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
    assert sock.recv(4096).startswith(b"HTTP/1.1 200 ")
    if port != 443:
        return sock
    context = ssl.create_default_context(cafile=node.up.info.ca_bundle)
    return context.wrap_socket(sock, server_hostname=host)


def _answer(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    while len(body) < int(headers.get("content-length", "0")):
        body += sock.recv(65536)
    return int(lines[0].split()[1]), headers, body


def _get(
    sock: socket.socket, host: str, path: str, *headers: str
) -> tuple[int, dict[str, str], bytes]:
    extra = "".join(f"{h}\r\n" for h in headers)
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}\r\n".encode())
    return _answer(sock)


def _latchkey(node: Node, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(VENV_BIN / "latchkey"), *args, "--data-dir", str(node.up.data_dir)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_bearer_replaces_the_placeholder_over_tls(node: Node) -> None:
    with _connect(node, "bearer.internal.example", 443) as sock:
        status, _, _ = _get(sock, "bearer.internal.example", "/bearer",
                            "Authorization: Bearer placeholder")  # fmt: skip
        assert status == 200
        # the placeholder may name a provider of the policy (like an AWS access key id)
        status, _, _ = _get(sock, "bearer.internal.example", "/bearer-audit",
                            "Authorization: Bearer audit")  # fmt: skip
        assert status == 200
    assert Upstream.seen["/bearer"]["Authorization"] == [f"Bearer {BEARER}"]
    assert Upstream.seen["/bearer-audit"]["Authorization"] == [f"Bearer {AUDIT}"]


def test_header_sends_the_secret_in_the_named_header(node: Node) -> None:
    with _connect(node, "header.internal.example", 80) as sock:
        status, _, _ = _get(sock, "header.internal.example", "/header",
                            "X-API-KEY: placeholder", "Authorization: Bearer leftover")  # fmt: skip
    assert status == 200
    assert Upstream.seen["/header"] == {
        "Authorization": [],
        "X-Api-Key": [API_KEY],
        "Proxy-Authorization": [],
    }


def test_an_error_body_that_quotes_the_secret_is_scrubbed(node: Node) -> None:
    with _connect(node, "header.internal.example", 80) as sock:
        status, _, body = _get(sock, "header.internal.example", "/echo-401",
                               "X-API-KEY: placeholder")  # fmt: skip
    assert status == 401
    assert Upstream.seen["/echo-401"]["X-Api-Key"] == [API_KEY]  # the upstream got it
    assert API_KEY.encode() not in body
    assert body == b'{"error":"invalid api key (removed by latchkey)"}'


def test_basic_sends_base64_of_user_and_password(node: Node) -> None:
    with _connect(node, "basic.internal.example", 80) as sock:
        status, _, _ = _get(sock, "basic.internal.example", "/basic")
    assert status == 200
    [value] = Upstream.seen["/basic"]["Authorization"]
    assert value == "Basic Y2ktYm90OmI0c2ljIDVlY3JldA=="
    assert base64.b64decode(value.removeprefix("Basic ")).decode() == BASIC


def test_none_forwards_the_clients_own_credentials(node: Node) -> None:
    with _connect(node, "open.internal.example", 80) as sock:
        status, _, _ = _get(sock, "open.internal.example", "/open",
                            "Authorization: Bearer clients-own")  # fmt: skip
    assert status == 200
    assert Upstream.seen["/open"] == {
        "Authorization": ["Bearer clients-own"],
        "X-Api-Key": [],
        "Proxy-Authorization": [],
    }


def test_a_rotated_secret_file_takes_effect_on_the_next_request(node: Node) -> None:
    with _connect(node, "bearer.internal.example", 443) as sock:
        assert _get(sock, "bearer.internal.example", "/before")[0] == 200
        _secret_file(node.bearer_file, ROTATED)
        assert _get(sock, "bearer.internal.example", "/after")[0] == 200  # same connection
    _secret_file(node.bearer_file, BEARER)
    assert Upstream.seen["/before"]["Authorization"] == [f"Bearer {BEARER}"]
    assert Upstream.seen["/after"]["Authorization"] == [f"Bearer {ROTATED}"]


def test_a_missing_secret_file_gives_503_naming_the_file(node: Node) -> None:
    node.basic_file.rename(node.basic_file.with_name("moved-away"))
    try:
        with _connect(node, "basic.internal.example", 80) as sock:
            status, headers, body = _get(sock, "basic.internal.example", "/basic-missing")
    finally:
        node.basic_file.with_name("moved-away").rename(node.basic_file)
    assert status == 503
    assert headers["x-latchkey-reason"] == "CredentialUnavailable"
    message = json.loads(body)["message"]
    assert (
        f"credential provider 'basic-login': cannot read secret file {node.basic_file}: "
        "No such file or directory" in message
    )
    assert "/basic-missing" not in Upstream.seen
    with _connect(node, "basic.internal.example", 80) as sock:  # back, without a restart
        assert _get(sock, "basic.internal.example", "/basic-back")[0] == 200


def test_explain_and_get_name_the_secret_source_never_the_secret(node: Node) -> None:
    explained = _latchkey(node, "explain", "--host", "bearer.internal.example")
    assert explained.returncode == 0, explained.stderr
    assert (
        f"PASS  credentials      CredentialProvider 'bearer-token' (static): static secret "
        f"from file {node.bearer_file}" in explained.stdout
    )
    assert explained.stdout.splitlines()[-1] == "ALLOWED"
    opened = _latchkey(node, "explain", "--host", "open.internal.example", "--port", "80")
    assert "PASS  credentials      scheme none: the request goes as it is" in opened.stdout
    table = _latchkey(node, "get", "cp").stdout
    assert f"api-key       static secret from environment variable {ENV}" in table
    printed = _latchkey(node, "get", "all", "-o", "yaml").stdout
    assert f"secretEnv: {ENV}" in printed
    assert not [s for s in SECRETS if s in explained.stdout + table + printed]


def test_apply_checks_secret_env_in_the_nodes_environment(node: Node, tmp_path: Path) -> None:
    doc = tmp_path / "cp.yaml"
    doc.write_text(
        "apiVersion: latchkey/v1\nkind: CredentialProvider\nmetadata: {name: late}\n"
        "spec: {type: static, secretEnv: LATCHKEY_E2E_NEVER_SET}\n"
    )
    refused = _latchkey(node, "apply", "-f", str(doc))
    assert refused.returncode != 0
    assert (
        f"{doc}:4:33: spec.secretEnv: the variable secretEnv names is not set (or is empty) "
        "for latchkey" in refused.stderr
    )
    assert "LATCHKEY_E2E_NEVER_SET" not in refused.stderr  # (it might have been a secret)
    doc.write_text(doc.read_text().replace("LATCHKEY_E2E_NEVER_SET", ENV))
    assert _latchkey(node, "apply", "-f", str(doc), "--dry-run").returncode == 0


def test_no_secret_in_the_log_or_the_events(node: Node) -> None:
    deadline = time.monotonic() + 10
    events: list[dict[str, object]] = []
    while time.monotonic() < deadline:
        out = _latchkey(node, "events", "--json", "--limit", "500").stdout
        events = [json.loads(line) for line in out.splitlines()]
        if any(e.get("path") == "/basic-back" for e in events):
            break
        time.sleep(0.2)
    by_path = {e["path"]: e for e in events}
    assert by_path["/bearer-audit"]["credential_provider"] == "audit"
    assert by_path["/header"]["credential_provider"] == "api-key"
    assert by_path["/open"]["decision"] == "allowed"
    assert by_path["/open"].get("credential_provider") is None
    missing = by_path["/basic-missing"]
    assert (missing["decision"], missing["reason"]) == ("denied", "CredentialUnavailable")
    assert str(node.basic_file) in str(missing["detail"])
    recorded = json.dumps(events) + node.up.log_path.read_text()
    assert not [s for s in SECRETS if s in recorded]
