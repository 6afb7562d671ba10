"""The embedded SQLite backend: WAL, ``synchronous=FULL``, one connection, refuse-after-failure.

After a failed write (disk full, I/O error) the store stops accepting writes and says so,
rather than carrying on with state it cannot vouch for.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

from latchkey.store.base import (
    AccessKeyRecord,
    Conflict,
    KeyMaterialRecord,
    KmsKeyRecord,
    OidcProviderRecord,
    RoleRecord,
    StoreError,
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS kms_keys (
    key_id TEXT PRIMARY KEY, arn TEXT NOT NULL, account TEXT NOT NULL, region TEXT NOT NULL,
    created REAL NOT NULL, description TEXT NOT NULL, key_spec TEXT NOT NULL,
    key_usage TEXT NOT NULL, state TEXT NOT NULL, origin TEXT NOT NULL, policy TEXT NOT NULL,
    current_version INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS kms_key_material (
    key_id TEXT NOT NULL REFERENCES kms_keys(key_id), version INTEGER NOT NULL,
    wrapped BLOB NOT NULL, created REAL NOT NULL, PRIMARY KEY (key_id, version)
);
CREATE TABLE IF NOT EXISTS iam_oidc_providers (
    arn TEXT PRIMARY KEY, url TEXT NOT NULL UNIQUE, client_ids TEXT NOT NULL,
    thumbprints TEXT NOT NULL, created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS iam_roles (
    name TEXT PRIMARY KEY COLLATE NOCASE, arn TEXT NOT NULL, role_id TEXT NOT NULL,
    path TEXT NOT NULL, trust_policy TEXT NOT NULL, max_session_duration INTEGER NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS iam_role_policies (
    role_name TEXT NOT NULL COLLATE NOCASE, policy_name TEXT NOT NULL, document TEXT NOT NULL,
    PRIMARY KEY (role_name, policy_name)
);
CREATE TABLE IF NOT EXISTS access_keys (
    access_key_id TEXT PRIMARY KEY, wrapped_secret BLOB NOT NULL, principal_arn TEXT NOT NULL,
    kind TEXT NOT NULL, created REAL NOT NULL, expiration REAL, session_token_sha256 TEXT,
    role_arn TEXT, session_context TEXT NOT NULL
);
"""


class SqliteStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.RLock()
        self._failed: str | None = None
        try:
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._db.execute("PRAGMA busy_timeout=5000")
            self._db.executescript(SCHEMA)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open store {path}: {exc}") from None
        with contextlib.suppress(OSError):
            path.chmod(0o600)

    # -- plumbing -----------------------------------------------------------------------

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            if self._failed is not None:
                raise StoreError(f"store refuses writes after an earlier failure: {self._failed}")
            try:
                self._db.execute("BEGIN IMMEDIATE")
                yield self._db
                self._db.execute("COMMIT")
            except sqlite3.IntegrityError as exc:
                self._db.execute("ROLLBACK")
                raise Conflict(str(exc)) from None
            except sqlite3.Error as exc:
                with contextlib.suppress(sqlite3.Error):
                    self._db.execute("ROLLBACK")
                self._failed = f"{type(exc).__name__}: {exc}"
                raise StoreError(f"write failed: {exc}") from None
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    self._db.execute("ROLLBACK")
                raise

    def _rows(self, sql: str, *args: object) -> list[sqlite3.Row]:
        with self._lock:
            cur = self._db.execute(sql, args)
            cur.row_factory = sqlite3.Row
            return list(cur.fetchall())

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- kms ------------------------------------------------------------------------------

    def save_kms_key(self, key: KmsKeyRecord, material: KeyMaterialRecord) -> None:
        with self._write() as db:
            db.execute(
                "INSERT INTO kms_keys VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    key.key_id, key.arn, key.account, key.region, key.created, key.description,
                    key.key_spec, key.key_usage, key.state, key.origin, key.policy,
                    key.current_version,
                ),
            )  # fmt: skip
            db.execute(
                "INSERT INTO kms_key_material VALUES (?,?,?,?)",
                (material.key_id, material.version, material.wrapped, material.created),
            )

    def load_kms_key(self, key_id: str) -> KmsKeyRecord | None:
        rows = self._rows("SELECT * FROM kms_keys WHERE key_id = ?", key_id)
        return KmsKeyRecord(**dict(rows[0])) if rows else None

    def list_kms_keys(self, account: str, region: str) -> list[KmsKeyRecord]:
        rows = self._rows(
            "SELECT * FROM kms_keys WHERE account = ? AND region = ? ORDER BY created, key_id",
            account,
            region,
        )
        return [KmsKeyRecord(**dict(r)) for r in rows]

    def load_key_material(self, key_id: str, version: int) -> KeyMaterialRecord | None:
        rows = self._rows(
            "SELECT * FROM kms_key_material WHERE key_id = ? AND version = ?", key_id, version
        )
        return KeyMaterialRecord(**dict(rows[0])) if rows else None

    # -- iam ------------------------------------------------------------------------------

    def save_oidc_provider(self, provider: OidcProviderRecord) -> None:
        with self._write() as db:
            db.execute(
                "INSERT INTO iam_oidc_providers VALUES (?,?,?,?,?)",
                (
                    provider.arn,
                    provider.url,
                    json.dumps(list(provider.client_ids)),
                    json.dumps(list(provider.thumbprints)),
                    provider.created,
                ),
            )

    def _provider(self, row: sqlite3.Row) -> OidcProviderRecord:
        return OidcProviderRecord(
            arn=row["arn"],
            url=row["url"],
            client_ids=tuple(json.loads(row["client_ids"])),
            thumbprints=tuple(json.loads(row["thumbprints"])),
            created=row["created"],
        )

    def load_oidc_provider(self, arn: str) -> OidcProviderRecord | None:
        rows = self._rows("SELECT * FROM iam_oidc_providers WHERE arn = ?", arn)
        return self._provider(rows[0]) if rows else None

    def list_oidc_providers(self) -> list[OidcProviderRecord]:
        return [self._provider(r) for r in self._rows("SELECT * FROM iam_oidc_providers")]

    def save_role(self, role: RoleRecord) -> None:
        with self._write() as db:
            db.execute(
                "INSERT INTO iam_roles VALUES (?,?,?,?,?,?,?)",
                (
                    role.name,
                    role.arn,
                    role.role_id,
                    role.path,
                    role.trust_policy,
                    role.max_session_duration,
                    role.created,
                ),
            )

    def load_role(self, name: str) -> RoleRecord | None:
        rows = self._rows("SELECT * FROM iam_roles WHERE name = ?", name)
        if not rows:
            return None
        policies = self._rows(
            "SELECT policy_name, document FROM iam_role_policies WHERE role_name = ?"
            " ORDER BY policy_name",
            name,
        )
        return RoleRecord(
            **dict(rows[0]),
            inline_policies=tuple((p["policy_name"], p["document"]) for p in policies),
        )

    def put_role_policy(self, role_name: str, policy_name: str, document: str) -> None:
        with self._write() as db:
            db.execute(
                "INSERT INTO iam_role_policies VALUES (?,?,?) ON CONFLICT (role_name, policy_name)"
                " DO UPDATE SET document = excluded.document",
                (role_name, policy_name, document),
            )

    def update_role_trust_policy(self, role_name: str, document: str) -> None:
        with self._write() as db:
            db.execute(
                "UPDATE iam_roles SET trust_policy = ? WHERE name = ?", (document, role_name)
            )

    # -- credentials ----------------------------------------------------------------------

    def save_access_key(self, key: AccessKeyRecord) -> None:
        with self._write() as db:
            db.execute(
                "INSERT INTO access_keys VALUES (?,?,?,?,?,?,?,?,?)",
                (
                    key.access_key_id, key.wrapped_secret, key.principal_arn, key.kind,
                    key.created, key.expiration, key.session_token_sha256, key.role_arn,
                    key.session_context,
                ),
            )  # fmt: skip

    def load_access_key(self, access_key_id: str) -> AccessKeyRecord | None:
        rows = self._rows("SELECT * FROM access_keys WHERE access_key_id = ?", access_key_id)
        return AccessKeyRecord(**dict(rows[0])) if rows else None

    def delete_expired_access_keys(self, now: float) -> int:
        with self._write() as db:
            cur = db.execute(
                "DELETE FROM access_keys WHERE expiration IS NOT NULL AND expiration < ?", (now,)
            )
            return cur.rowcount
