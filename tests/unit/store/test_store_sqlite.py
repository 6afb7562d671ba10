"""The SQLite store's IAM and credential records, on a real database file: round trips,
uniqueness, dependents, quotas, transactions, and opening a data directory made by an earlier
release."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from latchkey.store.base import (
    AccessKeyRecord,
    Conflict,
    InUse,
    LimitReached,
    ManagedPolicyRecord,
    OidcProviderRecord,
    RoleRecord,
    UserRecord,
)
from latchkey.store.sqlite import SqliteStore

ACCOUNT = "000000000000"
DOC = '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"kms:*","Resource":"*"}]}'
TRUST = '{"Statement":[{"Effect":"Allow","Principal":{"AWS":"*"},"Action":"sts:AssumeRole"}]}'


def role(name: str, path: str = "/", **extra: Any) -> RoleRecord:
    return RoleRecord(
        name=name,
        arn=f"arn:aws:iam::{ACCOUNT}:role{path}{name}",
        role_id=f"AROA{name.upper()}",
        path=path,
        trust_policy=TRUST,
        max_session_duration=3600,
        created=1.0,
        **extra,
    )


def user(name: str, path: str = "/") -> UserRecord:
    return UserRecord(
        name, f"arn:aws:iam::{ACCOUNT}:user{path}{name}", f"AIDA{name.upper()}", path, 2.0
    )


def policy(name: str, path: str = "/") -> ManagedPolicyRecord:
    return ManagedPolicyRecord(
        arn=f"arn:aws:iam::{ACCOUNT}:policy{path}{name}",
        name=name,
        policy_id=f"ANPA{name}",
        path=path,
        description="d",
        default_version_id="v1",
        document=DOC,
        created=3.0,
        updated=3.0,
    )


def key(key_id: str, principal: str, kind: str = "user", **extra: Any) -> AccessKeyRecord:
    return AccessKeyRecord(key_id, b"wrapped", principal, kind, 4.0, **extra)


# -- OIDC providers -----------------------------------------------------------------------------


def test_oidc_provider_round_trip_update_delete(store: SqliteStore) -> None:
    arn = f"arn:aws:iam::{ACCOUNT}:oidc-provider/example.com/Tenant"
    store.save_oidc_provider(
        OidcProviderRecord(arn, "example.com/Tenant", ("a",), ("0" * 40,), 5.0, (("k", "v"),))
    )
    loaded = store.load_oidc_provider(arn)
    assert loaded == OidcProviderRecord(
        arn, "example.com/Tenant", ("a",), ("0" * 40,), 5.0, (("k", "v"),)
    )
    assert store.load_oidc_provider(arn.lower()) is None  # ARNs are exact
    assert store.update_oidc_provider(arn, client_ids=("a", "b"))
    assert store.update_oidc_provider(arn, thumbprints=())
    loaded = store.load_oidc_provider(arn)
    assert loaded is not None
    assert (loaded.client_ids, loaded.thumbprints) == (("a", "b"), ())
    assert not store.update_oidc_provider(arn + "x", client_ids=())
    assert [p.arn for p in store.list_oidc_providers()] == [arn]
    assert store.delete_oidc_provider(arn)
    assert not store.delete_oidc_provider(arn)
    assert store.list_tags(arn) == ()


def test_oidc_provider_url_is_unique(store: SqliteStore) -> None:
    store.save_oidc_provider(OidcProviderRecord("arn:1", "example.com", (), (), 1.0))
    with pytest.raises(Conflict):
        store.save_oidc_provider(OidcProviderRecord("arn:2", "example.com", (), (), 1.0))
    store.save_oidc_provider(OidcProviderRecord("arn:3", "example.com/Path", (), (), 1.0))


# -- tags ---------------------------------------------------------------------------------------


def test_role_and_user_tag_keys_are_case_insensitive(store: SqliteStore) -> None:
    arn = role("r").arn
    store.tag_resource(arn, [("Team", "a")], limit=50)
    store.tag_resource(arn, [("team", "b")], limit=50)
    assert store.list_tags(arn) == (("team", "b"),)
    store.untag_resource(arn, ["TEAM"])
    assert store.list_tags(arn) == ()


def test_policy_and_provider_tag_keys_are_exact(store: SqliteStore) -> None:
    for arn in (policy("p").arn, f"arn:aws:iam::{ACCOUNT}:oidc-provider/example.com"):
        store.tag_resource(arn, [("Team", "a"), ("team", "b")], limit=50)
        assert store.list_tags(arn) == (("Team", "a"), ("team", "b"))


def test_tag_limit_rolls_the_whole_change_back(store: SqliteStore) -> None:
    arn = role("r").arn
    store.tag_resource(arn, [("a", "1"), ("b", "2")], limit=3)
    with pytest.raises(LimitReached):
        store.tag_resource(arn, [("a", "changed"), ("c", "3"), ("d", "4")], limit=3)
    assert store.list_tags(arn) == (("a", "1"), ("b", "2"))


# -- roles --------------------------------------------------------------------------------------


def test_role_round_trip_with_description_tags_and_policies(store: SqliteStore) -> None:
    store.save_role(role("App", "/svc/", description="hello", tags=(("env", "dev"),)))
    store.save_managed_policy(policy("p"))
    store.put_role_policy("app", "inline", DOC)
    assert store.attach_role_policy("APP", policy("p").arn, limit=10)
    loaded = store.load_role("aPp")
    assert loaded is not None
    assert (loaded.name, loaded.path, loaded.description) == ("App", "/svc/", "hello")
    assert loaded.tags == (("env", "dev"),)
    assert loaded.inline_policies == (("inline", DOC),)
    assert loaded.attached_policies == (policy("p").arn,)
    with pytest.raises(Conflict):
        store.save_role(role("APP"))


def test_list_roles_by_path_prefix(store: SqliteStore) -> None:
    for name, path in [("b", "/x/"), ("a", "/x/y/"), ("c", "/")]:
        store.save_role(role(name, path))
    assert [r.name for r in store.list_roles()] == ["a", "b", "c"]
    assert [r.name for r in store.list_roles("/x/")] == ["a", "b"]
    assert [r.name for r in store.list_roles("/x/y")] == ["a"]


def test_update_role(store: SqliteStore) -> None:
    store.save_role(role("r"))
    assert store.update_role("r", description="new", max_session_duration=7200)
    loaded = store.load_role("r")
    assert loaded is not None
    assert (loaded.description, loaded.max_session_duration) == ("new", 7200)
    assert store.update_role("r", description=None)  # nothing to change still finds it
    assert not store.update_role("missing", description="x")


def test_role_with_policies_cannot_be_deleted(store: SqliteStore) -> None:
    store.save_role(role("r", tags=(("k", "v"),)))
    store.save_managed_policy(policy("p"))
    store.put_role_policy("r", "inline", DOC)
    with pytest.raises(InUse):
        store.delete_role("r")
    assert store.delete_role_policy("r", "inline")
    assert not store.delete_role_policy("r", "inline")
    store.attach_role_policy("r", policy("p").arn, limit=10)
    with pytest.raises(InUse):
        store.delete_role("r")
    assert store.detach_role_policy("r", policy("p").arn)
    assert not store.detach_role_policy("r", policy("p").arn)
    assert store.delete_role("r")
    assert store.load_role("r") is None
    assert store.list_tags(role("r").arn) == ()
    assert not store.delete_role("r")


def test_attach_is_idempotent_checked_and_limited(store: SqliteStore) -> None:
    store.save_role(role("r"))
    arns = []
    for index in range(3):
        store.save_managed_policy(policy(f"p{index}"))
        arns.append(policy(f"p{index}").arn)
    assert store.attach_role_policy("r", arns[0], limit=2)
    assert store.attach_role_policy("r", arns[0], limit=2)  # again: no change, no error
    assert store.attach_role_policy("r", arns[1], limit=2)
    with pytest.raises(LimitReached):
        store.attach_role_policy("r", arns[2], limit=2)
    loaded = store.load_role("r")
    assert loaded is not None
    assert loaded.attached_policies == tuple(sorted(arns[:2]))
    assert not store.attach_role_policy("r", policy("nope").arn, limit=10)
    assert not store.attach_role_policy("nobody", arns[0], limit=10)


# -- managed policies ---------------------------------------------------------------------------


def test_managed_policy_round_trip_and_version(store: SqliteStore) -> None:
    store.save_managed_policy(policy("Reader", "/team/"))
    loaded = store.load_managed_policy(policy("Reader", "/team/").arn)
    assert loaded is not None
    assert (loaded.document, loaded.default_version_id, loaded.attachment_count) == (DOC, "v1", 0)
    version = store.load_policy_version(loaded.arn, "v1")
    assert version is not None
    assert (version.document, version.is_default) == (DOC, True)
    assert store.load_policy_version(loaded.arn, "v2") is None
    with pytest.raises(Conflict):
        store.save_managed_policy(policy("READER"))  # names are unique, ignoring case and path


def test_managed_policy_attachments_count_and_block_deletion(store: SqliteStore) -> None:
    store.save_managed_policy(policy("p"))
    store.save_managed_policy(policy("q"))
    store.save_role(role("r"))
    store.save_user(user("u"))
    arn = policy("p").arn
    store.attach_role_policy("r", arn, limit=10)
    store.attach_user_policy("u", arn, limit=10)
    loaded = store.load_managed_policy(arn)
    assert loaded is not None
    assert loaded.attachment_count == 2
    assert [p.name for p in store.list_managed_policies(only_attached=True)] == ["p"]
    assert [p.name for p in store.list_managed_policies()] == ["p", "q"]
    with pytest.raises(InUse):
        store.delete_managed_policy(arn)
    store.detach_role_policy("r", arn)
    store.detach_user_policy("u", arn)
    assert store.delete_managed_policy(arn)
    assert store.load_managed_policy(arn) is None
    assert store.load_policy_version(arn, "v1") is None
    assert not store.delete_managed_policy(arn)


# -- users and access keys ----------------------------------------------------------------------


def test_user_round_trip_and_listing(store: SqliteStore) -> None:
    store.save_user(
        UserRecord("ci", user("ci", "/bots/").arn, "AIDACI", "/bots/", 2.0, tags=(("team", "x"),))
    )
    store.save_user(user("alice"))
    store.put_user_policy("CI", "inline", DOC)
    loaded = store.load_user("ci")
    assert loaded is not None
    assert (loaded.path, loaded.tags, loaded.inline_policies) == (
        "/bots/",
        (("team", "x"),),
        (("inline", DOC),),
    )
    assert [u.name for u in store.list_users()] == ["alice", "ci"]
    assert [u.name for u in store.list_users("/bots/")] == ["ci"]
    with pytest.raises(Conflict):
        store.save_user(user("CI"))


def test_user_with_policies_or_keys_cannot_be_deleted(store: SqliteStore) -> None:
    u = user("u")
    store.save_user(u)
    store.save_managed_policy(policy("p"))
    store.put_user_policy("u", "inline", DOC)
    with pytest.raises(InUse):
        store.delete_user("u")
    store.delete_user_policy("u", "inline")
    store.attach_user_policy("u", policy("p").arn, limit=10)
    with pytest.raises(InUse):
        store.delete_user("u")
    store.detach_user_policy("u", policy("p").arn)
    store.add_access_key(key("AKIA1", u.arn), limit=2)
    store.save_access_key(key("ASIA1", u.arn, "session", expiration=10.0))
    with pytest.raises(InUse):
        store.delete_user("u")
    assert store.delete_access_key("AKIA1")
    assert store.delete_user("u")  # its session credentials do not block it
    assert store.load_user("u") is None


def test_access_key_quota_listing_and_status(store: SqliteStore) -> None:
    arn = user("u").arn
    store.add_access_key(key("AKIA1", arn), limit=2)
    store.add_access_key(key("AKIA2", arn), limit=2)
    with pytest.raises(LimitReached):
        store.add_access_key(key("AKIA3", arn), limit=2)
    assert store.load_access_key("AKIA3") is None
    store.save_access_key(key("ASIA1", arn, "session", expiration=10.0))
    assert [k.access_key_id for k in store.list_access_keys(arn)] == ["AKIA1", "AKIA2"]
    first = store.load_access_key("AKIA1")
    assert first is not None
    assert first.status == "Active"
    assert store.set_access_key_status("AKIA1", "Inactive")
    inactive = store.load_access_key("AKIA1")
    assert inactive is not None
    assert inactive.status == "Inactive"
    assert not store.set_access_key_status("AKIA9", "Inactive")
    assert not store.delete_access_key("AKIA9")


# -- an existing data directory -----------------------------------------------------------------

OLD_SCHEMA = """
CREATE TABLE iam_roles (
    name TEXT PRIMARY KEY COLLATE NOCASE, arn TEXT NOT NULL, role_id TEXT NOT NULL,
    path TEXT NOT NULL, trust_policy TEXT NOT NULL, max_session_duration INTEGER NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE iam_role_policies (
    role_name TEXT NOT NULL COLLATE NOCASE, policy_name TEXT NOT NULL, document TEXT NOT NULL,
    PRIMARY KEY (role_name, policy_name)
);
CREATE TABLE access_keys (
    access_key_id TEXT PRIMARY KEY, wrapped_secret BLOB NOT NULL, principal_arn TEXT NOT NULL,
    kind TEXT NOT NULL, created REAL NOT NULL, expiration REAL, session_token_sha256 TEXT,
    role_arn TEXT, session_context TEXT NOT NULL
);
INSERT INTO iam_roles VALUES ('old', 'arn:aws:iam::000000000000:role/old', 'AROAOLD', '/',
                              '{}', 43200, 1.0);
INSERT INTO iam_role_policies VALUES ('old', 'kms', '{}');
INSERT INTO access_keys VALUES ('AKIAOLD', x'00', 'arn:aws:iam::000000000000:root', 'root', 1.0,
                                NULL, NULL, NULL, '{}');
"""


def test_a_database_from_an_earlier_release_keeps_working(tmp_path: Path) -> None:
    path = tmp_path / "latchkey.db"
    db = sqlite3.connect(path)
    db.executescript(OLD_SCHEMA)
    db.close()
    for _ in range(2):  # the second open finds the columns already there
        store = SqliteStore(path)
        old = store.load_role("old")
        assert old is not None
        assert (old.description, old.inline_policies, old.attached_policies) == (
            "",
            (("kms", "{}"),),
            (),
        )
        admin = store.load_access_key("AKIAOLD")
        assert admin is not None
        assert admin.status == "Active"
        store.close()
    store = SqliteStore(path)
    store.save_role(role("new", description="made after the upgrade"))
    store.save_managed_policy(policy("p"))
    assert store.attach_role_policy("old", policy("p").arn, limit=10)
    store.close()
