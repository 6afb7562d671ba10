"""The store's read cache: a value lives until a write changes a row, and no longer."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from latchkey.store import readcache
from latchkey.store.base import KeyMaterialRecord, KmsKeyRecord, RoleRecord
from latchkey.store.readcache import ReadCache
from latchkey.store.sqlite import SqliteStore

TRUST = '{"Statement":[{"Effect":"Allow","Principal":{"AWS":"*"},"Action":"sts:AssumeRole"}]}'


def loader(values: list[str], calls: list[str]) -> Callable[[], str]:
    def load() -> str:
        calls.append(values[-1])
        return values[-1]

    return load


def test_a_write_that_changes_nothing_keeps_the_cache(store: SqliteStore) -> None:
    values, calls = ["first"], list[str]()
    load = loader(values, calls)
    assert store.cached("t", "k", load) == "first"
    # The sweeper's jobs with nothing due: DELETEs and SELECTs in a write transaction.
    assert store.delete_import_tokens_expired_before(0.0) == 0
    assert store.expire_imported_key_material(0.0) == []
    values.append("second")
    assert store.cached("t", "k", load) == "first"
    assert calls == ["first"]


def test_a_write_that_changes_a_row_drops_every_cached_value(store: SqliteStore) -> None:
    values, calls = ["first"], list[str]()
    load = loader(values, calls)
    store.cached("t", "k", load)
    store.save_role(
        RoleRecord(
            name="App",
            arn="arn:aws:iam::000000000000:role/App",
            role_id="AROAAPP",
            path="/",
            trust_policy=TRUST,
            max_session_duration=3600,
            created=1.0,
        )
    )
    values.append("second")
    assert store.cached("t", "k", load) == "second"
    assert calls == ["first", "second"]


def test_a_failed_write_drops_the_cache_too(store: SqliteStore) -> None:
    values, calls = ["first"], list[str]()
    load = loader(values, calls)
    store.cached("t", "k", load)
    with pytest.raises(RuntimeError), store._write():
        raise RuntimeError("the transaction's body failed")
    values.append("second")
    assert store.cached("t", "k", load) == "second"


def test_the_oldest_entry_goes_first(store: SqliteStore) -> None:
    loaded: list[str] = []

    def load(name: str) -> Callable[[], str]:
        def read() -> str:
            loaded.append(name)
            return name

        return read

    for name in ("a", "b", "c", "b", "a"):
        store.cached("t", name, load(name), size=2)
    # "a" left when "c" came in; "b" was still there (a hit does not renew it), so when "a"
    # came back, "b" was the oldest and went; "c" stays.
    assert loaded == ["a", "b", "c", "a"]
    store.cached("t", "c", load("c"), size=2)
    assert loaded == ["a", "b", "c", "a"]


# -- per-key entries: a key's record and material live until a write to that key ----------------


def kms_key(store: SqliteStore, key_id: str, description: str = "") -> KmsKeyRecord:
    record = KmsKeyRecord(
        key_id=key_id, arn=f"arn:aws:kms:us-east-1:000000000000:key/{key_id}",
        account="000000000000", region="us-east-1", created=1.0, description=description,
        key_spec="SYMMETRIC_DEFAULT", key_usage="ENCRYPT_DECRYPT", state="Enabled",
        origin="AWS_KMS", policy="{}", current_version=1,
    )  # fmt: skip
    store.save_kms_key(record, KeyMaterialRecord(key_id, 1, b"wrapped-" + key_id.encode(), 1.0))
    return record


def behind(path: Path, sql: str) -> None:
    """Change the file behind the store's back: only a reload shows it."""
    db = sqlite3.connect(path)
    try:
        db.execute(sql)
        db.commit()
    finally:
        db.close()


def description(store: SqliteStore, key_id: str) -> str:
    record = store.load_kms_key(key_id)
    assert record is not None
    return record.description


def wrapped(store: SqliteStore, key_id: str) -> bytes:
    material = store.load_key_material(key_id, 1)
    assert material is not None
    return material.wrapped


def test_a_key_stays_cached_through_writes_to_other_keys_and_other_tables(
    store: SqliteStore, tmp_path: Path
) -> None:
    a = kms_key(store, "a")
    kms_key(store, "b")
    assert (description(store, "a"), wrapped(store, "a")) == ("", b"wrapped-a")
    behind(tmp_path / "latchkey.db", "UPDATE kms_keys SET description = 'behind'")
    behind(tmp_path / "latchkey.db", "UPDATE kms_key_material SET wrapped = x'00'")
    kms_key(store, "c")  # a new key
    store.tag_kms_key("b", [("team", "x")], limit=50)  # a tag on another key
    store.save_role(
        RoleRecord("App", "arn:aws:iam::000000000000:role/App", "AROAAPP", "/", TRUST, 3600, 1.0)
    )  # IAM
    assert (description(store, "a"), wrapped(store, "a")) == ("", b"wrapped-a")
    assert description(store, "b") == ""  # cached as it was made; its tags are apart
    store.update_kms_key(replace(a, state="Disabled"))  # a write to "a" itself
    record = store.load_kms_key("a")
    assert record is not None
    assert (record.state, record.description) == ("Disabled", "")
    assert wrapped(store, "a") == b"\x00"


def test_a_write_that_names_no_keys_drops_every_key(store: SqliteStore, tmp_path: Path) -> None:
    kms_key(store, "a")
    kms_key(store, "b")
    assert description(store, "a") == ""
    behind(tmp_path / "latchkey.db", "UPDATE kms_keys SET description = 'behind'")
    with store._write() as db:  # may have changed any key's rows
        db.execute("UPDATE kms_keys SET state = state WHERE key_id = 'b'")
    assert description(store, "a") == "behind"


def test_a_write_between_the_read_and_the_remembering_makes_the_value_stale() -> None:
    reads = ReadCache()
    values = iter(["old", "new"])

    def load() -> str:
        value = next(values)
        if value == "old":
            reads.changed(["k"])  # lands while "old" is on its way into the cache
        return value

    assert reads.cached_for_key("t", "k", "k", load, size=8) == "old"
    assert reads.cached_for_key("t", "k", "k", load, size=8) == "new"


def test_too_many_written_keys_to_remember_drop_every_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(readcache, "KEY_WRITES_KEPT", 2)
    reads = ReadCache()
    loads: list[str] = []

    def load() -> str:
        loads.append("k")
        return "v"

    reads.cached_for_key("t", "k", "k", load, size=8)
    reads.changed(["x", "y"])
    reads.cached_for_key("t", "k", "k", load, size=8)
    assert loads == ["k"]  # two others written: "k" stays
    reads.changed(["z"])  # a third: no longer tracked one by one
    reads.cached_for_key("t", "k", "k", load, size=8)
    assert loads == ["k", "k"]


def test_preloading_reads_every_key_and_its_material_into_memory(tmp_path: Path) -> None:
    first = SqliteStore(tmp_path / "latchkey.db")
    for n in range(5):
        kms_key(first, f"k{n}")
    first.close()
    store = SqliteStore(tmp_path / "latchkey.db")  # a restart: nothing cached
    try:
        assert store.preload_kms_keys(threading.Event(), chunk=2) == 5
        behind(tmp_path / "latchkey.db", "UPDATE kms_keys SET description = 'behind'")
        behind(tmp_path / "latchkey.db", "UPDATE kms_key_material SET wrapped = x'00'")
        assert [description(store, f"k{n}") for n in range(5)] == [""] * 5
        assert wrapped(store, "k3") == b"wrapped-k3"
        stopped = threading.Event()
        stopped.set()
        assert store.preload_kms_keys(stopped) == 0
    finally:
        store.close()


def test_a_new_key_is_cached_as_it_was_written(store: SqliteStore, tmp_path: Path) -> None:
    kms_key(store, "new", description="made")
    behind(tmp_path / "latchkey.db", "UPDATE kms_keys SET description = 'behind'")
    behind(tmp_path / "latchkey.db", "UPDATE kms_key_material SET wrapped = x'00'")
    assert (description(store, "new"), wrapped(store, "new")) == ("made", b"wrapped-new")
