"""KMS keys and their material versions in the cloud's SQLite store.

Material is stored only wrapped by the root key (the record id bound as AAD). Tables of things
that hang off a key (aliases, tags, grants, import tokens) reference ``kms_keys`` with
``ON DELETE CASCADE``, so deleting a key removes them in the same transaction. Deleted material
is overwritten in the database (``secure_delete``) and, after the commit, cleared from the
write-ahead log by a checkpoint (``_scrub``).
"""

from __future__ import annotations

import sqlite3
import sys
import threading
from collections.abc import Iterable
from dataclasses import fields
from typing import Any
from urllib.parse import quote

from latchkey.store.base import KeyMaterialRecord, KmsKeyRecord
from latchkey.store.sqlitedb import KEY_CACHE_SIZE, SqliteDatabase

KMS_SCHEMA = """
CREATE TABLE IF NOT EXISTS kms_keys (
    key_id TEXT PRIMARY KEY, arn TEXT NOT NULL, account TEXT NOT NULL, region TEXT NOT NULL,
    created REAL NOT NULL, description TEXT NOT NULL, key_spec TEXT NOT NULL,
    key_usage TEXT NOT NULL, state TEXT NOT NULL, origin TEXT NOT NULL, policy TEXT NOT NULL,
    current_version INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS kms_keys_by_place ON kms_keys (account, region, created);
CREATE TABLE IF NOT EXISTS kms_key_material (
    key_id TEXT NOT NULL REFERENCES kms_keys(key_id), version INTEGER NOT NULL,
    wrapped BLOB NOT NULL, created REAL NOT NULL, PRIMARY KEY (key_id, version)
);
"""

KMS_ADDED_COLUMNS = (
    ("kms_keys", "deletion_date", "REAL"),
    ("kms_keys", "pending_window_days", "INTEGER"),
    ("kms_keys", "rotation_period_days", "INTEGER"),
    ("kms_keys", "next_rotation", "REAL"),
    ("kms_keys", "valid_to", "REAL"),
    ("kms_keys", "expiration_model", "TEXT"),
    ("kms_keys", "last_used", "REAL"),
    ("kms_keys", "last_used_operation", "TEXT"),
    ("kms_key_material", "rotation_type", "TEXT"),
    ("kms_key_material", "imported", "INTEGER NOT NULL DEFAULT 0"),
    ("kms_import_fingerprints", "description", "TEXT"),
)

# The sweeper's queries (every few seconds, on the event loop) find the few keys that are due
# through these partial indexes, not by reading every key: a scan of 100,000 keys costs tens of
# milliseconds of the loop. Each index holds only the keys its query can want, so other keys
# cost nothing to write. Their WHERE terms are the queries' own (``kmsmeta``, ``kmsimport``).
KMS_INDEXES = """
CREATE INDEX IF NOT EXISTS kms_keys_deletion_due ON kms_keys (deletion_date, key_id)
    WHERE state = 'PendingDeletion' AND deletion_date IS NOT NULL;
CREATE INDEX IF NOT EXISTS kms_keys_rotation_due ON kms_keys (next_rotation, key_id)
    WHERE state = 'Enabled' AND rotation_period_days IS NOT NULL AND next_rotation IS NOT NULL;
CREATE INDEX IF NOT EXISTS kms_keys_material_expiry ON kms_keys (valid_to, key_id)
    WHERE origin = 'EXTERNAL' AND expiration_model = 'KEY_MATERIAL_EXPIRES'
    AND valid_to IS NOT NULL;
"""

KEY_COLUMNS = tuple(f.name for f in fields(KmsKeyRecord))
MATERIAL_COLUMNS = tuple(f.name for f in fields(KeyMaterialRecord))
_UPDATED = [c for c in KEY_COLUMNS if c != "key_id"]

# Built from the record fields, never from input.
KEY_SELECT = f"SELECT {', '.join(KEY_COLUMNS)} FROM kms_keys"  # noqa: S608
KEY_INSERT = (
    f"INSERT INTO kms_keys ({', '.join(KEY_COLUMNS)}) VALUES ({', '.join('?' * len(KEY_COLUMNS))})"  # noqa: S608
)
KEY_UPDATE = f"UPDATE kms_keys SET {', '.join(f'{c} = ?' for c in _UPDATED)} WHERE key_id = ?"  # noqa: S608
MATERIAL_SELECT = f"SELECT {', '.join(MATERIAL_COLUMNS)} FROM kms_key_material"  # noqa: S608
MATERIAL_INSERT = f"INSERT INTO kms_key_material ({', '.join(MATERIAL_COLUMNS)}) VALUES ({', '.join('?' * len(MATERIAL_COLUMNS))})"  # noqa: S608, E501


def _key_row(key: KmsKeyRecord) -> tuple[object, ...]:
    return tuple(getattr(key, name) for name in KEY_COLUMNS)


# Text most keys share (the default key policy, account, region, spec, state): one copy each in
# the read cache, however many keys hold it.
_SHARED_TEXT = frozenset(
    {"account", "region", "key_spec", "key_usage", "state", "origin", "policy",
     "expiration_model", "last_used_operation"}
)  # fmt: skip
_SHARED_AT = tuple(KEY_COLUMNS.index(name) for name in sorted(_SHARED_TEXT))
_KEY_WIDTH = len(KEY_COLUMNS)

# A key and its current material in one read: the first use of a key after a start (or a
# write) is one query that releases the GIL once, not two. Built from the record fields.
KEY_WITH_MATERIAL = (
    f"SELECT {', '.join('k.' + c for c in KEY_COLUMNS)}, "  # noqa: S608
    f"{', '.join('m.' + c for c in MATERIAL_COLUMNS)} FROM kms_keys k"
    " LEFT JOIN kms_key_material m ON m.key_id = k.key_id AND m.version = k.current_version"
    " WHERE k.key_id = ?"
)


def _key_from_tuple(row: tuple[Any, ...]) -> KmsKeyRecord:
    values = list(row[:_KEY_WIDTH])
    for at in _SHARED_AT:
        if isinstance(values[at], str):
            values[at] = sys.intern(values[at])
    return KmsKeyRecord(*values)


def _material(row: Iterable[Any]) -> KeyMaterialRecord:
    """A material row (a plain tuple or an ``sqlite3.Row``, columns as ``MATERIAL_COLUMNS``)."""
    key_id, version, wrapped, created, rotation_type, imported = row
    return KeyMaterialRecord(key_id, version, wrapped, created, rotation_type, bool(imported))


class KmsTables(SqliteDatabase):
    """Mixed into the cloud store; uses its connection and write discipline. Key records and
    material rows are read on every cryptographic call: cached per key, until a write to that
    key (each write here names its key)."""

    def save_kms_key(self, key: KmsKeyRecord, material: KeyMaterialRecord | None) -> None:
        """A new key (and its first material), then cached as written: a key is mostly used
        soon after it is made."""
        with self._write(keys=(key.key_id,)) as db:
            db.execute(KEY_INSERT, _key_row(key))
            if material is not None:
                self._insert_material(db, material)
        mark = self.reads.key_mark()  # after the commit: the rows below are the stored ones
        if material is not None:
            where = (key.key_id, material.version)
            self.reads.seed("kms_material", where, material, mark, size=KEY_CACHE_SIZE)
        record = _key_from_tuple(_key_row(key))  # its shared text interned
        self.reads.seed("kms_key", key.key_id, record, mark, size=KEY_CACHE_SIZE)

    @staticmethod
    def _update_key(db: sqlite3.Connection, key: KmsKeyRecord) -> bool:
        cur = db.execute(KEY_UPDATE, (*(getattr(key, c) for c in _UPDATED), key.key_id))
        return cur.rowcount > 0

    def update_kms_key(self, key: KmsKeyRecord) -> bool:
        with self._write(keys=(key.key_id,)) as db:
            return self._update_key(db, key)

    def load_kms_key(self, key_id: str) -> KmsKeyRecord | None:
        """The key, read with its current material (which is then cached too)."""

        def load() -> KmsKeyRecord | None:
            mark = self.reads.key_mark()  # as ``cached_for_key`` took it: before the read
            with self._lock:
                row = self._db.execute(KEY_WITH_MATERIAL, (key_id,)).fetchone()
            if row is None:
                return None
            record = _key_from_tuple(row)
            if row[_KEY_WIDTH] is not None:  # a key waiting for imported material has none
                material = _material(row[_KEY_WIDTH:])
                where = (key_id, record.current_version)
                self.reads.seed("kms_material", where, material, mark, size=KEY_CACHE_SIZE)
            return record

        return self.reads.cached_for_key("kms_key", key_id, key_id, load, size=KEY_CACHE_SIZE)

    def preload_kms_keys(self, stop: threading.Event, *, chunk: int = 1000) -> int:
        """Read the newest ``KEY_CACHE_SIZE`` keys and their current material into the cache,
        on a connection of its own (a thread at start; the event loop's reads never wait for
        it); ``stop`` ends it early. Returns how many keys it cached. A key written while it
        runs is marked stale as any other, so it never serves old rows."""
        mark = self.reads.key_mark()  # before the read
        uri = f"file:{quote(str(self.path))}?mode=ro"
        db = sqlite3.connect(uri, uri=True, check_same_thread=False)
        count = 0
        try:
            db.execute("BEGIN")  # one snapshot for the count and the rows
            total = int(db.execute("SELECT COUNT(*) FROM kms_keys").fetchone()[0])
            # In the order the keys were made (rowid: no sort), the newest last: the last
            # to be evicted.
            cur = db.execute(
                f"{KEY_WITH_MATERIAL.partition(' WHERE ')[0]} ORDER BY k.rowid LIMIT ? OFFSET ?",
                (KEY_CACHE_SIZE, max(0, total - KEY_CACHE_SIZE)),
            )
            while not stop.is_set() and (rows := cur.fetchmany(chunk)):
                for row in rows:
                    record = _key_from_tuple(row)
                    key_id = record.key_id
                    if row[_KEY_WIDTH] is not None:
                        material = _material(row[_KEY_WIDTH:])
                        where = (key_id, record.current_version)
                        self.reads.seed("kms_material", where, material, mark, size=KEY_CACHE_SIZE)
                    self.reads.seed("kms_key", key_id, record, mark, size=KEY_CACHE_SIZE)
                count += len(rows)
        except sqlite3.Error:
            return count  # only a head start: every key still loads on its first use
        finally:
            db.close()
        return count

    def list_kms_keys(self, account: str, region: str) -> list[KmsKeyRecord]:
        rows = self._rows(
            f"{KEY_SELECT} WHERE account = ? AND region = ? ORDER BY created, key_id",
            account,
            region,
        )
        return [KmsKeyRecord(**dict(r)) for r in rows]

    def delete_kms_key(self, key_id: str) -> bool:
        """Delete the key and its material; the material's old pages are then cleared from the
        write-ahead log too (``_scrub``)."""
        with self._write(keys=(key_id,)) as db:
            materials = db.execute(
                "DELETE FROM kms_key_material WHERE key_id = ?", (key_id,)
            ).rowcount
            deleted = db.execute("DELETE FROM kms_keys WHERE key_id = ?", (key_id,)).rowcount > 0
        if materials:
            self._scrub()
        return deleted

    @staticmethod
    def _insert_material(db: sqlite3.Connection, material: KeyMaterialRecord) -> None:
        db.execute(MATERIAL_INSERT, tuple(getattr(material, c) for c in MATERIAL_COLUMNS))

    def save_key_material(
        self, material: KeyMaterialRecord, key: KmsKeyRecord | None = None
    ) -> None:
        keys = {material.key_id} | ({key.key_id} if key is not None else set())
        with self._write(keys=keys) as db:
            self._insert_material(db, material)
            if key is not None:
                self._update_key(db, key)

    def load_key_material(self, key_id: str, version: int) -> KeyMaterialRecord | None:
        def load() -> KeyMaterialRecord | None:
            rows = self._rows(
                f"{MATERIAL_SELECT} WHERE key_id = ? AND version = ?", key_id, version
            )
            return _material(rows[0]) if rows else None

        where = (key_id, version)
        return self.reads.cached_for_key("kms_material", key_id, where, load, size=KEY_CACHE_SIZE)

    def list_key_materials(self, key_id: str) -> list[KeyMaterialRecord]:
        rows = self._rows(
            f"{MATERIAL_SELECT} WHERE key_id = ? ORDER BY version",
            key_id,
        )
        return [_material(r) for r in rows]

    def delete_key_materials(self, key_id: str, *, imported_only: bool = False) -> int:
        sql = "DELETE FROM kms_key_material WHERE key_id = ?"
        if imported_only:
            sql += " AND imported = 1"
        with self._write(keys=(key_id,)) as db:
            deleted = int(db.execute(sql, (key_id,)).rowcount)
        if deleted:
            self._scrub()
        return deleted
