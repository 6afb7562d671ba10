"""IAM users and their access keys as AWS clients see them (real boto3, the real aws CLI):
users sign their own calls, keys are shown once, stored wrapped, never audited, and an
inactive key is refused like an unknown one."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

from latchkey_testing import ACCOUNT, Cloud, NodeHandle, aws, client_base_env, policy, refused


def allow(action: str | list[str], resource: str = "*") -> str:
    """A whole policy document (unlike ``latchkey_testing.allow``, one statement)."""
    return policy({"Effect": "Allow", "Action": action, "Resource": resource})


def user_arn(name: str, path: str = "/") -> str:
    return f"arn:aws:iam::{ACCOUNT}:user{path}{name}"


# -- users --------------------------------------------------------------------------------------


def test_user_lifecycle(iam: Any) -> None:
    made = iam.create_user(
        UserName="alice", Path="/people/", Tags=[{"Key": "team", "Value": "sec"}]
    )["User"]
    assert made["Arn"] == user_arn("alice", "/people/")
    assert made["UserId"].startswith("AIDA")
    got = iam.get_user(UserName="ALICE")["User"]
    assert (got["UserName"], got["UserId"], got["Path"]) == ("alice", made["UserId"], "/people/")
    assert got["Tags"] == [{"Key": "team", "Value": "sec"}]
    iam.create_user(UserName="bob")
    assert [u["UserName"] for u in iam.list_users()["Users"]] == ["alice", "bob"]
    assert [u["UserName"] for u in iam.list_users(PathPrefix="/people/")["Users"]] == ["alice"]
    page = iam.list_users(MaxItems=1)
    assert ([u["UserName"] for u in page["Users"]], page["IsTruncated"]) == (["alice"], True)
    assert [u["UserName"] for u in iam.list_users(Marker=page["Marker"])["Users"]] == ["bob"]
    assert refused(iam.create_user, UserName="Bob")[:2] == ("EntityAlreadyExists", 409)
    iam.tag_user(UserName="bob", Tags=[{"Key": "k", "Value": "v"}])
    assert iam.list_user_tags(UserName="bob")["Tags"] == [{"Key": "k", "Value": "v"}]
    iam.untag_user(UserName="bob", TagKeys=["K"])
    assert iam.list_user_tags(UserName="bob")["Tags"] == []
    iam.delete_user(UserName="bob")
    assert refused(iam.get_user, UserName="bob")[:2] == ("NoSuchEntity", 404)
    assert refused(iam.delete_user, UserName="bob")[:2] == ("NoSuchEntity", 404)
    err = refused(
        iam.create_user, UserName="carol", PermissionsBoundary=f"arn:aws:iam::{ACCOUNT}:policy/b"
    )
    assert err[:2] == ("InvalidInput", 400)


def test_get_user_without_a_name(cloud: Cloud, iam: Any) -> None:
    me = iam.get_user()["User"]  # the admin key is the account root user's
    assert (me["Arn"], me["UserId"]) == (f"arn:aws:iam::{ACCOUNT}:root", ACCOUNT)
    iam.create_user(UserName="self")
    iam.put_user_policy(
        UserName="self", PolicyName="me", PolicyDocument=allow("iam:GetUser", user_arn("self"))
    )
    key = iam.create_access_key(UserName="self")["AccessKey"]
    mine = cloud.as_key("iam", key)
    assert mine.get_user()["User"]["UserName"] == "self"
    assert refused(mine.get_user, UserName="other")[:2] == ("AccessDenied", 403)


def test_inline_user_policies(iam: Any) -> None:
    iam.create_user(UserName="pol")
    iam.put_user_policy(UserName="pol", PolicyName="kms", PolicyDocument=allow("kms:*"))
    got = iam.get_user_policy(UserName="pol", PolicyName="kms")
    assert got["PolicyDocument"] == json.loads(allow("kms:*"))
    assert iam.list_user_policies(UserName="pol")["PolicyNames"] == ["kms"]
    err = refused(
        iam.put_user_policy,
        UserName="pol",
        PolicyName="bad",
        PolicyDocument=json.dumps({"Statement": [{"Effect": "Allow", "Action": "kms:*"}]}),
    )
    assert err[:2] == ("MalformedPolicyDocument", 400)
    big = allow("kms:Encrypt", "arn:aws:kms:*:*:key/" + "k" * 2100)
    err = refused(iam.put_user_policy, UserName="pol", PolicyName="big", PolicyDocument=big)
    assert err[:2] == ("LimitExceeded", 409)
    iam.delete_user_policy(UserName="pol", PolicyName="kms")
    assert iam.list_user_policies(UserName="pol")["PolicyNames"] == []
    err = refused(iam.get_user_policy, UserName="pol", PolicyName="kms")
    assert err == ("NoSuchEntity", 404, "The user policy with name kms cannot be found.")


def test_attached_user_policies(iam: Any) -> None:
    iam.create_user(UserName="att")
    arn = iam.create_policy(PolicyName="p", PolicyDocument=allow("kms:*"))["Policy"]["Arn"]
    iam.attach_user_policy(UserName="att", PolicyArn=arn)
    assert iam.list_attached_user_policies(UserName="att")["AttachedPolicies"] == [
        {"PolicyName": "p", "PolicyArn": arn}
    ]
    assert refused(iam.delete_policy, PolicyArn=arn).code == "DeleteConflict"
    err = refused(
        iam.attach_user_policy, UserName="att", PolicyArn=f"arn:aws:iam::{ACCOUNT}:policy/none"
    )
    assert err[:2] == ("NoSuchEntity", 404)
    iam.detach_user_policy(UserName="att", PolicyArn=arn)
    assert iam.list_attached_user_policies(UserName="att")["AttachedPolicies"] == []
    assert refused(iam.detach_user_policy, UserName="att", PolicyArn=arn).code == "NoSuchEntity"


def test_delete_user_conflicts(iam: Any) -> None:
    iam.create_user(UserName="busy")
    arn = iam.create_policy(PolicyName="busy-p", PolicyDocument=allow("kms:*"))["Policy"]["Arn"]
    iam.put_user_policy(UserName="busy", PolicyName="inline", PolicyDocument=allow("kms:*"))
    iam.attach_user_policy(UserName="busy", PolicyArn=arn)
    key_id = iam.create_access_key(UserName="busy")["AccessKey"]["AccessKeyId"]
    steps: list[tuple[str, Callable[[], Any]]] = [
        (
            "must delete policies first",
            lambda: iam.delete_user_policy(UserName="busy", PolicyName="inline"),
        ),
        (
            "must detach all policies first",
            lambda: iam.detach_user_policy(UserName="busy", PolicyArn=arn),
        ),
        (
            "must delete access keys first",
            lambda: iam.delete_access_key(UserName="busy", AccessKeyId=key_id),
        ),
    ]
    for message, undo in steps:
        err = refused(iam.delete_user, UserName="busy")
        assert err == ("DeleteConflict", 409, f"Cannot delete entity, {message}.")
        undo()
    iam.delete_user(UserName="busy")


# -- access keys --------------------------------------------------------------------------------


def test_access_keys(iam: Any) -> None:
    iam.create_user(UserName="ci")
    first = iam.create_access_key(UserName="ci")["AccessKey"]
    assert first["AccessKeyId"].startswith("AKIA")
    assert len(first["AccessKeyId"]) == 20
    assert len(first["SecretAccessKey"]) == 40
    assert (first["UserName"], first["Status"]) == ("ci", "Active")
    second = iam.create_access_key(UserName="ci")["AccessKey"]
    err = refused(iam.create_access_key, UserName="ci")
    assert err == ("LimitExceeded", 409, "Cannot exceed quota for AccessKeysPerUser: 2")
    listed = iam.list_access_keys(UserName="ci")["AccessKeyMetadata"]
    assert sorted(k["AccessKeyId"] for k in listed) == sorted(
        [first["AccessKeyId"], second["AccessKeyId"]]
    )
    assert all("SecretAccessKey" not in k for k in listed)
    iam.update_access_key(UserName="ci", AccessKeyId=first["AccessKeyId"], Status="Inactive")
    statuses = {
        k["AccessKeyId"]: k["Status"]
        for k in iam.list_access_keys(UserName="ci")["AccessKeyMetadata"]
    }
    assert statuses[first["AccessKeyId"]] == "Inactive"
    iam.delete_access_key(UserName="ci", AccessKeyId=second["AccessKeyId"])
    assert len(iam.list_access_keys(UserName="ci")["AccessKeyMetadata"]) == 1
    err = refused(iam.delete_access_key, UserName="ci", AccessKeyId=second["AccessKeyId"])
    assert err == (
        "NoSuchEntity",
        404,
        f"The Access Key with id {second['AccessKeyId']} cannot be found.",
    )
    iam.create_user(UserName="other")
    err = refused(
        iam.update_access_key, UserName="other", AccessKeyId=first["AccessKeyId"], Status="Active"
    )
    assert err[:2] == ("NoSuchEntity", 404)  # another user's key is not found through this one
    assert refused(iam.create_access_key, UserName="nobody")[:2] == ("NoSuchEntity", 404)
    assert refused(iam.create_access_key)[:2] == ("ValidationError", 400)  # root: not here


def test_inactive_key_is_refused_like_an_unknown_key(cloud: Cloud, iam: Any) -> None:
    iam.create_user(UserName="dormant")
    iam.put_user_policy(
        UserName="dormant",
        PolicyName="p",
        PolicyDocument=allow(["kms:ListKeys", "iam:ListAccessKeys"]),
    )
    key = iam.create_access_key(UserName="dormant")["AccessKey"]
    kms, user_iam = cloud.as_key("kms", key), cloud.as_key("iam", key)
    kms.list_keys()
    assert len(user_iam.list_access_keys()["AccessKeyMetadata"]) == 1  # implicit: itself
    iam.update_access_key(UserName="dormant", AccessKeyId=key["AccessKeyId"], Status="Inactive")
    unknown = {**key, "AccessKeyId": "AKIAUNKNOWNUNKNOWN00"}
    for client, other in [
        (kms, cloud.as_key("kms", unknown)),
        (user_iam, cloud.as_key("iam", unknown)),
    ]:
        call = client.list_keys if client is kms else client.list_access_keys
        other_call = other.list_keys if client is kms else other.list_access_keys
        assert refused(call) == refused(other_call)
    assert refused(kms.list_keys)[:2] == ("UnrecognizedClientException", 400)
    assert refused(user_iam.list_access_keys)[:2] == ("InvalidClientTokenId", 403)
    iam.update_access_key(UserName="dormant", AccessKeyId=key["AccessKeyId"], Status="Active")
    kms.list_keys()


def test_secret_is_never_stored_or_audited_in_clear(cloud: Cloud, iam: Any) -> None:
    iam.create_user(UserName="audited")
    key = iam.create_access_key(UserName="audited")["AccessKey"]
    secret = key["SecretAccessKey"].encode()
    data = cloud.node.data_dir
    audit = (data / "audit" / "cloud.jsonl").read_bytes()
    assert secret not in audit
    events = [json.loads(line) for line in audit.splitlines()]
    created = [e for e in events if e["eventName"] == "CreateAccessKey"]
    assert created[0]["requestParameters"] == {"userName": "audited"}
    on_disk = b"".join(p.read_bytes() for p in data.glob("latchkey.db*"))
    assert secret not in on_disk
    db = sqlite3.connect(data / "latchkey.db")
    try:
        row = db.execute(
            "SELECT kind, principal_arn, wrapped_secret FROM access_keys WHERE access_key_id = ?",
            (key["AccessKeyId"],),
        ).fetchone()
    finally:
        db.close()
    assert row[:2] == ("user", user_arn("audited"))
    assert secret not in row[2]


def test_aws_cli_flow_for_a_ci_user(node: NodeHandle, tmp_path: Path) -> None:
    """An admin sets up a CI user with the aws CLI; the CI user then signs its own calls."""
    admin = node.admin()
    base = client_base_env(tmp_path)
    env = {
        **base,
        "AWS_ACCESS_KEY_ID": admin["AccessKeyId"],
        "AWS_SECRET_ACCESS_KEY": admin["SecretAccessKey"],
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    where = [
        "--endpoint-url",
        node.info.cloud,
        "--ca-bundle",
        str(node.info.ca_bundle),
        "--output",
        "json",
    ]

    def cli(environment: dict[str, str], *args: str) -> Any:
        out = aws(environment, *args, *where).stdout
        return json.loads(out) if out.strip() else None

    cli(env, "iam", "create-user", "--user-name", "ci-bot", "--path", "/ci/")
    policy_arn = cli(
        env,
        "iam",
        "create-policy",
        "--policy-name",
        "ci-kms",
        "--policy-document",
        allow(["kms:CreateKey", "kms:Encrypt", "iam:GetUser"]),
    )["Policy"]["Arn"]
    cli(env, "iam", "attach-user-policy", "--user-name", "ci-bot", "--policy-arn", policy_arn)
    key = cli(env, "iam", "create-access-key", "--user-name", "ci-bot")["AccessKey"]
    ci = {
        **base,
        "AWS_ACCESS_KEY_ID": key["AccessKeyId"],
        "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"],
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    assert cli(ci, "iam", "get-user")["User"]["Arn"] == user_arn("ci-bot", "/ci/")
    key_id = cli(ci, "kms", "create-key")["KeyMetadata"]["KeyId"]
    cli(ci, "kms", "encrypt", "--key-id", key_id, "--plaintext", "aGk=")
    denied = aws(ci, "iam", "list-users", *where, check=False)
    assert denied.returncode != 0
    assert "AccessDenied" in denied.stderr
    assert f"{user_arn('ci-bot', '/ci/')} is not authorized to perform: iam:ListUsers" in (
        denied.stderr
    )
    listed = cli(env, "iam", "list-access-keys", "--user-name", "ci-bot")
    assert listed["AccessKeyMetadata"][0]["AccessKeyId"] == key["AccessKeyId"]
