"""How the SQLite store meets failed writes, on a real database file: a lock held by another
connection fails the write quickly and leaves the store writable; an I/O failure makes it refuse
writes from then on, and one at the commit says the outcome is unknown; deleted key material is
gone from the database file and its write-ahead log."""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from latchkey.store.base import (
    KeyMaterialRecord,
    KmsKeyRecord,
    StoreBusy,
    StoreError,
    UserRecord,
    WriteUnconfirmed,
)
from latchkey.store.sqlite import SqliteStore

ACCOUNT = "000000000000"


def user(name: str) -> UserRecord:
    return UserRecord(name, f"arn:aws:iam::{ACCOUNT}:user/{name}", f"AIDA{name.upper()}", "/", 2.0)


def key(key_id: str, **extra: Any) -> KmsKeyRecord:
    values: dict[str, Any] = {
        "key_id": key_id, "arn": f"arn:aws:kms:us-east-1:{ACCOUNT}:key/{key_id}",
        "account": ACCOUNT, "region": "us-east-1", "created": 1.0, "description": "",
        "key_spec": "SYMMETRIC_DEFAULT", "key_usage": "ENCRYPT_DECRYPT", "state": "Enabled",
        "origin": "AWS_KMS", "policy": "{}", "current_version": 1,
    }  # fmt: skip
    values.update(extra)
    return KmsKeyRecord(**values)


@pytest.fixture
def other(store: SqliteStore) -> Iterator[sqlite3.Connection]:
    """Another connection to the store's file (an operator's ``sqlite3`` shell, a backup)."""
    conn = sqlite3.connect(store.path, isolation_level=None)
    try:
        yield conn
    finally:
        conn.close()


def sqlite_error(name: str, code: int, message: str = "disk I/O error") -> sqlite3.Error:
    """An error as the sqlite3 module raises it, with SQLite's result code and its name."""
    exc = sqlite3.OperationalError(message)
    exc.sqlite_errorcode = code  # type: ignore[attr-defined]
    exc.sqlite_errorname = name  # type: ignore[attr-defined]
    return exc


class FailingConnection:
    """The store's connection, but ``fail_on`` (a statement's first word) fails with ``error``;
    ``after``: the statement runs first (a commit whose data reached the disk, then its sync
    failed)."""

    def __init__(
        self, db: sqlite3.Connection, fail_on: str, error: sqlite3.Error, *, after: bool
    ) -> None:
        self._db, self._fail_on, self._error, self._after = db, fail_on, error, after

    def __getattr__(self, name: str) -> Any:
        return getattr(self._db, name)

    def execute(self, sql: str, *args: Any) -> Any:
        if sql.split(None, 1)[0].upper() != self._fail_on:
            return self._db.execute(sql, *args)
        if self._after:
            self._db.execute(sql, *args)
        raise self._error


def test_a_lock_held_elsewhere_fails_the_write_quickly_and_leaves_the_store_writable(
    store: SqliteStore, other: sqlite3.Connection
) -> None:
    other.execute("BEGIN IMMEDIATE")
    started = time.monotonic()
    with pytest.raises(StoreBusy, match="locked by another connection"):
        store.save_user(user("alice"))
    assert time.monotonic() - started < 2.0  # the short busy timeout, not 5 s
    other.execute("ROLLBACK")
    store.save_user(user("alice"))  # not latched: the lock was someone else's, nothing failed
    assert store.load_user("alice") is not None


def test_an_io_error_at_the_commit_is_an_unknown_outcome_and_latches(
    store: SqliteStore, tmp_path: Path
) -> None:
    real = store._db
    store._db = FailingConnection(  # type: ignore[assignment]
        real, "COMMIT", sqlite_error("SQLITE_IOERR_FSYNC", 1034), after=True
    )
    with pytest.raises(WriteUnconfirmed, match="SQLITE_IOERR_FSYNC"):
        store.save_user(user("maybe"))
    store._db = real
    with pytest.raises(StoreError, match="the store refuses writes after a write failure"):
        store.save_user(user("later"))
    store.close()
    reopened = SqliteStore(tmp_path / "latchkey.db")  # why "unknown": here the write stood
    try:
        assert reopened.load_user("maybe") is not None
        assert reopened.load_user("later") is None
        reopened.save_user(user("later"))  # a restart clears the refusal
    finally:
        reopened.close()


@pytest.mark.parametrize(
    ("name", "code"),
    [("SQLITE_FULL", 13), ("SQLITE_IOERR_WRITE", 778), ("SQLITE_CORRUPT", 11)],
)
def test_an_io_error_before_the_commit_is_a_failure_and_latches(
    store: SqliteStore, name: str, code: int
) -> None:
    real = store._db
    store._db = FailingConnection(real, "INSERT", sqlite_error(name, code), after=False)  # type: ignore[assignment]
    with pytest.raises(StoreError) as raised:
        store.save_user(user("never"))
    assert not isinstance(raised.value, WriteUnconfirmed)  # rolled back: known not to stand
    store._db = real
    assert store.load_user("never") is None
    with pytest.raises(StoreError, match="refuses writes after a write failure: " + name):
        store.save_user(user("later"))


def test_a_bad_statement_fails_alone(store: SqliteStore) -> None:
    real = store._db
    error = sqlite_error("SQLITE_ERROR", 1, "no such table: iam_users")
    store._db = FailingConnection(real, "INSERT", error, after=False)  # type: ignore[assignment]
    with pytest.raises(StoreError, match="SQLITE_ERROR"):
        store.save_user(user("never"))
    store._db = real
    store.save_user(user("later"))  # nothing about the disk is in doubt


def test_secure_delete_is_on(store: SqliteStore) -> None:
    assert store._rows("PRAGMA secure_delete")[0][0] == 1


def on_disk(path: Path) -> bytes:
    wal = path.with_name(path.name + "-wal")
    return path.read_bytes() + (wal.read_bytes() if wal.exists() else b"")


def test_deleted_key_material_leaves_neither_file(store: SqliteStore) -> None:
    wrapped = {name: os.urandom(61) for name in ("deleted", "imported", "kept")}
    for name, blob in wrapped.items():
        external = name == "imported"
        record = key(name, origin="EXTERNAL" if external else "AWS_KMS")
        store.save_kms_key(record, KeyMaterialRecord(name, 1, blob, 1.0, imported=external))
    store._rows("PRAGMA wal_checkpoint(TRUNCATE)")  # some pages in the database file, too
    store.update_kms_key(key("kept", description="a later write: frames in the log"))
    assert all(blob in on_disk(store.path) for blob in wrapped.values())

    assert store.delete_kms_key("deleted")  # the sweeper's deletion
    assert store.delete_imported_key_material(key("imported", origin="EXTERNAL")) == 1
    stored = on_disk(store.path)
    assert wrapped["deleted"] not in stored
    assert wrapped["imported"] not in stored
    assert wrapped["kept"] in stored  # the search does see the files' contents


def test_expired_imported_material_leaves_neither_file(store: SqliteStore) -> None:
    blob = os.urandom(61)
    record = key("expiring", origin="EXTERNAL", expiration_model="KEY_MATERIAL_EXPIRES",
                 valid_to=50.0)  # fmt: skip
    store.save_kms_key(record, KeyMaterialRecord("expiring", 1, blob, 1.0, imported=True))
    assert blob in on_disk(store.path)
    assert store.expire_imported_key_material(100.0) == ["expiring"]
    assert blob not in on_disk(store.path)


def test_a_reader_holding_the_log_does_not_fail_the_deletion(
    store: SqliteStore, other: sqlite3.Connection, caplog: pytest.LogCaptureFixture
) -> None:
    store.save_kms_key(key("k"), KeyMaterialRecord("k", 1, os.urandom(61), 1.0))
    other.execute("BEGIN")
    other.execute("SELECT COUNT(*) FROM kms_keys").fetchone()  # a read snapshot: holds the log
    assert store.delete_kms_key("k")
    assert "write-ahead log" in caplog.text
    other.execute("ROLLBACK")
    assert store.load_kms_key("k") is None
    store.save_kms_key(replace(key("k2")), KeyMaterialRecord("k2", 1, os.urandom(61), 1.0))
