"""The SQLite store's KMS aliases and tags and the sweeper's queries, on a real database file:
round trips, uniqueness, limits that change nothing, and everything going with its key."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest

from latchkey.store.base import (
    Conflict,
    KeyMaterialRecord,
    KmsAliasRecord,
    KmsKeyRecord,
    LimitReached,
)
from latchkey.store.sqlite import SqliteStore

ACCOUNT, REGION = "000000000000", "us-east-1"


def key(n: int, **extra: object) -> KmsKeyRecord:
    key_id = f"00000000-0000-4000-8000-{n:012d}"
    values: dict[str, object] = {
        "key_id": key_id,
        "arn": f"arn:aws:kms:{REGION}:{ACCOUNT}:key/{key_id}",
        "account": ACCOUNT,
        "region": REGION,
        "created": float(n),
        "description": "",
        "key_spec": "SYMMETRIC_DEFAULT",
        "key_usage": "ENCRYPT_DECRYPT",
        "state": "Enabled",
        "origin": "AWS_KMS",
        "policy": "{}",
        "current_version": 1,
    }
    values.update(extra)
    return KmsKeyRecord(**values)  # type: ignore[arg-type]


def saved(store: SqliteStore, n: int, **extra: object) -> KmsKeyRecord:
    record = key(n, **extra)
    store.save_kms_key(record, KeyMaterialRecord(record.key_id, 1, b"wrapped", 1.0))
    return record


def alias(name: str, key_id: str, at: float = 1.0) -> KmsAliasRecord:
    return KmsAliasRecord(ACCOUNT, REGION, name, key_id, at, at)


def test_alias_round_trip_and_listing(store: SqliteStore) -> None:
    a, b = saved(store, 1), saved(store, 2)
    store.save_kms_alias(alias("alias/z", a.key_id), limit=50)
    store.save_kms_alias(alias("alias/a", a.key_id), limit=50)
    store.save_kms_alias(alias("alias/m", b.key_id), limit=50)
    assert store.load_kms_alias(ACCOUNT, REGION, "alias/a") == alias("alias/a", a.key_id)
    assert store.load_kms_alias(ACCOUNT, "eu-west-1", "alias/a") is None
    names = [x.name for x in store.list_kms_aliases(ACCOUNT, REGION)]
    assert names == ["alias/a", "alias/m", "alias/z"]
    assert [x.name for x in store.list_kms_aliases(ACCOUNT, REGION, a.key_id)] == [
        "alias/a",
        "alias/z",
    ]


def test_alias_names_are_unique_per_place_and_case_sensitive(store: SqliteStore) -> None:
    a = saved(store, 1)
    store.save_kms_alias(alias("alias/x", a.key_id), limit=50)
    with pytest.raises(Conflict):
        store.save_kms_alias(alias("alias/x", a.key_id, 2.0), limit=50)
    store.save_kms_alias(alias("alias/X", a.key_id), limit=50)
    store.save_kms_alias(replace(alias("alias/x", a.key_id), region="eu-west-1"), limit=50)
    assert len(store.list_kms_aliases(ACCOUNT, REGION)) == 2


def test_an_alias_must_name_a_stored_key(store: SqliteStore) -> None:
    with pytest.raises(Conflict):  # the foreign key refuses it
        store.save_kms_alias(alias("alias/x", key(9).key_id), limit=50)
    assert store.list_kms_aliases(ACCOUNT, REGION) == []


def test_alias_limit_changes_nothing(store: SqliteStore) -> None:
    a, b = saved(store, 1), saved(store, 2)
    store.save_kms_alias(alias("alias/1", a.key_id), limit=2)
    store.save_kms_alias(alias("alias/2", a.key_id), limit=2)
    with pytest.raises(LimitReached):
        store.save_kms_alias(alias("alias/3", a.key_id), limit=2)
    store.save_kms_alias(alias("alias/b", b.key_id), limit=2)
    with pytest.raises(LimitReached):
        store.update_kms_alias(ACCOUNT, REGION, "alias/b", a.key_id, 5.0, limit=2)
    assert store.load_kms_alias(ACCOUNT, REGION, "alias/b") == alias("alias/b", b.key_id)
    assert len(store.list_kms_aliases(ACCOUNT, REGION, a.key_id)) == 2


def test_update_and_delete_alias(store: SqliteStore) -> None:
    a, b = saved(store, 1), saved(store, 2)
    store.save_kms_alias(alias("alias/x", a.key_id), limit=50)
    assert store.update_kms_alias(ACCOUNT, REGION, "alias/x", b.key_id, 7.0, limit=50)
    moved = store.load_kms_alias(ACCOUNT, REGION, "alias/x")
    assert moved == KmsAliasRecord(ACCOUNT, REGION, "alias/x", b.key_id, 1.0, 7.0)
    assert not store.update_kms_alias(ACCOUNT, REGION, "alias/none", b.key_id, 7.0, limit=50)
    assert store.delete_kms_alias(ACCOUNT, REGION, "alias/x")
    assert not store.delete_kms_alias(ACCOUNT, REGION, "alias/x")


def test_tags(store: SqliteStore) -> None:
    a = saved(store, 1)
    store.tag_kms_key(a.key_id, [("b", "1"), ("a", "2")], limit=3)
    store.tag_kms_key(a.key_id, [("b", "one"), ("B", "x")], limit=3)
    assert store.list_kms_key_tags(a.key_id) == (("B", "x"), ("a", "2"), ("b", "one"))
    with pytest.raises(LimitReached):
        store.tag_kms_key(a.key_id, [("a", "new"), ("c", "3")], limit=3)
    assert store.list_kms_key_tags(a.key_id) == (("B", "x"), ("a", "2"), ("b", "one"))
    store.untag_kms_key(a.key_id, ["B", "missing"])
    assert store.list_kms_key_tags(a.key_id) == (("a", "2"), ("b", "one"))


def test_deleting_a_key_takes_its_aliases_and_tags(store: SqliteStore) -> None:
    a, b = saved(store, 1), saved(store, 2)
    store.save_kms_alias(alias("alias/a", a.key_id), limit=50)
    store.save_kms_alias(alias("alias/b", b.key_id), limit=50)
    store.tag_kms_key(a.key_id, [("k", "v")], limit=50)
    store.tag_kms_key(b.key_id, [("k", "v")], limit=50)
    assert store.delete_kms_key(a.key_id)
    assert [x.name for x in store.list_kms_aliases(ACCOUNT, REGION)] == ["alias/b"]
    assert store.list_kms_key_tags(a.key_id) == ()
    assert store.list_kms_key_tags(b.key_id) == (("k", "v"),)
    db = sqlite3.connect(store.path)
    try:
        rows = db.execute("SELECT COUNT(*) FROM kms_key_tags WHERE key_id = ?", (a.key_id,))
        assert rows.fetchone()[0] == 0
    finally:
        db.close()


def test_sweeper_queries(store: SqliteStore) -> None:
    due = saved(store, 1, state="PendingDeletion", deletion_date=100.0, pending_window_days=7)
    saved(store, 2, state="PendingDeletion", deletion_date=300.0, pending_window_days=7)
    saved(store, 3, state="Disabled", deletion_date=50.0)  # cancelled: not pending any more
    rotate = saved(store, 4, rotation_period_days=90, next_rotation=150.0)
    saved(store, 5, rotation_period_days=90, next_rotation=500.0)
    saved(store, 6, state="Disabled", rotation_period_days=90, next_rotation=10.0)
    saved(store, 7)  # no rotation
    assert [k.key_id for k in store.list_kms_keys_to_delete(200.0)] == [due.key_id]
    assert [k.key_id for k in store.list_kms_keys_to_rotate(200.0)] == [rotate.key_id]
    assert store.list_kms_keys_to_delete(99.0) == []


def test_promote_key_material(store: SqliteStore) -> None:
    a = saved(store, 1, origin="EXTERNAL")
    store.save_key_material(KeyMaterialRecord(a.key_id, 2, b"w2", 5.0, imported=True))
    store.promote_key_material(replace(a, current_version=2), 2, "ON_DEMAND")
    stored = store.load_kms_key(a.key_id)
    assert stored is not None
    assert stored.current_version == 2
    material = store.load_key_material(a.key_id, 2)
    assert material is not None
    assert (material.rotation_type, material.imported) == ("ON_DEMAND", True)


def test_an_existing_database_gains_the_tables(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    db.executescript(
        "CREATE TABLE kms_keys (key_id TEXT PRIMARY KEY, arn TEXT NOT NULL, account TEXT NOT NULL,"
        " region TEXT NOT NULL, created REAL NOT NULL, description TEXT NOT NULL, key_spec TEXT"
        " NOT NULL, key_usage TEXT NOT NULL, state TEXT NOT NULL, origin TEXT NOT NULL, policy"
        " TEXT NOT NULL, current_version INTEGER NOT NULL);"
    )
    db.close()
    store = SqliteStore(path)
    try:
        a = saved(store, 1)
        store.save_kms_alias(alias("alias/a", a.key_id), limit=50)
        store.tag_kms_key(a.key_id, [("k", "v")], limit=50)
        assert store.list_kms_key_tags(a.key_id) == (("k", "v"),)
    finally:
        store.close()


def test_sweeper_queries_read_only_due_keys(store: SqliteStore) -> None:
    """Every query of a sweep goes through a partial index, never a scan of every key: with
    100,000 keys a scan cost the event loop tens of milliseconds every two seconds."""
    seen: list[str] = []
    store._db.set_trace_callback(seen.append)  # bound values come expanded into the text
    try:
        store.list_kms_keys_to_delete(200.0)
        store.list_kms_keys_to_rotate(200.0)
        store.expire_imported_key_material(200.0)
        store.delete_import_tokens_expired_before(200.0)
    finally:
        store._db.set_trace_callback(None)
    queries = [q for q in seen if q.lstrip().upper().startswith(("SELECT", "DELETE"))]
    assert len(queries) == 4
    for query in queries:
        plan = " | ".join(row[3] for row in store._db.execute(f"EXPLAIN QUERY PLAN {query}"))
        assert "INDEX kms_" in plan, (query, plan)
        assert "SCAN" not in plan, (query, plan)


def test_due_indexes_made_on_a_store_from_before_their_columns(tmp_path: Path) -> None:
    """A store written before the deletion/rotation/expiry columns existed opens, gains the
    columns, then the indexes that name them."""
    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    db.executescript(
        "CREATE TABLE kms_keys (key_id TEXT PRIMARY KEY, arn TEXT NOT NULL, account TEXT NOT"
        " NULL, region TEXT NOT NULL, created REAL NOT NULL, description TEXT NOT NULL,"
        " key_spec TEXT NOT NULL, key_usage TEXT NOT NULL, state TEXT NOT NULL,"
        " origin TEXT NOT NULL, policy TEXT NOT NULL, current_version INTEGER NOT NULL);"
    )
    db.close()
    store = SqliteStore(path)
    try:
        names = {r[0] for r in store._db.execute("SELECT name FROM sqlite_master")}
        assert {"kms_keys_deletion_due", "kms_keys_rotation_due"} <= names
        assert "kms_keys_material_expiry" in names
        saved(store, 1, state="PendingDeletion", deletion_date=100.0, pending_window_days=7)
        assert [k.key_id for k in store.list_kms_keys_to_delete(200.0)] == [key(1).key_id]
    finally:
        store.close()
