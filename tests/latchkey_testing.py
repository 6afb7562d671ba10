"""Test support: a latchkey node in-process (frozen-able clock) or as a real `latchkey up`.

Nothing here mocks latchkey's own parts: nodes listen on 127.0.0.1 with real TLS, real SQLite
files, and clients are the real boto3 / aws CLI.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config as BotoConfig

from latchkey.clock import Clock, SystemClock
from latchkey.node import Listen, Node, RunInfo

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

    def client(self, service: str, **creds: Any) -> Any:
        """A boto3 client straight at the local cloud (admin keys unless given)."""
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
            config=BotoConfig(retries={"max_attempts": 1}, proxies={}),
            **creds,
        )

    def run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)


def start_node_thread(
    data_dir: Path, *, clock: Clock | None = None, config: list[Path] | None = None
) -> tuple[NodeHandle, threading.Thread]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    node = Node(data_dir, config_paths=config, listen=ANY_PORT, clock=clock or SystemClock())
    fut: Future[RunInfo] = asyncio.run_coroutine_threadsafe(node.start(), loop)
    info = fut.result(30)
    return NodeHandle(node, info, data_dir, loop), thread


def stop_node_thread(handle: NodeHandle, thread: threading.Thread) -> None:
    handle.run(handle.node.stop())
    handle.loop.call_soon_threadsafe(handle.loop.stop)
    thread.join(10)
    handle.loop.close()


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

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.log_path.read_text()


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
            return UpProcess(proc, data_dir, log_path, info)
        time.sleep(0.05)
    proc.kill()
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


def start_with_config(tmp_path: Path, documents: str) -> UpProcess:
    """`latchkey up` on a fixed cloud port with the seed's server workload and credential
    provider, plus ``documents`` (YAML) for clients, policies and conditions."""
    cloud_port = free_port()
    config = tmp_path / "config.yaml"
    config.write_text(KMS_VIA_LOCAL_CLOUD.format(cloud_port=cloud_port) + documents)
    return start_up_process(
        tmp_path / "data", "--config", str(config), "--cloud", f"127.0.0.1:{cloud_port}"
    )
