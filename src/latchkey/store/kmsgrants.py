"""KMS grants in the cloud's SQLite store.

A grant row references its key with ``ON DELETE CASCADE``: deleting the key deletes its grants
in the same transaction. Operations and encryption context constraints are stored as JSON.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence

from latchkey.store.base import KmsGrantRecord, LimitReached
from latchkey.store.sqlitedb import SqliteDatabase

KMS_GRANTS_SCHEMA = """
CREATE TABLE IF NOT EXISTS kms_grants (
    grant_id TEXT PRIMARY KEY,
    key_id TEXT NOT NULL REFERENCES kms_keys(key_id) ON DELETE CASCADE,
    created REAL NOT NULL, grantee_principal TEXT NOT NULL, operations TEXT NOT NULL,
    issuing_account TEXT NOT NULL, name TEXT, retiring_principal TEXT, context_subset TEXT,
    context_equals TEXT, grantee_id TEXT, retiring_id TEXT
);
CREATE INDEX IF NOT EXISTS kms_grants_by_key ON kms_grants (key_id, created, grant_id);
CREATE INDEX IF NOT EXISTS kms_grants_by_retiring ON kms_grants (retiring_principal);
"""

_COLUMNS = (
    "grant_id, key_id, created, grantee_principal, operations, issuing_account, name, "
    "retiring_principal, context_subset, context_equals, grantee_id, retiring_id"
)
_SELECT = f"SELECT {_COLUMNS} FROM kms_grants"  # noqa: S608  (constant column list)
# Rows after a (created, grant_id) position, in that order (paging survives a deleted marker).
_AFTER = " AND (created, grant_id) > (?, ?)"

Pairs = tuple[tuple[str, str], ...]


def _pairs_json(pairs: Pairs | None) -> str | None:
    return None if pairs is None else json.dumps(sorted(pairs))


def _pairs(text: str | None) -> Pairs | None:
    if text is None:
        return None
    return tuple((str(k), str(v)) for k, v in json.loads(text))


def _row(grant: KmsGrantRecord) -> tuple[object, ...]:
    return (
        grant.grant_id, grant.key_id, grant.created, grant.grantee_principal,
        json.dumps(list(grant.operations)), grant.issuing_account, grant.name,
        grant.retiring_principal, _pairs_json(grant.context_subset),
        _pairs_json(grant.context_equals), grant.grantee_id, grant.retiring_id,
    )  # fmt: skip


def _grant(row: sqlite3.Row) -> KmsGrantRecord:
    return KmsGrantRecord(
        grant_id=row["grant_id"],
        key_id=row["key_id"],
        created=row["created"],
        grantee_principal=row["grantee_principal"],
        operations=tuple(json.loads(row["operations"])),
        issuing_account=row["issuing_account"],
        name=row["name"],
        retiring_principal=row["retiring_principal"],
        context_subset=_pairs(row["context_subset"]),
        context_equals=_pairs(row["context_equals"]),
        grantee_id=row["grantee_id"],
        retiring_id=row["retiring_id"],
    )


def same_grant(a: KmsGrantRecord, b: KmsGrantRecord) -> bool:
    """Whether ``b`` repeats ``a`` (a CreateGrant retry): every property but id and time."""
    return (
        a.key_id == b.key_id
        and a.name == b.name
        and a.grantee_principal == b.grantee_principal
        and a.retiring_principal == b.retiring_principal
        and set(a.operations) == set(b.operations)
        and a.issuing_account == b.issuing_account
        and _pairs_json(a.context_subset) == _pairs_json(b.context_subset)
        and _pairs_json(a.context_equals) == _pairs_json(b.context_equals)
    )


def _page(
    sql: str, args: list[object], after: tuple[float, str] | None, limit: int | None
) -> tuple[str, list[object]]:
    if after is not None:
        sql += _AFTER
        args.extend(after)
    sql += " ORDER BY created, grant_id"
    if limit is not None:
        sql += " LIMIT ?"
        args.append(limit)
    return sql, args


class KmsGrantTables(SqliteDatabase):
    """Mixed into the cloud store; uses its connection and write discipline."""

    def add_kms_grant(self, grant: KmsGrantRecord, *, limit: int) -> KmsGrantRecord:
        with self._write(keys=()) as db:
            if grant.name is not None:
                cur = db.execute(
                    f"{_SELECT} WHERE key_id = ? AND name = ? ORDER BY created, grant_id",
                    (grant.key_id, grant.name),
                )
                cur.row_factory = sqlite3.Row
                for existing in map(_grant, cur.fetchall()):
                    if same_grant(existing, grant):
                        return existing
            held = self._count(db, "SELECT COUNT(*) FROM kms_grants WHERE key_id = ?", grant.key_id)
            if held >= limit:
                raise LimitReached(f"key {grant.key_id} already has {held} grants")
            db.execute(
                f"INSERT INTO kms_grants ({_COLUMNS}) VALUES ({', '.join('?' * 12)})",  # noqa: S608
                _row(grant),
            )
            return grant

    def load_kms_grant(self, grant_id: str) -> KmsGrantRecord | None:
        rows = self._rows(f"{_SELECT} WHERE grant_id = ?", grant_id)
        return _grant(rows[0]) if rows else None

    def list_kms_grants(
        self,
        key_id: str,
        *,
        grantees: Sequence[str] | None = None,
        after: tuple[float, str] | None = None,
        limit: int | None = None,
    ) -> list[KmsGrantRecord]:
        sql = f"{_SELECT} WHERE key_id = ?"
        args: list[object] = [key_id]
        if grantees is not None:
            if not grantees:
                return []
            sql += f" AND grantee_principal IN ({', '.join('?' * len(grantees))})"
            args.extend(grantees)
        sql, args = _page(sql, args, after, limit)
        return [_grant(r) for r in self._rows(sql, *args)]

    def list_retirable_kms_grants(
        self,
        retiring_principal: str,
        account: str,
        region: str,
        *,
        after: tuple[float, str] | None = None,
        limit: int | None = None,
    ) -> list[KmsGrantRecord]:
        sql = (
            f"{_SELECT} WHERE retiring_principal = ? AND key_id IN"  # noqa: S608
            " (SELECT key_id FROM kms_keys WHERE account = ? AND region = ?)"
        )
        sql, args = _page(sql, [retiring_principal, account, region], after, limit)
        return [_grant(r) for r in self._rows(sql, *args)]

    def delete_kms_grant(self, grant_id: str) -> bool:
        with self._write(keys=()) as db:
            return db.execute("DELETE FROM kms_grants WHERE grant_id = ?", (grant_id,)).rowcount > 0
