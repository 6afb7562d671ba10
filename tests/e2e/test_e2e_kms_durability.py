"""Acknowledged writes survive ``kill -9`` (docs/cloud.md, security promise 6).

Rounds of: `latchkey up` on one data directory, a client thread doing CreateKey + Encrypt as fast
as it can, SIGKILL of the node mid-traffic, restart. After every restart each key whose
CreateKey was answered exists and decrypts every ciphertext an Encrypt answered, and the audit
trail holds an event for every answered call (audited before answered). kill -9 does not tell
``synchronous=FULL`` from ``NORMAL`` (that takes an OS crash); it does catch an answer sent
before its commit, and a store or audit trail that cannot be reopened after a crash.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config as BotoConfig
from botocore.exceptions import BotoCoreError, ClientError

from latchkey_testing import VENV_BIN, UpProcess, start_up_process

pytestmark = pytest.mark.e2e

ROUNDS = 5
TRAFFIC_SECONDS = 1.0


@dataclass
class Acknowledged:
    """What the node answered: the only writes it promised to keep."""

    keys: list[str] = field(default_factory=list)
    ciphertexts: list[tuple[str, bytes, bytes]] = field(default_factory=list)  # key, plain, blob


def kms_client(up: UpProcess) -> Any:
    admin = json.loads((up.data_dir / "cloud-admin.json").read_text())
    return boto3.client(
        "kms",
        endpoint_url=up.info.cloud,
        region_name="us-east-1",
        verify=up.info.ca_bundle,
        aws_access_key_id=admin["AccessKeyId"],
        aws_secret_access_key=admin["SecretAccessKey"],
        config=BotoConfig(
            retries={"total_max_attempts": 1}, proxies={}, connect_timeout=5, read_timeout=10
        ),
    )


def traffic(kms: Any, acked: Acknowledged, stop: threading.Event, round_no: int) -> None:
    """CreateKey + Encrypt until the node dies (or ``stop``); record only answered calls."""
    n = 0
    while not stop.is_set():
        n += 1
        try:
            key_id = kms.create_key(Description=f"round {round_no} #{n}")["KeyMetadata"]["KeyId"]
            acked.keys.append(key_id)
            plaintext = f"round {round_no} #{n} {os.urandom(8).hex()}".encode()
            blob = kms.encrypt(KeyId=key_id, Plaintext=plaintext)["CiphertextBlob"]
            acked.ciphertexts.append((key_id, plaintext, blob))
        except (BotoCoreError, ClientError, OSError):
            return  # the node was killed under us: that call's fate is unknown


def audit_lines(data_dir: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """The trail's events, and the lines that are not JSON (a torn write at most)."""
    events, torn = [], []
    raw = (data_dir / "audit" / "cloud.jsonl").read_text(errors="replace")
    for line in raw.splitlines():
        if not line.strip():
            continue
        try:
            events.append(json.loads(line))
        except ValueError:
            torn.append(line)
    return events, torn


def audit_verify(data_dir: Path) -> subprocess.CompletedProcess[str]:
    """``latchkey audit verify``: the hash chain is whole, the file agrees with the store."""
    return subprocess.run(
        [str(VENV_BIN / "latchkey"), "audit", "verify", "--data-dir", str(data_dir)],
        capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip


def check_everything_acknowledged(kms: Any, acked: Acknowledged, since: int) -> None:
    """Every acknowledged key is listed; the ciphertexts from ``since`` on (those made before
    the last crash; earlier ones were checked after theirs) decrypt."""
    listed: set[str] = set()
    for page in kms.get_paginator("list_keys").paginate():
        listed.update(k["KeyId"] for k in page["Keys"])
    missing = [k for k in acked.keys if k not in listed]
    assert not missing, f"{len(missing)} acknowledged keys lost after kill -9"
    for key_id, plaintext, blob in acked.ciphertexts[since:]:
        answer = kms.decrypt(CiphertextBlob=blob)
        assert answer["Plaintext"] == plaintext
        assert answer["KeyId"].endswith(key_id)


def check_audit(data_dir: Path, acked: Acknowledged, rounds_done: int) -> None:
    events, torn = audit_lines(data_dir)
    # Events are written in one append each: kill -9 leaves at most one torn line per crash.
    assert len(torn) <= rounds_done, torn
    ok = [e for e in events if "errorCode" not in e and e["eventSource"] == "kms.amazonaws.com"]
    created = [e for e in ok if e["eventName"] == "CreateKey"]
    assert len(created) >= len(acked.keys)
    encrypted = {r["ARN"].rsplit("/", 1)[1] for e in ok if e["eventName"] == "Encrypt"
                 for r in e.get("resources", [])}  # fmt: skip
    assert {key_id for key_id, _, _ in acked.ciphertexts} <= encrypted
    verified = audit_verify(data_dir)
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_acknowledged_writes_survive_kill_9(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    acked = Acknowledged()
    checked = 0  # ciphertexts decrypted after a crash already
    for round_no in range(ROUNDS + 1):
        up = start_up_process(data_dir)
        kms = kms_client(up)
        try:
            check_everything_acknowledged(kms, acked, checked)
            checked = len(acked.ciphertexts)
            check_audit(data_dir, acked, round_no)
            if round_no == ROUNDS:
                break
            before = len(acked.keys)
            stop = threading.Event()
            writer = threading.Thread(target=traffic, args=(kms, acked, stop, round_no))
            writer.start()
            time.sleep(TRAFFIC_SECONDS)
            up.proc.send_signal(signal.SIGKILL)  # mid-traffic: some call is in flight
            up.proc.wait(10)
            stop.set()
            writer.join(30)
            assert not writer.is_alive()
            assert len(acked.keys) > before, "no traffic before the kill"
            # A killed node cannot remove its run.json; the next start must not read it.
            assert (data_dir / "run.json").exists()
            (data_dir / "run.json").unlink()
        finally:
            kms.close()
            up.stop()
    assert len(acked.keys) >= ROUNDS
    assert len(acked.ciphertexts) >= ROUNDS - 1
