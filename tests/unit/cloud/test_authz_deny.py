"""An explicit Deny in a resource policy wins whichever statement allowed the caller: one naming
the account (or a NotPrincipal Deny sparing only the caller) beats an Allow naming the caller."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from latchkey.aws.policy import PolicyDocument, parse_policy
from latchkey.cloud.authz import AccessRefused, authorize
from latchkey.cloud.identity import Caller
from latchkey.store.base import UserRecord
from latchkey.store.sqlite import SqliteStore

ACCOUNT = "111122223333"
ROOT = f"arn:aws:iam::{ACCOUNT}:root"
USER_ARN = f"arn:aws:iam::{ACCOUNT}:user/alice"
KEY_ARN = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
ALLOW_ALICE = {"Effect": "Allow", "Principal": {"AWS": USER_ARN}, "Action": "kms:*",
               "Resource": "*"}  # fmt: skip


def _key_policy(*statements: dict[str, object]) -> PolicyDocument:
    text = json.dumps({"Version": "2012-10-17", "Statement": list(statements)})
    return parse_policy(text, require_principal=True)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    s = SqliteStore(tmp_path / "latchkey.db")
    s.save_user(UserRecord("alice", USER_ARN, "AIDAALICE", "/", 0.0))
    yield s
    s.close()


def _caller() -> Caller:
    return Caller(USER_ARN, ACCOUNT, "AKIAALICE", "user")


@pytest.mark.parametrize(
    "deny",
    [
        {"Effect": "Deny", "Principal": {"AWS": ROOT}, "Action": "kms:Encrypt", "Resource": "*"},
        {"Effect": "Deny", "NotPrincipal": {"AWS": USER_ARN}, "Action": "kms:Encrypt",
         "Resource": "*"},
    ],
)  # fmt: skip
def test_an_account_deny_beats_an_allow_naming_the_caller(
    store: SqliteStore, deny: dict[str, object]
) -> None:
    document = _key_policy(ALLOW_ALICE, deny)
    with pytest.raises(AccessRefused, match="explicit deny in a resource-based policy") as exc:
        authorize(store, _caller(), "kms:Encrypt", KEY_ARN, resource_policy=document)
    assert exc.value.explicit  # no grant may allow it either
    authorize(store, _caller(), "kms:Decrypt", KEY_ARN, resource_policy=document)


def test_lazy_keys_are_not_built_for_a_policy_without_conditions(store: SqliteStore) -> None:
    """The Encrypt path's extra condition keys cost nothing unless a policy asks for one."""
    built: list[int] = []

    def lazy() -> dict[str, str]:
        built.append(1)
        return {"kms:KeyOrigin": "AWS_KMS"}

    document = _key_policy(ALLOW_ALICE)
    for _ in range(3):
        authorize(store, _caller(), "kms:Encrypt", KEY_ARN, resource_policy=document,
                  keys={"kms:KeySpec": "SYMMETRIC_DEFAULT"}, lazy_keys=lazy)  # fmt: skip
    assert built == []
    asks = {"StringEquals": {"kms:KeyOrigin": "AWS_KMS"}}
    document = _key_policy(ALLOW_ALICE | {"Condition": asks})
    authorize(store, _caller(), "kms:Encrypt", KEY_ARN, resource_policy=document, lazy_keys=lazy)
    assert built == [1]
