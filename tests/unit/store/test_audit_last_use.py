"""Key usage in the audit store: the last use of each key, written to ``audit_last_use`` once a
second and kept in memory in between, found again after a crash, and carried over from a store
of an earlier release."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

import latchkey.store.audit as audit_store
from latchkey.store.audit import AuditStore, NewEvent

A = "arn:aws:kms:us-east-1:000000000000:key/aaaaaaaa-1111-2222-3333-444444444444"
B = "arn:aws:kms:us-east-1:000000000000:key/bbbbbbbb-1111-2222-3333-444444444444"


def event(sequence: int, *used: str, name: str = "Encrypt") -> NewEvent:
    return NewEvent(
        sequence=sequence,
        event_id=f"event-{sequence}",
        event_time=f"2025-01-01T00:00:{sequence:02d}Z",
        event_source="kms.amazonaws.com",
        event_name=name,
        error_code=None,
        hash=f"{sequence:064x}",
        line=f'{{"eventID":"event-{sequence}"}}',
        used=used,
    )


def table(path: Path) -> dict[str, int]:
    db = sqlite3.connect(path)
    try:
        return dict(db.execute("SELECT arn, sequence FROM audit_last_use").fetchall())
    finally:
        db.close()


def last(store: AuditStore, arn: str) -> int | None:
    row = store.last_use(arn)
    return None if row is None else row.sequence


def test_uses_between_flushes_are_answered_from_memory(tmp_path: Path) -> None:
    store = AuditStore(tmp_path / "cloud.db")
    try:
        store.append([event(1, A), event(2, B), event(3, name="DescribeKey")])
        store.append([event(4, A)])
        assert (last(store, A), last(store, B)) == (4, 2)
        assert table(tmp_path / "cloud.db") == {}  # not written yet: within the second
    finally:
        store.close()


def test_a_due_flush_writes_every_key_once_with_its_newest_use(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = AuditStore(tmp_path / "cloud.db")
    try:
        store.append([event(1, A), event(2, B)])
        monkeypatch.setattr(audit_store, "LAST_USE_FLUSH", 0.0)
        store.append([event(3, A), event(4, name="ListKeys")])
        assert table(tmp_path / "cloud.db") == {A: 3, B: 2}
        row = store.last_use(A)
        assert row is not None
        assert (row.sequence, row.event_id, row.event_name) == (3, "event-3", "Encrypt")
        store.append([event(5)])  # an older use never replaces a newer one
        assert table(tmp_path / "cloud.db") == {A: 3, B: 2}
    finally:
        store.close()


def test_uses_not_flushed_before_a_crash_are_found_again(tmp_path: Path) -> None:
    store = AuditStore(tmp_path / "cloud.db")
    store.append([event(1, A), event(2, A, B)])
    store.close()  # as after kill -9: nothing flushed
    assert table(tmp_path / "cloud.db") == {}
    again = AuditStore(tmp_path / "cloud.db")
    try:
        assert (last(again, A), last(again, B)) == (2, 2)
        assert last(again, A.replace("aaaa", "cccc")) is None
    finally:
        again.close()


OLD_SCHEMA = """
CREATE TABLE audit_events (
    sequence INTEGER PRIMARY KEY, event_id TEXT NOT NULL, event_time TEXT NOT NULL,
    event_source TEXT NOT NULL, event_name TEXT NOT NULL, error_code TEXT,
    hash TEXT NOT NULL, line TEXT NOT NULL
);
CREATE TABLE audit_resources (
    arn TEXT NOT NULL, sequence INTEGER NOT NULL, used INTEGER NOT NULL,
    PRIMARY KEY (arn, sequence)
) WITHOUT ROWID;
CREATE INDEX audit_key_use ON audit_resources (arn, sequence) WHERE used = 1;
"""


def test_a_store_from_an_earlier_release_keeps_its_key_usage(tmp_path: Path) -> None:
    path = tmp_path / "cloud.db"
    db = sqlite3.connect(path)
    db.executescript(OLD_SCHEMA)
    for n, name in ((1, "Encrypt"), (2, "Decrypt"), (3, "DescribeKey")):
        db.execute(
            "INSERT INTO audit_events VALUES (?, ?, 't', 'kms.amazonaws.com', ?, NULL, 'h', '{}')",
            (n, f"event-{n}", name),
        )
    db.executemany(
        "INSERT INTO audit_resources VALUES (?, ?, ?)", [(A, 1, 1), (A, 2, 1), (A, 3, 0), (B, 3, 0)]
    )
    db.commit()
    db.close()
    store = AuditStore(path)
    try:
        assert (last(store, A), last(store, B)) == (2, None)
        store.append([event(4, B)])
        assert last(store, B) == 4
    finally:
        store.close()
    db = sqlite3.connect(path)
    try:
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert "audit_resources" not in tables
        assert db.execute("SELECT used FROM audit_events WHERE sequence = 4").fetchone() == (B,)
    finally:
        db.close()


def test_a_migrated_store_says_which_events_predate_the_used_column(tmp_path: Path) -> None:
    path = tmp_path / "cloud.db"
    db = sqlite3.connect(path)
    db.executescript(OLD_SCHEMA)
    for n in (1, 2):
        db.execute(
            "INSERT INTO audit_events VALUES (?, ?, 't', 'kms.amazonaws.com', 'Encrypt', NULL,"
            " 'h', '{}')",
            (n, f"event-{n}"),
        )
    db.execute("INSERT INTO audit_resources VALUES (?, 2, 1)", (A,))
    db.commit()
    db.close()
    store = AuditStore(path)
    try:
        usage = store.key_usage()
        assert (usage.through, usage.used_from, usage.last_use) == (2, 3, {A: 2})
    finally:
        store.close()
    fresh = AuditStore(tmp_path / "fresh.db")
    try:  # a store made with the column: every event's is checked
        assert fresh.key_usage().used_from == 1
    finally:
        fresh.close()
