"""The local cloud's SQLite store (plumbing in ``sqlitedb.py``: WAL, ``synchronous=FULL``,
refuse-after-failure).

Schema changes are additive: new tables are ``CREATE TABLE IF NOT EXISTS`` and new columns of
existing tables are added by ``_migrate`` (guarded ``ALTER TABLE``), so an existing data
directory keeps working.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence

from latchkey.store.base import (
    AccessKeyRecord,
    InUse,
    LimitReached,
    ManagedPolicyRecord,
    OidcProviderRecord,
    PolicyVersionRecord,
    RoleRecord,
    Tags,
    UserRecord,
    tag_key_match,
)
from latchkey.store.kms import KMS_ADDED_COLUMNS, KMS_INDEXES, KMS_SCHEMA, KmsTables
from latchkey.store.kmsgrants import KMS_GRANTS_SCHEMA, KmsGrantTables
from latchkey.store.kmsimport import KMS_IMPORT_SCHEMA, KmsImportTables
from latchkey.store.kmsmeta import KMS_META_SCHEMA, KmsMetaTables
from latchkey.store.sqlitedb import SqliteDatabase

SCHEMA = """
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
CREATE INDEX IF NOT EXISTS access_keys_by_principal ON access_keys (principal_arn);
CREATE TABLE IF NOT EXISTS iam_tags (
    arn TEXT NOT NULL, key_match TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,
    PRIMARY KEY (arn, key_match)
);
CREATE TABLE IF NOT EXISTS iam_managed_policies (
    arn TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE COLLATE NOCASE, policy_id TEXT NOT NULL,
    path TEXT NOT NULL, description TEXT NOT NULL, default_version_id TEXT NOT NULL,
    created REAL NOT NULL, updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS iam_policy_versions (
    policy_arn TEXT NOT NULL REFERENCES iam_managed_policies(arn), version_id TEXT NOT NULL,
    document TEXT NOT NULL, created REAL NOT NULL, PRIMARY KEY (policy_arn, version_id)
);
CREATE TABLE IF NOT EXISTS iam_role_attached_policies (
    role_name TEXT NOT NULL COLLATE NOCASE REFERENCES iam_roles(name),
    policy_arn TEXT NOT NULL REFERENCES iam_managed_policies(arn),
    PRIMARY KEY (role_name, policy_arn)
);
CREATE TABLE IF NOT EXISTS iam_users (
    name TEXT PRIMARY KEY COLLATE NOCASE, arn TEXT NOT NULL, user_id TEXT NOT NULL,
    path TEXT NOT NULL, created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS iam_user_policies (
    user_name TEXT NOT NULL COLLATE NOCASE REFERENCES iam_users(name),
    policy_name TEXT NOT NULL, document TEXT NOT NULL, PRIMARY KEY (user_name, policy_name)
);
CREATE TABLE IF NOT EXISTS iam_user_attached_policies (
    user_name TEXT NOT NULL COLLATE NOCASE REFERENCES iam_users(name),
    policy_arn TEXT NOT NULL REFERENCES iam_managed_policies(arn),
    PRIMARY KEY (user_name, policy_arn)
);
"""

# Columns added to tables that already existed in earlier releases: (table, column, declaration).
ADDED_COLUMNS = (
    ("iam_roles", "description", "TEXT NOT NULL DEFAULT ''"),
    ("access_keys", "status", "TEXT NOT NULL DEFAULT 'Active'"),
)

ROLE_COLUMNS = "name, arn, role_id, path, trust_policy, max_session_duration, created, description"
ACCESS_KEY_COLUMNS = (
    "access_key_id, wrapped_secret, principal_arn, kind, created, expiration, "
    "session_token_sha256, role_arn, session_context, status"
)


def _under(path: str, prefix: str) -> bool:
    return path.startswith(prefix)


class SqliteStore(KmsGrantTables, KmsMetaTables, KmsImportTables, KmsTables, SqliteDatabase):
    """The local cloud's state: KMS keys and material, IAM, access keys."""

    SCHEMA = KMS_SCHEMA + KMS_IMPORT_SCHEMA + KMS_META_SCHEMA + KMS_GRANTS_SCHEMA + SCHEMA
    ADDED_COLUMNS = KMS_ADDED_COLUMNS + ADDED_COLUMNS
    INDEXES = KMS_INDEXES

    # -- iam: tags ------------------------------------------------------------------------

    @staticmethod
    def _put_tags(
        db: sqlite3.Connection, arn: str, tags: Sequence[tuple[str, str]], limit: int
    ) -> None:
        for key, value in tags:
            db.execute(
                "INSERT INTO iam_tags VALUES (?,?,?,?) ON CONFLICT (arn, key_match)"
                " DO UPDATE SET key = excluded.key, value = excluded.value",
                (arn, tag_key_match(arn, key), key, value),
            )
        if SqliteStore._count(db, "SELECT COUNT(*) FROM iam_tags WHERE arn = ?", arn) > limit:
            raise LimitReached(f"more than {limit} tags on {arn}")

    def tag_resource(self, arn: str, tags: Sequence[tuple[str, str]], *, limit: int) -> None:
        with self._write(keys=()) as db:
            self._put_tags(db, arn, tags, limit)

    def untag_resource(self, arn: str, keys: Sequence[str]) -> None:
        with self._write(keys=()) as db:
            db.executemany(
                "DELETE FROM iam_tags WHERE arn = ? AND key_match = ?",
                [(arn, tag_key_match(arn, key)) for key in keys],
            )

    def list_tags(self, arn: str) -> Tags:
        rows = self._rows("SELECT key, value FROM iam_tags WHERE arn = ? ORDER BY key", arn)
        return tuple((r["key"], r["value"]) for r in rows)

    # -- iam: OIDC providers --------------------------------------------------------------

    def save_oidc_provider(self, provider: OidcProviderRecord) -> None:
        with self._write(keys=()) as db:
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
            db.execute("DELETE FROM iam_tags WHERE arn = ?", (provider.arn,))
            self._put_tags(db, provider.arn, provider.tags, len(provider.tags))

    def _provider(self, row: sqlite3.Row) -> OidcProviderRecord:
        return OidcProviderRecord(
            arn=row["arn"],
            url=row["url"],
            client_ids=tuple(json.loads(row["client_ids"])),
            thumbprints=tuple(json.loads(row["thumbprints"])),
            created=row["created"],
            tags=self.list_tags(row["arn"]),
        )

    def load_oidc_provider(self, arn: str) -> OidcProviderRecord | None:
        rows = self._rows("SELECT * FROM iam_oidc_providers WHERE arn = ?", arn)
        return self._provider(rows[0]) if rows else None

    def list_oidc_providers(self) -> list[OidcProviderRecord]:
        rows = self._rows("SELECT * FROM iam_oidc_providers ORDER BY arn")
        return [self._provider(r) for r in rows]

    def update_oidc_provider(
        self,
        arn: str,
        *,
        client_ids: tuple[str, ...] | None = None,
        thumbprints: tuple[str, ...] | None = None,
    ) -> bool:
        with self._write(keys=()) as db:
            found = self._count(db, "SELECT COUNT(*) FROM iam_oidc_providers WHERE arn = ?", arn)
            if client_ids is not None:
                db.execute(
                    "UPDATE iam_oidc_providers SET client_ids = ? WHERE arn = ?",
                    (json.dumps(list(client_ids)), arn),
                )
            if thumbprints is not None:
                db.execute(
                    "UPDATE iam_oidc_providers SET thumbprints = ? WHERE arn = ?",
                    (json.dumps(list(thumbprints)), arn),
                )
            return found > 0

    def delete_oidc_provider(self, arn: str) -> bool:
        with self._write(keys=()) as db:
            db.execute("DELETE FROM iam_tags WHERE arn = ?", (arn,))
            return db.execute("DELETE FROM iam_oidc_providers WHERE arn = ?", (arn,)).rowcount > 0

    # -- iam: roles -----------------------------------------------------------------------

    def save_role(self, role: RoleRecord) -> None:
        with self._write(keys=()) as db:
            db.execute(
                f"INSERT INTO iam_roles ({ROLE_COLUMNS}) VALUES (?,?,?,?,?,?,?,?)",  # noqa: S608
                (
                    role.name, role.arn, role.role_id, role.path, role.trust_policy,
                    role.max_session_duration, role.created, role.description,
                ),
            )  # fmt: skip
            db.execute("DELETE FROM iam_tags WHERE arn = ?", (role.arn,))
            self._put_tags(db, role.arn, role.tags, len(role.tags))

    def _role(self, row: sqlite3.Row) -> RoleRecord:
        name = row["name"]
        inline = self._rows(
            "SELECT policy_name, document FROM iam_role_policies WHERE role_name = ?"
            " ORDER BY policy_name",
            name,
        )
        attached = self._rows(
            "SELECT policy_arn FROM iam_role_attached_policies WHERE role_name = ?"
            " ORDER BY policy_arn",
            name,
        )
        return RoleRecord(
            **{k: row[k] for k in row.keys()},  # noqa: SIM118 (sqlite3.Row has no __iter__ keys)
            inline_policies=tuple((p["policy_name"], p["document"]) for p in inline),
            attached_policies=tuple(a["policy_arn"] for a in attached),
            tags=self.list_tags(row["arn"]),
        )

    def load_role(self, name: str) -> RoleRecord | None:
        rows = self._rows(f"SELECT {ROLE_COLUMNS} FROM iam_roles WHERE name = ?", name)  # noqa: S608
        return self._role(rows[0]) if rows else None

    def list_roles(self, path_prefix: str = "/") -> list[RoleRecord]:
        rows = self._rows(f"SELECT {ROLE_COLUMNS} FROM iam_roles ORDER BY name")  # noqa: S608
        return [self._role(r) for r in rows if _under(r["path"], path_prefix)]

    def update_role(
        self, name: str, *, description: str | None = None, max_session_duration: int | None = None
    ) -> bool:
        with self._write(keys=()) as db:
            found = self._count(db, "SELECT COUNT(*) FROM iam_roles WHERE name = ?", name)
            if description is not None:
                db.execute(
                    "UPDATE iam_roles SET description = ? WHERE name = ?", (description, name)
                )
            if max_session_duration is not None:
                db.execute(
                    "UPDATE iam_roles SET max_session_duration = ? WHERE name = ?",
                    (max_session_duration, name),
                )
            return found > 0

    def update_role_trust_policy(self, role_name: str, document: str) -> None:
        with self._write(keys=()) as db:
            db.execute(
                "UPDATE iam_roles SET trust_policy = ? WHERE name = ?", (document, role_name)
            )

    def delete_role(self, name: str) -> bool:
        with self._write(keys=()) as db:
            rows = db.execute("SELECT arn FROM iam_roles WHERE name = ?", (name,)).fetchall()
            if not rows:
                return False
            dependents = self._count(
                db,
                "SELECT (SELECT COUNT(*) FROM iam_role_policies WHERE role_name = ?)"
                " + (SELECT COUNT(*) FROM iam_role_attached_policies WHERE role_name = ?)",
                name,
                name,
            )
            if dependents:
                raise InUse(f"role {name} still has policies")
            db.execute("DELETE FROM iam_tags WHERE arn = ?", (rows[0][0],))
            db.execute("DELETE FROM iam_roles WHERE name = ?", (name,))
            return True

    def put_role_policy(self, role_name: str, policy_name: str, document: str) -> None:
        with self._write(keys=()) as db:
            db.execute(
                "INSERT INTO iam_role_policies VALUES (?,?,?) ON CONFLICT (role_name, policy_name)"
                " DO UPDATE SET document = excluded.document",
                (role_name, policy_name, document),
            )

    def delete_role_policy(self, role_name: str, policy_name: str) -> bool:
        with self._write(keys=()) as db:
            cur = db.execute(
                "DELETE FROM iam_role_policies WHERE role_name = ? AND policy_name = ?",
                (role_name, policy_name),
            )
            return cur.rowcount > 0

    def attach_role_policy(self, role_name: str, policy_arn: str, *, limit: int) -> bool:
        return self._attach("iam_role_attached_policies", "role_name", "iam_roles",
                            role_name, policy_arn, limit)  # fmt: skip

    def detach_role_policy(self, role_name: str, policy_arn: str) -> bool:
        return self._detach("iam_role_attached_policies", "role_name", role_name, policy_arn)

    def _attach(
        self, table: str, column: str, owners: str, owner: str, policy_arn: str, limit: int
    ) -> bool:
        """Attach once (idempotent); False when the owner or the policy does not exist."""
        with self._write(keys=()) as db:
            exists = self._count(
                db,
                f"SELECT (SELECT COUNT(*) FROM {owners} WHERE name = ?)"  # noqa: S608
                " * (SELECT COUNT(*) FROM iam_managed_policies WHERE arn = ?)",
                owner,
                policy_arn,
            )
            if not exists:
                return False
            cur = db.execute(
                f"INSERT INTO {table} VALUES (?,?) ON CONFLICT DO NOTHING",  # noqa: S608
                (owner, policy_arn),
            )
            if cur.rowcount:
                count = self._count(
                    db,
                    f"SELECT COUNT(*) FROM {table} WHERE {column} = ?",  # noqa: S608
                    owner,
                )
                if count > limit:
                    raise LimitReached(f"more than {limit} policies attached to {owner}")
            return True

    def _detach(self, table: str, column: str, owner: str, policy_arn: str) -> bool:
        with self._write(keys=()) as db:
            cur = db.execute(
                f"DELETE FROM {table} WHERE {column} = ? AND policy_arn = ?",  # noqa: S608
                (owner, policy_arn),
            )
            return cur.rowcount > 0

    # -- iam: managed policies ------------------------------------------------------------

    def save_managed_policy(self, policy: ManagedPolicyRecord) -> None:
        with self._write(keys=()) as db:
            db.execute(
                "INSERT INTO iam_managed_policies VALUES (?,?,?,?,?,?,?,?)",
                (
                    policy.arn, policy.name, policy.policy_id, policy.path, policy.description,
                    policy.default_version_id, policy.created, policy.updated,
                ),
            )  # fmt: skip
            db.execute(
                "INSERT INTO iam_policy_versions VALUES (?,?,?,?)",
                (policy.arn, policy.default_version_id, policy.document, policy.created),
            )
            db.execute("DELETE FROM iam_tags WHERE arn = ?", (policy.arn,))
            self._put_tags(db, policy.arn, policy.tags, len(policy.tags))

    def _policy(self, row: sqlite3.Row) -> ManagedPolicyRecord:
        arn = row["arn"]
        version = self.load_policy_version(arn, row["default_version_id"])
        return ManagedPolicyRecord(
            arn=arn,
            name=row["name"],
            policy_id=row["policy_id"],
            path=row["path"],
            description=row["description"],
            default_version_id=row["default_version_id"],
            document=version.document if version else "",
            created=row["created"],
            updated=row["updated"],
            attachment_count=row["attachments"],
            tags=self.list_tags(arn),
        )

    _POLICY_SELECT = (
        "SELECT p.*, (SELECT COUNT(*) FROM iam_role_attached_policies r WHERE r.policy_arn = p.arn)"
        " + (SELECT COUNT(*) FROM iam_user_attached_policies u WHERE u.policy_arn = p.arn)"
        " AS attachments FROM iam_managed_policies p"
    )

    def load_managed_policy(self, arn: str) -> ManagedPolicyRecord | None:
        rows = self._rows(f"{self._POLICY_SELECT} WHERE p.arn = ?", arn)
        return self._policy(rows[0]) if rows else None

    def load_policy_version(self, arn: str, version_id: str) -> PolicyVersionRecord | None:
        rows = self._rows(
            "SELECT v.*, v.version_id = p.default_version_id AS is_default"
            " FROM iam_policy_versions v JOIN iam_managed_policies p ON p.arn = v.policy_arn"
            " WHERE v.policy_arn = ? AND v.version_id = ?",
            arn,
            version_id,
        )
        if not rows:
            return None
        r = rows[0]
        return PolicyVersionRecord(
            r["policy_arn"], r["version_id"], r["document"], r["created"], bool(r["is_default"])
        )

    def list_managed_policies(
        self, path_prefix: str = "/", *, only_attached: bool = False
    ) -> list[ManagedPolicyRecord]:
        rows = self._rows(f"{self._POLICY_SELECT} ORDER BY p.name")
        return [
            self._policy(r)
            for r in rows
            if _under(r["path"], path_prefix) and (r["attachments"] or not only_attached)
        ]

    def delete_managed_policy(self, arn: str) -> bool:
        with self._write(keys=()) as db:
            if not self._count(db, "SELECT COUNT(*) FROM iam_managed_policies WHERE arn = ?", arn):
                return False
            attached = self._count(
                db,
                "SELECT (SELECT COUNT(*) FROM iam_role_attached_policies WHERE policy_arn = ?)"
                " + (SELECT COUNT(*) FROM iam_user_attached_policies WHERE policy_arn = ?)",
                arn,
                arn,
            )
            if attached:
                raise InUse(f"policy {arn} is attached to {attached} entities")
            db.execute("DELETE FROM iam_policy_versions WHERE policy_arn = ?", (arn,))
            db.execute("DELETE FROM iam_tags WHERE arn = ?", (arn,))
            db.execute("DELETE FROM iam_managed_policies WHERE arn = ?", (arn,))
            return True

    # -- iam: users -----------------------------------------------------------------------

    def save_user(self, user: UserRecord) -> None:
        with self._write(keys=()) as db:
            db.execute(
                "INSERT INTO iam_users VALUES (?,?,?,?,?)",
                (user.name, user.arn, user.user_id, user.path, user.created),
            )
            db.execute("DELETE FROM iam_tags WHERE arn = ?", (user.arn,))
            self._put_tags(db, user.arn, user.tags, len(user.tags))

    def _user(self, row: sqlite3.Row) -> UserRecord:
        name = row["name"]
        inline = self._rows(
            "SELECT policy_name, document FROM iam_user_policies WHERE user_name = ?"
            " ORDER BY policy_name",
            name,
        )
        attached = self._rows(
            "SELECT policy_arn FROM iam_user_attached_policies WHERE user_name = ?"
            " ORDER BY policy_arn",
            name,
        )
        return UserRecord(
            name=name,
            arn=row["arn"],
            user_id=row["user_id"],
            path=row["path"],
            created=row["created"],
            inline_policies=tuple((p["policy_name"], p["document"]) for p in inline),
            attached_policies=tuple(a["policy_arn"] for a in attached),
            tags=self.list_tags(row["arn"]),
        )

    def load_user(self, name: str) -> UserRecord | None:
        rows = self._rows("SELECT * FROM iam_users WHERE name = ?", name)
        return self._user(rows[0]) if rows else None

    def list_users(self, path_prefix: str = "/") -> list[UserRecord]:
        rows = self._rows("SELECT * FROM iam_users ORDER BY name")
        return [self._user(r) for r in rows if _under(r["path"], path_prefix)]

    def delete_user(self, name: str) -> bool:
        with self._write(keys=()) as db:
            rows = db.execute("SELECT arn FROM iam_users WHERE name = ?", (name,)).fetchall()
            if not rows:
                return False
            arn = rows[0][0]
            policies = self._count(
                db,
                "SELECT (SELECT COUNT(*) FROM iam_user_policies WHERE user_name = ?)"
                " + (SELECT COUNT(*) FROM iam_user_attached_policies WHERE user_name = ?)",
                name,
                name,
            )
            if policies:
                raise InUse(f"user {name} still has policies")
            keys = self._count(
                db,
                "SELECT COUNT(*) FROM access_keys WHERE principal_arn = ? AND kind = 'user'",
                arn,
            )
            if keys:
                raise InUse(f"user {name} still has access keys")
            db.execute("DELETE FROM iam_tags WHERE arn = ?", (arn,))
            db.execute("DELETE FROM iam_users WHERE name = ?", (name,))
            return True

    def put_user_policy(self, user_name: str, policy_name: str, document: str) -> None:
        with self._write(keys=()) as db:
            db.execute(
                "INSERT INTO iam_user_policies VALUES (?,?,?) ON CONFLICT (user_name, policy_name)"
                " DO UPDATE SET document = excluded.document",
                (user_name, policy_name, document),
            )

    def delete_user_policy(self, user_name: str, policy_name: str) -> bool:
        with self._write(keys=()) as db:
            cur = db.execute(
                "DELETE FROM iam_user_policies WHERE user_name = ? AND policy_name = ?",
                (user_name, policy_name),
            )
            return cur.rowcount > 0

    def attach_user_policy(self, user_name: str, policy_arn: str, *, limit: int) -> bool:
        return self._attach("iam_user_attached_policies", "user_name", "iam_users",
                            user_name, policy_arn, limit)  # fmt: skip

    def detach_user_policy(self, user_name: str, policy_arn: str) -> bool:
        return self._detach("iam_user_attached_policies", "user_name", user_name, policy_arn)

    # -- credentials ----------------------------------------------------------------------

    @staticmethod
    def _insert_key(db: sqlite3.Connection, key: AccessKeyRecord) -> None:
        db.execute(
            f"INSERT INTO access_keys ({ACCESS_KEY_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?)",  # noqa: S608
            (
                key.access_key_id, key.wrapped_secret, key.principal_arn, key.kind,
                key.created, key.expiration, key.session_token_sha256, key.role_arn,
                key.session_context, key.status,
            ),
        )  # fmt: skip

    def save_access_key(self, key: AccessKeyRecord) -> None:
        with self._write(keys=()) as db:
            self._insert_key(db, key)

    def add_access_key(self, key: AccessKeyRecord, *, limit: int) -> None:
        """Save a long-term key unless its principal already holds ``limit`` of that kind."""
        with self._write(keys=()) as db:
            held = self._count(
                db,
                "SELECT COUNT(*) FROM access_keys WHERE principal_arn = ? AND kind = ?",
                key.principal_arn,
                key.kind,
            )
            if held >= limit:
                raise LimitReached(f"{key.principal_arn} already has {held} access keys")
            self._insert_key(db, key)

    def _key(self, row: sqlite3.Row) -> AccessKeyRecord:
        return AccessKeyRecord(**{k: row[k] for k in row.keys()})  # noqa: SIM118

    def load_access_key(self, access_key_id: str) -> AccessKeyRecord | None:
        def load() -> AccessKeyRecord | None:  # every signed call: cached until a write
            rows = self._rows(
                f"SELECT {ACCESS_KEY_COLUMNS} FROM access_keys WHERE access_key_id = ?",  # noqa: S608
                access_key_id,
            )
            return self._key(rows[0]) if rows else None

        return self.cached("access_key", access_key_id, load)

    def list_access_keys(self, principal_arn: str) -> list[AccessKeyRecord]:
        """The principal's long-term keys (not its temporary session credentials)."""
        rows = self._rows(
            f"SELECT {ACCESS_KEY_COLUMNS} FROM access_keys"  # noqa: S608
            " WHERE principal_arn = ? AND kind != 'session' ORDER BY created, access_key_id",
            principal_arn,
        )
        return [self._key(r) for r in rows]

    def set_access_key_status(self, access_key_id: str, status: str) -> bool:
        with self._write(keys=()) as db:
            cur = db.execute(
                "UPDATE access_keys SET status = ? WHERE access_key_id = ?",
                (status, access_key_id),
            )
            return cur.rowcount > 0

    def delete_access_key(self, access_key_id: str) -> bool:
        with self._write(keys=()) as db:
            cur = db.execute("DELETE FROM access_keys WHERE access_key_id = ?", (access_key_id,))
            return cur.rowcount > 0

    def delete_expired_access_keys(self, now: float) -> int:
        with self._write(keys=()) as db:
            cur = db.execute(
                "DELETE FROM access_keys WHERE expiration IS NOT NULL AND expiration < ?", (now,)
            )
            return cur.rowcount
