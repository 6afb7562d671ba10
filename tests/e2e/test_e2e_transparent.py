"""Transparent mode in a network namespace the test creates: iptables REDIRECT sends a
workload's connections (another uid, no HTTPS_PROXY) to `latchkey up --transparent`.

Inside the namespace: `lo` with three documentation addresses standing in for the internet
(198.51.100.10 kms.us-east-1.amazonaws.com, .20 other.example, .30 plain.internal.example),
named by an /etc/hosts bind-mounted in the namespace's private mount namespace (the machine's
own /etc/hosts is untouched; every resolver, boto3's and the aws CLI's included, sees it).
The node runs as root; the rules `latchkey edge iptables` prints redirect uid 65534's ports 443
and 80 to it, and exempt root, so the edge's own upstream connections go where they were going.

Needs root (a network and mount namespace, two uids in it) and the `iptables` command (Debian
package `iptables`); skipped with the reason otherwise.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shlex
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from latchkey.crypto.x509 import load_or_create_ca
from latchkey.node import RunInfo
from latchkey_testing import VENV_BIN, client_base_env

pytestmark = pytest.mark.e2e

CLIENT_UID = 65534
KMS_ADDRESS, OTHER_ADDRESS, PLAIN_ADDRESS = "198.51.100.10", "198.51.100.20", "198.51.100.30"
HOSTS = f"""\
127.0.0.1 localhost
{KMS_ADDRESS} kms.us-east-1.amazonaws.com
{OTHER_ADDRESS} other.example
{PLAIN_ADDRESS} plain.internal.example
"""
EDGE, TRANSPARENT, CLOUD, IDP, PLAIN_UPSTREAM = 8000, 8001, 4566, 8443, 9080

CONFIG = f"""\
apiVersion: latchkey/v1
kind: ServerWorkload
metadata: {{name: aws-kms}}
spec:
  host: kms.us-east-1.amazonaws.com
  port: 443
  tls: true
  forward: {{host: 127.0.0.1, port: {CLOUD}, tls: true}}
  authentication: {{method: http, scheme: aws-sigv4}}
---
apiVersion: latchkey/v1
kind: ServerWorkload
metadata: {{name: plain}}
spec:
  host: plain.internal.example
  port: 80
  tls: false
  forward: {{host: 127.0.0.1, port: {PLAIN_UPSTREAM}}}
  authentication: {{method: http, scheme: none}}
---
apiVersion: latchkey/v1
kind: CredentialProvider
metadata: {{name: kms-federation}}
spec:
  type: aws-sts-federation
  roleArn: arn:aws:iam::000000000000:role/latchkey-kms
  audience: sts.amazonaws.com
  stsEndpoint: https://127.0.0.1:{CLOUD}
---
apiVersion: latchkey/v1
kind: ClientWorkload
metadata: {{name: ns-app}}
spec:
  identities:
    - sourceCidr: 198.51.100.0/24
    - process: {{uid: {CLIENT_UID}}}
---
apiVersion: latchkey/v1
kind: AccessPolicy
metadata: {{name: ns-app-to-kms}}
spec: {{clients: [ns-app], server: aws-kms, credentialProvider: kms-federation}}
---
apiVersion: latchkey/v1
kind: AccessPolicy
metadata: {{name: ns-app-to-plain}}
spec: {{clients: [ns-app], server: plain, credentialProvider: kms-federation}}
"""

# Runs as uid 65534 in the namespace, with no proxy settings: every connection it makes to
# ports 443 and 80 is redirected by the kernel.
CLIENT = """\
import http.client, json, socket, ssl, sys
import boto3
from botocore.config import Config

shared = sys.argv[1]
out = {}
kms = boto3.client("kms", region_name="us-east-1", config=Config(retries={"max_attempts": 1}))
key = kms.create_key(Description="transparent")["KeyMetadata"]["KeyId"]
blob = kms.encrypt(KeyId=key, Plaintext=b"transparent-plaintext")["CiphertextBlob"]
out["decrypted"] = kms.decrypt(CiphertextBlob=blob)["Plaintext"].decode()
out["key"] = key

ctx = ssl.create_default_context(cafile=f"{shared}/other-ca.pem")
with socket.create_connection(("other.example", 443), timeout=10) as raw:
    with ctx.wrap_socket(raw, server_hostname="other.example") as tls:
        out["other_says"] = tls.recv(100).decode()

conn = http.client.HTTPConnection("plain.internal.example", 80, timeout=10)
conn.request("GET", "/hello.txt")
resp = conn.getresponse()
out["plain"] = [resp.status, resp.read().decode()]
conn.close()

with socket.create_connection(("127.0.0.1", int(sys.argv[2])), timeout=10) as direct:
    out["direct"] = direct.recv(100).decode()

if sys.argv[3] == "ipv6":  # the same Server Workload over IPv6 (ip6tables, IP6T_SO_ORIGINAL_DST)
    ctx = ssl.create_default_context(cafile=f"{shared}/ca.pem")
    with socket.create_connection(("2001:db8::10", 443), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="kms.us-east-1.amazonaws.com") as tls:
            out["v6_issuer"] = dict(x[0] for x in tls.getpeercert()["issuer"])
            tls.sendall(b"GET /v6 HTTP/1.1\\r\\nHost: kms.us-east-1.amazonaws.com\\r\\n\\r\\n")
            out["v6_answer"] = tls.recv(4096).decode()
print(json.dumps(out))
"""

# The site that is no Server Workload, with a certificate from its own CA.
OTHER_SITE = """\
import socket, ssl, sys
shared = sys.argv[1]
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(f"{shared}/other.pem", f"{shared}/other-key.pem")
server = socket.create_server((sys.argv[2], 443))
print("ready", flush=True)
while True:
    conn, _ = server.accept()
    try:
        with ctx.wrap_socket(conn, server_side=True) as tls:
            tls.sendall(b"hello from other.example")
    except OSError:
        pass
"""


def _probe(argv: list[str]) -> str:
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    return "" if result.returncode == 0 else (result.stderr or result.stdout).strip()


class Namespace:
    """A private network + mount namespace held open by a `sleep`; commands enter it."""

    def __init__(self) -> None:
        self._holder = subprocess.Popen(
            ["unshare", "--net", "--mount", "--propagation", "private", "--", "sleep", "600"]
        )
        mine = os.readlink("/proc/self/ns/net")
        deadline = time.monotonic() + 10
        while os.readlink(f"/proc/{self._holder.pid}/ns/net") == mine:
            if time.monotonic() > deadline or self._holder.poll() is not None:
                raise AssertionError("unshare did not create a namespace")
            time.sleep(0.01)

    def cmd(self, *argv: str) -> list[str]:
        return ["nsenter", "-t", str(self._holder.pid), "-n", "-m", "--", *argv]

    def run(self, *argv: str) -> str:
        result = subprocess.run(self.cmd(*argv), capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, f"{shlex.join(argv)}: {result.stderr}"
        return result.stdout

    def as_client(self, *argv: str) -> list[str]:
        """``argv`` as uid 65534; it keeps only CAP_DAC_READ_SEARCH, to read this venv
        wherever it lives (e.g. under a 0700 home directory)."""
        drop = ["setpriv", f"--reuid={CLIENT_UID}", f"--regid={CLIENT_UID}", "--clear-groups",
                "--inh-caps=+dac_read_search", "--ambient-caps=+dac_read_search", "--"]  # fmt: skip
        return self.cmd(*drop, *argv)

    def close(self) -> None:
        self._holder.kill()
        self._holder.wait(10)


def skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "needs root: a network namespace with two uids in it (edge and workload)"
    for tool in ("unshare", "nsenter", "setpriv", "ip"):
        if shutil.which(tool) is None:
            return f"`{tool}` is not installed"
    if shutil.which("iptables") is None:
        return "`iptables` is not installed (Debian package iptables)"
    why = _probe(["unshare", "--net", "--mount", "--", "iptables", "-t", "nat", "-S"])
    if why:
        return f"cannot create a network namespace with a nat table here: {why}"
    return None


@pytest.fixture
def namespace() -> Iterator[Namespace]:
    reason = skip_reason()
    if reason is not None:
        pytest.skip(reason)
    ns = Namespace()
    try:
        yield ns
    finally:
        ns.close()


@pytest.fixture
def shared() -> Iterator[Path]:
    """A directory uid 65534 can read (pytest's tmp_path is private to root)."""
    path = Path(tempfile.mkdtemp(prefix="latchkey-transparent-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _start(ns: Namespace, argv: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(ns.cmd(*argv), stdout=out, stderr=subprocess.STDOUT,
                                env=client_base_env(log.parent))  # fmt: skip


def _wait_for(check: Callable[[], bool], what: str, log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"{what} did not start:\n{log.read_text()}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def test_redirected_workload_goes_through_the_edge(
    namespace: Namespace, shared: Path, tmp_path: Path
) -> None:
    ns = namespace
    ns.run("ip", "link", "set", "lo", "up")
    for address in (KMS_ADDRESS, OTHER_ADDRESS, PLAIN_ADDRESS):
        ns.run("ip", "addr", "add", f"{address}/32", "dev", "lo")
    add_v6 = ns.cmd("ip", "-6", "addr", "add", "2001:db8::10/128", "dev", "lo")
    ipv6 = subprocess.run(add_v6, capture_output=True, check=False).returncode == 0
    (shared / "hosts").write_text(HOSTS)
    ns.run("mount", "--bind", str(shared / "hosts"), "/etc/hosts")

    other_ca = load_or_create_ca(tmp_path / "o-ca.pem", tmp_path / "o-ca-key.pem",
                                 now=dt.datetime.now(dt.UTC))  # fmt: skip
    cert, key = other_ca.mint_leaf(["other.example"], now=dt.datetime.now(dt.UTC))
    (shared / "other-ca.pem").write_bytes(other_ca.cert_pem)
    (shared / "other.pem").write_bytes(cert)
    (shared / "other-key.pem").write_bytes(key)
    (shared / "client.py").write_text(CLIENT)
    (shared / "site.py").write_text(OTHER_SITE)
    (shared / "www").mkdir()
    (shared / "www" / "hello.txt").write_text("plain upstream says hi")
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG)
    data = tmp_path / "data"

    python = str(VENV_BIN / "python")
    procs: list[subprocess.Popen[bytes]] = []
    up_log = tmp_path / "up.log"
    try:
        site_log = tmp_path / "site.log"
        site = [python, str(shared / "site.py"), str(shared), OTHER_ADDRESS]
        procs.append(_start(ns, site, site_log))
        www = ["--bind", "127.0.0.1", "--directory", str(shared / "www")]
        procs.append(_start(ns, [python, "-m", "http.server", str(PLAIN_UPSTREAM), *www],
                            tmp_path / "plain.log"))  # fmt: skip
        up = [str(VENV_BIN / "latchkey"), "up", "--data-dir", str(data), "--config", str(config),
              "--edge", f"127.0.0.1:{EDGE}", "--cloud", f"127.0.0.1:{CLOUD}",
              "--idp", f"127.0.0.1:{IDP}", "--transparent", f"127.0.0.1:{TRANSPARENT}",
              "--log-level", "debug"]  # fmt: skip
        if ipv6:
            up += ["--transparent", f"[::1]:{TRANSPARENT}"]
        procs.append(_start(ns, up, up_log))
        _wait_for(lambda: (data / "run.json").exists(), "latchkey up", up_log)
        _wait_for(lambda: "ready" in site_log.read_text(), "the other site", site_log)
        info = RunInfo.load(data)
        v6_listener = [f"[::1]:{TRANSPARENT}"] if ipv6 else []
        assert info.transparent == [f"127.0.0.1:{TRANSPARENT}", *v6_listener]

        printed = subprocess.run(
            [str(VENV_BIN / "latchkey"), "edge", "iptables", "--uid", str(CLIENT_UID),
             "--port", "443", "--port", "80", "--edge-port", str(TRANSPARENT), "--edge-uid", "0",
             *(["--ipv6"] if ipv6 else [])],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        for line in printed.splitlines():
            ns.run(*shlex.split(line))
        applied = ns.run("iptables", "-t", "nat", "-S")
        assert "--uid-owner 65534 -m tcp --dport 443 -j REDIRECT --to-ports 8001" in applied

        (shared / "ca.pem").write_bytes(Path(info.ca_bundle).read_bytes())
        env = client_base_env(shared) | {
            "AWS_CA_BUNDLE": str(shared / "ca.pem"),
            "AWS_ACCESS_KEY_ID": "AKIALATCHKEYPLACEHLD",
            "AWS_SECRET_ACCESS_KEY": "latchkey-placeholder-secret-not-a-real-key",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
        client = subprocess.run(
            ns.as_client(python, str(shared / "client.py"), str(shared), str(TRANSPARENT),
                         "ipv6" if ipv6 else "ipv4-only"),
            capture_output=True, text=True, timeout=60, env=env, check=False,
        )  # fmt: skip
        assert client.returncode == 0, client.stderr + up_log.read_text()
        out = json.loads(client.stdout)
        describe = ns.as_client(
            str(VENV_BIN / "aws"), "kms", "describe-key", "--key-id", out["key"]
        )
        cli = subprocess.run(describe, capture_output=True, text=True, timeout=60, env=env)
        assert cli.returncode == 0, cli.stderr
    finally:
        for proc in reversed(procs):
            _stop(proc)
    log = up_log.read_text()

    # KMS through the edge: re-signed with federated credentials, the placeholder never upstream
    assert out["decrypted"] == "transparent-plaintext"
    assert json.loads(cli.stdout)["KeyMetadata"]["KeyId"] == out["key"]
    audit = [json.loads(line) for line in (data / "audit" / "cloud.jsonl").read_text().splitlines()]
    decrypts = [e for e in audit if e.get("eventName") == "Decrypt"]
    assert decrypts[-1]["userIdentity"]["type"] == "AssumedRole"
    assert "AKIALATCHKEYPLACEHLD" not in json.dumps(audit)
    # identified by its source address and its process (uid) through the redirect
    assert f"{KMS_ADDRESS} aws-kms POST / -> 200 allowed:ns-app-to-kms" in log
    # plain HTTP named by its Host header, forwarded to the Server Workload's upstream
    assert out["plain"] == [200, "plain upstream says hi"]
    assert f"{PLAIN_ADDRESS} plain GET /hello.txt -> 200 allowed:ns-app-to-plain" in log
    # another TLS site: tunnelled byte for byte; the client, trusting only that site's own CA
    # (not the node's), completed the handshake
    assert out["other_says"] == "hello from other.example"
    assert f"-> {OTHER_ADDRESS}:443 (tls other.example) tunnelled" in log
    # a connection straight to the transparent port (not redirected) is closed, never relayed
    assert out["direct"] == ""
    assert "connected to the listener itself, not redirected" in log
    if ipv6:  # intercepted over IPv6: the edge's certificate, and its policy (the source
        # address 2001:db8::10 is outside the client workload's 198.51.100.0/24)
        assert out["v6_issuer"]["commonName"] == "latchkey CA"
        assert out["v6_answer"].startswith("HTTP/1.1 403")
        assert "x-latchkey-reason: IdentityNotMatched" in out["v6_answer"]
        assert "2001:db8::10 aws-kms GET /v6 -> 403 denied:IdentityNotMatched" in log
