"""Aliases as AWS KMS answers them (real boto3, real node): CreateAlias, UpdateAlias,
DeleteAlias, ListAliases; aliases and alias ARNs naming keys in Encrypt, Decrypt and
DescribeKey; authorization on the alias and on the key; ``kms:RequestAlias`` and
``kms:ResourceAliases`` in key policies."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from latchkey_testing import ACCOUNT, ROOT, Cloud, allow, policy, refused

ALIAS_ARN = f"arn:aws:kms:us-east-1:{ACCOUNT}:alias/"


def new_key(kms: Any, **extra: Any) -> tuple[str, str]:
    meta = kms.create_key(**extra)["KeyMetadata"]
    return str(meta["KeyId"]), str(meta["Arn"])


def user_kms(cloud: Cloud, name: str, inline: str | None = None) -> tuple[Any, str]:
    iam = cloud.client("iam")
    arn = iam.create_user(UserName=name)["User"]["Arn"]
    if inline is not None:
        iam.put_user_policy(UserName=name, PolicyName="inline", PolicyDocument=inline)
    return cloud.as_key("kms", iam.create_access_key(UserName=name)["AccessKey"]), str(arn)


# -- create, list, update, delete ---------------------------------------------------------------


def test_create_and_list_aliases(kms: Any) -> None:
    key_id, _ = new_key(kms)
    other, _ = new_key(kms)
    kms.create_alias(AliasName="alias/app-b", TargetKeyId=key_id)
    kms.create_alias(AliasName="alias/app-a", TargetKeyId=key_id)
    kms.create_alias(AliasName="alias/other", TargetKeyId=other)
    aliases = kms.list_aliases()["Aliases"]
    assert [a["AliasName"] for a in aliases] == ["alias/app-a", "alias/app-b", "alias/other"]
    first = aliases[0]
    assert first["AliasArn"] == ALIAS_ARN + "app-a"
    assert first["TargetKeyId"] == key_id
    now = dt.datetime.now(dt.UTC)
    assert abs((first["CreationDate"] - now).total_seconds()) < 60
    assert first["LastUpdatedDate"] == first["CreationDate"]
    by_key = kms.list_aliases(KeyId=key_id)["Aliases"]
    assert [a["AliasName"] for a in by_key] == ["alias/app-a", "alias/app-b"]


def test_list_aliases_pages(kms: Any) -> None:
    key_id, arn = new_key(kms)
    for n in range(3):
        kms.create_alias(AliasName=f"alias/p{n}", TargetKeyId=key_id)
    first = kms.list_aliases(Limit=2)
    assert first["Truncated"] is True
    rest = kms.list_aliases(Limit=2, Marker=first["NextMarker"])
    assert rest["Truncated"] is False
    names = [a["AliasName"] for a in first["Aliases"] + rest["Aliases"]]
    assert names == ["alias/p0", "alias/p1", "alias/p2"]
    assert len(kms.list_aliases(KeyId=arn)["Aliases"]) == 3


def test_alias_names_the_key_in_cryptographic_operations(kms: Any) -> None:
    key_id, arn = new_key(kms)
    kms.create_alias(AliasName="alias/payments", TargetKeyId=arn)
    blob = kms.encrypt(KeyId="alias/payments", Plaintext=b"by alias")["CiphertextBlob"]
    by_arn = kms.encrypt(KeyId=ALIAS_ARN + "payments", Plaintext=b"by alias arn")
    assert by_arn["KeyId"] == arn
    got = kms.decrypt(CiphertextBlob=blob, KeyId="alias/payments")
    assert (got["Plaintext"], got["KeyId"]) == (b"by alias", arn)
    meta = kms.describe_key(KeyId=ALIAS_ARN + "payments")["KeyMetadata"]
    assert meta["KeyId"] == key_id
    data_key = kms.generate_data_key(KeyId="alias/payments", KeySpec="AES_256")
    assert (
        kms.decrypt(CiphertextBlob=data_key["CiphertextBlob"])["Plaintext"]
        == (data_key["Plaintext"])
    )


def test_decrypt_with_another_keys_alias_is_refused(kms: Any) -> None:
    key_id, _ = new_key(kms)
    other, _ = new_key(kms)
    kms.create_alias(AliasName="alias/wrong", TargetKeyId=other)
    blob = kms.encrypt(KeyId=key_id, Plaintext=b"x")["CiphertextBlob"]
    assert refused(kms.decrypt, CiphertextBlob=blob, KeyId="alias/wrong").code == (
        "IncorrectKeyException"
    )


def test_unknown_alias(kms: Any) -> None:
    err = refused(kms.encrypt, KeyId="alias/none", Plaintext=b"x")
    assert err == ("NotFoundException", 400, f"Alias {ALIAS_ARN}none is not found.")
    err = refused(kms.describe_key, KeyId=ALIAS_ARN + "none")
    assert err == ("NotFoundException", 400, f"Alias {ALIAS_ARN}none is not found.")
    other_region = "arn:aws:kms:eu-west-1:000000000000:alias/none"
    assert refused(kms.describe_key, KeyId=other_region).code == "NotFoundException"


def test_update_alias_points_it_at_another_key(kms: Any) -> None:
    first, _ = new_key(kms)
    second, second_arn = new_key(kms)
    kms.create_alias(AliasName="alias/current", TargetKeyId=first)
    old = kms.encrypt(KeyId="alias/current", Plaintext=b"one")["CiphertextBlob"]
    created = kms.list_aliases()["Aliases"][0]["CreationDate"]
    kms.update_alias(AliasName="alias/current", TargetKeyId=second_arn)
    alias = kms.list_aliases()["Aliases"][0]
    assert alias["TargetKeyId"] == second
    assert alias["CreationDate"] == created
    assert alias["LastUpdatedDate"] >= created
    assert kms.encrypt(KeyId="alias/current", Plaintext=b"two")["KeyId"] == second_arn
    assert kms.decrypt(CiphertextBlob=old)["Plaintext"] == b"one"  # the old key still decrypts
    missing = refused(kms.update_alias, AliasName="alias/missing", TargetKeyId=second)
    assert missing == ("NotFoundException", 400, f"Alias {ALIAS_ARN}missing is not found.")


def test_update_alias_refuses_a_key_pending_deletion(kms: Any) -> None:
    first, _ = new_key(kms)
    second, second_arn = new_key(kms)
    kms.create_alias(AliasName="alias/moving", TargetKeyId=first)
    kms.schedule_key_deletion(KeyId=second, PendingWindowInDays=7)
    err = refused(kms.update_alias, AliasName="alias/moving", TargetKeyId=second)
    assert err == ("KMSInvalidStateException", 400, f"{second_arn} is pending deletion.")
    # From a key pending deletion, though, an alias may move away.
    kms.schedule_key_deletion(KeyId=first, PendingWindowInDays=7)
    kms.cancel_key_deletion(KeyId=second)
    kms.update_alias(AliasName="alias/moving", TargetKeyId=second)
    assert kms.list_aliases()["Aliases"][0]["TargetKeyId"] == second


def test_delete_alias(kms: Any) -> None:
    key_id, _ = new_key(kms)
    kms.create_alias(AliasName="alias/gone", TargetKeyId=key_id)
    kms.delete_alias(AliasName="alias/gone")
    assert kms.list_aliases()["Aliases"] == []
    assert refused(kms.delete_alias, AliasName="alias/gone") == (
        "NotFoundException", 400, f"Alias {ALIAS_ARN}gone is not found."
    )  # fmt: skip
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "Enabled"


# -- refusals -----------------------------------------------------------------------------------


def test_alias_names_are_unique(kms: Any) -> None:
    key_id, _ = new_key(kms)
    other, _ = new_key(kms)
    kms.create_alias(AliasName="alias/taken", TargetKeyId=key_id)
    assert refused(kms.create_alias, AliasName="alias/taken", TargetKeyId=other) == (
        "AlreadyExistsException", 400,
        f"An alias with the name {ALIAS_ARN}taken already exists",
    )  # fmt: skip
    kms.create_alias(AliasName="alias/Taken", TargetKeyId=other)  # case matters
    assert kms.list_aliases(KeyId=other)["Aliases"][0]["AliasName"] == "alias/Taken"


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("no-prefix", "ValidationException"),
        ("alias/aws/reserved", "NotAuthorizedException"),
        ("alias/has:colon", "ValidationException"),
        ("alias/bad name", "ValidationException"),
        ("alias/" + "a" * 251, "ValidationException"),
    ],
)
def test_invalid_alias_names(cloud: Cloud, name: str, code: str) -> None:
    kms = cloud.unvalidated("kms")
    key_id, _ = new_key(kms)
    err = refused(kms.create_alias, AliasName=name, TargetKeyId=key_id)
    assert err[:2] == (code, 400)
    assert kms.list_aliases()["Aliases"] == []


def test_prefix_message(kms: Any) -> None:
    key_id, _ = new_key(kms)
    assert refused(kms.create_alias, AliasName="plain", TargetKeyId=key_id).message == (
        'Alias must start with the prefix "alias/". Please see '
        "https://docs.aws.amazon.com/kms/latest/developerguide/kms-alias.html"
    )


def test_alias_must_name_a_key(kms: Any) -> None:
    key_id, _ = new_key(kms)
    kms.create_alias(AliasName="alias/base", TargetKeyId=key_id)
    assert refused(kms.create_alias, AliasName="alias/chain", TargetKeyId="alias/base") == (
        "ValidationException", 400, "Aliases must refer to keys. Not aliases"
    )  # fmt: skip
    missing = "00000000-0000-4000-8000-000000000000"
    err = refused(kms.create_alias, AliasName="alias/none", TargetKeyId=missing)
    assert err.code == "NotFoundException"


def test_no_alias_for_a_key_pending_deletion(kms: Any) -> None:
    key_id, arn = new_key(kms)
    kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
    assert refused(kms.create_alias, AliasName="alias/late", TargetKeyId=key_id) == (
        "KMSInvalidStateException", 400, f"{arn} is pending deletion."
    )  # fmt: skip


# -- authorization ------------------------------------------------------------------------------


def test_create_alias_needs_permission_on_alias_and_key(cloud: Cloud, kms: Any) -> None:
    key_id, _ = new_key(kms)
    on_alias = {"Effect": "Allow", "Action": "kms:CreateAlias",
                "Resource": f"{ALIAS_ARN}team-*"}  # fmt: skip
    user, user_arn = user_kms(cloud, "aliaser", policy(on_alias))
    # The IAM policy covers only the alias; the default key policy delegates to IAM, which
    # does not allow kms:CreateAlias on the key.
    err = refused(user.create_alias, AliasName="alias/team-a", TargetKeyId=key_id)
    assert err.code == "AccessDeniedException"
    assert f"on resource: arn:aws:kms:us-east-1:{ACCOUNT}:key/{key_id}" in err.message
    # With a key policy allowing the user on the key, the alias is created ...
    allowed, _ = new_key(
        kms, Policy=policy(allow("kms:*", ROOT), allow("kms:CreateAlias", user_arn))
    )
    user.create_alias(AliasName="alias/team-a", TargetKeyId=allowed)
    # ... but only under the aliases its IAM policy names.
    err = refused(user.create_alias, AliasName="alias/other", TargetKeyId=allowed)
    assert err.code == "AccessDeniedException"
    assert f"on resource: {ALIAS_ARN}other" in err.message
    assert [a["AliasName"] for a in kms.list_aliases()["Aliases"]] == ["alias/team-a"]


def test_list_aliases_needs_an_iam_allow(cloud: Cloud) -> None:
    user, _ = user_kms(cloud, "nolist")
    assert refused(user.list_aliases)[:2] == ("AccessDeniedException", 400)


def test_request_alias_condition(cloud: Cloud, kms: Any) -> None:
    user, user_arn = user_kms(cloud, "by-alias")
    condition = {"StringEquals": {"kms:RequestAlias": "alias/allowed"}}
    key_id, _ = new_key(
        kms,
        Policy=policy(allow("kms:*", ROOT), allow("kms:Encrypt", user_arn, Condition=condition)),
    )
    kms.create_alias(AliasName="alias/allowed", TargetKeyId=key_id)
    kms.create_alias(AliasName="alias/other-name", TargetKeyId=key_id)
    user.encrypt(KeyId="alias/allowed", Plaintext=b"x")
    user.encrypt(KeyId=ALIAS_ARN + "allowed", Plaintext=b"x")
    assert refused(user.encrypt, KeyId=key_id, Plaintext=b"x").code == "AccessDeniedException"
    err = refused(user.encrypt, KeyId="alias/other-name", Plaintext=b"x")
    assert err.code == "AccessDeniedException"


def test_resource_aliases_condition(cloud: Cloud, kms: Any) -> None:
    condition = {"ForAnyValue:StringLike": {"kms:ResourceAliases": "alias/finance-*"}}
    user, _ = user_kms(cloud, "finance", policy(allow("kms:Encrypt", Condition=condition)))
    key_id, _ = new_key(kms)
    assert refused(user.encrypt, KeyId=key_id, Plaintext=b"x").code == "AccessDeniedException"
    kms.create_alias(AliasName="alias/finance-main", TargetKeyId=key_id)
    user.encrypt(KeyId=key_id, Plaintext=b"x")  # the key now has a matching alias
    kms.delete_alias(AliasName="alias/finance-main")
    assert refused(user.encrypt, KeyId=key_id, Plaintext=b"x").code == "AccessDeniedException"
