"""Client workloads told apart by the calling process: the aws CLI is allowed, curl is not."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from latchkey_testing import aws, start_up_process

pytestmark = pytest.mark.e2e

CURL = shutil.which("curl")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


CONFIG = """\
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
apiVersion: latchkey/v1
kind: ClientWorkload
metadata: {{name: python-tools}}
spec:
  identities:
    - sourceCidr: 127.0.0.0/8
    - process: {{exe: "{python}", uid: {uid}}}
---
apiVersion: latchkey/v1
kind: ClientWorkload
metadata: {{name: curl-users}}
spec:
  identities:
    - process: {{exe: "*/curl"}}
---
apiVersion: latchkey/v1
kind: AccessPolicy
metadata: {{name: python-tools-to-kms}}
spec:
  clients: [python-tools]
  server: aws-kms
  credentialProvider: kms-federation
"""


@pytest.mark.skipif(CURL is None, reason="curl is not installed")
def test_process_identity_tells_the_aws_cli_from_curl(tmp_path: Path) -> None:
    cloud_port = free_port()
    config = tmp_path / "process.yaml"
    python = os.path.realpath(sys.executable)
    config.write_text(CONFIG.format(cloud_port=cloud_port, python=python, uid=os.getuid()))
    proc = start_up_process(
        tmp_path / "data", "--config", str(config), "--cloud", f"127.0.0.1:{cloud_port}"
    )
    try:
        env = proc.env()
        listed = aws(env, "kms", "list-keys")
        assert json.loads(listed.stdout)["Keys"] == []

        assert CURL is not None
        result = subprocess.run(
            [CURL, "-sS", "--proxy", env["HTTPS_PROXY"], "--cacert", env["AWS_CA_BUNDLE"],
             "--aws-sigv4", "aws:amz:us-east-1:kms",
             "--user", f"{env['AWS_ACCESS_KEY_ID']}:{env['AWS_SECRET_ACCESS_KEY']}",
             "-H", "X-Amz-Target: TrentService.ListKeys",
             "-H", "Content-Type: application/x-amz-json-1.1",
             "-d", "{}", "-D", "-", "https://kms.us-east-1.amazonaws.com/"],
            capture_output=True, text=True, timeout=30, env=env, check=False,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        # curl is recognised (as curl-users), but no access policy lets curl-users in.
        inner = result.stdout.split("HTTP/1.1 200 Connection established", 1)[1].lstrip()
        assert inner.startswith("HTTP/1.1 403")
        assert "x-latchkey-reason: NoMatchingPolicy" in inner
        body = json.loads(inner.replace("\r\n", "\n").split("\n\n", 1)[1])
        assert body["__type"] == "AccessDeniedException"
        assert "curl-users" in body["message"]

    finally:
        log = proc.stop()
    assert "allowed:python-tools-to-kms" in log
    assert "denied:NoMatchingPolicy" in log


def test_unmet_process_identity_is_refused_with_the_reason(tmp_path: Path) -> None:
    cloud_port = free_port()
    config = tmp_path / "process.yaml"
    python = os.path.realpath(sys.executable)
    wrong_uid = os.getuid() + 4242
    config.write_text(CONFIG.format(cloud_port=cloud_port, python=python, uid=wrong_uid))
    proc = start_up_process(
        tmp_path / "data", "--config", str(config), "--cloud", f"127.0.0.1:{cloud_port}"
    )
    try:
        denied = aws(proc.env(), "kms", "list-keys", check=False)
    finally:
        proc.stop()
    assert denied.returncode != 0
    assert "AccessDeniedException" in denied.stderr
    assert "IdentityNotMatched" in denied.stderr
    assert f"python-tools: uid {os.getuid()} is not {wrong_uid}" in denied.stderr
