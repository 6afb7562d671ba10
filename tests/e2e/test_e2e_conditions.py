"""Access conditions at the edge, with the aws CLI: allowed actions and time windows."""

from __future__ import annotations

import base64
import datetime as dt
import json
from pathlib import Path

import pytest

from latchkey_testing import UpProcess, aws, outcomes, start_with_config

pytestmark = pytest.mark.e2e


POLICY = """\
apiVersion: latchkey/v1
kind: ClientWorkload
metadata: {name: local-apps}
spec:
  identities: [{sourceCidr: 127.0.0.0/8}]
---
apiVersion: latchkey/v1
kind: AccessPolicy
metadata: {name: local-apps-to-kms}
spec:
  clients: [local-apps]
  server: aws-kms
  credentialProvider: kms-federation
  conditions: [$condition]
---
apiVersion: latchkey/v1
kind: AccessCondition
metadata: {name: $condition}
spec:
"""


def start(tmp_path: Path, condition: str, spec: str) -> UpProcess:
    return start_with_config(tmp_path, POLICY.replace("$condition", condition) + spec + "\n")


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
        proc.stop()
    assert denied.returncode != 0
    assert "AccessDeniedException" in denied.stderr
    assert "ConditionFailed" in denied.stderr
    assert "encrypt-only" in denied.stderr
    assert "kms:Decrypt" in denied.stderr
    assert "denied:ConditionFailed" in outcomes(proc.data_dir)


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
