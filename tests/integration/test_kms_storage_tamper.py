"""Storage tampering, with the node stopped: a flipped byte in wrapped key material, a material
row moved to another key, version or kind of record, and what the files on disk never hold.

Tampered material is the service's fault, not the caller's: AWS's code for that is
``KMSInternalException`` (500), and the answer carries nothing but the code and a fixed
message. A material row that is simply gone makes a ciphertext that needs it undecryptable:
``InvalidCiphertextException``.
"""

from __future__ import annotations

import base64
import contextlib
import json
import sqlite3
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.config import Config as BotoConfig

from latchkey.crypto.rootkey import RootKey
from latchkey_testing import NodeHandle, error_response, start_node_thread, stop_node_thread

PLAINTEXT = b"latchkey-tamper-plaintext-93b1"
MATERIAL_KIND = "kms-key-material"
NO_RETRY = BotoConfig(retries={"total_max_attempts": 1}, proxies={})


@contextlib.contextmanager
def running(data_dir: Path) -> Iterator[tuple[NodeHandle, Any]]:
    """A node on ``data_dir`` and an admin KMS client that does not retry a 500."""
    handle, thread = start_node_thread(data_dir)
    kms = handle.client("kms", NO_RETRY)
    try:
        yield handle, kms
    finally:
        kms.close()
        stop_node_thread(handle, thread)


@contextlib.contextmanager
def database(data_dir: Path) -> Iterator[sqlite3.Connection]:
    db = sqlite3.connect(data_dir / "latchkey.db")
    try:
        with db:
            yield db
    finally:
        db.close()


def wrapped(data_dir: Path, key_id: str, version: int = 1) -> bytes:
    with database(data_dir) as db:
        row = db.execute(
            "SELECT wrapped FROM kms_key_material WHERE key_id = ? AND version = ?",
            (key_id, version),
        ).fetchone()
    return bytes(row[0])


def set_wrapped(data_dir: Path, key_id: str, value: bytes) -> None:
    with database(data_dir) as db:
        cur = db.execute(
            "UPDATE kms_key_material SET wrapped = ? WHERE key_id = ? AND version = 1",
            (value, key_id),
        )
        assert cur.rowcount == 1


def failure(call: Callable[..., Any], **params: Any) -> tuple[str, int, str]:
    """(code, status, whole response as text) of a call that must fail; the answer holds
    nothing but the error."""
    resp = error_response(call, **params)
    assert set(resp) <= {"Error", "ResponseMetadata", "message", "Message"}, resp.keys()
    text = json.dumps(resp, default=str)
    return resp["Error"]["Code"], resp["ResponseMetadata"]["HTTPStatusCode"], text


def assert_internal_error(kms: Any, key_id: str, blob: bytes) -> None:
    """Every use of the key's material fails the same opaque way, leaking nothing."""
    calls = [
        (kms.encrypt, {"KeyId": key_id, "Plaintext": PLAINTEXT}),
        (kms.decrypt, {"CiphertextBlob": blob}),
        (kms.generate_data_key, {"KeyId": key_id, "KeySpec": "AES_256"}),
    ]
    for call, params in calls:
        code, status, text = failure(call, **params)
        assert (code, status) == ("KMSInternalException", 500), text
        assert base64.b64encode(PLAINTEXT).decode() not in text
        assert PLAINTEXT.decode() not in text


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


def test_tampered_and_moved_material_is_refused(data_dir: Path) -> None:
    names = ["format", "nonce", "body", "tag", "moved_from", "moved_to", "version", "kind", "ok"]
    with running(data_dir) as (node, kms):
        keys = {name: kms.create_key(Description=name)["KeyMetadata"]["KeyId"] for name in names}
        blobs = {
            name: kms.encrypt(KeyId=key, Plaintext=PLAINTEXT)["CiphertextBlob"]
            for name, key in keys.items()
        }
        admin_key_id = node.admin()["AccessKeyId"]

    # 1. a flipped bit anywhere in the wrapped value: format byte, nonce, ciphertext, tag
    positions = {"format": 0, "nonce": 1, "body": 1 + 12 + 5, "tag": -1}
    for name, position in positions.items():
        value = bytearray(wrapped(data_dir, keys[name]))
        assert len(value) == 1 + 12 + 32 + 16
        value[position] ^= 0x01
        set_wrapped(data_dir, keys[name], bytes(value))
    with database(data_dir) as db:
        # 2. key moved_from's material row becomes key moved_to's (its own row deleted)
        db.execute("DELETE FROM kms_key_material WHERE key_id = ?", (keys["moved_to"],))
        cur = db.execute(
            "UPDATE kms_key_material SET key_id = ? WHERE key_id = ?",
            (keys["moved_to"], keys["moved_from"]),
        )
        assert cur.rowcount == 1
        # 3. version 1's material relabelled version 2 and made current
        db.execute("UPDATE kms_key_material SET version = 2 WHERE key_id = ?", (keys["version"],))
        db.execute("UPDATE kms_keys SET current_version = 2 WHERE key_id = ?", (keys["version"],))
        # 4. another kind of wrapped secret (the admin's access key secret) as key material
        (secret,) = db.execute(
            "SELECT wrapped_secret FROM access_keys WHERE access_key_id = ?", (admin_key_id,)
        ).fetchone()
        db.execute(
            "UPDATE kms_key_material SET wrapped = ? WHERE key_id = ?", (secret, keys["kind"])
        )

    with running(data_dir) as (node, kms):
        for name in [*positions, "moved_to"]:
            assert_internal_error(kms, keys[name], blobs[name])
        # the moved row still decrypts nothing for its old key: the row is gone from there
        code, _, _ = failure(kms.decrypt, CiphertextBlob=blobs["moved_from"])
        assert code == "InvalidCiphertextException"
        code, status, _ = failure(kms.encrypt, KeyId=keys["version"], Plaintext=PLAINTEXT)
        assert (code, status) == ("KMSInternalException", 500)
        code, _, _ = failure(kms.decrypt, CiphertextBlob=blobs["version"])  # needs version 1
        assert code == "InvalidCiphertextException"
        assert_internal_error(kms, keys["kind"], blobs["kind"])
        # the untouched key, and the cloud as a whole, still work
        assert kms.decrypt(CiphertextBlob=blobs["ok"])["Plaintext"] == PLAINTEXT
        assert node.client("sts").get_caller_identity()["Account"] == "000000000000"
        events = audit_events(data_dir)
    failed = [e for e in events if e.get("errorCode") == "KMSInternalException"]
    assert len(failed) == 3 * 4 + 3 + 1 + 3
    for event in failed:
        assert event["responseElements"] is None
        assert base64.b64encode(PLAINTEXT).decode() not in json.dumps(event)


def test_material_row_moved_back_works_again(data_dir: Path) -> None:
    """The refusal comes from the binding, not from damage: the same bytes under their own
    record id unwrap again."""
    with running(data_dir) as (_, kms):
        key_a = kms.create_key()["KeyMetadata"]["KeyId"]
        key_b = kms.create_key()["KeyMetadata"]["KeyId"]
        blob_a = kms.encrypt(KeyId=key_a, Plaintext=PLAINTEXT)["CiphertextBlob"]
    original_a, original_b = wrapped(data_dir, key_a), wrapped(data_dir, key_b)
    set_wrapped(data_dir, key_b, original_a)
    with running(data_dir) as (_, kms):
        code, status, _ = failure(kms.encrypt, KeyId=key_b, Plaintext=PLAINTEXT)
        assert (code, status) == ("KMSInternalException", 500)
        assert kms.decrypt(CiphertextBlob=blob_a)["Plaintext"] == PLAINTEXT
    set_wrapped(data_dir, key_b, original_b)
    with running(data_dir) as (_, kms):
        blob_b = kms.encrypt(KeyId=key_b, Plaintext=PLAINTEXT)["CiphertextBlob"]
        assert kms.decrypt(CiphertextBlob=blob_b)["Plaintext"] == PLAINTEXT


def audit_events(data_dir: Path) -> list[dict[str, Any]]:
    text = (data_dir / "audit" / "cloud.jsonl").read_text()
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def files_on_disk(data_dir: Path) -> dict[str, bytes]:
    names = ["latchkey.db", "latchkey.db-wal", "latchkey.db-shm", "audit/cloud.jsonl",
             "audit/cloud.db", "audit/cloud.db-wal"]  # fmt: skip
    return {n: (data_dir / n).read_bytes() for n in names if (data_dir / n).exists()}


def test_nothing_secret_is_stored_in_clear(data_dir: Path) -> None:
    with running(data_dir) as (node, kms):
        key_id = kms.create_key()["KeyMetadata"]["KeyId"]
        data_key = kms.generate_data_key(KeyId=key_id, KeySpec="AES_256")["Plaintext"]
        small_key = kms.generate_data_key(KeyId=key_id, NumberOfBytes=64)["Plaintext"]
        kms.encrypt(KeyId=key_id, Plaintext=PLAINTEXT, EncryptionContext={"app": "tamper"})
        root_key = (data_dir / "root.key").read_bytes()
        material = RootKey.from_bytes(root_key).unwrap(
            MATERIAL_KIND, f"{key_id}/1", wrapped(data_dir, key_id)
        )
        secrets = {"data key": data_key, "64-byte data key": small_key, "root key": root_key,
                   "key material": material, "plaintext": PLAINTEXT,
                   "admin secret": node.admin()["SecretAccessKey"].encode()}  # fmt: skip
        while_running = files_on_disk(data_dir)
        assert "latchkey.db-wal" in while_running  # the write-ahead log is searched too
    after_stop = files_on_disk(data_dir)
    assert wrapped(data_dir, key_id) in after_stop["latchkey.db"]  # the search sees the rows
    for when, files in (("running", while_running), ("stopped", after_stop)):
        for file, content in files.items():
            for what, secret in secrets.items():
                for shown in (secret, secret.hex().encode(), base64.b64encode(secret)):
                    assert shown not in content, f"{what} in {file} ({when})"


def test_secret_files_are_owner_only(data_dir: Path) -> None:
    with running(data_dir) as (_, kms):
        kms.create_key()
        for name in ("root.key", "root-key.check", "latchkey.db", "latchkey.db-wal",
                     "latchkey.db-shm", "audit/cloud.jsonl", "audit/cloud.db"):  # fmt: skip
            if name == "audit/cloud.db" and not (data_dir / name).exists():
                continue  # a trail kept only in the JSON-lines file
            assert stat.S_IMODE((data_dir / name).stat().st_mode) == 0o600, name
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
    assert len((data_dir / "root.key").read_bytes()) == 32
