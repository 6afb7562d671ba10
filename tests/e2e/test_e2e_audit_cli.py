"""`latchkey audit` and `latchkey audit verify` against a real `latchkey up`: the calls made
with boto3 are listed and filtered, the chain verifies beside the running node, an
edited, truncated or repeated line of cloud.jsonl is named by sequence and eventID, a restart
restores a truncated file from the store, and a store rolled back behind the file stops the
node from starting (the file is kept as it is, and verify goes on saying so)."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from pathlib import Path

import boto3
import pytest
from botocore.config import Config as BotoConfig

from latchkey_testing import VENV_BIN, UpProcess, error_response, start_up_process

pytestmark = pytest.mark.e2e

PLAINTEXT = b"latchkey-e2e-audit-plaintext"


def latchkey_audit(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(VENV_BIN / "latchkey"), "audit", *args, "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def json_lines(result: subprocess.CompletedProcess[str]) -> list[dict[str, object]]:
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_audit_lists_filters_and_verifies(tmp_path: Path) -> None:
    up = start_up_process(tmp_path / "data")
    data = up.data_dir
    try:
        admin = json.loads((data / "cloud-admin.json").read_text())
        kms = boto3.client(
            "kms", endpoint_url=up.info.cloud, region_name="us-east-1", verify=up.info.ca_bundle,
            aws_access_key_id=admin["AccessKeyId"],
            aws_secret_access_key=admin["SecretAccessKey"],
            config=BotoConfig(retries={"max_attempts": 1}, proxies={}),
        )  # fmt: skip
        try:
            key_id = kms.create_key()["KeyMetadata"]["KeyId"]
            blob = kms.encrypt(KeyId=key_id, Plaintext=PLAINTEXT)["CiphertextBlob"]
            kms.decrypt(CiphertextBlob=blob)
            code = error_response(kms.decrypt, CiphertextBlob=blob, EncryptionContext={"a": "b"})
            assert code["Error"]["Code"] == "InvalidCiphertextException"
        finally:
            kms.close()

        table = latchkey_audit(data)
        assert table.returncode == 0, table.stderr
        rows = [line for line in table.stdout.splitlines() if key_id in line]
        assert [row.split()[1] for row in rows] == [
            "kms:CreateKey", "kms:Encrypt", "kms:Decrypt", "kms:Decrypt"
        ]  # fmt: skip
        assert rows[-1].split()[-1] == "InvalidCiphertextException"
        assert PLAINTEXT.decode() not in table.stdout

        encrypts = json_lines(latchkey_audit(data, "--json", "--event", "Encrypt"))
        assert [e["eventName"] for e in encrypts] == ["Encrypt"]
        # (other members, such as encryptionAlgorithm, are the KMS event shape's business)
        assert encrypts[0]["requestParameters"]["keyId"] == key_id  # type: ignore[index]
        errors = json_lines(latchkey_audit(data, "--json", "--key", key_id, "--errors-only"))
        assert [(e["eventName"], e["errorCode"]) for e in errors] == [
            ("Decrypt", "InvalidCiphertextException")
        ]
        assert json_lines(latchkey_audit(data, "--json", "--since", "2999-01-01")) == []

        live = latchkey_audit(data, "verify")  # beside the running node's writer
        assert live.returncode == 0, live.stderr
        assert live.stdout.startswith("audit trail OK: ")
    finally:
        up.stop()

    trail = data / "audit" / "cloud.jsonl"
    original = trail.read_text()
    lines = original.splitlines()
    count = len(lines)
    assert f"audit trail OK: {count} events" in latchkey_audit(data, "verify").stdout

    third = json.loads(lines[2])
    lines[2] = lines[2].replace(f'"eventName":"{third["eventName"]}"', '"eventName":"Tampered"')
    trail.write_text("".join(line + "\n" for line in lines))
    edited = latchkey_audit(data, "verify")
    assert edited.returncode == 1
    assert f"file: sequence 3 (eventID {third['eventID']})" in edited.stderr
    assert "edited" in edited.stderr

    last = json.loads(original.splitlines()[-1])
    trail.write_text("".join(line + "\n" for line in original.splitlines()[:-1]))
    truncated = latchkey_audit(data, "verify")
    assert truncated.returncode == 1
    assert f"sequence {count} (eventID {last['eventID']})" in truncated.stderr
    assert "truncated" in truncated.stderr

    again: UpProcess = start_up_process(data)  # the store restores what the file lacks
    again.stop()
    assert trail.read_text().startswith(original)
    restored = latchkey_audit(data, "verify")
    assert restored.returncode == 0, restored.stderr

    full = trail.read_text()
    lines = full.splitlines()
    trail.write_text("".join(line + "\n" for line in [*lines[:3], lines[1], *lines[3:]]))
    repeated = latchkey_audit(data, "verify")  # a valid line, added again
    assert repeated.returncode == 1
    assert "line 4 holds sequence 2 after sequence 3: a repeated or added line" in repeated.stderr
    trail.write_text(full)

    db = sqlite3.connect(data / "audit" / "cloud.db")  # the store rolled back by two events
    try:
        db.execute("DELETE FROM audit_events WHERE sequence > ?", (len(lines) - 2,))
        head = db.execute("SELECT sequence, hash FROM audit_events ORDER BY sequence DESC LIMIT 1")
        db.execute("UPDATE audit_head SET sequence = ?, hash = ?", head.fetchone())
        db.commit()
    finally:
        db.close()
    assert latchkey_audit(data, "verify").returncode == 1
    with pytest.raises(AssertionError, match=r"that the audit store .* lacks"):
        start_up_process(data).stop()
    assert trail.read_text() == full  # nothing moved aside: it is evidence
    assert not (data / "audit" / "cloud.jsonl.unanswered").exists()
    assert latchkey_audit(data, "verify").returncode == 1
