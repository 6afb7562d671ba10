"""Access conditions at the edge, with the aws CLI: allowed actions and time windows."""

from __future__ import annotations

import base64
import datetime as dt
import json
import socket
from pathlib import Path

import pytest

from latchkey_testing import aws, start_up_process

pytestmark = pytest.mark.e2e


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


BASE = """\
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
metadata: {{name: local-apps}}
spec:
  identities: [{{sourceCidr: 127.0.0.0/8}}]
---
apiVersion: latchkey/v1
kind: AccessPolicy
metadata: {{name: local-apps-to-kms}}
spec:
  clients: [local-apps]
  server: aws-kms
  credentialProvider: kms-federation
  conditions: [{condition}]
---
apiVersion: latchkey/v1
kind: AccessCondition
metadata: {{name: {condition}}}
spec:
{spec}
"""


def start(tmp_path: Path, condition: str, spec: str):  # type: ignore[no-untyped-def]
    cloud_port = free_port()
    config = tmp_path / "conditions.yaml"
    config.write_text(BASE.format(cloud_port=cloud_port, condition=condition, spec=spec))
    return start_up_process(
        tmp_path / "data", "--config", str(config), "--cloud", f"127.0.0.1:{cloud_port}"
    )


def test_encrypt_only_refuses_decrypt(tmp_path: Path) -> None:
    proc = start(tmp_path, "encrypt-only", '  aws: {actions: ["kms:CreateKey", "kms:Encrypt"]}')
    try:
        env = proc.env()
        key_id = json.loads(aws(env, "kms", "create-key").stdout)["KeyMetadata"]["KeyId"]
        plain = tmp_path / "p.bin"
        plain.write_bytes(b"conditions")
        blob = json.loads(
            aws(env, "kms", "encrypt", "--key-id", key_id, "--plaintext", f"fileb://{plain}").stdout
        )["CiphertextBlob"]
        (tmp_path / "c.bin").write_bytes(base64.b64decode(blob))
        blob_arg = f"fileb://{tmp_path / 'c.bin'}"
        denied = aws(env, "kms", "decrypt", "--ciphertext-blob", blob_arg, check=False)
    finally:
        log = proc.stop()
    assert denied.returncode != 0
    assert "AccessDeniedException" in denied.stderr
    assert "ConditionFailed" in denied.stderr
    assert "encrypt-only" in denied.stderr
    assert "kms:Decrypt" in denied.stderr
    assert "denied:ConditionFailed" in log


def test_outside_the_time_window_is_refused(tmp_path: Path) -> None:
    later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=3)
    window = f"{later:%H}:00-{(later + dt.timedelta(hours=1)):%H}:00"
    proc = start(tmp_path, "later-today", f'  timeWindow: {{timezone: UTC, hours: ["{window}"]}}')
    try:
        denied = aws(proc.env(), "kms", "list-keys", check=False)
    finally:
        proc.stop()
    assert denied.returncode != 0
    assert "ConditionFailed" in denied.stderr
    assert "outside the time window" in denied.stderr
