"""The processes the edge bench starts: the TLS upstream, ``latchkey up``, and ``mitmdump``.

All listen on 127.0.0.1 only, each on a free port, each logging to a file in the bench's
temporary directory; ``taskset`` pins them when the bench asks. ``Proc.stop`` ends them.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import venv
from dataclasses import dataclass
from pathlib import Path

from edge_upstream import NGINX, BenchPki, nginx_command, nginx_config

LOOPBACK = "127.0.0.1"
KMS_HOST = "kms.us-east-1.amazonaws.com"
WILDCARD_DOMAIN = "leafbench.amazonaws.com"  # *.leafbench.amazonaws.com: the leaf-cache check
BENCH_DIR = Path(__file__).resolve().parent
MITM_VENV = BENCH_DIR / ".venv-mitm"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


def pinned(cmd: list[str], cpu: int | None) -> list[str]:
    return cmd if cpu is None else ["taskset", "-c", str(cpu), *cmd]


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without AWS settings or proxies, plus ``extra``."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("AWS_") and "proxy" not in k.lower()
    }
    return env | extra


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid  # taskset execs the command: same pid

    def check(self) -> None:
        if self.popen.poll() is not None:
            tail = self.log.read_text(errors="replace")[-3000:]
            raise RuntimeError(f"{self.name} exited {self.popen.returncode}:\n{tail}")

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(15)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)


def spawn(name: str, cmd: list[str], work: Path, cpu: int | None, env: dict[str, str]) -> Proc:
    log = work / f"{name}.log"
    with log.open("wb") as out:
        popen = subprocess.Popen(
            pinned(cmd, cpu), stdout=out, stderr=subprocess.STDOUT, env=env, cwd=work
        )
    return Proc(name, popen, log)


def wait_for_port(proc: Proc, port: int, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while True:
        proc.check()
        with contextlib.suppress(OSError), socket.create_connection((LOOPBACK, port), 0.5):
            return
        if time.monotonic() > deadline:
            proc.stop()
            raise RuntimeError(f"{proc.name} did not listen on {port} within {seconds:g} s")
        time.sleep(0.05)


# -- the upstream -----------------------------------------------------------------------------


def start_upstream(work: Path, pki: BenchPki, cpu: int | None, *, python: bool) -> tuple[Proc, int]:
    """nginx when installed (and not ``python``), else bench/edge_upstream.py; and its port."""
    port = free_port()
    if NGINX.exists() and not python:
        proc = spawn("nginx", nginx_command(work, nginx_config(work, port, pki)), work, cpu,
                     clean_env())  # fmt: skip
    else:
        cmd = [sys.executable, str(BENCH_DIR / "edge_upstream.py"), "--port", str(port)]
        cmd += ["--cert", str(pki.cert), "--key", str(pki.key)]
        proc = spawn("python-upstream", cmd, work, cpu, clean_env())
    wait_for_port(proc, port)
    return proc, port


# -- latchkey ---------------------------------------------------------------------------------

LATCHKEY_CONFIG = """\
apiVersion: latchkey/v1
kind: ServerWorkload
metadata: {{name: aws-kms}}
spec:
  host: {kms_host}
  port: 443
  tls: true
  forward: {{host: 127.0.0.1, port: {upstream_port}, tls: true}}
  authentication: {{method: http, scheme: aws-sigv4}}
---
apiVersion: latchkey/v1
kind: ServerWorkload
metadata: {{name: leaf-bench}}
spec:
  host: "*.{wildcard}"
  port: 443
  tls: true
  forward: {{host: 127.0.0.1, port: {upstream_port}, tls: true}}
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
apiVersion: latchkey/v1
kind: ClientWorkload
metadata: {{name: bench}}
spec:
  identities:
    - sourceCidr: 127.0.0.0/8
---
apiVersion: latchkey/v1
kind: AccessPolicy
metadata: {{name: bench-to-kms}}
spec:
  clients: [bench]
  server: aws-kms
  credentialProvider: kms-federation
---
apiVersion: latchkey/v1
kind: AccessPolicy
metadata: {{name: bench-to-leaf-bench}}
spec:
  clients: [bench]
  server: leaf-bench
  credentialProvider: kms-federation
"""


@dataclass
class Latchkey:
    proc: Proc
    edge_port: int
    ca: Path  # the latchkey CA: what clients of the edge trust


def start_latchkey(
    work: Path, pki: BenchPki, upstream_port: int, cpu: int | None, log_level: str
) -> Latchkey:
    """``latchkey up`` on a fresh data directory, its Server Workloads forwarding to the
    bench upstream. The edge verifies the upstream (``tlsVerification: full``, the default):
    ``SSL_CERT_FILE`` makes the bench CA its default trust store."""
    data = work / "latchkey"
    cloud_port = free_port()
    config = work / "latchkey.yaml"
    config.write_text(
        LATCHKEY_CONFIG.format(
            kms_host=KMS_HOST,
            wildcard=WILDCARD_DOMAIN,
            upstream_port=upstream_port,
            cloud_port=cloud_port,
        )
    )
    exe = Path(sys.executable).parent / "latchkey"
    cmd = [str(exe), "up", "--data-dir", str(data), "--config", str(config)]
    cmd += ["--edge", "0", "--cloud", f"{LOOPBACK}:{cloud_port}", "--idp", "0"]
    cmd += ["--log-level", log_level]
    env = clean_env(SSL_CERT_FILE=str(pki.ca), HOME=str(work))
    proc = spawn("latchkey", cmd, work, cpu, env)
    deadline = time.monotonic() + 60
    while True:
        proc.check()
        with contextlib.suppress(OSError, ValueError, KeyError):
            info = json.loads((data / "run.json").read_text())
            edge_port = int(info["edge"].rsplit(":", 1)[1])
            return Latchkey(proc, edge_port, Path(info["ca_bundle"]))
        if time.monotonic() > deadline:
            proc.stop()
            raise RuntimeError("latchkey up did not start within 60 s")
        time.sleep(0.05)


# -- mitmproxy --------------------------------------------------------------------------------


@dataclass
class Mitm:
    proc: Proc
    port: int
    ca: Path


def mitmdump_executable(log: list[str]) -> Path | None:
    """bench/.venv-mitm/bin/mitmdump, installing mitmproxy there first if needed;
    ``None`` (and why, in ``log``) if that fails."""
    exe = MITM_VENV / "bin" / "mitmdump"
    if exe.exists():
        return exe
    try:
        if not (MITM_VENV / "bin" / "python").exists():
            venv.EnvBuilder(with_pip=True).create(MITM_VENV)
        pip = [str(MITM_VENV / "bin" / "python"), "-m", "pip", "install", "--quiet", "mitmproxy"]
        subprocess.run(pip, check=True, capture_output=True, timeout=900)
    except (OSError, subprocess.SubprocessError) as exc:
        err = getattr(exc, "stderr", b"") or b""
        log.append(f"mitmproxy install into {MITM_VENV} failed: {exc} {err[-500:]!r}")
        return None
    return exe if exe.exists() else None


def mitm_version(exe: Path) -> str:
    out = subprocess.run([str(exe), "--version"], capture_output=True, text=True, timeout=60)
    first = out.stdout.splitlines()[0] if out.stdout else ""
    return first.split(":", 1)[-1].strip()


def start_mitmdump(exe: Path, work: Path, pki: BenchPki, cpu: int | None) -> Mitm:
    """mitmdump as an explicit proxy on loopback, quiet, verifying the upstream against the
    bench CA; its own CA is made in a fresh confdir."""
    port = free_port()
    confdir = work / "mitm"
    confdir.mkdir(exist_ok=True)
    cmd = [str(exe), "--listen-host", LOOPBACK, "--listen-port", str(port), "-q"]
    cmd += ["--set", f"confdir={confdir}", "--set", f"ssl_verify_upstream_trusted_ca={pki.ca}"]
    cmd += ["--set", "flow_detail=0"]
    proc = spawn("mitmdump", cmd, work, cpu, clean_env(HOME=str(work)))
    wait_for_port(proc, port)
    ca = confdir / "mitmproxy-ca-cert.pem"
    deadline = time.monotonic() + 30
    while not ca.exists():
        proc.check()
        if time.monotonic() > deadline:
            proc.stop()
            raise RuntimeError(f"mitmdump wrote no CA to {ca}")
        time.sleep(0.05)
    return Mitm(proc, port, ca)


def have_taskset() -> bool:
    return shutil.which("taskset") is not None and (os.cpu_count() or 1) >= 2
