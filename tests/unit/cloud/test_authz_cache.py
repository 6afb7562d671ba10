"""Authorization decisions are remembered only while they cannot change: until the store's
next write, and never when a condition key was looked up."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from latchkey.aws.policy import parse_policy
from latchkey.cloud.authz import AccessRefused, authorize
from latchkey.cloud.identity import Caller
from latchkey.store.base import UserRecord
from latchkey.store.sqlite import SqliteStore

ACCOUNT = "111122223333"
USER_ARN = f"arn:aws:iam::{ACCOUNT}:user/alice"
KEY_ARN = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
DELEGATE = parse_policy(
    json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{ACCOUNT}:root"},
                 "Action": "kms:*", "Resource": "*"}
            ],
        }
    ),
    require_principal=True,
)  # fmt: skip


def _policy(statement: dict[str, object]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    s = SqliteStore(tmp_path / "latchkey.db")
    s.save_user(UserRecord("alice", USER_ARN, "AIDAALICE", "/", 0.0))
    yield s
    s.close()


def _caller(source_ip: str | None = None) -> Caller:
    return Caller(USER_ARN, ACCOUNT, "AKIAALICE", "user", source_ip=source_ip)


def _allowed(store: SqliteStore, caller: Caller) -> bool:
    try:
        authorize(store, caller, "kms:Encrypt", KEY_ARN, resource_policy=DELEGATE)
    except AccessRefused:
        return False
    return True


def test_a_policy_change_is_seen_by_the_next_call(store: SqliteStore) -> None:
    assert not _allowed(store, _caller())  # no identity policy yet
    allow = {"Effect": "Allow", "Action": "kms:Encrypt", "Resource": "*"}
    store.put_user_policy("alice", "use", _policy(allow))
    assert _allowed(store, _caller())
    assert _allowed(store, _caller())  # remembered, still right
    deny = {"Effect": "Deny", "Action": "kms:*", "Resource": "*"}
    store.put_user_policy("alice", "stop", _policy(deny))
    with pytest.raises(AccessRefused, match="explicit deny in an identity-based policy"):
        authorize(store, _caller(), "kms:Encrypt", KEY_ARN, resource_policy=DELEGATE)


def test_a_decision_that_read_a_condition_key_is_made_again_each_call(
    store: SqliteStore,
) -> None:
    only_loopback = {
        "Effect": "Allow",
        "Action": "kms:Encrypt",
        "Resource": "*",
        "Condition": {"IpAddress": {"aws:SourceIp": "127.0.0.0/8"}},
    }
    store.put_user_policy("alice", "loopback", _policy(only_loopback))
    assert _allowed(store, _caller("127.0.0.1"))
    assert not _allowed(store, _caller("192.0.2.7"))  # same credentials, another answer
    assert _allowed(store, _caller("127.0.0.2"))


def test_condition_keys_passed_per_call_are_honoured_after_a_cached_allow(
    store: SqliteStore,
) -> None:
    context_bound = {
        "Effect": "Allow",
        "Action": "kms:Encrypt",
        "Resource": "*",
        "Condition": {"StringEquals": {"kms:EncryptionContext:app": "billing"}},
    }
    store.put_user_policy("alice", "ctx", _policy(context_bound))

    def call(app: str) -> bool:
        try:
            authorize(
                store, _caller(), "kms:Encrypt", KEY_ARN, resource_policy=DELEGATE,
                keys={"kms:EncryptionContext:app": app},
            )  # fmt: skip
        except AccessRefused:
            return False
        return True

    assert call("billing")
    assert not call("payroll")
    assert call("billing")


def test_a_decision_on_named_resources_is_not_taken_for_another_resource(
    store: SqliteStore,
) -> None:
    other = KEY_ARN.replace("1234abcd", "9999abcd")
    only_one_key = {"Effect": "Allow", "Action": "kms:Encrypt", "Resource": KEY_ARN}
    store.put_user_policy("alice", "one", _policy(only_one_key))

    def allowed(resource: str) -> bool:
        try:
            authorize(store, _caller(), "kms:Encrypt", resource, resource_policy=DELEGATE)
        except AccessRefused:
            return False
        return True

    assert allowed(KEY_ARN)
    assert not allowed(other)
    assert allowed(KEY_ARN)
    assert not allowed(other)
