"""Client workloads told apart by the calling process: the aws CLI is allowed, curl is not."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from latchkey_testing import access_events, aws, outcomes, start_with_config

pytestmark = pytest.mark.e2e

CURL = shutil.which("curl")


CLIENTS = """\
apiVersion: latchkey/v1
kind: ClientWorkload
metadata: {name: python-tools}
spec:
  identities:
    - sourceCidr: 127.0.0.0/8
    - process: {exe: "$python", uid: $uid}
---
apiVersion: latchkey/v1
kind: ClientWorkload
metadata: {name: curl-users}
spec:
  identities:
    - process: {exe: "*/curl"}
---
apiVersion: latchkey/v1
kind: AccessPolicy
metadata: {name: python-tools-to-kms}
spec:
  clients: [python-tools]
  server: aws-kms
  credentialProvider: kms-federation
"""


def clients(uid: int) -> str:
    python = os.path.realpath(sys.executable)
    return CLIENTS.replace("$python", python).replace("$uid", str(uid))


@pytest.mark.skipif(CURL is None, reason="curl is not installed")
def test_process_identity_tells_the_aws_cli_from_curl(tmp_path: Path) -> None:
    proc = start_with_config(tmp_path, clients(os.getuid()))
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
        proc.stop()
    seen = outcomes(proc.data_dir)
    assert "allowed:python-tools-to-kms" in seen
    assert "denied:NoMatchingPolicy" in seen


def test_unmet_process_identity_is_refused_with_the_reason(tmp_path: Path) -> None:
    wrong_uid = os.getuid() + 4242
    proc = start_with_config(tmp_path, clients(wrong_uid))
    try:
        denied = aws(proc.env(), "kms", "list-keys", check=False)
    finally:
        proc.stop()
    assert denied.returncode != 0  # refused at CONNECT: no leaf is minted for it
    assert "Failed to connect to proxy URL" in denied.stderr
    refused = access_events(proc.data_dir)
    assert {(e["reason"], e["method"], e["status"]) for e in refused} == {
        ("IdentityNotMatched", "CONNECT", 403)
    }
    assert f"python-tools: uid {os.getuid()} is not {wrong_uid}" in refused[0]["detail"]


ATTESTED = """\
apiVersion: latchkey/v1
kind: TrustProvider
metadata: {name: local-process}
spec: {type: process, facts: [exe, uid, exeSha256]}
---
apiVersion: latchkey/v1
kind: ClientWorkload
metadata: {name: local-apps}
spec: {identities: [{sourceCidr: 127.0.0.0/8}]}
---
apiVersion: latchkey/v1
kind: AccessPolicy
metadata: {name: attested-to-kms}
spec: {clients: [local-apps], server: aws-kms, credentialProvider: kms-federation,
       trustProviders: [local-process]}
"""


def test_policy_demands_a_process_attestation(tmp_path: Path) -> None:
    proc = start_with_config(tmp_path, ATTESTED)
    try:
        listed = aws(proc.env(), "kms", "list-keys")  # /proc attests the aws CLI's process
        assert json.loads(listed.stdout)["Keys"] == []
    finally:
        proc.stop()
    assert "allowed:attested-to-kms" in outcomes(proc.data_dir)


def test_explain_takes_a_pid(tmp_path: Path) -> None:
    import subprocess

    from latchkey_testing import VENV_BIN

    proc = start_with_config(tmp_path, clients(os.getuid()))
    try:

        def explain(pid: int) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [str(VENV_BIN / "latchkey"), "explain", "--data-dir", str(proc.data_dir),
                 "--host", "kms.us-east-1.amazonaws.com", "--pid", str(pid)],
                capture_output=True, text=True, timeout=30, check=False,
            )  # fmt: skip

        mine = explain(os.getpid())  # this pytest process runs the venv's python
        other = explain(os.getppid() if os.getppid() > 1 else 1)
    finally:
        proc.stop()
    assert mine.returncode == 0, mine.stdout + mine.stderr
    assert "PASS  identity         ClientWorkload 'python-tools' matches" in mine.stdout
    assert mine.stdout.splitlines()[-1] == "ALLOWED"
    if "python" not in os.path.realpath(f"/proc/{os.getppid()}/exe"):
        assert other.returncode == 3
        assert "does not match" in other.stdout
