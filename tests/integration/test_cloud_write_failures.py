"""The local cloud when a write fails, through the real node: a refusing audit trail fails every
call before its handler runs (nothing changes unrecorded); a call whose audit commit is under
way at its deadline answers what the trail records; a lock held on the store by another process
fails writes quickly without stopping the store or the event loop; deleted key material is gone
from ``latchkey.db`` and its write-ahead log; a commit whose sync failed is recorded as of
unknown outcome (security promises 5 and 6)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config as BotoConfig
from botocore.exceptions import ClientError
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from latchkey_testing import (
    Cloud,
    SettableClock,
    UpProcess,
    audit_verified,
    error_response,
    own_node,
    start_up_process,
)

NO_RETRY = BotoConfig(retries={"total_max_attempts": 1}, proxies={})
UNAVAILABLE = {"Code": "KMSInternalException", "Message": "The audit trail is unavailable."}
BUSY = "The store is busy; retry the request."
UNCONFIRMED = "The store could not confirm the write; its outcome is unknown."


def trail(data_dir: Path) -> list[dict[str, Any]]:
    """Every event in the audit store, in order."""
    uri = f"file:{data_dir / 'audit' / 'cloud.db'}?mode=ro"
    conn = sqlite3.connect(uri, uri=True)
    try:
        rows = conn.execute("SELECT line FROM audit_events ORDER BY sequence").fetchall()
    finally:
        conn.close()
    return [json.loads(line) for (line,) in rows]


def store_bytes(data_dir: Path) -> bytes:
    db = data_dir / "latchkey.db"
    wal = db.with_name(db.name + "-wal")
    return db.read_bytes() + (wal.read_bytes() if wal.exists() else b"")


def stored_material(data_dir: Path, key_id: str) -> list[bytes]:
    """The key's wrapped material rows, read by a connection that is closed again at once (a
    reader left open would hold the write-ahead log)."""
    conn = sqlite3.connect(f"file:{data_dir / 'latchkey.db'}?mode=ro", uri=True)
    try:
        rows = conn.execute(
            "SELECT wrapped FROM kms_key_material WHERE key_id = ?", (key_id,)
        ).fetchall()
    finally:
        conn.close()
    return [bytes(row[0]) for row in rows]


# -- a refusing trail: nothing runs -------------------------------------------------------------


def test_a_refusing_trail_fails_every_call_before_its_handler_runs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = tmp_path / "data"
    (data / "audit").mkdir(parents=True)
    (data / "audit" / "cloud.jsonl").symlink_to("/dev/full")  # every file write: ENOSPC
    with own_node(data) as node:
        kms, iam = node.client("kms", NO_RETRY), node.client("iam", NO_RETRY)
        try:
            # The first failure comes after CreateKey's handler committed (the store's event
            # too: it is written before the file); the trail refuses from then on.
            first = error_response(kms.create_key, Description="first")
            assert first["Error"] == UNAVAILABLE
            assert "CreateKey" in caplog.text  # the change made, its event in the log
            assert "was carried out, but the audit trail failed" in caplog.text
            assert node.node._audit is not None
            assert node.node._audit.refusing is not None
            for n in range(3):  # refused before the handler: no key is made
                later = error_response(kms.create_key, Description=f"later-{n}")
                assert later["Error"] == UNAVAILABLE
                assert later["ResponseMetadata"]["HTTPStatusCode"] == 500
            alias = error_response(kms.create_alias, AliasName="alias/unaudited",
                                   TargetKeyId="00000000-0000-4000-8000-000000000000")  # fmt: skip
            assert alias["Error"] == UNAVAILABLE
            assert error_response(kms.list_keys)["Error"] == UNAVAILABLE  # reads fail too
            for call, kwargs in ((iam.create_user, {"UserName": "ghost"}),
                                 (iam.list_users, {})):  # fmt: skip
                failure = error_response(call, **kwargs)
                assert failure["Error"]["Code"] == "ServiceFailure"
                assert failure["Error"]["Message"] == "The audit trail is unavailable."
                assert failure["ResponseMetadata"]["HTTPStatusCode"] == 500
        finally:
            kms.close()
            iam.close()
    (data / "audit" / "cloud.jsonl").unlink()
    with own_node(data) as node:
        kms, iam = node.client("kms"), node.client("iam")
        try:
            keys = [k["KeyId"] for k in kms.list_keys()["Keys"]]
            described = {kms.describe_key(KeyId=k)["KeyMetadata"]["Description"] for k in keys}
            assert described == {"first"}  # only the call whose own event failed stands
            assert error_response(iam.get_user, UserName="ghost")["Error"]["Code"] == (
                "NoSuchEntity"
            )
        finally:
            kms.close()
            iam.close()
    created = [e for e in trail(data) if e["eventName"] == "CreateKey"]
    assert len(created) == 1  # the key that stands has its event
    assert created[0]["responseElements"]["keyMetadata"]["description"] == "first"
    assert audit_verified(data) >= 1


# -- a slow audit commit: the answer agrees with the trail --------------------------------------


def call_while_locked(path: Path, hold: float, call: Any, **kwargs: Any) -> tuple[Any, float]:
    """Make ``call`` while another connection holds ``path``'s write lock for ``hold`` seconds:
    (its answer or error response, seconds it took)."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        conn.execute("BEGIN IMMEDIATE")
        timer = threading.Timer(hold, conn.execute, ("ROLLBACK",))
        timer.start()
        started = time.monotonic()
        try:
            answer = call(**kwargs)
        except ClientError as err:  # its error response is the answer
            answer = dict(err.response)
        took = time.monotonic() - started
        timer.join()
    finally:
        conn.close()
    return answer, took


def test_a_call_whose_audit_commit_is_under_way_at_its_deadline_answers_what_the_trail_says(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    with own_node(data, audit_timeout=2.0) as node:
        kms = node.client("kms", NO_RETRY)
        try:
            kms.list_keys()
            # The writer takes CreateKey's event at once and waits on the lock; the deadline
            # (2 s) passes while it commits; the lock goes at 3 s, the commit with it (the
            # hard cap is at 4 s).
            answer, took = call_while_locked(data / "audit" / "cloud.db", 3.0,
                                             kms.create_key, Description="slow-trail")  # fmt: skip
            assert "KeyMetadata" in answer, answer  # the trail records a success: so does this
            assert 2.8 < took < 4.0
            key_id = answer["KeyMetadata"]["KeyId"]
            assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["Description"] == "slow-trail"
            assert node.node._audit is not None
            assert node.node._audit.refusing is None
        finally:
            kms.close()
    (event,) = [e for e in trail(data) if e["eventName"] == "CreateKey"]
    assert "errorCode" not in event
    assert event["responseElements"]["keyMetadata"]["keyId"] == key_id
    assert event["requestID"] == answer["ResponseMetadata"]["RequestId"]
    audit_verified(data)


def test_an_audit_commit_past_the_hard_cap_fails_the_call_and_stops_the_trail(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    with own_node(data, audit_timeout=0.5) as node:
        kms = node.client("kms", NO_RETRY)
        try:
            key_id = kms.create_key()["KeyMetadata"]["KeyId"]
            answer, took = call_while_locked(data / "audit" / "cloud.db", 2.5,
                                             kms.encrypt, KeyId=key_id, Plaintext=b"x")  # fmt: skip
            assert answer["Error"] == UNAVAILABLE
            assert 0.8 < took < 2.4  # two timeouts of 0.5 s, not the 2.5 s lock
            # The answer and the trail may disagree about that call: the trail says so by
            # refusing every later call, reads included, until the node restarts.
            assert error_response(kms.list_keys)["Error"] == UNAVAILABLE
        finally:
            kms.close()
    with own_node(data) as node:
        kms = node.client("kms")
        try:
            blob = kms.encrypt(KeyId=key_id, Plaintext=b"y")["CiphertextBlob"]
            assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"y"
        finally:
            kms.close()
    audit_verified(data)


# -- a lock held on the store by another process --------------------------------------------------


def test_a_lock_held_on_the_store_fails_writes_quickly_and_stops_nothing(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with own_node(data) as node:
        kms, reader = node.client("kms", NO_RETRY), node.client("kms", NO_RETRY)
        try:
            key_id = kms.create_key()["KeyMetadata"]["KeyId"]
            reader.encrypt(KeyId=key_id, Plaintext=b"warm")
            latency: dict[str, float] = {}

            def encrypt_meanwhile() -> None:
                time.sleep(0.1)
                started = time.monotonic()
                reader.encrypt(KeyId=key_id, Plaintext=b"meanwhile")
                latency["encrypt"] = time.monotonic() - started

            side = threading.Thread(target=encrypt_meanwhile)
            conn = sqlite3.connect(data / "latchkey.db", isolation_level=None)
            try:
                conn.execute("BEGIN IMMEDIATE")  # an operator's sqlite3 shell, a backup
                side.start()
                started = time.monotonic()
                answer = error_response(kms.create_key, Description="during the lock")
                took = time.monotonic() - started
                side.join(10)
            finally:
                conn.execute("ROLLBACK")
                conn.close()
            assert answer["Error"] == {"Code": "KMSInternalException", "Message": BUSY}
            assert answer["ResponseMetadata"]["HTTPStatusCode"] == 500  # SDKs retry a 500
            assert took < 2.0  # a short busy timeout, not 5 s
            assert latency["encrypt"] < 2.0  # the event loop was not held for seconds
            # Nothing latched: writes go on once the lock is gone.
            later = kms.create_key(Description="after the lock")["KeyMetadata"]["KeyId"]
            kms.tag_resource(KeyId=later, Tags=[{"TagKey": "a", "TagValue": "b"}])
        finally:
            kms.close()
            reader.close()
    (failed,) = [e for e in trail(data) if e.get("errorMessage") == BUSY]
    assert (failed["eventName"], failed["errorCode"]) == ("CreateKey", "KMSInternalException")


# -- deleted key material -----------------------------------------------------------------------


def import_known_material(kms: Any, key_id: str, material: bytes) -> None:
    params = kms.get_parameters_for_import(
        KeyId=key_id, WrappingAlgorithm="RSAES_OAEP_SHA_256", WrappingKeySpec="RSA_2048"
    )
    public = serialization.load_der_public_key(params["PublicKey"])
    assert isinstance(public, rsa.RSAPublicKey)
    oaep = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
    kms.import_key_material(
        KeyId=key_id,
        ImportToken=params["ImportToken"],
        EncryptedKeyMaterial=public.encrypt(material, oaep),
        ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE",
    )


def test_deleted_imported_material_is_in_neither_the_database_nor_its_log(
    cloud: Cloud, kms: Any
) -> None:
    data = cloud.node.data_dir
    key_id = kms.create_key(Origin="EXTERNAL")["KeyMetadata"]["KeyId"]
    material = os.urandom(32)
    import_known_material(kms, key_id, material)
    blob = kms.encrypt(KeyId=key_id, Plaintext=b"old secret")["CiphertextBlob"]
    (wrapped,) = stored_material(data, key_id)
    root_key = cloud.node.node.root_key
    assert root_key is not None
    assert root_key.unwrap("kms-key-material", f"{key_id}/1", wrapped) == material
    assert wrapped in store_bytes(data)  # the search does see the files' contents

    kms.delete_imported_key_material(KeyId=key_id)
    assert error_response(kms.decrypt, CiphertextBlob=blob)["Error"]["Code"] == (
        "KMSInvalidStateException"
    )
    kms.create_key(Description="a later write")
    on_disk = store_bytes(data)
    assert wrapped not in on_disk  # carving with the root key finds nothing to unwrap
    assert material not in on_disk


def test_a_key_the_sweeper_deletes_leaves_no_material_behind(
    cloud: Cloud, kms: Any, settable_clock: SettableClock
) -> None:
    data = cloud.node.data_dir
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    kms.encrypt(KeyId=key_id, Plaintext=b"soon gone")
    (wrapped,) = stored_material(data, key_id)
    assert wrapped in store_bytes(data)
    kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
    sweeper = cloud.node.node.sweeper
    assert sweeper is not None
    settable_clock.advance(8 * 86400)
    try:
        cloud.node.run(sweeper.sweep())
    finally:
        settable_clock.advance(-8 * 86400)
    assert error_response(kms.describe_key, KeyId=key_id)["Error"]["Code"] == "NotFoundException"
    assert wrapped not in store_bytes(data)


# -- a failed sync of the store's log: outcome unknown ------------------------------------------


def up_client(up: UpProcess, service: str) -> Any:
    admin = json.loads((up.data_dir / "cloud-admin.json").read_text())
    return boto3.client(
        service, endpoint_url=up.info.cloud, region_name="us-east-1", verify=up.info.ca_bundle,
        aws_access_key_id=admin["AccessKeyId"], aws_secret_access_key=admin["SecretAccessKey"],
        config=BotoConfig(retries={"total_max_attempts": 1}, proxies={}, read_timeout=15),
    )  # fmt: skip


def traced(pid: int) -> bool:
    status = Path(f"/proc/{pid}/status").read_text()
    return any(
        line.split()[1:] != ["0"] for line in status.splitlines() if line.startswith("TracerPid:")
    )


@pytest.mark.skipif(shutil.which("strace") is None, reason="needs strace")
def test_a_commit_whose_sync_failed_is_recorded_as_of_unknown_outcome(tmp_path: Path) -> None:
    data = tmp_path / "data"
    up = start_up_process(data)
    strace: subprocess.Popen[bytes] | None = None
    try:
        kms = up_client(up, "kms")
        kms.create_key(Description="before the fault")
        # The event loop's thread (the process's main thread) commits the store; from now on
        # every fsync it makes fails with EIO, after the WAL frames were written.
        strace = subprocess.Popen(
            ["strace", "-qq", "-p", str(up.info.pid), "-e", "trace=fsync,fdatasync",
             "-e", "inject=fsync,fdatasync:error=EIO", "-o", str(tmp_path / "strace.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while not traced(up.info.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert traced(up.info.pid)
        answer = error_response(kms.create_key, Description="unconfirmed")
        assert answer["Error"] == {"Code": "KMSInternalException", "Message": UNCONFIRMED}
        assert answer["ResponseMetadata"]["HTTPStatusCode"] == 500
        later = error_response(kms.create_key, Description="after the failure")
        assert later["Error"]["Code"] == "KMSInternalException"  # the store refuses writes
        request_id = answer["ResponseMetadata"]["RequestId"]
        kms.close()
    finally:
        if strace is not None:
            strace.terminate()
            strace.wait(10)
        with contextlib.suppress(ProcessLookupError):
            os.kill(up.proc.pid, signal.SIGKILL)
        up.proc.wait(10)
    assert "EIO" in (tmp_path / "strace.log").read_text()
    assert "refusing writes until restart" in up.log_path.read_text()
    (event,) = [e for e in trail(data) if e.get("requestID") == request_id]
    assert event["eventName"] == "CreateKey"
    assert (event["errorCode"], event["errorMessage"]) == ("KMSInternalException", UNCONFIRMED)
    (data / "run.json").unlink(missing_ok=True)
    again = start_up_process(data)  # whatever became of that key, the node starts and writes
    try:
        kms = up_client(again, "kms")
        kms.create_key(Description="after the restart")
        kms.close()
    finally:
        again.stop()
