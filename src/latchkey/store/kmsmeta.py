"""What hangs off a KMS key besides its material: aliases and tags, and the sweeper's queries.

Both tables reference ``kms_keys`` with ``ON DELETE CASCADE``: deleting a key removes its
aliases and tags in the same transaction. Alias names are unique per (account, region) and
case-sensitive; tag keys are unique per key and case-sensitive (AWS KMS's rules).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from latchkey.store.base import KmsAliasRecord, KmsKeyRecord, LimitReached, Tags
from latchkey.store.kms import KEY_SELECT, KmsTables
from latchkey.store.sqlitedb import SqliteDatabase

KMS_META_SCHEMA = """
CREATE TABLE IF NOT EXISTS kms_aliases (
    account TEXT NOT NULL, region TEXT NOT NULL, name TEXT NOT NULL,
    key_id TEXT NOT NULL REFERENCES kms_keys(key_id) ON DELETE CASCADE,
    created REAL NOT NULL, updated REAL NOT NULL,
    PRIMARY KEY (account, region, name)
);
CREATE INDEX IF NOT EXISTS kms_aliases_by_key ON kms_aliases (key_id);
CREATE TABLE IF NOT EXISTS kms_key_tags (
    key_id TEXT NOT NULL REFERENCES kms_keys(key_id) ON DELETE CASCADE,
    tag_key TEXT NOT NULL, tag_value TEXT NOT NULL,
    PRIMARY KEY (key_id, tag_key)
);
"""

ALIAS_SELECT = "SELECT account, region, name, key_id, created, updated FROM kms_aliases"


def _alias(row: sqlite3.Row) -> KmsAliasRecord:
    return KmsAliasRecord(**dict(row))


class KmsMetaTables(SqliteDatabase):
    """Mixed into the cloud store; uses its connection and write discipline."""

    # -- aliases ----------------------------------------------------------------------------

    @staticmethod
    def _check_alias_limit(db: sqlite3.Connection, key_id: str, limit: int) -> None:
        count = SqliteDatabase._count(
            db, "SELECT COUNT(*) FROM kms_aliases WHERE key_id = ?", key_id
        )
        if count > limit:
            raise LimitReached(f"more than {limit} aliases on key {key_id}")

    def save_kms_alias(self, alias: KmsAliasRecord, *, limit: int) -> None:
        """A new alias (``Conflict`` if the name is taken, ``LimitReached`` past ``limit``
        aliases on its key; nothing changes then)."""
        with self._write(keys=()) as db:
            db.execute(
                "INSERT INTO kms_aliases VALUES (?,?,?,?,?,?)",
                (alias.account, alias.region, alias.name, alias.key_id, alias.created,
                 alias.updated),
            )  # fmt: skip
            self._check_alias_limit(db, alias.key_id, limit)

    def update_kms_alias(
        self, account: str, region: str, name: str, key_id: str, updated: float, *, limit: int
    ) -> bool:
        """Point an existing alias at another key; False when there is no such alias."""
        with self._write(keys=()) as db:
            cur = db.execute(
                "UPDATE kms_aliases SET key_id = ?, updated = ?"
                " WHERE account = ? AND region = ? AND name = ?",
                (key_id, updated, account, region, name),
            )
            if cur.rowcount == 0:
                return False
            self._check_alias_limit(db, key_id, limit)
            return True

    def delete_kms_alias(self, account: str, region: str, name: str) -> bool:
        with self._write(keys=()) as db:
            cur = db.execute(
                "DELETE FROM kms_aliases WHERE account = ? AND region = ? AND name = ?",
                (account, region, name),
            )
            return cur.rowcount > 0

    def load_kms_alias(self, account: str, region: str, name: str) -> KmsAliasRecord | None:
        rows = self._rows(
            f"{ALIAS_SELECT} WHERE account = ? AND region = ? AND name = ?", account, region, name
        )
        return _alias(rows[0]) if rows else None

    def list_kms_aliases(
        self, account: str, region: str, key_id: str | None = None
    ) -> list[KmsAliasRecord]:
        """Aliases of an (account, region), or of one key there, ordered by name."""
        if key_id is None:
            rows = self._rows(
                f"{ALIAS_SELECT} WHERE account = ? AND region = ? ORDER BY name", account, region
            )
            return [_alias(r) for r in rows]

        def load() -> tuple[KmsAliasRecord, ...]:  # one key's: read on every call, cached
            found = self._rows(
                f"{ALIAS_SELECT} WHERE account = ? AND region = ? AND key_id = ? ORDER BY name",
                account,
                region,
                key_id,
            )
            return tuple(_alias(r) for r in found)

        return list(self.cached("kms_key_aliases", (account, region, key_id), load))

    # -- tags -------------------------------------------------------------------------------

    def tag_kms_key(self, key_id: str, tags: Sequence[tuple[str, str]], *, limit: int) -> None:
        """Add or replace tags (``LimitReached`` past ``limit`` tags; nothing changes then)."""
        with self._write(keys=()) as db:
            db.executemany(
                "INSERT INTO kms_key_tags VALUES (?,?,?) ON CONFLICT (key_id, tag_key)"
                " DO UPDATE SET tag_value = excluded.tag_value",
                [(key_id, k, v) for k, v in tags],
            )
            count = self._count(db, "SELECT COUNT(*) FROM kms_key_tags WHERE key_id = ?", key_id)
            if count > limit:
                raise LimitReached(f"more than {limit} tags on key {key_id}")

    def untag_kms_key(self, key_id: str, tag_keys: Sequence[str]) -> None:
        with self._write(keys=()) as db:
            db.executemany(
                "DELETE FROM kms_key_tags WHERE key_id = ? AND tag_key = ?",
                [(key_id, k) for k in tag_keys],
            )

    def list_kms_key_tags(self, key_id: str) -> Tags:
        def load() -> Tags:
            rows = self._rows(
                "SELECT tag_key, tag_value FROM kms_key_tags WHERE key_id = ? ORDER BY tag_key",
                key_id,
            )
            return tuple((r["tag_key"], r["tag_value"]) for r in rows)

        return self.cached("kms_key_tags", key_id, load)

    # -- rotation -----------------------------------------------------------------------

    def promote_key_material(self, key: KmsKeyRecord, version: int, rotation_type: str) -> None:
        """Make a stored material version current (``key`` names it): one transaction."""
        with self._write(keys=(key.key_id,)) as db:
            db.execute(
                "UPDATE kms_key_material SET rotation_type = ? WHERE key_id = ? AND version = ?",
                (rotation_type, key.key_id, version),
            )
            KmsTables._update_key(db, key)

    # -- the sweeper's queries --------------------------------------------------------------

    def list_kms_keys_to_delete(self, now: float) -> list[KmsKeyRecord]:
        """Keys pending deletion whose deletion date has passed (every account and region)."""
        rows = self._rows(
            f"{KEY_SELECT} WHERE state = 'PendingDeletion' AND deletion_date IS NOT NULL"
            " AND deletion_date <= ? ORDER BY deletion_date, key_id",
            now,
        )
        return [KmsKeyRecord(**dict(r)) for r in rows]

    def list_kms_keys_to_rotate(self, now: float) -> list[KmsKeyRecord]:
        """Enabled keys with automatic rotation on whose next rotation date has passed."""
        rows = self._rows(
            f"{KEY_SELECT} WHERE state = 'Enabled' AND rotation_period_days IS NOT NULL"
            " AND next_rotation IS NOT NULL AND next_rotation <= ? ORDER BY next_rotation, key_id",
            now,
        )
        return [KmsKeyRecord(**dict(r)) for r in rows]
