"""Key policies as AWS KMS answers them (real boto3, real node): GetKeyPolicy, PutKeyPolicy
(validation, the lockout safety check and its bypass), ListKeyPolicies; and the new policy
taking effect at once."""

from __future__ import annotations

import json
from typing import Any

import pytest

from latchkey_testing import ROOT, Cloud, allow, deny, policy, refused


def new_key(kms: Any, **extra: Any) -> tuple[str, str]:
    meta = kms.create_key(**extra)["KeyMetadata"]
    return str(meta["KeyId"]), str(meta["Arn"])


def user_kms(cloud: Cloud, name: str, inline: str | None = None) -> tuple[Any, str]:
    iam = cloud.client("iam")
    arn = iam.create_user(UserName=name)["User"]["Arn"]
    if inline is not None:
        iam.put_user_policy(UserName=name, PolicyName="inline", PolicyDocument=inline)
    return cloud.as_key("kms", iam.create_access_key(UserName=name)["AccessKey"]), str(arn)


def test_get_the_default_policy(kms: Any) -> None:
    key_id, _ = new_key(kms)
    got = kms.get_key_policy(KeyId=key_id)
    assert got["PolicyName"] == "default"
    document = json.loads(got["Policy"])
    statement = document["Statement"][0]
    assert (statement["Principal"], statement["Action"]) == ({"AWS": ROOT}, "kms:*")
    assert kms.get_key_policy(KeyId=key_id, PolicyName="default")["Policy"] == got["Policy"]


def test_list_key_policies(kms: Any) -> None:
    key_id, _ = new_key(kms)
    listed = kms.list_key_policies(KeyId=key_id)
    assert (listed["PolicyNames"], listed["Truncated"]) == (["default"], False)


def test_other_policy_names(kms: Any) -> None:
    key_id, _ = new_key(kms)
    assert refused(kms.get_key_policy, KeyId=key_id, PolicyName="AWS_RAM").code == (
        "NotFoundException"
    )
    document = policy(allow("kms:*", ROOT))
    assert refused(kms.put_key_policy, KeyId=key_id, PolicyName="AWS_RAM", Policy=document) == (
        "ValidationException", 400, "The AWS_RAM policy can only be managed by the RAM service."
    )  # fmt: skip


def test_put_key_policy_takes_effect(cloud: Cloud, kms: Any) -> None:
    user, user_arn = user_kms(cloud, "grantee")
    key_id, _ = new_key(kms)
    assert refused(user.encrypt, KeyId=key_id, Plaintext=b"x").code == "AccessDeniedException"
    document = policy(allow("kms:*", ROOT), allow("kms:Encrypt", user_arn))
    kms.put_key_policy(KeyId=key_id, Policy=document)
    assert kms.get_key_policy(KeyId=key_id)["Policy"] == document
    user.encrypt(KeyId=key_id, Plaintext=b"x")
    kms.put_key_policy(KeyId=key_id, PolicyName="default", Policy=policy(allow("kms:*", ROOT)))
    assert refused(user.encrypt, KeyId=key_id, Plaintext=b"x").code == "AccessDeniedException"


@pytest.mark.parametrize(
    "document",
    ["not json", policy(allow("kms:*")), policy(allow("kms:*", ROOT) | {"Effect": "Alow"})],
)
def test_malformed_policies_are_refused(kms: Any, document: str) -> None:
    key_id, _ = new_key(kms)
    before = kms.get_key_policy(KeyId=key_id)["Policy"]
    err = refused(kms.put_key_policy, KeyId=key_id, Policy=document)
    assert err[:2] == ("MalformedPolicyDocumentException", 400)
    assert kms.get_key_policy(KeyId=key_id)["Policy"] == before


def test_lockout_safety_check(kms: Any) -> None:
    key_id, _ = new_key(kms)
    locks_out = policy(allow("kms:Encrypt", ROOT), deny("kms:PutKeyPolicy", ROOT))
    assert refused(kms.put_key_policy, KeyId=key_id, Policy=locks_out) == (
        "MalformedPolicyDocumentException", 400,
        "The new key policy will not allow you to update the key policy in the future.",
    )  # fmt: skip
    kms.put_key_policy(KeyId=key_id, Policy=locks_out, BypassPolicyLockoutSafetyCheck=True)
    kms.encrypt(KeyId=key_id, Plaintext=b"x")  # what the new policy allows
    assert refused(kms.get_key_policy, KeyId=key_id).code == "AccessDeniedException"
    # As promised: now even the account cannot change it.
    err = refused(kms.put_key_policy, KeyId=key_id, Policy=policy(allow("kms:*", ROOT)))
    assert err.code == "AccessDeniedException"


def test_key_policy_operations_need_permission(cloud: Cloud, kms: Any) -> None:
    user, _ = user_kms(cloud, "reader", policy(allow("kms:GetKeyPolicy")))
    key_id, _ = new_key(kms)
    assert user.get_key_policy(KeyId=key_id)["PolicyName"] == "default"
    document = policy(allow("kms:*", ROOT))
    assert refused(user.put_key_policy, KeyId=key_id, Policy=document).code == (
        "AccessDeniedException"
    )
    assert refused(user.list_key_policies, KeyId=key_id).code == "AccessDeniedException"


def test_policy_name_condition(cloud: Cloud, kms: Any) -> None:
    only_default = {"StringEquals": {"kms:PolicyName": "default"}}
    user, _ = user_kms(cloud, "named", policy(allow("kms:GetKeyPolicy", Condition=only_default)))
    key_id, _ = new_key(kms)
    assert user.get_key_policy(KeyId=key_id)["PolicyName"] == "default"
    assert refused(user.get_key_policy, KeyId=key_id, PolicyName="AWS_RAM").code == (
        "AccessDeniedException"
    )


def test_policies_of_keys_pending_deletion_stay_readable_and_writable(kms: Any) -> None:
    key_id, _ = new_key(kms)
    kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
    document = policy(allow("kms:*", ROOT), allow("kms:Decrypt", ROOT))
    kms.put_key_policy(KeyId=key_id, Policy=document)
    assert kms.get_key_policy(KeyId=key_id)["Policy"] == document
