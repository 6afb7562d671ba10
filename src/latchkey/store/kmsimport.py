"""Imported key material (BYOK) in the cloud's SQLite store: import tokens with their wrapping
keys, and the keyed fingerprint that recognises an EXTERNAL key's material on reimport.

Both tables reference ``kms_keys`` with ``ON DELETE CASCADE``. Wrapping private keys and
fingerprint keys are stored only wrapped by the root key; the material itself lives in
``kms_key_material`` (``imported = 1``) like any other material, and is gone once deleted:
overwritten in the database (``secure_delete``) and cleared from the write-ahead log by a
checkpoint after the commit (``_scrub``).
"""

from __future__ import annotations

import sqlite3
from dataclasses import fields, replace

from latchkey.store.base import (
    ImportFingerprintRecord,
    ImportTokenRecord,
    KeyMaterialRecord,
    KmsKeyRecord,
)
from latchkey.store.kms import KEY_COLUMNS, KEY_SELECT, KmsTables
from latchkey.store.sqlitedb import SqliteDatabase

KMS_IMPORT_SCHEMA = """
CREATE TABLE IF NOT EXISTS kms_import_tokens (
    token_id TEXT PRIMARY KEY,
    key_id TEXT NOT NULL REFERENCES kms_keys(key_id) ON DELETE CASCADE,
    wrapping_algorithm TEXT NOT NULL, wrapping_key_spec TEXT NOT NULL,
    wrapped_private_key BLOB NOT NULL, created REAL NOT NULL, valid_to REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS kms_import_tokens_by_key ON kms_import_tokens (key_id, created);
CREATE INDEX IF NOT EXISTS kms_import_tokens_by_expiry ON kms_import_tokens (valid_to);
CREATE TABLE IF NOT EXISTS kms_import_fingerprints (
    key_id TEXT PRIMARY KEY REFERENCES kms_keys(key_id) ON DELETE CASCADE,
    wrapped_fingerprint_key BLOB NOT NULL, key_material_id TEXT NOT NULL, created REAL NOT NULL
);
"""

TOKEN_COLUMNS = tuple(f.name for f in fields(ImportTokenRecord))
FINGERPRINT_COLUMNS = tuple(f.name for f in fields(ImportFingerprintRecord))
# Built from the record fields, never from input.
TOKEN_SELECT = f"SELECT {', '.join(TOKEN_COLUMNS)} FROM kms_import_tokens"  # noqa: S608
TOKEN_INSERT = f"INSERT INTO kms_import_tokens ({', '.join(TOKEN_COLUMNS)}) VALUES ({', '.join('?' * len(TOKEN_COLUMNS))})"  # noqa: S608, E501
FINGERPRINT_SELECT = f"SELECT {', '.join(FINGERPRINT_COLUMNS)} FROM kms_import_fingerprints"  # noqa: S608
FINGERPRINT_INSERT = f"INSERT INTO kms_import_fingerprints ({', '.join(FINGERPRINT_COLUMNS)}) VALUES ({', '.join('?' * len(FINGERPRINT_COLUMNS))})"  # noqa: S608, E501

EXPIRES = "KEY_MATERIAL_EXPIRES"


def _without_material(key: KmsKeyRecord) -> KmsKeyRecord:
    """The key once its imported material is gone: PendingImport (PendingDeletion stays), no
    expiration."""
    state = key.state if key.state == "PendingDeletion" else "PendingImport"
    return replace(key, state=state, valid_to=None, expiration_model=None)


class KmsImportTables(SqliteDatabase):
    """Mixed into the cloud store after ``KmsTables``; uses its connection and write
    discipline."""

    def save_import_token(self, token: ImportTokenRecord, *, keep: int) -> None:
        """Save ``token``; the key keeps at most ``keep`` tokens (the oldest go first)."""
        with self._write(keys=()) as db:
            db.execute(TOKEN_INSERT, tuple(getattr(token, c) for c in TOKEN_COLUMNS))
            db.execute(
                "DELETE FROM kms_import_tokens WHERE key_id = ? AND token_id NOT IN ("
                " SELECT token_id FROM kms_import_tokens WHERE key_id = ?"
                " ORDER BY created DESC, token_id LIMIT ?)",
                (token.key_id, token.key_id, keep),
            )

    def load_import_token(self, token_id: str) -> ImportTokenRecord | None:
        rows = self._rows(f"{TOKEN_SELECT} WHERE token_id = ?", token_id)
        return ImportTokenRecord(**dict(rows[0])) if rows else None

    def delete_import_tokens_expired_before(self, when: float) -> int:
        with self._write(keys=()) as db:
            return db.execute("DELETE FROM kms_import_tokens WHERE valid_to < ?", (when,)).rowcount

    def load_import_fingerprint(self, key_id: str) -> ImportFingerprintRecord | None:
        rows = self._rows(f"{FINGERPRINT_SELECT} WHERE key_id = ?", key_id)
        return ImportFingerprintRecord(**dict(rows[0])) if rows else None

    def import_key_material(
        self,
        material: KeyMaterialRecord,
        key: KmsKeyRecord,
        fingerprint: ImportFingerprintRecord | None,
        description: str | None = None,
    ) -> None:
        """In one transaction: replace the key's imported material with ``material``, update
        the key and, on the first import, record the material's fingerprint (on a later one,
        its new ``description``, if given)."""
        with self._write(keys={material.key_id, key.key_id}) as db:
            db.execute(
                "DELETE FROM kms_key_material WHERE key_id = ? AND version = ? AND imported = 1",
                (material.key_id, material.version),
            )
            KmsTables._insert_material(db, material)
            KmsTables._update_key(db, key)
            if fingerprint is not None:
                db.execute(
                    FINGERPRINT_INSERT,
                    tuple(getattr(fingerprint, c) for c in FINGERPRINT_COLUMNS),
                )
            elif description is not None:
                db.execute(
                    "UPDATE kms_import_fingerprints SET description = ? WHERE key_id = ?",
                    (description, key.key_id),
                )

    def delete_imported_key_material(self, key: KmsKeyRecord) -> int:
        """Delete the key's imported material; the key becomes PendingImport (or stays
        PendingDeletion). Returns how many material versions went."""
        with self._write(keys=(key.key_id,)) as db:
            gone = self._drop_imported(db, key)
        if gone:
            self._scrub()  # the material's old pages out of the write-ahead log
        return gone

    @staticmethod
    def _drop_imported(db: sqlite3.Connection, key: KmsKeyRecord) -> int:
        gone = db.execute(
            "DELETE FROM kms_key_material WHERE key_id = ? AND imported = 1", (key.key_id,)
        ).rowcount
        KmsTables._update_key(db, _without_material(key))
        return gone

    def expire_imported_key_material(self, now: float) -> list[str]:
        """Delete imported material whose ValidTo has passed, in one transaction; the ids of the
        keys that lost it."""
        with self._write() as db:
            cur = db.execute(
                "SELECT key_id FROM kms_keys WHERE origin = 'EXTERNAL'"  # (EXPIRES inline, as
                " AND expiration_model = 'KEY_MATERIAL_EXPIRES'"  # its partial index names it)
                " AND valid_to IS NOT NULL AND valid_to <= ? ORDER BY key_id",
                (now,),
            )
            key_ids = [row[0] for row in cur.fetchall()]
            for key_id in key_ids:
                row = db.execute(f"{KEY_SELECT} WHERE key_id = ?", (key_id,)).fetchone()
                key = KmsKeyRecord(**dict(zip(KEY_COLUMNS, row, strict=True)))
                self._drop_imported(db, key)
        if key_ids:
            self._scrub()
        return key_ids
