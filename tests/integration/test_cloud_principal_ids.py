"""Principals in trust policies are users and roles, not names: AWS binds an ARN in a
``Principal`` to the entity's unique id when the policy is saved, so a user or role deleted and
re-created under the same name is not trusted any more, and a session of a deleted role
satisfies no policy that names the role. Principals that do not exist are refused."""

from __future__ import annotations

import json
from typing import Any

import pytest

from latchkey_testing import ACCOUNT, ROOT, Cloud, allow, creds_of, policy, refused

ASSUME = policy(allow("sts:AssumeRole"))


def trust(principal: Any) -> str:
    statement = {"Effect": "Allow", "Principal": {"AWS": principal}, "Action": "sts:AssumeRole"}
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


def user_with_key(cloud: Cloud, iam: Any, name: str) -> Any:
    """User ``name`` (new) allowed sts:AssumeRole, and an STS client signing as it."""
    iam.create_user(UserName=name)
    iam.put_user_policy(UserName=name, PolicyName="p", PolicyDocument=ASSUME)
    return cloud.as_key("sts", iam.create_access_key(UserName=name)["AccessKey"])


def delete_user(iam: Any, name: str) -> None:
    for key in iam.list_access_keys(UserName=name)["AccessKeyMetadata"]:
        iam.delete_access_key(UserName=name, AccessKeyId=key["AccessKeyId"])
    iam.delete_user_policy(UserName=name, PolicyName="p")
    iam.delete_user(UserName=name)


def shown_principal(iam: Any, role: str) -> Any:
    doc = iam.get_role(RoleName=role)["Role"]["AssumeRolePolicyDocument"]
    return doc["Statement"][0]["Principal"]["AWS"]


def test_a_recreated_user_is_not_the_trusted_one(cloud: Cloud, iam: Any) -> None:
    user = f"arn:aws:iam::{ACCOUNT}:user/u2"
    old = user_with_key(cloud, iam, "u2")
    role = iam.create_role(RoleName="r9", AssumeRolePolicyDocument=trust(user))["Role"]["Arn"]
    assert shown_principal(iam, "r9") == user  # shown by ARN while the user lives
    assert old.assume_role(RoleArn=role, RoleSessionName="old-u2")["Credentials"]
    old_id = iam.get_user(UserName="u2")["User"]["UserId"]

    delete_user(iam, "u2")
    assert shown_principal(iam, "r9") == old_id  # AWS shows the unique id of a deleted user
    new = user_with_key(cloud, iam, "u2")
    err = refused(new.assume_role, RoleArn=role, RoleSessionName="new-u2")
    assert err[:2] == ("AccessDenied", 403)
    assert err.message.startswith(f"User: {user} is not authorized to perform: sts:AssumeRole")
    assert shown_principal(iam, "r9") == old_id  # the namesake is another user

    iam.update_assume_role_policy(RoleName="r9", PolicyDocument=trust(user))  # trust it anew
    assert new.assume_role(RoleArn=role, RoleSessionName="new-u2")["Credentials"]


def test_a_session_of_a_deleted_role_is_no_longer_that_role(cloud: Cloud, iam: Any) -> None:
    source = f"arn:aws:iam::{ACCOUNT}:role/r10src"
    iam.create_role(RoleName="r10src", AssumeRolePolicyDocument=trust(ROOT))
    iam.put_role_policy(RoleName="r10src", PolicyName="p", PolicyDocument=ASSUME)
    sts = cloud.client("sts")
    old = cloud.client("sts", **creds_of(sts.assume_role(RoleArn=source, RoleSessionName="old")))
    iam.delete_role_policy(RoleName="r10src", PolicyName="p")
    iam.delete_role(RoleName="r10src")
    iam.create_role(RoleName="r10src", AssumeRolePolicyDocument=trust(ROOT))
    iam.put_role_policy(RoleName="r10src", PolicyName="p", PolicyDocument=ASSUME)
    target = iam.create_role(RoleName="r10dst", AssumeRolePolicyDocument=trust(source))
    arn = target["Role"]["Arn"]

    err = refused(old.assume_role, RoleArn=arn, RoleSessionName="chained")
    assert err[:2] == ("AccessDenied", 403)
    new = cloud.client("sts", **creds_of(sts.assume_role(RoleArn=source, RoleSessionName="new")))
    assert new.assume_role(RoleArn=arn, RoleSessionName="chained")["Credentials"]


def test_a_key_policy_naming_a_deleted_role_no_longer_admits_its_sessions(
    cloud: Cloud, iam: Any, kms: Any
) -> None:
    role = f"arn:aws:iam::{ACCOUNT}:role/r14"
    iam.create_role(RoleName="r14", AssumeRolePolicyDocument=trust(ROOT))
    key = kms.create_key(Policy=policy(allow("kms:*", ROOT), allow("kms:Encrypt", role)))
    key_id = key["KeyMetadata"]["KeyId"]
    creds = cloud.client("sts").assume_role(RoleArn=role, RoleSessionName="old")
    session_kms = cloud.client("kms", **creds_of(creds))
    assert session_kms.encrypt(KeyId=key_id, Plaintext=b"x")["CiphertextBlob"]
    iam.delete_role(RoleName="r14")
    err = refused(session_kms.encrypt, KeyId=key_id, Plaintext=b"x")
    assert err.code == "AccessDeniedException"


def test_a_key_policy_naming_a_role_does_not_admit_a_new_role_of_that_name(
    cloud: Cloud, iam: Any, kms: Any
) -> None:
    role = f"arn:aws:iam::{ACCOUNT}:role/r15"
    iam.create_role(RoleName="r15", AssumeRolePolicyDocument=trust(ROOT))
    key = kms.create_key(Policy=policy(allow("kms:*", ROOT), allow("kms:Encrypt", role)))
    key_id = key["KeyMetadata"]["KeyId"]
    shown = json.loads(kms.get_key_policy(KeyId=key_id, PolicyName="default")["Policy"])
    assert shown["Statement"][1]["Principal"] == {"AWS": role}  # the ARN, while it lives
    iam.delete_role(RoleName="r15")
    iam.create_role(RoleName="r15", AssumeRolePolicyDocument=trust(ROOT))
    creds = cloud.client("sts").assume_role(RoleArn=role, RoleSessionName="new")
    err = refused(cloud.client("kms", **creds_of(creds)).encrypt, KeyId=key_id, Plaintext=b"x")
    assert err.code == "AccessDeniedException"
    shown = json.loads(kms.get_key_policy(KeyId=key_id, PolicyName="default")["Policy"])
    assert shown["Statement"][1]["Principal"]["AWS"].startswith("AROA")  # the old one's id


def test_a_key_policy_naming_no_such_principal_is_refused(kms: Any) -> None:
    ghost = policy(
        allow("kms:*", ROOT), allow("kms:Encrypt", f"arn:aws:iam::{ACCOUNT}:user/nobody")
    )
    want = (
        "MalformedPolicyDocumentException", 400,
        "Policy contains a statement with one or more invalid principals.",
    )  # fmt: skip
    assert refused(kms.create_key, Policy=ghost) == want
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    assert refused(kms.put_key_policy, KeyId=key_id, PolicyName="default", Policy=ghost) == want


@pytest.mark.parametrize(
    "principal",
    [
        f"arn:aws:iam::{ACCOUNT}:user/ghost",
        f"arn:aws:iam::{ACCOUNT}:role/ghost",
        "not-an-arn",
        f"arn:aws:iam::{ACCOUNT}:user/*",
        f"arn:aws:iam::{ACCOUNT}:role/app*",
        "arn:aws:iam::*:root",
        "arn:aws:iam::111122223333:role/app",  # no other account's roles exist here
        f"arn:aws:sts::{ACCOUNT}:assumed-role/ghost/s1",
        "AIDAAAAAAAAAAAAAAAAAA",  # unique ids are stored, never written
        ["*", f"arn:aws:iam::{ACCOUNT}:user/ghost"],
    ],
)
def test_principals_that_do_not_exist_are_refused(iam: Any, principal: Any) -> None:
    bad = principal[-1] if isinstance(principal, list) else principal
    want = ("MalformedPolicyDocument", 400, f'Invalid principal in policy: "AWS":"{bad}"')
    assert refused(iam.create_role, RoleName="r", AssumeRolePolicyDocument=trust(principal)) == want
    iam.create_role(RoleName="ok", AssumeRolePolicyDocument=trust(ROOT))
    err = refused(iam.update_assume_role_policy, RoleName="ok", PolicyDocument=trust(principal))
    assert err == want
    assert shown_principal(iam, "ok") == ROOT


def test_principals_that_exist_are_accepted(iam: Any) -> None:
    iam.create_user(UserName="u", Path="/team/")
    iam.create_role(RoleName="base", AssumeRolePolicyDocument=trust(ROOT))
    named = [
        "*",
        ACCOUNT,
        ROOT,
        "arn:aws:iam::111122223333:root",  # any account
        f"arn:aws:iam::{ACCOUNT}:user/team/u",
        f"arn:aws:iam::{ACCOUNT}:role/base",
        f"arn:aws:sts::{ACCOUNT}:assumed-role/base/any-session",
    ]
    iam.create_role(RoleName="many", AssumeRolePolicyDocument=trust(named))
    assert shown_principal(iam, "many") == named
    listed = [r for r in iam.list_roles()["Roles"] if r["RoleName"] == "many"]
    assert listed[0]["AssumeRolePolicyDocument"]["Statement"][0]["Principal"]["AWS"] == named
    federated = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"Federated": "arn:aws:iam::000000000000:oidc-provider/x",
                                          "Service": "ec2.amazonaws.com"},
         "Action": "sts:AssumeRoleWithWebIdentity"}]})  # fmt: skip
    iam.update_assume_role_policy(RoleName="many", PolicyDocument=federated)  # kept as written
