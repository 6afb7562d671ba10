"""Test support: a latchkey node in-process (frozen-able clock) or as a real `latchkey up`,
and what the integration tests of its local cloud share (boto3 clients closed before the node
stops, refusals, policy documents, STS's test role, a fake OIDC issuer and a trap server).

Nothing here mocks latchkey's own parts: nodes listen on 127.0.0.1 with real TLS, real SQLite
files, and clients are the real boto3 / aws CLI.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import http.client
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlencode, urlsplit
from xml.etree import ElementTree as ET

import boto3
from botocore.config import Config as BotoConfig
from botocore.exceptions import ClientError
from joserfc import jws, jwt
from joserfc.jwk import ECKey

from latchkey.clock import Clock, SystemClock
from latchkey.cloud.auditverify import verify_trail
from latchkey.crypto.jwk import SigningKey
from latchkey.crypto.x509 import CertificateAuthority, load_or_create_ca, server_ssl_context
from latchkey.node import Listen, Node, RunInfo
from latchkey.store.audit import AuditStore

ANY_PORT = Listen(("127.0.0.1", 0), ("127.0.0.1", 0), ("127.0.0.1", 0))
VENV_BIN = Path(sys.executable).parent


class SettableClock:
    """Real time plus an offset the test can move (SigV4 clients sign with real time)."""

    def __init__(self) -> None:
        self.offset = dt.timedelta()

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC) + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += dt.timedelta(seconds=seconds)


@dataclass
class NodeHandle:
    node: Node
    info: RunInfo
    data_dir: Path
    loop: asyncio.AbstractEventLoop

    def admin(self) -> dict[str, str]:
        return json.loads((self.data_dir / "cloud-admin.json").read_text())

    def client(self, service: str, config: BotoConfig | None = None, **creds: Any) -> Any:
        """A boto3 client straight at the local cloud (admin keys unless given; ``config``
        replaces the default one of a single retry and no proxies)."""
        if not creds:
            admin = self.admin()
            creds = {
                "aws_access_key_id": admin["AccessKeyId"],
                "aws_secret_access_key": admin["SecretAccessKey"],
            }
        return boto3.client(
            service,
            endpoint_url=self.info.cloud,
            region_name="us-east-1",
            verify=self.info.ca_bundle,
            config=config or BotoConfig(retries={"max_attempts": 1}, proxies={}),
            **creds,
        )

    def run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)


def start_node_thread(
    data_dir: Path,
    *,
    clock: Clock | None = None,
    config: list[Path] | None = None,
    **options: Any,  # more of Node's (e.g. audit_timeout)
) -> tuple[NodeHandle, threading.Thread]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    node = Node(
        data_dir, config_paths=config, listen=ANY_PORT, clock=clock or SystemClock(), **options
    )
    fut: Future[RunInfo] = asyncio.run_coroutine_threadsafe(node.start(), loop)
    info = fut.result(30)
    return NodeHandle(node, info, data_dir, loop), thread


def stop_node_thread(handle: NodeHandle, thread: threading.Thread) -> None:
    handle.run(handle.node.stop())
    handle.loop.call_soon_threadsafe(handle.loop.stop)
    thread.join(10)
    handle.loop.close()


def audit_verified(data_dir: Path) -> int:
    """``latchkey audit verify`` of a node's data directory passes: how many events."""
    store = AuditStore(data_dir / "audit" / "cloud.db", readonly=True)
    try:
        report = verify_trail(store, data_dir / "audit" / "cloud.jsonl")
    finally:
        store.close()
    assert report.ok, report.findings
    return report.events


class Ticks:
    """A monotonic clock the test moves (``now``)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@contextlib.contextmanager
def own_node(data_dir: Path, **options: Any) -> Iterator[NodeHandle]:
    """A node in this process, on a loop thread of its own, with more of Node's ``options``
    (e.g. a short audit timeout); stopped after."""
    handle, thread = start_node_thread(data_dir, **options)
    try:
        yield handle
    finally:
        stop_node_thread(handle, thread)


# -- `latchkey up` as a real process ---------------------------------------------------------


@dataclass
class UpProcess:
    proc: subprocess.Popen[bytes]
    data_dir: Path
    log_path: Path
    info: RunInfo

    def env(self, *extra: str) -> dict[str, str]:
        """A clean client environment from `latchkey env` (no host AWS config leaks in)."""
        out = subprocess.run(
            [str(VENV_BIN / "latchkey"), "env", "--data-dir", str(self.data_dir), *extra],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        env = client_base_env(self.data_dir.parent)
        for line in out.splitlines():
            if line.startswith("export "):
                name, _, value = line[len("export ") :].partition("=")
                env[name] = value.strip("'")
        return env

    @property
    def edge_address(self) -> tuple[str, int]:
        """The edge's (host, port), from its ``http://host:port`` URL."""
        host, port = self.info.edge.removeprefix("http://").rsplit(":", 1)
        return host, int(port)

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.log_path.read_text()


def access_events(data_dir: Path) -> list[dict[str, Any]]:
    """The edge's access events of a stopped node (``events/access.jsonl``)."""
    path = data_dir / "events" / "access.jsonl"
    lines = path.read_text().splitlines() if path.exists() else []
    return [json.loads(line) for line in lines]


def outcomes(data_dir: Path) -> list[str]:
    """``allowed:<policy>`` / ``denied:<reason>`` per access event, in order."""
    return [
        f"allowed:{e.get('policy')}" if e["decision"] == "allowed" else f"denied:{e['reason']}"
        for e in access_events(data_dir)
    ]


def client_base_env(home: Path) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("AWS_") and "proxy" not in k.lower()
    }
    env.update(
        HOME=str(home),
        AWS_CONFIG_FILE=str(home / "no-aws-config"),
        AWS_SHARED_CREDENTIALS_FILE=str(home / "no-aws-credentials"),
        AWS_EC2_METADATA_DISABLED="true",
        PATH=f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    )
    return env


def start_up_process(data_dir: Path, *args: str) -> UpProcess:
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    log_path = data_dir.parent / f"{data_dir.name}.log"
    log = log_path.open("wb")
    cmd = [str(VENV_BIN / "latchkey"), "up", "--data-dir", str(data_dir)]
    cmd += ["--edge", "0", "--cloud", "0", "--idp", "0", *args]
    proc = subprocess.Popen(
        cmd, stdout=log, stderr=subprocess.STDOUT, env=client_base_env(data_dir.parent)
    )
    log.close()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"latchkey up exited {proc.returncode}:\n{log_path.read_text()}")
        if (data_dir / "run.json").exists():
            try:
                info = RunInfo.load(data_dir)
            except (ValueError, TypeError):
                time.sleep(0.05)
                continue
            if info.pid == proc.pid:  # not one a killed predecessor left behind
                return UpProcess(proc, data_dir, log_path, info)
        time.sleep(0.05)
    proc.kill()
    proc.wait(5)
    raise AssertionError(f"latchkey up did not start:\n{log_path.read_text()}")


def aws(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the real aws CLI (awscli v1 from this venv)."""
    result = subprocess.run(
        [str(VENV_BIN / "aws"), *args], env=env, capture_output=True, text=True, timeout=60
    )
    if check and result.returncode != 0:
        raise AssertionError(f"aws {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
    return result


def free_port() -> int:
    """A loopback port that was free a moment ago (for configs that must name the cloud's)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# The seed's ServerWorkload and CredentialProvider, pointed at a local cloud on `cloud_port`;
# tests append their own client workloads, policies and conditions.
KMS_VIA_LOCAL_CLOUD = """\
apiVersion: latchkey/v1
kind: ServerWorkload
metadata: {{name: aws-kms}}
spec:
  host: kms.us-east-1.amazonaws.com
  port: 443
  tls: true
  forward: {{host: 127.0.0.1, port: {cloud_port}, tls: true}}
  authentication: {{method: http, scheme: aws-sigv4}}
---
apiVersion: latchkey/v1
kind: CredentialProvider
metadata: {{name: kms-federation}}
spec:
  type: aws-sts-federation
  roleArn: arn:aws:iam::000000000000:role/latchkey-kms
  audience: sts.amazonaws.com
  stsEndpoint: https://127.0.0.1:{cloud_port}
---
"""


TOKEN_ISSUER = "https://ci.example.test"

TOKEN_CLIENTS = """\
apiVersion: latchkey/v1
kind: TrustProvider
metadata: {name: ci}
spec: {type: oidc, issuer: "$issuer", jwks: {keys: [$jwk]}, audiences: [latchkey]}
---
apiVersion: latchkey/v1
kind: ClientWorkload
metadata: {name: billing}
spec:
  identities: [{token: {trustProvider: ci, claims: {sub: "repo:acme/billing:*"}}}]
---
apiVersion: latchkey/v1
kind: ClientWorkload
metadata: {name: other}
spec:
  identities: [{token: {trustProvider: ci, claims: {sub: "repo:acme/other:*"}}}]
---
apiVersion: latchkey/v1
kind: AccessPolicy
metadata: {name: billing-to-kms}
spec: {clients: [billing], server: aws-kms, credentialProvider: kms-federation}
"""


class TokenClients(NamedTuple):
    """Two client workloads told apart by a CI token's ``sub`` (``billing``, allowed to reach
    aws-kms, and ``other``), trusting ``key``: the documents, and a way to mint tokens."""

    key: SigningKey
    docs: str

    @classmethod
    def generate(cls) -> TokenClients:
        key = SigningKey.generate()
        jwk = json.dumps(key.public_jwk())
        return cls(key, TOKEN_CLIENTS.replace("$issuer", TOKEN_ISSUER).replace("$jwk", jwk))

    def token(self, sub: str, lifetime: int = 300) -> str:
        """A token for ``sub`` valid for ``lifetime`` seconds (negative: expired)."""
        now = int(time.time())
        claims = {"iss": TOKEN_ISSUER, "sub": sub, "aud": "latchkey", "iat": now,
                  "exp": now + lifetime}  # fmt: skip
        return self.key.sign_jwt(claims)


def read_head(sock: socket.socket) -> bytes:
    """An HTTP head off ``sock`` (TLS or not), byte by byte: what follows it stays there."""
    data = b""
    while b"\r\n\r\n" not in data:
        more = sock.recv(1)
        assert more, data
        data += more
    return data


def edge_tunnel(up: UpProcess, host: str = "kms.us-east-1.amazonaws.com") -> ssl.SSLSocket:
    """A TLS connection through the node's edge to ``host``:443 (CONNECT, then TLS trusting the
    node's CA), ready for raw HTTP/1.1."""
    edge = urlsplit(up.info.edge)
    raw = socket.create_connection((str(edge.hostname), int(edge.port or 0)), timeout=10)
    raw.sendall(f"CONNECT {host}:443 HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    assert raw.recv(1024).startswith(b"HTTP/1.1 200")
    ctx = ssl.create_default_context(cafile=up.info.ca_bundle)
    return ctx.wrap_socket(raw, server_hostname=host)


def start_with_config(tmp_path: Path, documents: str) -> UpProcess:
    """`latchkey up` on a fixed cloud port with the seed's server workload and credential
    provider, plus ``documents`` (YAML) for clients, policies and conditions. The port was
    free a moment before: should something take it in between, a new one is tried."""
    for attempt in range(3):
        cloud_port = free_port()
        config = tmp_path / "config.yaml"
        config.write_text(KMS_VIA_LOCAL_CLOUD.format(cloud_port=cloud_port) + documents)
        try:
            return start_up_process(
                tmp_path / "data", "--config", str(config), "--cloud", f"127.0.0.1:{cloud_port}"
            )
        except AssertionError as exc:
            if attempt == 2 or "already in use" not in str(exc):
                raise
    raise AssertionError("unreachable")


# A plain-HTTP Server Workload (plain.internal.example:80) forwarded to 127.0.0.1:{port}, with
# no authentication, open to loopback clients; ``.format(port=...)``.
PLAIN_WORKLOAD = """\
apiVersion: latchkey/v1
kind: ServerWorkload
metadata: {{name: plain}}
spec:
  host: plain.internal.example
  port: 80
  tls: false
  forward: {{host: 127.0.0.1, port: {port}}}
  authentication: {{method: http, scheme: none}}
---
apiVersion: latchkey/v1
kind: CredentialProvider
metadata: {{name: unused}}
spec:
  type: aws-sts-federation
  roleArn: arn:aws:iam::000000000000:role/unused
  audience: sts.amazonaws.com
---
apiVersion: latchkey/v1
kind: ClientWorkload
metadata: {{name: loopback}}
spec: {{identities: [{{sourceCidr: 127.0.0.0/8}}]}}
---
apiVersion: latchkey/v1
kind: AccessPolicy
metadata: {{name: loopback-to-plain}}
spec: {{clients: [loopback], server: plain, credentialProvider: unused}}
"""


# A client workload and a policy naming a client ("nobody") and a server ("aws-kmz") that do
# not exist: what apply and `up --config` must report, at their lines (11 and 12).
MISSING_REFERENCES = """\
apiVersion: latchkey/v1
kind: ClientWorkload
metadata: {name: c-x}
spec:
  identities: [{sourceCidr: 10.9.0.0/16}]
---
apiVersion: latchkey/v1
kind: AccessPolicy
metadata: {name: p-missing}
spec:
  clients: [c-x, nobody]
  server: aws-kmz
  credentialProvider: kms-federation
"""


# -- the local cloud, as the integration tests drive it -----------------------------------------

ACCOUNT = "000000000000"
ROOT = f"arn:aws:iam::{ACCOUNT}:root"
AUDIENCE = "sts.amazonaws.com"
FORM = "application/x-www-form-urlencoded; charset=utf-8"


class Cloud:
    """The node plus every boto3 client a test made, closed before the node stops."""

    def __init__(self, node: NodeHandle) -> None:
        self.node = node
        self._clients: list[Any] = []

    def client(self, service: str, config: BotoConfig | None = None, **creds: str) -> Any:
        made = self.node.client(service, config, **creds)
        self._clients.append(made)
        return made

    def as_key(self, service: str, key: Mapping[str, Any]) -> Any:
        """A client signing with ``key`` (an access key, or session credentials)."""
        creds = {
            "aws_access_key_id": key["AccessKeyId"],
            "aws_secret_access_key": key["SecretAccessKey"],
        }
        if "SessionToken" in key:
            creds["aws_session_token"] = key["SessionToken"]
        return self.client(service, **creds)

    def unvalidated(self, service: str, **creds: str) -> Any:
        """Like ``client``, without botocore's parameter checks (to see the server refuse what
        botocore would)."""
        config = BotoConfig(retries={"max_attempts": 1}, proxies={}, parameter_validation=False)
        return self.client(service, config, **creds)

    def close(self) -> None:
        for made in self._clients:
            made.close()


def error_response(call: Callable[..., Any], *args: Any, **kwargs: Any) -> dict[str, Any]:
    """Call what must fail; keep only its error response (the ClientError's traceback holds
    the HTTP connection open, and the node does not close live connections when it stops)."""
    try:
        call(*args, **kwargs)
    except ClientError as err:
        return dict(err.response)
    raise AssertionError(f"{getattr(call, '__name__', call)} succeeded")


class Refusal(NamedTuple):
    code: str
    status: int
    message: str


def refused(call: Callable[..., Any], *args: Any, **kwargs: Any) -> Refusal:
    """Call what must fail; keep only code/status/message (see ``error_response``)."""
    resp = error_response(call, *args, **kwargs)
    status = resp["ResponseMetadata"]["HTTPStatusCode"]
    return Refusal(resp["Error"]["Code"], status, resp["Error"].get("Message", ""))


def policy(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def allow(action: str | list[str], principal: str | None = None, **extra: Any) -> dict[str, Any]:
    stmt: dict[str, Any] = {"Effect": "Allow", "Action": action, "Resource": "*", **extra}
    if principal is not None:
        stmt["Principal"] = {"AWS": principal}
    return stmt


def deny(action: str | list[str], principal: str | None = None) -> dict[str, Any]:
    return allow(action, principal) | {"Effect": "Deny"}


def creds_of(resp: Any, **override: str) -> dict[str, str]:
    """boto3 client arguments for the credentials of an STS answer."""
    c = resp["Credentials"]
    out = {
        "aws_access_key_id": c["AccessKeyId"],
        "aws_secret_access_key": c["SecretAccessKey"],
        "aws_session_token": c["SessionToken"],
    }
    out.update(override)
    return out


def post_raw(cloud: Cloud, params: Mapping[str, str]) -> tuple[int, str, str]:
    """A hand-made, unsigned query-protocol POST: (status, error code or "", body text)."""
    parts = urlsplit(cloud.node.info.cloud)
    ctx = ssl.create_default_context(cafile=cloud.node.info.ca_bundle)
    conn = http.client.HTTPSConnection(str(parts.hostname), parts.port, context=ctx, timeout=10)
    try:
        conn.request("POST", "/", urlencode(params), {"Content-Type": FORM})
        resp = conn.getresponse()
        status, body = resp.status, resp.read()
    finally:
        conn.close()
    code = ET.fromstring(body).findtext(".//{*}Code") if status != 200 else None  # noqa: S314
    return status, code or "", body.decode()


# -- STS: the tests' own role, web identity tokens, a fake OIDC issuer and a trap ---------------

ROLE_NAME = "sts-test"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/{ROLE_NAME}"
SUBJECT = "local-apps"
THUMBPRINT = "0" * 40
FAKE_ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/fake-trust"


def host_port(cloud: Cloud) -> str:
    return urlsplit(cloud.node.info.idp).netloc


def provider_arn(cloud: Cloud, url: str | None = None) -> str:
    netloc = urlsplit(url).netloc if url else host_port(cloud)
    return f"arn:aws:iam::{ACCOUNT}:oidc-provider/{netloc}"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(part: str) -> dict[str, Any]:
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def trust_document(principal: str, conditions: Mapping[str, Any] | None = None,
                   actions: str | list[str] = "sts:AssumeRoleWithWebIdentity") -> str:  # fmt: skip
    statement: dict[str, Any] = {"Effect": "Allow", "Principal": {"Federated": principal},
                                 "Action": actions}  # fmt: skip
    if conditions:
        statement["Condition"] = {"StringEquals": dict(conditions)}
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


def create_role(cloud: Cloud, name: str, conditions: dict[str, str], **kw: Any) -> str:
    """A role trusting the node's idp under ``conditions``."""
    document = trust_document(provider_arn(cloud), conditions)
    role = cloud.client("iam").create_role(RoleName=name, AssumeRolePolicyDocument=document, **kw)
    return str(role["Role"]["Arn"])


def add_sts_role(cloud: Cloud) -> Cloud:
    """Role ``sts-test`` (``ROLE_ARN``): trusts the node's idp (audience only), may use KMS.

    The ``test_cloud_sts*`` modules make their ``cloud`` fixture with it, so nothing depends on
    the seeded role's trust policy."""
    create_role(cloud, ROLE_NAME, {f"{host_port(cloud)}:aud": AUDIENCE})
    cloud.client("iam").put_role_policy(
        RoleName=ROLE_NAME, PolicyName="kms", PolicyDocument=policy(allow("kms:*"))
    )
    return cloud


class QuietHandler(BaseHTTPRequestHandler):
    """A test upstream's handler: no access log on stderr, and a one-call JSON answer."""

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def answer_json(self, body: bytes, status: int = 200) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def node_ca(node: NodeHandle) -> CertificateAuthority:
    data = node.data_dir
    return load_or_create_ca(data / "ca.pem", data / "ca-key.pem", now=dt.datetime.now(dt.UTC))


class FakeIssuer:
    """An OIDC issuer on 127.0.0.1 (HTTPS, leaf from the node's CA) with its own ES256 key.

    ``requests`` lists every path asked for; ``discovery``, ``status`` and ``overrides``
    (path -> status, headers, body) change its answers.
    """

    def __init__(self, ca: CertificateAuthority, *, host: str = "127.0.0.1") -> None:
        cert, key = ca.mint_leaf(["127.0.0.1", "localhost"], now=dt.datetime.now(dt.UTC))
        self.key = SigningKey.generate()
        self.requests: list[str] = []
        self.status = 200
        self.discovery: dict[str, Any] = {}
        self.overrides: dict[str, tuple[int, dict[str, str], bytes]] = {}
        issuer = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:
                issuer.requests.append(self.path)
                status, headers, data = issuer.answer(self.path)
                self.send_response(status)
                for name, value in [("Content-Length", str(len(data))), *headers.items()]:
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._server.socket = server_ssl_context(cert, key).wrap_socket(
            self._server.socket, server_side=True
        )
        self.url = f"https://{host}:{self._server.server_address[1]}"
        self.discovery = {"issuer": self.url, "jwks_uri": f"{self.url}/jwks",
                          "id_token_signing_alg_values_supported": ["ES256"]}  # fmt: skip
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.02,), daemon=True
        )
        self._thread.start()

    def answer(self, path: str) -> tuple[int, dict[str, str], bytes]:
        if path in self.overrides:
            return self.overrides[path]
        json_type = {"Content-Type": "application/json"}
        if path == "/.well-known/openid-configuration":
            return self.status, json_type, json.dumps(self.discovery).encode()
        if path == "/jwks":
            return self.status, json_type, json.dumps(self.key.jwks()).encode()
        return 404, json_type, b"{}"

    def jwks_requests(self) -> int:
        return self.requests.count("/jwks")

    def token(self, header: Mapping[str, Any] | None = None, *, key: SigningKey | None = None,
              **claims: Any) -> str:  # fmt: skip
        """A token signed by this issuer's key (or ``key``); claims default to a valid one."""
        now = int(dt.datetime.now(dt.UTC).timestamp())
        body = {"iss": self.url, "sub": SUBJECT, "aud": AUDIENCE, "iat": now, "nbf": now,
                "exp": now + 300} | claims  # fmt: skip
        body = {k: v for k, v in body.items() if v is not None}
        signer = key or self.key
        head = {"alg": "ES256", "typ": "JWT", "kid": signer.kid} | dict(header or {})
        registry = jws.JWSRegistry(strict_check_header=False)  # lets tests add any header
        return jwt.encode(head, body, ECKey.import_key(signer.private_pem()), registry=registry)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


class TrapServer:
    """A plain HTTP server that records any request: tokens may point at it, we must not go."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        trap = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:
                trap.requests.append(self.path)
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.02,), daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


@contextlib.contextmanager
def open_fake_issuer(cloud: Cloud) -> Iterator[FakeIssuer]:
    """A fake issuer registered with IAM, and role ``fake-trust`` trusting it (no conditions)."""
    issuer = FakeIssuer(node_ca(cloud.node))
    try:
        iam = cloud.client("iam")
        iam.create_open_id_connect_provider(
            Url=issuer.url, ClientIDList=[AUDIENCE], ThumbprintList=[THUMBPRINT]
        )
        document = trust_document(provider_arn(cloud, issuer.url))
        iam.create_role(RoleName="fake-trust", AssumeRolePolicyDocument=document)
        yield issuer
    finally:
        issuer.close()
