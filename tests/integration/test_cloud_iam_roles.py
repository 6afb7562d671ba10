"""IAM roles, their inline policies and customer managed policies, as AWS clients see them
(real boto3, real TLS): shapes, pagination, validation and the refusals AWS gives."""

from __future__ import annotations

import json
from typing import Any

import pytest

from latchkey_testing import ACCOUNT, ROOT, Cloud, refused


def document(*statements: dict[str, Any]) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": list(statements)}


TRUST = document({"Effect": "Allow", "Principal": {"AWS": ROOT}, "Action": "sts:AssumeRole"})
KMS_ALL = document({"Effect": "Allow", "Action": "kms:*", "Resource": "*"})


def make_role(iam: Any, name: str, **extra: Any) -> dict[str, Any]:
    role: dict[str, Any] = iam.create_role(
        RoleName=name, AssumeRolePolicyDocument=json.dumps(TRUST), **extra
    )["Role"]
    return role


def make_policy(iam: Any, name: str, doc: dict[str, Any] = KMS_ALL, **extra: Any) -> str:
    return str(
        iam.create_policy(PolicyName=name, PolicyDocument=json.dumps(doc), **extra)["Policy"]["Arn"]
    )


# -- roles --------------------------------------------------------------------------------------


def test_create_and_get_role(iam: Any) -> None:
    made = make_role(
        iam,
        "app",
        Path="/svc/team/",
        Description="The app's role",
        MaxSessionDuration=7200,
        Tags=[{"Key": "env", "Value": "dev"}],
    )
    assert made["Arn"] == f"arn:aws:iam::{ACCOUNT}:role/svc/team/app"
    assert made["RoleId"].startswith("AROA")
    assert made["AssumeRolePolicyDocument"] == TRUST  # botocore decodes AWS's URL-encoding
    got = iam.get_role(RoleName="APP")["Role"]  # names are case-insensitive
    assert (got["RoleName"], got["Path"], got["Description"]) == (
        "app",
        "/svc/team/",
        "The app's role",
    )
    assert got["MaxSessionDuration"] == 7200
    assert got["Tags"] == [{"Key": "env", "Value": "dev"}]
    assert got["CreateDate"] == made["CreateDate"]
    assert refused(iam.create_role, RoleName="App", AssumeRolePolicyDocument=json.dumps(TRUST))[
        :2
    ] == ("EntityAlreadyExists", 409)
    assert refused(iam.get_role, RoleName="nobody")[:2] == ("NoSuchEntity", 404)


@pytest.mark.parametrize(
    ("extra", "code"),
    [
        ({"MaxSessionDuration": 3599}, "ValidationError"),
        ({"MaxSessionDuration": 43201}, "ValidationError"),
        ({"Path": "no-slashes"}, "ValidationError"),
        ({"RoleName": "bad name"}, "ValidationError"),
        ({"RoleName": "r" * 65}, "ValidationError"),
        ({"Description": "x" * 1001}, "ValidationError"),
        ({"PermissionsBoundary": f"arn:aws:iam::{ACCOUNT}:policy/b"}, "InvalidInput"),
        ({"AssumeRolePolicyDocument": json.dumps(KMS_ALL)}, "MalformedPolicyDocument"),
    ],
)
def test_create_role_validation(cloud: Cloud, extra: dict[str, Any], code: str) -> None:
    params = {"RoleName": "r", "AssumeRolePolicyDocument": json.dumps(TRUST), **extra}
    err = refused(cloud.unvalidated("iam").create_role, **params)
    assert err[:2] == (code, 400)
    if code == "InvalidInput":
        assert "Permissions boundaries are not supported" in err.message


def test_list_roles_with_path_prefix_and_pages(iam: Any) -> None:
    for index in range(5):
        make_role(iam, f"role-{index}", Path="/paged/")
    make_role(iam, "elsewhere", Path="/other/")
    everything = iam.list_roles()["Roles"]
    assert {"latchkey-kms", "elsewhere", "role-0"} <= {r["RoleName"] for r in everything}
    assert "Tags" not in everything[0]
    names: list[str] = []
    params: dict[str, Any] = {"PathPrefix": "/paged/", "MaxItems": 2}
    pages = 0
    while True:
        page = iam.list_roles(**params)
        pages += 1
        names += [r["RoleName"] for r in page["Roles"]]
        if not page["IsTruncated"]:
            break
        params["Marker"] = page["Marker"]
    assert names == [f"role-{i}" for i in range(5)]
    assert pages == 3
    paginated = iam.get_paginator("list_roles").paginate(
        PathPrefix="/paged/", PaginationConfig={"PageSize": 4}
    )
    assert [r["RoleName"] for p in paginated for r in p["Roles"]] == names


def test_update_role_and_trust_policy(iam: Any) -> None:
    make_role(iam, "upd")
    iam.update_role(RoleName="upd", Description="now described", MaxSessionDuration=43200)
    got = iam.get_role(RoleName="upd")["Role"]
    assert (got["Description"], got["MaxSessionDuration"]) == ("now described", 43200)
    iam.update_role(RoleName="upd", MaxSessionDuration=3600)  # description stays
    got = iam.get_role(RoleName="upd")["Role"]
    assert (got["Description"], got["MaxSessionDuration"]) == ("now described", 3600)
    new_trust = document(
        {
            "Effect": "Allow",
            "Principal": {"Service": "ec2.amazonaws.com"},
            "Action": "sts:AssumeRole",
        }
    )
    iam.update_assume_role_policy(RoleName="upd", PolicyDocument=json.dumps(new_trust))
    assert iam.get_role(RoleName="upd")["Role"]["AssumeRolePolicyDocument"] == new_trust
    for bad in (
        "{",
        json.dumps(KMS_ALL),
        json.dumps(
            document(
                {"Effect": "Allow", "Principal": "*", "Action": "sts:AssumeRole", "Resource": "*"}
            )
        ),
    ):
        err = refused(iam.update_assume_role_policy, RoleName="upd", PolicyDocument=bad)
        assert err[:2] == ("MalformedPolicyDocument", 400)
    assert iam.get_role(RoleName="upd")["Role"]["AssumeRolePolicyDocument"] == new_trust
    err = refused(iam.update_role, RoleName="upd", MaxSessionDuration=100000)
    assert err[:2] == ("ValidationError", 400)
    assert refused(iam.update_role, RoleName="nobody", Description="x")[:2] == ("NoSuchEntity", 404)


def test_role_tags(iam: Any) -> None:
    make_role(iam, "tagged", Tags=[{"Key": "Team", "Value": "a"}])
    iam.tag_role(RoleName="tagged", Tags=[{"Key": "team", "Value": "b"}, {"Key": "x", "Value": ""}])
    tags = iam.list_role_tags(RoleName="tagged")["Tags"]
    assert tags == [{"Key": "team", "Value": "b"}, {"Key": "x", "Value": ""}]  # keys ignore case
    err = refused(
        iam.tag_role,
        RoleName="tagged",
        Tags=[{"Key": "k", "Value": "1"}, {"Key": "K", "Value": "2"}],
    )
    assert err == (
        "InvalidInput",
        400,
        "Duplicate tag keys found. Please note that Tag keys are case insensitive.",
    )
    iam.untag_role(RoleName="tagged", TagKeys=["TEAM"])
    assert iam.get_role(RoleName="tagged")["Role"]["Tags"] == [{"Key": "x", "Value": ""}]


# -- inline role policies -------------------------------------------------------------------------


def test_inline_role_policies(iam: Any) -> None:
    make_role(iam, "inl")
    iam.put_role_policy(RoleName="inl", PolicyName="kms", PolicyDocument=json.dumps(KMS_ALL))
    iam.put_role_policy(RoleName="inl", PolicyName="another", PolicyDocument=json.dumps(KMS_ALL))
    got = iam.get_role_policy(RoleName="inl", PolicyName="kms")
    assert (got["RoleName"], got["PolicyName"], got["PolicyDocument"]) == ("inl", "kms", KMS_ALL)
    assert iam.list_role_policies(RoleName="inl")["PolicyNames"] == ["another", "kms"]
    page = iam.list_role_policies(RoleName="inl", MaxItems=1)
    assert (page["PolicyNames"], page["IsTruncated"]) == (["another"], True)
    iam.delete_role_policy(RoleName="inl", PolicyName="another")
    assert iam.list_role_policies(RoleName="inl")["PolicyNames"] == ["kms"]
    for call in (iam.get_role_policy, iam.delete_role_policy):
        err = refused(call, RoleName="inl", PolicyName="another")
        assert err[:2] == ("NoSuchEntity", 404)
        assert "policy with name another cannot be found" in err.message
        assert refused(call, RoleName="nobody", PolicyName="kms").code == "NoSuchEntity"


def test_get_role_policy_is_url_encoded_on_the_wire(iam: Any) -> None:
    make_role(iam, "wire")
    text = json.dumps(KMS_ALL)
    iam.put_role_policy(RoleName="wire", PolicyName="p", PolicyDocument=text)
    bodies: list[bytes] = []
    iam.meta.events.register(
        "after-call.iam.GetRolePolicy",
        lambda http_response, **_: bodies.append(http_response.content),
    )
    iam.get_role_policy(RoleName="wire", PolicyName="p")
    assert b"<PolicyDocument>%7B%22Version%22%3A%20%222012-10-17%22" in bodies[0]


def test_inline_role_policy_size_quota(iam: Any) -> None:
    make_role(iam, "big")
    statement = {
        "Effect": "Allow",
        "Action": "kms:Encrypt",
        "Resource": "arn:aws:kms:*:*:key/" + "k" * 4000,
    }
    iam.put_role_policy(
        RoleName="big", PolicyName="a", PolicyDocument=json.dumps(document(statement))
    )
    iam.put_role_policy(
        RoleName="big", PolicyName="b", PolicyDocument=json.dumps(document(statement))
    )
    err = refused(
        iam.put_role_policy,
        RoleName="big",
        PolicyName="c",
        PolicyDocument=json.dumps(document(statement)),
    )
    assert err[:2] == ("LimitExceeded", 409)
    # Replacing one of them stays within the quota.
    iam.put_role_policy(RoleName="big", PolicyName="a", PolicyDocument=json.dumps(KMS_ALL))


def test_delete_role_conflicts_while_policies_remain(iam: Any) -> None:
    make_role(iam, "busy")
    arn = make_policy(iam, "busy-managed")
    iam.put_role_policy(RoleName="busy", PolicyName="inline", PolicyDocument=json.dumps(KMS_ALL))
    iam.attach_role_policy(RoleName="busy", PolicyArn=arn)
    err = refused(iam.delete_role, RoleName="busy")
    assert err == ("DeleteConflict", 409, "Cannot delete entity, must delete policies first.")
    iam.delete_role_policy(RoleName="busy", PolicyName="inline")
    err = refused(iam.delete_role, RoleName="busy")
    assert err == ("DeleteConflict", 409, "Cannot delete entity, must detach all policies first.")
    iam.detach_role_policy(RoleName="busy", PolicyArn=arn)
    iam.delete_role(RoleName="busy")
    assert refused(iam.get_role, RoleName="busy")[:2] == ("NoSuchEntity", 404)
    assert refused(iam.delete_role, RoleName="busy")[:2] == ("NoSuchEntity", 404)


# -- managed policies -----------------------------------------------------------------------------


def test_create_and_read_a_managed_policy(iam: Any) -> None:
    created = iam.create_policy(
        PolicyName="kms-use",
        Path="/team/",
        Description="use keys",
        PolicyDocument=json.dumps(KMS_ALL),
        Tags=[{"Key": "k", "Value": "v"}],
    )["Policy"]
    arn = created["Arn"]
    assert arn == f"arn:aws:iam::{ACCOUNT}:policy/team/kms-use"
    assert created["PolicyId"].startswith("ANPA")
    assert (created["DefaultVersionId"], created["AttachmentCount"]) == ("v1", 0)
    assert created["IsAttachable"] is True
    got = iam.get_policy(PolicyArn=arn)["Policy"]
    assert (got["Description"], got["Tags"]) == ("use keys", [{"Key": "k", "Value": "v"}])
    version = iam.get_policy_version(PolicyArn=arn, VersionId="v1")["PolicyVersion"]
    assert (version["Document"], version["VersionId"], version["IsDefaultVersion"]) == (
        KMS_ALL,
        "v1",
        True,
    )
    assert refused(iam.get_policy_version, PolicyArn=arn, VersionId="v2")[:2] == (
        "NoSuchEntity",
        404,
    )
    missing = f"arn:aws:iam::{ACCOUNT}:policy/nope"
    assert refused(iam.get_policy, PolicyArn=missing)[:2] == ("NoSuchEntity", 404)
    assert refused(iam.get_policy, PolicyArn="not-an-arn-at-all-xyz")[:2] == ("InvalidInput", 400)
    err = refused(iam.create_policy, PolicyName="KMS-USE", PolicyDocument=json.dumps(KMS_ALL))
    assert err[:2] == ("EntityAlreadyExists", 409)


@pytest.mark.parametrize(
    "doc",
    [
        "{",
        json.dumps(document({"Effect": "Allow", "Action": "kms:*"})),
        json.dumps(
            document({"Effect": "Allow", "Action": "kms:*", "Resource": "*", "Principal": "*"})
        ),
    ],
)
def test_create_policy_validates_the_document(iam: Any, doc: str) -> None:
    err = refused(iam.create_policy, PolicyName="bad", PolicyDocument=doc)
    assert err[:2] == ("MalformedPolicyDocument", 400)
    assert iam.list_policies(Scope="Local")["Policies"] == []


def test_list_policies(iam: Any) -> None:
    first = make_policy(iam, "alpha", Path="/a/")
    make_policy(iam, "beta")
    make_role(iam, "holder")
    iam.attach_role_policy(RoleName="holder", PolicyArn=first)
    names = [p["PolicyName"] for p in iam.list_policies(Scope="Local")["Policies"]]
    assert names == ["alpha", "beta"]
    assert [p["PolicyName"] for p in iam.list_policies()["Policies"]] == names  # Scope All
    assert iam.list_policies(Scope="AWS")["Policies"] == []
    attached = iam.list_policies(Scope="Local", OnlyAttached=True)["Policies"]
    assert [(p["PolicyName"], p["AttachmentCount"]) for p in attached] == [("alpha", 1)]
    assert [p["PolicyName"] for p in iam.list_policies(PathPrefix="/a/")["Policies"]] == ["alpha"]
    page = iam.list_policies(Scope="Local", MaxItems=1)
    assert (len(page["Policies"]), page["IsTruncated"]) == (1, True)


def test_attach_detach_and_delete_policy(iam: Any) -> None:
    arn = make_policy(iam, "attachable")
    make_role(iam, "r1")
    iam.attach_role_policy(RoleName="r1", PolicyArn=arn)
    iam.attach_role_policy(RoleName="r1", PolicyArn=arn)  # idempotent
    attached = iam.list_attached_role_policies(RoleName="r1")["AttachedPolicies"]
    assert attached == [{"PolicyName": "attachable", "PolicyArn": arn}]
    assert iam.get_policy(PolicyArn=arn)["Policy"]["AttachmentCount"] == 1
    err = refused(iam.delete_policy, PolicyArn=arn)
    assert err == ("DeleteConflict", 409, "Cannot delete a policy attached to entities.")
    iam.detach_role_policy(RoleName="r1", PolicyArn=arn)
    assert iam.list_attached_role_policies(RoleName="r1")["AttachedPolicies"] == []
    assert refused(iam.detach_role_policy, RoleName="r1", PolicyArn=arn)[:2] == (
        "NoSuchEntity",
        404,
    )
    iam.delete_policy(PolicyArn=arn)
    assert refused(iam.get_policy, PolicyArn=arn)[:2] == ("NoSuchEntity", 404)
    assert refused(iam.delete_policy, PolicyArn=arn)[:2] == ("NoSuchEntity", 404)


@pytest.mark.parametrize(
    ("policy_arn", "code"),
    [
        (f"arn:aws:iam::{ACCOUNT}:policy/missing", "NoSuchEntity"),
        ("arn:aws:iam::aws:policy/AdministratorAccess", "NoSuchEntity"),
        ("arn:aws:s3:::bucket/policy/thing", "InvalidInput"),
    ],
)
def test_attach_unknown_policy(iam: Any, policy_arn: str, code: str) -> None:
    make_role(iam, "r2")
    err = refused(iam.attach_role_policy, RoleName="r2", PolicyArn=policy_arn)
    assert err[:2] == (code, 404 if code == "NoSuchEntity" else 400)
    if code == "NoSuchEntity":
        assert err.message == f"Policy {policy_arn} does not exist or is not attachable."


def test_attach_to_unknown_role(iam: Any) -> None:
    arn = make_policy(iam, "orphan")
    err = refused(iam.attach_role_policy, RoleName="nobody", PolicyArn=arn)
    assert err[:2] == ("NoSuchEntity", 404)
    assert refused(iam.list_attached_role_policies, RoleName="nobody").code == "NoSuchEntity"


def test_at_most_ten_managed_policies_per_role(iam: Any) -> None:
    make_role(iam, "full")
    arns = [make_policy(iam, f"p{i}") for i in range(11)]
    for arn in arns[:10]:
        iam.attach_role_policy(RoleName="full", PolicyArn=arn)
    err = refused(iam.attach_role_policy, RoleName="full", PolicyArn=arns[10])
    assert err[:2] == ("LimitExceeded", 409)
    assert len(iam.list_attached_role_policies(RoleName="full")["AttachedPolicies"]) == 10


def test_policy_tags(iam: Any) -> None:
    arn = make_policy(iam, "tagme")
    iam.tag_policy(PolicyArn=arn, Tags=[{"Key": "A", "Value": "1"}, {"Key": "a", "Value": "2"}])
    assert iam.list_policy_tags(PolicyArn=arn)["Tags"] == [
        {"Key": "A", "Value": "1"},
        {"Key": "a", "Value": "2"},
    ]
    iam.untag_policy(PolicyArn=arn, TagKeys=["A"])
    assert iam.list_policy_tags(PolicyArn=arn)["Tags"] == [{"Key": "a", "Value": "2"}]


# -- what a caller needs, and Terraform's calls ---------------------------------------------------


def test_update_role_description_needs_its_own_action(cloud: Cloud, iam: Any) -> None:
    make_role(iam, "described")
    iam.create_user(UserName="editor")
    editor = cloud.as_key("iam", iam.create_access_key(UserName="editor")["AccessKey"])

    def grant(action: str) -> None:
        iam.put_user_policy(UserName="editor", PolicyName="p", PolicyDocument=json.dumps(
            document({"Effect": "Allow", "Action": action, "Resource": "*"})))  # fmt: skip

    grant("iam:UpdateRoleDescription")
    got = editor.update_role_description(RoleName="described", Description="new words")
    assert got["Role"]["Description"] == "new words"
    grant("iam:UpdateRole")
    err = refused(editor.update_role_description, RoleName="described", Description="x")
    assert err[:2] == ("AccessDenied", 403)
    assert "iam:UpdateRoleDescription on resource" in err.message


def test_list_instance_profiles_for_role_is_empty(cloud: Cloud, iam: Any) -> None:
    make_role(iam, "plain")
    got = iam.list_instance_profiles_for_role(RoleName="plain")
    assert (got["InstanceProfiles"], got["IsTruncated"]) == ([], False)
    assert "Marker" not in got
    err = refused(iam.list_instance_profiles_for_role, RoleName="nobody")
    assert err == ("NoSuchEntity", 404, "The role with name nobody cannot be found.")
    raw = cloud.unvalidated("iam")
    err = refused(raw.list_instance_profiles_for_role, RoleName="bad name")
    assert err[:2] == ("ValidationError", 400)
    err = refused(raw.list_instance_profiles_for_role, RoleName="plain", MaxItems=0)
    assert err[:2] == ("ValidationError", 400)
