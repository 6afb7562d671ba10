"""AssumeRole, GetSessionToken and GetCallerIdentity with real boto3 against the local cloud:
who may become which role, for how long, with which session policies and source identity,
and what is stored for the session."""

from __future__ import annotations

import datetime as dt
import json
import re
import secrets
from typing import Any

import pytest

from latchkey_testing import (
    ACCOUNT,
    AUDIENCE,
    ROOT,
    Cloud,
    add_sts_role,
    creds_of,
    open_fake_issuer,
    post_raw,
    provider_arn,
    refused,
)

CHAIN_LIMIT = (
    "The requested DurationSeconds exceeds the 1 hour session limit for roles assumed by role "
    "chaining."
)
S3_READ = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": "kms:Encrypt", "Resource": "*"}]})  # fmt: skip


@pytest.fixture
def cloud(cloud: Cloud) -> Cloud:
    """The shared ``cloud`` with role ``sts-test`` (see ``add_sts_role``)."""
    return add_sts_role(cloud)


def aws_trust(
    principal: str | list[str] = ROOT,
    actions: str | list[str] = "sts:AssumeRole",
    condition: dict[str, Any] | None = None,
) -> str:
    statement: dict[str, Any] = {"Effect": "Allow", "Principal": {"AWS": principal},
                                 "Action": actions}  # fmt: skip
    if condition:
        statement["Condition"] = condition
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


def make_role(cloud: Cloud, name: str, trust: str | None = None, **kw: Any) -> str:
    role = cloud.client("iam").create_role(
        RoleName=name, AssumeRolePolicyDocument=trust or aws_trust(), **kw
    )
    return str(role["Role"]["Arn"])


def session_context(cloud: Cloud, access_key_id: str) -> dict[str, Any]:
    store = cloud.node.node.store
    assert store is not None
    record = store.load_access_key(access_key_id)
    assert record is not None
    return dict(json.loads(record.session_context))


def lifetime(resp: Any) -> float:
    return float((resp["Credentials"]["Expiration"] - dt.datetime.now(dt.UTC)).total_seconds())


# -- AssumeRole -------------------------------------------------------------------------------


def test_root_assumes_a_role_that_trusts_the_account(cloud: Cloud) -> None:
    arn = make_role(cloud, "ops")
    resp = cloud.client("sts").assume_role(RoleArn=arn, RoleSessionName="alice")
    creds = resp["Credentials"]
    assert creds["AccessKeyId"].startswith("ASIA")
    assert 3590 <= lifetime(resp) <= 3610
    assumed = f"arn:aws:sts::{ACCOUNT}:assumed-role/ops/alice"
    assert resp["AssumedRoleUser"]["Arn"] == assumed
    assert re.fullmatch(r"AROA[A-Z0-9]+:alice", resp["AssumedRoleUser"]["AssumedRoleId"])
    assert "PackedPolicySize" not in resp
    assert "SourceIdentity" not in resp
    who = cloud.client("sts", **creds_of(resp)).get_caller_identity()
    assert who == who | {"Arn": assumed, "Account": ACCOUNT,
                         "UserId": resp["AssumedRoleUser"]["AssumedRoleId"]}  # fmt: skip
    ctx = session_context(cloud, creds["AccessKeyId"])
    assert ctx["issued_by"] == "AssumeRole"
    assert ctx["source_arn"] == ROOT
    assert ctx["chained"] is False
    assert "session_policies" not in ctx
    assert "session_policy_arns" not in ctx


@pytest.mark.parametrize("principal", [ROOT, ACCOUNT])
def test_trust_may_name_the_account_either_way(cloud: Cloud, principal: str) -> None:
    arn = make_role(cloud, "either", aws_trust(principal))
    assert cloud.client("sts").assume_role(RoleArn=arn, RoleSessionName="s1")["Credentials"]


@pytest.mark.parametrize(
    "trust",
    [
        aws_trust("arn:aws:iam::111122223333:root"),
        aws_trust(actions="sts:AssumeRoleWithWebIdentity"),
        aws_trust(f"arn:aws:iam::{ACCOUNT}:role/sts-test"),  # a role, not the root user
        json.dumps({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": ROOT}, "Action": "sts:AssumeRole"},
            {"Effect": "Deny", "Principal": {"AWS": ROOT}, "Action": "sts:AssumeRole"}]}),
    ],
    ids=["other-account", "other-action", "other-role", "explicit-deny"],
)  # fmt: skip
def test_trust_that_does_not_name_the_caller_is_access_denied(cloud: Cloud, trust: str) -> None:
    arn = make_role(cloud, "closed", trust)
    err = refused(cloud.client("sts").assume_role, RoleArn=arn, RoleSessionName="s1")
    assert err[:2] == ("AccessDenied", 403)
    assert err.message.startswith(f"User: {ROOT} is not authorized to perform: sts:AssumeRole")


@pytest.mark.parametrize(
    "arn",
    [f"arn:aws:iam::{ACCOUNT}:role/missing", f"arn:aws:iam::{ACCOUNT}:role/x/ops",
     "arn:aws:iam::111122223333:role/ops"],
)  # fmt: skip
def test_role_that_is_not_there_is_access_denied(cloud: Cloud, arn: str) -> None:
    make_role(cloud, "ops")
    err = refused(cloud.client("sts").assume_role, RoleArn=arn, RoleSessionName="s1")
    assert err == (
        "AccessDenied", 403,
        f"User: {ROOT} is not authorized to perform: sts:AssumeRole on resource: {arn}",
    )  # fmt: skip


def test_duration_limits(cloud: Cloud) -> None:
    arn = make_role(cloud, "long", MaxSessionDuration=7200)
    sts = cloud.client("sts")
    assert (
        lifetime(sts.assume_role(RoleArn=arn, RoleSessionName="s1", DurationSeconds=7200)) >= 7190
    )
    err = refused(sts.assume_role, RoleArn=arn, RoleSessionName="s1", DurationSeconds=7201)
    assert err.message == (
        "The requested DurationSeconds exceeds the MaxSessionDuration set for this role."
    )
    raw = cloud.unvalidated("sts")
    err = refused(raw.assume_role, RoleArn=arn, RoleSessionName="s1", DurationSeconds=899)
    assert err.message == (
        "1 validation error detected: Value '899' at 'durationSeconds' failed to satisfy "
        "constraint: Member must have value greater than or equal to 900"
    )


def chain_roles(cloud: Cloud) -> tuple[str, str]:
    """``first`` (trusts the account, may assume roles) and ``second`` (trusts ``first``)."""
    first = make_role(cloud, "first")
    cloud.client("iam").put_role_policy(RoleName="first", PolicyName="assume", PolicyDocument=(
        json.dumps({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": "*"}]})))  # fmt: skip
    second = make_role(cloud, "second", aws_trust([first, ROOT]), MaxSessionDuration=43200)
    return first, second


def test_role_chaining_is_limited_to_one_hour(cloud: Cloud) -> None:
    first, second = chain_roles(cloud)
    outer = cloud.client("sts").assume_role(RoleArn=first, RoleSessionName="hop1")
    sts = cloud.client("sts", **creds_of(outer))
    err = refused(sts.assume_role, RoleArn=second, RoleSessionName="hop2", DurationSeconds=3601)
    assert err == ("ValidationError", 400, CHAIN_LIMIT)
    inner = sts.assume_role(RoleArn=second, RoleSessionName="hop2", DurationSeconds=3600)
    assert 3590 <= lifetime(inner) <= 3610
    ctx = session_context(cloud, inner["Credentials"]["AccessKeyId"])
    assert ctx["chained"] is True
    assert ctx["source_arn"] == f"arn:aws:sts::{ACCOUNT}:assumed-role/first/hop1"
    # The same role, assumed by root directly, may last its whole maximum.
    direct = cloud.client("sts").assume_role(
        RoleArn=second, RoleSessionName="direct", DurationSeconds=43200
    )
    assert lifetime(direct) > 43000


def test_chained_session_needs_the_trust_or_an_identity_allow(cloud: Cloud) -> None:
    first, _second = chain_roles(cloud)
    third = make_role(cloud, "third", aws_trust(f"arn:aws:iam::{ACCOUNT}:role/sts-test"))
    outer = cloud.client("sts").assume_role(RoleArn=first, RoleSessionName="hop1")
    err = refused(cloud.client("sts", **creds_of(outer)).assume_role,
                  RoleArn=third, RoleSessionName="hop2")  # fmt: skip
    assert err[:2] == ("AccessDenied", 403)
    assert "assumed-role/first/hop1 is not authorized to perform: sts:AssumeRole" in err.message


@pytest.mark.parametrize("name", ["a", "x" * 65, "has space", "sessi\u00f3n", "a/b"])
def test_invalid_session_names(cloud: Cloud, name: str) -> None:
    arn = make_role(cloud, "ops")
    err = refused(cloud.unvalidated("sts").assume_role, RoleArn=arn, RoleSessionName=name)
    assert err[:2] == ("ValidationError", 400)
    assert err.message.startswith("1 validation error detected: Value ")
    assert "at 'roleSessionName' failed to satisfy constraint: Member must" in err.message


def test_external_id_condition(cloud: Cloud) -> None:
    trust = aws_trust(condition={"StringEquals": {"sts:ExternalId": "shared-123"}})
    arn = make_role(cloud, "vendor", trust)
    sts = cloud.client("sts")
    assert sts.assume_role(RoleArn=arn, RoleSessionName="s1", ExternalId="shared-123")
    for wrong in ({"ExternalId": "shared-124"}, {}):
        assert refused(sts.assume_role, RoleArn=arn, RoleSessionName="s1", **wrong)[:2] == (
            "AccessDenied", 403)  # fmt: skip


def test_unsupported_parameters_are_refused_not_ignored(cloud: Cloud) -> None:
    arn = make_role(cloud, "ops")
    sts = cloud.client("sts")
    tags = refused(sts.assume_role, RoleArn=arn, RoleSessionName="s1",
                   Tags=[{"Key": "team", "Value": "x"}])  # fmt: skip
    assert tags[:2] == ("ValidationError", 400)
    mfa = refused(sts.assume_role, RoleArn=arn, RoleSessionName="s1",
                  SerialNumber="arn:aws:iam::000000000000:mfa/x", TokenCode="123456")  # fmt: skip
    assert mfa[:2] == ("AccessDenied", 403)


# -- SourceIdentity ---------------------------------------------------------------------------


def test_source_identity_is_echoed_stored_and_kept_when_chaining(cloud: Cloud) -> None:
    first = make_role(cloud, "si-first", aws_trust(actions=["sts:AssumeRole",
                                                            "sts:SetSourceIdentity"]))  # fmt: skip
    cloud.client("iam").put_role_policy(RoleName="si-first", PolicyName="assume", PolicyDocument=(
        json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": [
            "sts:AssumeRole", "sts:SetSourceIdentity"], "Resource": "*"}]})))  # fmt: skip
    second = make_role(cloud, "si-second", aws_trust(first, ["sts:AssumeRole",
                                                             "sts:SetSourceIdentity"]))  # fmt: skip
    resp = cloud.client("sts").assume_role(
        RoleArn=first, RoleSessionName="s1", SourceIdentity="alice@example.com"
    )
    assert resp["SourceIdentity"] == "alice@example.com"
    ctx = session_context(cloud, resp["Credentials"]["AccessKeyId"])
    assert ctx["source_identity"] == "alice@example.com"
    chained = cloud.client("sts", **creds_of(resp))
    inner = chained.assume_role(RoleArn=second, RoleSessionName="t1")
    assert inner["SourceIdentity"] == "alice@example.com"  # inherited
    err = refused(chained.assume_role, RoleArn=second, RoleSessionName="t1",
                  SourceIdentity="mallory")  # fmt: skip
    assert err[:2] == ("AccessDenied", 403)


def test_source_identity_needs_set_source_identity_in_the_trust(cloud: Cloud) -> None:
    arn = make_role(cloud, "plain")
    err = refused(cloud.client("sts").assume_role, RoleArn=arn, RoleSessionName="s1",
                  SourceIdentity="alice")  # fmt: skip
    assert err[:2] == ("AccessDenied", 403)
    assert "sts:SetSourceIdentity" in err.message


@pytest.mark.parametrize("length", [65, 256])
def test_source_identity_may_be_256_characters(cloud: Cloud, length: int) -> None:
    """The STS model's sourceIdentityType: 2 to 256 characters."""
    arn = make_role(cloud, "si", aws_trust(actions=["sts:AssumeRole", "sts:SetSourceIdentity"]))
    resp = cloud.client("sts").assume_role(
        RoleArn=arn, RoleSessionName="s1", SourceIdentity="a" * length
    )
    assert resp["SourceIdentity"] == "a" * length


@pytest.mark.parametrize("value", ["a", "x" * 257, "has space", "aws:reserved"])
def test_invalid_source_identity(cloud: Cloud, value: str) -> None:
    arn = make_role(cloud, "si", aws_trust(actions=["sts:AssumeRole", "sts:SetSourceIdentity"]))
    err = refused(cloud.unvalidated("sts").assume_role, RoleArn=arn,
                  RoleSessionName="s1", SourceIdentity=value)  # fmt: skip
    assert err[:2] == ("ValidationError", 400)
    assert "at 'sourceIdentity' failed to satisfy constraint" in err.message


# -- session policies -------------------------------------------------------------------------


def policy_arns(count: int) -> list[dict[str, str]]:
    return [{"arn": f"arn:aws:iam::{ACCOUNT}:policy/session-{n}"} for n in range(count)]


def test_session_policy_and_arns_are_stored(cloud: Cloud) -> None:
    arn = make_role(cloud, "ops")
    arns = policy_arns(10)
    resp = cloud.client("sts").assume_role(RoleArn=arn, RoleSessionName="s1", Policy=S3_READ,
                                           PolicyArns=arns)  # fmt: skip
    assert 1 <= resp["PackedPolicySize"] <= 100
    ctx = session_context(cloud, resp["Credentials"]["AccessKeyId"])
    assert ctx["session_policies"] == [S3_READ]
    assert ctx["session_policy_arns"] == [a["arn"] for a in arns]


def test_aws_managed_policy_arns_are_accepted(cloud: Cloud) -> None:
    arn = make_role(cloud, "ops")
    managed = [{"arn": "arn:aws:iam::aws:policy/ReadOnlyAccess"}]
    resp = cloud.client("sts").assume_role(RoleArn=arn, RoleSessionName="s1", PolicyArns=managed)
    ctx = session_context(cloud, resp["Credentials"]["AccessKeyId"])
    assert ctx["session_policy_arns"] == ["arn:aws:iam::aws:policy/ReadOnlyAccess"]
    assert "session_policies" not in ctx


def test_more_than_ten_policy_arns_is_a_validation_error(cloud: Cloud) -> None:
    arn = make_role(cloud, "ops")
    err = refused(cloud.client("sts").assume_role, RoleArn=arn, RoleSessionName="s1",
                  PolicyArns=policy_arns(11))  # fmt: skip
    assert err[:2] == ("ValidationError", 400)
    assert (
        "at 'policyArns' failed to satisfy constraint: Member must have length less than or "
        "equal to 10" in err.message
    )


@pytest.mark.parametrize(
    "bad",
    [f"arn:aws:iam::{ACCOUNT}:role/not-a-policy", "arn:aws:s3:::bucket/policy/x", "not-an-arn"],
)
def test_policy_arns_must_be_policy_arns(cloud: Cloud, bad: str) -> None:
    arn = make_role(cloud, "ops")
    err = refused(cloud.unvalidated("sts").assume_role, RoleArn=arn,
                  RoleSessionName="s1", PolicyArns=[{"arn": bad}])  # fmt: skip
    assert err[:2] == ("ValidationError", 400)


@pytest.mark.parametrize(
    "policy",
    [
        "{not json",
        json.dumps({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "kms:*"}]}),  # no Resource
        json.dumps({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Principal": "*", "Action": "kms:*", "Resource": "*"}]}),
        json.dumps({"Version": "2012-10-17", "Statement": [
            {"Effect": "Alow", "Action": "kms:*", "Resource": "*"}]}),
    ],
    ids=["not-json", "no-resource", "principal", "bad-effect"],
)  # fmt: skip
def test_malformed_session_policy(cloud: Cloud, policy: str) -> None:
    arn = make_role(cloud, "ops")
    err = refused(cloud.client("sts").assume_role, RoleArn=arn, RoleSessionName="s1",
                  Policy=policy)  # fmt: skip
    assert err[:2] == ("MalformedPolicyDocument", 400)


def incompressible_policy(chars: int) -> str:
    """A valid policy of about ``chars`` characters whose resources are random."""
    resources: list[str] = []
    doc = ""
    while True:
        candidate = [*resources, f"arn:aws:kms:us-east-1:{ACCOUNT}:key/{secrets.token_hex(16)}"]
        text = json.dumps({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "kms:Decrypt", "Resource": candidate}]})  # fmt: skip
        if len(text) > chars:
            return doc
        resources, doc = candidate, text


def test_packed_policy_too_large(cloud: Cloud) -> None:
    arn = make_role(cloud, "ops")
    policy = incompressible_policy(2000)
    assert len(policy) <= 2048
    err = refused(cloud.client("sts").assume_role, RoleArn=arn, RoleSessionName="s1",
                  Policy=policy)  # fmt: skip
    assert err[:2] == ("PackedPolicyTooLarge", 400)
    assert re.fullmatch(
        r"Packed policy consumes \d{3}% of allotted space, please use smaller policy\.", err.message
    )


def test_policy_over_2048_characters_is_a_validation_error(cloud: Cloud) -> None:
    arn = make_role(cloud, "ops")
    policy = json.dumps({"Version": "2012-10-17", "Statement": [
        {"Sid": "x" * 2100, "Effect": "Allow", "Action": "kms:*", "Resource": "*"}]})  # fmt: skip
    err = refused(cloud.client("sts").assume_role, RoleArn=arn, RoleSessionName="s1",
                  Policy=policy)  # fmt: skip
    assert err[:2] == ("ValidationError", 400)
    assert "Member must have length less than or equal to 2048" in err.message


def test_web_identity_session_policy_and_source_identity(cloud: Cloud) -> None:
    with open_fake_issuer(cloud) as fake:
        trust = json.dumps({"Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Principal": {"Federated": provider_arn(cloud, fake.url)},
            "Action": ["sts:AssumeRoleWithWebIdentity", "sts:SetSourceIdentity"]}]})  # fmt: skip
        cloud.client("iam").create_role(RoleName="web-si", AssumeRolePolicyDocument=trust)
        token = fake.token(**{"https://aws.amazon.com/source_identity": "bob"})
        resp = cloud.client("sts").assume_role_with_web_identity(
            RoleArn=f"arn:aws:iam::{ACCOUNT}:role/web-si", RoleSessionName="w1",
            WebIdentityToken=token, Policy=S3_READ, PolicyArns=policy_arns(2),
        )  # fmt: skip
    assert resp["SourceIdentity"] == "bob"
    assert resp["PackedPolicySize"] >= 1
    ctx = session_context(cloud, resp["Credentials"]["AccessKeyId"])
    assert ctx["source_identity"] == "bob"
    assert ctx["session_policies"] == [S3_READ]
    assert ctx["session_policy_arns"] == [a["arn"] for a in policy_arns(2)]
    assert ctx["web_identity"]["aud"] == AUDIENCE


def test_web_identity_validates_session_policies_too(cloud: Cloud) -> None:
    with open_fake_issuer(cloud) as fake:
        assume = cloud.client("sts").assume_role_with_web_identity
        base = {"RoleArn": f"arn:aws:iam::{ACCOUNT}:role/fake-trust", "RoleSessionName": "w1",
                "WebIdentityToken": fake.token()}  # fmt: skip
        assert refused(assume, **base, Policy="{")[:2] == ("MalformedPolicyDocument", 400)
        big = refused(assume, **base, Policy=incompressible_policy(2000))
        assert big[:2] == ("PackedPolicyTooLarge", 400)
        many = refused(assume, **base, PolicyArns=policy_arns(11))
        assert many[:2] == ("ValidationError", 400)
        assert fake.requests == []  # all refused before the issuer was asked anything


def test_policy_arn_list_with_a_gap_is_refused(cloud: Cloud) -> None:
    """``PolicyArns.member.2`` without ``.1`` must not silently mean "no session policy"."""
    with open_fake_issuer(cloud) as fake:
        status, code, _ = post_raw(cloud, {
            "Action": "AssumeRoleWithWebIdentity", "Version": "2011-06-15",
            "RoleArn": f"arn:aws:iam::{ACCOUNT}:role/fake-trust", "RoleSessionName": "w1",
            "WebIdentityToken": fake.token(),
            "PolicyArns.member.2.arn": f"arn:aws:iam::{ACCOUNT}:policy/p"})  # fmt: skip
    assert (status, code) == (400, "ValidationError")


# -- GetSessionToken --------------------------------------------------------------------------


@pytest.mark.parametrize("duration", [None, 900, 7200, 129600])
def test_get_session_token_for_root_is_capped_at_one_hour(
    cloud: Cloud, duration: int | None
) -> None:
    kwargs = {} if duration is None else {"DurationSeconds": duration}
    resp = cloud.client("sts").get_session_token(**kwargs)
    expected = min(duration or 43200, 3600)
    assert expected - 10 <= lifetime(resp) <= expected + 10
    creds = resp["Credentials"]
    assert creds["AccessKeyId"].startswith("ASIA")
    store = cloud.node.node.store
    assert store is not None
    record = store.load_access_key(creds["AccessKeyId"])
    assert record is not None
    assert (record.kind, record.role_arn, record.principal_arn) == ("session", None, ROOT)
    who = cloud.client("sts", **creds_of(resp)).get_caller_identity()
    assert who == who | {"Arn": ROOT, "Account": ACCOUNT, "UserId": ACCOUNT}


@pytest.mark.parametrize("duration", [899, 129601])
def test_get_session_token_duration_bounds(cloud: Cloud, duration: int) -> None:
    err = refused(cloud.unvalidated("sts").get_session_token, DurationSeconds=duration)
    assert err[:2] == ("ValidationError", 400)
    assert "at 'durationSeconds' failed to satisfy constraint" in err.message


@pytest.mark.parametrize("source", ["assume-role", "get-session-token"])
def test_get_session_token_from_session_credentials_is_refused(cloud: Cloud, source: str) -> None:
    if source == "assume-role":
        resp = cloud.client("sts").assume_role(RoleArn=make_role(cloud, "ops"),
                                               RoleSessionName="s1")  # fmt: skip
    else:
        resp = cloud.client("sts").get_session_token()
    err = refused(cloud.client("sts", **creds_of(resp)).get_session_token)
    assert err == ("AccessDenied", 403, "Cannot call GetSessionToken with session credentials")


def test_session_token_credentials_may_assume_a_role(cloud: Cloud) -> None:
    arn = make_role(cloud, "ops")
    session = cloud.client("sts", **creds_of(cloud.client("sts").get_session_token()))
    resp = session.assume_role(RoleArn=arn, RoleSessionName="s1", DurationSeconds=7200 // 2)
    assert resp["AssumedRoleUser"]["Arn"].endswith(":assumed-role/ops/s1")
    assert session_context(cloud, resp["Credentials"]["AccessKeyId"])["chained"] is False


# -- GetCallerIdentity ------------------------------------------------------------------------


def test_get_caller_identity_for_root(cloud: Cloud) -> None:
    who = cloud.client("sts").get_caller_identity()
    assert (who["Arn"], who["Account"], who["UserId"]) == (ROOT, ACCOUNT, ACCOUNT)


def test_get_caller_identity_for_an_iam_user(cloud: Cloud) -> None:
    iam = cloud.client("iam")
    try:
        user = iam.create_user(UserName="carol")["User"]
        key = iam.create_access_key(UserName="carol")["AccessKey"]
    except Exception as exc:
        pytest.skip(f"IAM users are not available yet: {exc.__class__.__name__}")
    creds = {"aws_access_key_id": key["AccessKeyId"],
             "aws_secret_access_key": key["SecretAccessKey"]}  # fmt: skip
    sts = cloud.client("sts", **creds)
    who = sts.get_caller_identity()
    assert (who["Arn"], who["UserId"]) == (user["Arn"], user["UserId"])
    session = cloud.client("sts", **creds_of(sts.get_session_token(DurationSeconds=7200)))
    assert session.get_caller_identity()["Arn"] == user["Arn"]
    assert session.get_caller_identity()["UserId"] == user["UserId"]


def test_assume_role_for_an_iam_user_needs_trust_and_identity(cloud: Cloud) -> None:
    iam = cloud.client("iam")
    try:
        iam.create_user(UserName="dave")
        key = iam.create_access_key(UserName="dave")["AccessKey"]
    except Exception as exc:
        pytest.skip(f"IAM users are not available yet: {exc.__class__.__name__}")
    arn = make_role(cloud, "for-users")  # trusts the account: the user needs an IAM allow
    creds = {"aws_access_key_id": key["AccessKeyId"],
             "aws_secret_access_key": key["SecretAccessKey"]}  # fmt: skip
    sts = cloud.client("sts", **creds)
    assert refused(sts.assume_role, RoleArn=arn, RoleSessionName="d1")[:2] == ("AccessDenied", 403)
    iam.put_user_policy(UserName="dave", PolicyName="assume", PolicyDocument=json.dumps(
        {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "sts:AssumeRole", "Resource": arn}]}))  # fmt: skip
    resp = sts.assume_role(RoleArn=arn, RoleSessionName="d1")
    ctx = session_context(cloud, resp["Credentials"]["AccessKeyId"])
    assert ctx["source_arn"] == f"arn:aws:iam::{ACCOUNT}:user/dave"
