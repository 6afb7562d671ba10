"""The global condition keys AWS puts in every request (aws:CurrentTime, aws:EpochTime,
aws:PrincipalType, aws:RequestedRegion, aws:PrincipalTag/*, aws:ResourceTag/* of IAM users and
roles, aws:MultiFactorAuthPresent...) and policy variables, as policies see them: a Deny built
on them must apply (real boto3, real TLS)."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from botocore.exceptions import ClientError

from latchkey.aws.policy import parse_policy
from latchkey.cloud.authz import AccessRefused, authorize
from latchkey.cloud.identity import Caller
from latchkey.cloud.sts.common import Call
from latchkey.cloud.sts.web_identity import _condition_keys
from latchkey.store.base import OidcProviderRecord
from latchkey_testing import (
    ACCOUNT,
    AUDIENCE,
    ROOT,
    SUBJECT,
    Cloud,
    allow,
    creds_of,
    deny,
    host_port,
    policy,
    provider_arn,
    refused,
)

LONG_AGO = "2020-01-01T00:00:00Z"
USER = f"arn:aws:iam::{ACCOUNT}:user/u1"


def trust(principal: str = ROOT) -> str:
    return policy({"Effect": "Allow", "Principal": {"AWS": principal}, "Action": "sts:AssumeRole"})


def when(statement: dict[str, Any], condition: dict[str, Any]) -> dict[str, Any]:
    return {**statement, "Condition": condition}


@pytest.fixture
def user(cloud: Cloud, iam: Any) -> Any:
    """An IAM client signing as user ``u1`` (its policy: ``set_policy``)."""
    iam.create_user(UserName="u1")
    return cloud.as_key("iam", iam.create_access_key(UserName="u1")["AccessKey"])


def set_policy(iam: Any, *statements: dict[str, Any], user: str = "u1") -> None:
    iam.put_user_policy(UserName=user, PolicyName="p", PolicyDocument=policy(*statements))


def allowed(call: Any, **params: Any) -> bool:
    try:
        call(**params)
    except ClientError as exc:
        code = exc.response["Error"]["Code"]
    else:
        return True
    assert code == "AccessDenied"
    return False


def test_a_deny_on_the_current_time_applies(iam: Any, user: Any) -> None:
    set_policy(iam, allow("iam:GetUser"),
               when(deny("*"), {"DateGreaterThan": {"aws:CurrentTime": LONG_AGO}}))  # fmt: skip
    err = refused(user.get_user, UserName="u1")
    assert err[:2] == ("AccessDenied", 403)
    assert "because of an explicit deny in an identity-based policy" in err.message
    set_policy(iam, allow("iam:GetUser"),
               when(deny("*"), {"DateLessThan": {"aws:CurrentTime": LONG_AGO}}))  # fmt: skip
    assert allowed(user.get_user, UserName="u1")


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ({"NumericGreaterThan": {"aws:EpochTime": "1577836800"}}, True),
        ({"NumericLessThan": {"aws:EpochTime": "1577836800"}}, False),
        ({"StringEquals": {"aws:PrincipalType": "User"}}, True),
        ({"StringEquals": {"aws:RequestedRegion": "us-east-1"}}, True),  # IAM: global
        ({"StringNotEquals": {"aws:RequestedRegion": "us-east-1"}}, False),
        ({"Bool": {"aws:ViaAWSService": "false"}}, True),
        ({"Null": {"aws:MultiFactorAuthPresent": "true"}}, True),  # long-term key: absent
        ({"StringEquals": {"aws:username": "u1", "aws:PrincipalArn": USER}}, True),
    ],
)
def test_global_keys_of_an_iam_user(
    iam: Any, user: Any, condition: dict[str, Any], expected: bool
) -> None:
    set_policy(iam, when(allow("iam:GetUser"), condition))
    assert allowed(user.get_user, UserName="u1") is expected


def test_principal_tags(iam: Any, user: Any) -> None:
    set_policy(iam, when(allow("iam:GetUser"), {"StringEquals": {"aws:PrincipalTag/team": "blue"}}))
    assert not allowed(user.get_user, UserName="u1")
    iam.tag_user(UserName="u1", Tags=[{"Key": "team", "Value": "blue"}])
    assert allowed(user.get_user, UserName="u1")
    iam.tag_user(UserName="u1", Tags=[{"Key": "team", "Value": "red"}])
    assert not allowed(user.get_user, UserName="u1")


def test_resource_tags_of_roles_and_users(iam: Any, user: Any) -> None:
    iam.create_role(RoleName="prot", AssumeRolePolicyDocument=trust(),
                    Tags=[{"Key": "protected", "Value": "true"}])  # fmt: skip
    iam.create_role(RoleName="free", AssumeRolePolicyDocument=trust())
    iam.create_user(UserName="vip", Tags=[{"Key": "protected", "Value": "true"}])
    protected = {"StringEquals": {"aws:ResourceTag/protected": "true"}}
    tagged = {"StringEquals": {"iam:ResourceTag/protected": "true"}}
    set_policy(
        iam,
        allow("iam:*"),
        when(deny(["iam:DeleteRole", "iam:UpdateAssumeRolePolicy"]), protected),
        when(deny("iam:TagUser"), tagged),
    )
    err = refused(user.update_assume_role_policy, RoleName="prot", PolicyDocument=trust())
    assert err[:2] == ("AccessDenied", 403)
    assert "explicit deny" in err.message
    assert refused(user.delete_role, RoleName="prot")[:2] == ("AccessDenied", 403)
    assert iam.get_role(RoleName="prot")["Role"]["RoleName"] == "prot"  # still there
    assert refused(user.tag_user, UserName="vip", Tags=[{"Key": "k", "Value": "v"}]).code == (
        "AccessDenied"
    )
    user.tag_user(UserName="u1", Tags=[{"Key": "k", "Value": "v"}])
    user.delete_role(RoleName="free")  # untagged: the Deny does not apply


def test_username_variable_in_resource(iam: Any, user: Any) -> None:
    iam.create_user(UserName="other")
    set_policy(iam, allow("iam:GetUser", Resource=f"arn:aws:iam::{ACCOUNT}:user/${{aws:username}}"))
    assert user.get_user(UserName="u1")["User"]["UserName"] == "u1"
    assert refused(user.get_user, UserName="other")[:2] == ("AccessDenied", 403)


def test_global_keys_of_a_role_session(cloud: Cloud, iam: Any) -> None:
    iam.create_role(RoleName="tagged", AssumeRolePolicyDocument=trust(),
                    Tags=[{"Key": "team", "Value": "blue"}])  # fmt: skip
    checks = {
        "type": {"StringEquals": {"aws:PrincipalType": "AssumedRole"}},
        "tag": {"StringEquals": {"aws:PrincipalTag/team": "blue"}},
        "mfa": {"Bool": {"aws:MultiFactorAuthPresent": "false"}},  # temporary, without MFA
        "issued": {"DateGreaterThan": {"aws:TokenIssueTime": LONG_AGO}},
        "userid": {"StringLike": {"aws:userid": "AROA*:s1"}},
    }
    statements = [when(allow("iam:GetRole", Resource=f"arn:aws:iam::{ACCOUNT}:role/{name}"),
                       condition) for name, condition in checks.items()]  # fmt: skip
    iam.put_role_policy(RoleName="tagged", PolicyName="p", PolicyDocument=policy(*statements))
    for name in checks:
        iam.create_role(RoleName=name, AssumeRolePolicyDocument=trust())
    creds = cloud.client("sts").assume_role(
        RoleArn=f"arn:aws:iam::{ACCOUNT}:role/tagged", RoleSessionName="s1"
    )
    session = cloud.client("iam", **creds_of(creds))
    for name in checks:
        assert session.get_role(RoleName=name)["Role"]["RoleName"] == name


def root_caller(secure: bool | None) -> Caller:
    return Caller(arn=ROOT, account=ACCOUNT, access_key_id="AKIAROOTROOTROOTROOT", kind="root",
                  secure_transport=secure, region="eu-west-1")  # fmt: skip


@pytest.mark.parametrize(("secure", "refused_"), [(True, False), (False, True), (None, False)])
def test_secure_transport_as_the_app_reports_it(
    cloud: Cloud, secure: bool | None, refused_: bool
) -> None:
    """aws:SecureTransport comes from the listener the request came in on (the app passes it
    to ``Authenticator.authenticate``); a Deny on plain HTTP applies, even to the root user."""
    store = cloud.node.node.store
    assert store is not None
    plain = {"Bool": {"aws:SecureTransport": "false"}}
    elsewhere = {"StringNotEquals": {"aws:RequestedRegion": "eu-west-1"}}
    text = policy(
        allow("kms:*", ROOT), when(deny("kms:*", ROOT), plain), when(deny("kms:*", ROOT), elsewhere)
    )
    doc = parse_policy(text, require_principal=True)
    explicit: bool | None = None
    try:
        authorize(store, root_caller(secure), "kms:Encrypt", "*", resource_policy=doc)
    except AccessRefused as exc:
        explicit = exc.explicit
    assert explicit is (True if refused_ else None)


def test_web_identity_trust_sees_the_global_keys(cloud: Cloud) -> None:
    host = host_port(cloud)
    provider = provider_arn(cloud)
    statement = {
        "Effect": "Allow", "Principal": {"Federated": provider},
        "Action": "sts:AssumeRoleWithWebIdentity",
        "Condition": {
            "StringEquals": {f"{host}:aud": AUDIENCE, "aws:FederatedProvider": provider,
                             "aws:RequestedRegion": "us-east-1"},
            "DateGreaterThan": {"aws:CurrentTime": LONG_AGO},
            "NumericGreaterThan": {"aws:EpochTime": "1577836800"},
        },
    }  # fmt: skip
    iam = cloud.client("iam")
    iam.create_role(RoleName="wi", AssumeRolePolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [statement]}))  # fmt: skip
    assert cloud.node.node.issuer is not None
    token = cloud.node.node.issuer.mint(SUBJECT, AUDIENCE)
    sts = cloud.client("sts")
    role = f"arn:aws:iam::{ACCOUNT}:role/wi"
    got = sts.assume_role_with_web_identity(
        RoleArn=role, RoleSessionName="s1", WebIdentityToken=token
    )
    assert got["Credentials"]
    statement["Condition"]["DateLessThan"] = statement["Condition"].pop("DateGreaterThan")
    iam.update_assume_role_policy(RoleName="wi", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [statement]}))  # fmt: skip
    token = cloud.node.node.issuer.mint(SUBJECT, AUDIENCE)
    err = refused(sts.assume_role_with_web_identity, RoleArn=role, RoleSessionName="s1",
                  WebIdentityToken=token)  # fmt: skip
    assert err[:2] == ("AccessDenied", 403)


def test_web_identity_keys_from_the_request(cloud: Cloud) -> None:
    """What the app knows of an unsigned request (peer address, transport, region) reaches the
    trust policy's keys; unknown, the key is absent (the region defaults to the global one)."""
    node = cloud.node.node
    assert node.store is not None
    assert node.root_key is not None
    record = OidcProviderRecord(provider_arn(cloud), host_port(cloud), (AUDIENCE,), (), 0.0)
    claims = {"sub": SUBJECT, "aud": AUDIENCE}

    def keys(**request: Any) -> dict[str, Any]:
        call = Call(None, node.store, node.root_key, node.clock, None, ACCOUNT, {},  # type: ignore[arg-type]
                    **request)  # fmt: skip
        return dict(_condition_keys(call, record, claims, "s", None))

    known = keys(source_ip="192.0.2.7", secure_transport=True, region="eu-west-1")
    assert (known["aws:SourceIp"], known["aws:SecureTransport"]) == ("192.0.2.7", True)
    assert known["aws:RequestedRegion"] == "eu-west-1"
    now = dt.datetime.now(dt.UTC).timestamp()
    assert abs(int(known["aws:EpochTime"]) - now) < 60
    unknown = keys()
    assert "aws:SourceIp" not in unknown
    assert "aws:SecureTransport" not in unknown
    assert unknown["aws:RequestedRegion"] == "us-east-1"
