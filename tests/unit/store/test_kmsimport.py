"""The SQLite store's imported-key-material tables on a real database file: import tokens (kept
per key, pruned when long expired), the import itself in one transaction, deletion and expiry
back to PendingImport, and everything cascading with its key."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from latchkey.store.base import (
    Conflict,
    ImportFingerprintRecord,
    ImportTokenRecord,
    KeyMaterialRecord,
    KmsKeyRecord,
)
from latchkey.store.sqlite import SqliteStore

ACCOUNT = "000000000000"


def key(key_id: str, **extra: object) -> KmsKeyRecord:
    values: dict[str, object] = {
        "key_id": key_id,
        "arn": f"arn:aws:kms:us-east-1:{ACCOUNT}:key/{key_id}",
        "account": ACCOUNT,
        "region": "us-east-1",
        "created": 1.0,
        "description": "",
        "key_spec": "SYMMETRIC_DEFAULT",
        "key_usage": "ENCRYPT_DECRYPT",
        "state": "PendingImport",
        "origin": "EXTERNAL",
        "policy": "{}",
        "current_version": 0,
    }
    values.update(extra)
    return KmsKeyRecord(**values)  # type: ignore[arg-type]


def token(
    token_id: str, key_id: str, created: float = 10.0, valid_to: float = 100.0
) -> ImportTokenRecord:
    return ImportTokenRecord(
        token_id, key_id, "RSAES_OAEP_SHA_256", "RSA_2048", b"wrapped-private", created, valid_to
    )


def imported(store: SqliteStore, key_id: str, *, valid_to: float | None = None) -> KmsKeyRecord:
    """Import material into a fresh EXTERNAL key; the key as stored after."""
    store.save_kms_key(key(key_id), None)
    model = "KEY_MATERIAL_EXPIRES" if valid_to is not None else "KEY_MATERIAL_DOES_NOT_EXPIRE"
    enabled = key(key_id, state="Enabled", current_version=1, expiration_model=model,
                  valid_to=valid_to)  # fmt: skip
    store.import_key_material(
        KeyMaterialRecord(key_id, 1, b"wrapped-1", 20.0, imported=True),
        enabled,
        ImportFingerprintRecord(key_id, b"wrapped-fp-key", "f" * 64, 20.0),
    )
    loaded = store.load_kms_key(key_id)
    assert loaded is not None
    return loaded


def test_token_round_trip(store: SqliteStore) -> None:
    store.save_kms_key(key("k1"), None)
    saved = token("t1", "k1")
    store.save_import_token(saved, keep=5)
    assert store.load_import_token("t1") == saved
    assert store.load_import_token("nope") is None
    assert "wrapped-private" not in repr(saved)


def test_a_token_needs_its_key(store: SqliteStore) -> None:
    with pytest.raises(Conflict):
        store.save_import_token(token("t1", "missing"), keep=5)


def test_each_key_keeps_its_newest_tokens(store: SqliteStore) -> None:
    store.save_kms_key(key("k1"), None)
    store.save_kms_key(key("k2"), None)
    store.save_import_token(token("other", "k2", created=1.0), keep=2)
    for n in range(4):
        store.save_import_token(token(f"t{n}", "k1", created=10.0 + n), keep=2)
    assert [store.load_import_token(f"t{n}") is not None for n in range(4)] == [
        False, False, True, True,
    ]  # fmt: skip
    assert store.load_import_token("other") is not None


def test_tokens_expired_before_a_time_go(store: SqliteStore) -> None:
    store.save_kms_key(key("k1"), None)
    store.save_import_token(token("old", "k1", valid_to=50.0), keep=5)
    store.save_import_token(token("new", "k1", valid_to=150.0), keep=5)
    assert store.delete_import_tokens_expired_before(100.0) == 1
    assert store.load_import_token("old") is None
    assert store.load_import_token("new") is not None


def test_import_is_one_transaction(store: SqliteStore) -> None:
    stored = imported(store, "k1")
    assert (stored.state, stored.current_version) == ("Enabled", 1)
    assert stored.expiration_model == "KEY_MATERIAL_DOES_NOT_EXPIRE"
    material = store.load_key_material("k1", 1)
    assert material is not None
    assert (material.wrapped, material.imported) == (b"wrapped-1", True)
    fingerprint = store.load_import_fingerprint("k1")
    assert fingerprint is not None
    assert fingerprint.key_material_id == "f" * 64
    assert "wrapped-fp-key" not in repr(fingerprint)

    # A reimport replaces the material row; a second fingerprint for the key cannot exist.
    again = replace(stored, valid_to=500.0, expiration_model="KEY_MATERIAL_EXPIRES")
    store.import_key_material(
        KeyMaterialRecord("k1", 1, b"wrapped-again", 30.0, imported=True), again, None
    )
    material = store.load_key_material("k1", 1)
    assert material is not None
    assert material.wrapped == b"wrapped-again"
    assert store.load_kms_key("k1") == again
    with pytest.raises(Conflict):
        store.import_key_material(
            KeyMaterialRecord("k1", 1, b"wrapped-3", 40.0, imported=True),
            replace(again, description="changed"),
            ImportFingerprintRecord("k1", b"other", "0" * 64, 40.0),
        )
    # Nothing of the failed import stayed.
    assert store.load_kms_key("k1") == again
    material = store.load_key_material("k1", 1)
    assert material is not None
    assert material.wrapped == b"wrapped-again"
    fingerprint = store.load_import_fingerprint("k1")
    assert fingerprint is not None
    assert fingerprint.key_material_id == "f" * 64


@pytest.mark.parametrize(("before", "after"), [("Enabled", "PendingImport"),
                                               ("Disabled", "PendingImport"),
                                               ("PendingDeletion", "PendingDeletion")])  # fmt: skip
def test_deleting_imported_material(store: SqliteStore, before: str, after: str) -> None:
    stored = imported(store, "k1", valid_to=900.0)
    assert store.delete_imported_key_material(replace(stored, state=before)) == 1
    gone = store.load_kms_key("k1")
    assert gone is not None
    assert (gone.state, gone.valid_to, gone.expiration_model) == (after, None, None)
    assert store.load_key_material("k1", 1) is None
    assert store.load_import_fingerprint("k1") is not None  # reimport stays possible


def test_only_imported_material_is_deleted(store: SqliteStore) -> None:
    store.save_kms_key(key("k1", state="Enabled", current_version=1),
                       KeyMaterialRecord("k1", 1, b"generated", 1.0))  # fmt: skip
    record = store.load_kms_key("k1")
    assert record is not None
    assert store.delete_imported_key_material(record) == 0
    assert store.load_key_material("k1", 1) is not None


def test_expiry_takes_only_material_past_valid_to(store: SqliteStore) -> None:
    imported(store, "soon", valid_to=100.0)
    imported(store, "later", valid_to=300.0)
    imported(store, "never")
    assert store.expire_imported_key_material(99.0) == []
    assert store.expire_imported_key_material(100.0) == ["soon"]
    assert store.expire_imported_key_material(200.0) == []
    soon = store.load_kms_key("soon")
    assert soon is not None
    assert (soon.state, soon.valid_to) == ("PendingImport", None)
    assert store.load_key_material("soon", 1) is None
    later = store.load_kms_key("later")
    assert later is not None
    assert later.state == "Enabled"
    assert store.load_key_material("later", 1) is not None
    assert store.expire_imported_key_material(10_000.0) == ["later"]
    never = store.load_kms_key("never")
    assert never is not None
    assert never.state == "Enabled"


def test_everything_goes_with_the_key(store: SqliteStore) -> None:
    imported(store, "k1")
    store.save_import_token(token("t1", "k1"), keep=5)
    imported(store, "k2")
    assert store.delete_kms_key("k1")
    assert store.load_import_token("t1") is None
    assert store.load_import_fingerprint("k1") is None
    assert store.load_import_fingerprint("k2") is not None


def test_tables_survive_reopening(tmp_path: Path) -> None:
    first = SqliteStore(tmp_path / "latchkey.db")
    imported(first, "k1")
    first.save_import_token(token("t1", "k1"), keep=5)
    first.close()
    second = SqliteStore(tmp_path / "latchkey.db")
    try:
        assert second.load_import_token("t1") is not None
        assert second.load_import_fingerprint("k1") is not None
    finally:
        second.close()
