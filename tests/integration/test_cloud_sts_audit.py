"""The audit trail of STS calls: one CloudTrail-shaped event each, the new credentials named
by access key id and expiration only, never a secret key, session token, web identity token or
external id; the caller's identity typed as CloudTrail types it. IAM answers (CreateAccessKey
holds a secret) never reach responseElements."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest

from latchkey.cloud.trailevents import redacted
from latchkey_testing import (
    ACCOUNT,
    FAKE_ROLE_ARN,
    ROOT,
    Cloud,
    add_sts_role,
    creds_of,
    open_fake_issuer,
    provider_arn,
    refused,
    trust_document,
)

TRUST = json.dumps({"Version": "2012-10-17", "Statement": [{
    "Effect": "Allow", "Principal": {"AWS": ROOT},
    "Action": ["sts:AssumeRole", "sts:SetSourceIdentity"]}]})  # fmt: skip
POLICY = json.dumps({"Version": "2012-10-17", "Statement": [
    {"Effect": "Allow", "Action": "kms:Encrypt", "Resource": "*"}]})  # fmt: skip


@pytest.fixture
def cloud(cloud: Cloud) -> Cloud:
    """The shared ``cloud`` with role ``sts-test`` (see ``add_sts_role``)."""
    return add_sts_role(cloud)


def trail_time(when: dt.datetime) -> str:
    """CloudTrail's form of a credential expiration: ``Mar 23, 2016, 2:39:51 AM``."""
    return when.astimezone(dt.UTC).strftime("%b %-d, %Y, %-I:%M:%S %p")


def audit_text(cloud: Cloud) -> str:
    return (cloud.node.data_dir / "audit" / "cloud.jsonl").read_text()


def events(cloud: Cloud, name: str) -> list[dict[str, Any]]:
    lines = audit_text(cloud).splitlines()
    found = [json.loads(line) for line in lines if line.strip()]
    return [e for e in found if e["eventName"] == name]


def assert_secrets_absent(cloud: Cloud, *secrets: str) -> None:
    text = audit_text(cloud)
    for secret in secrets:
        assert secret not in text
    for member in ("SecretAccessKey", "SessionToken", "WebIdentityToken", "ExternalId"):
        assert f'"{member}"' not in text


def test_assume_role_is_audited_without_secrets(cloud: Cloud) -> None:
    role = cloud.client("iam").create_role(RoleName="audited", AssumeRolePolicyDocument=TRUST)
    arn = role["Role"]["Arn"]
    arns = [{"arn": f"arn:aws:iam::{ACCOUNT}:policy/p{n}"} for n in range(1, 11)]
    resp = cloud.client("sts").assume_role(
        RoleArn=arn, RoleSessionName="audit-me", SourceIdentity="alice", Policy=POLICY,
        PolicyArns=arns, ExternalId="not-for-the-audit", DurationSeconds=1800,
    )  # fmt: skip
    creds = resp["Credentials"]
    (event,) = events(cloud, "AssumeRole")
    assert event["eventSource"] == "sts.amazonaws.com"
    assert event["userIdentity"]["type"] == "Root"
    assert event["userIdentity"]["principalId"] == ACCOUNT
    assert event["requestParameters"] == {
        "roleArn": arn, "roleSessionName": "audit-me", "sourceIdentity": "alice",
        "policy": POLICY, "policyArns": [{"arn": a["arn"]} for a in arns],
        "durationSeconds": 1800,  # a number, as CloudTrail writes it
    }  # fmt: skip
    elements = event["responseElements"]
    # CloudTrail's names (lower camel case) and its form of the expiration.
    assert elements == {
        "credentials": {
            "accessKeyId": creds["AccessKeyId"], "expiration": trail_time(creds["Expiration"]),
        },
        "assumedRoleUser": {
            "assumedRoleId": resp["AssumedRoleUser"]["AssumedRoleId"],
            "arn": resp["AssumedRoleUser"]["Arn"],
        },
        "packedPolicySize": resp["PackedPolicySize"],
        "sourceIdentity": "alice",
    }  # fmt: skip
    assert elements["assumedRoleUser"]["arn"].endswith("assumed-role/audited/audit-me")
    assert event["resources"] == [{"accountId": ACCOUNT, "type": "AWS::IAM::Role", "ARN": arn}]
    assert_secrets_absent(cloud, creds["SecretAccessKey"], creds["SessionToken"],
                          "not-for-the-audit")  # fmt: skip

    # The session's own calls name it as an assumed role, with its issuer and source identity.
    cloud.client("sts", **creds_of(resp)).get_caller_identity()
    (who,) = events(cloud, "GetCallerIdentity")
    identity = who["userIdentity"]
    assert identity["type"] == "AssumedRole"
    assert identity["principalId"] == resp["AssumedRoleUser"]["AssumedRoleId"]
    assert identity["sessionContext"]["sessionIssuer"]["arn"] == arn
    assert identity["sessionContext"]["sourceIdentity"] == "alice"


def test_get_session_token_is_audited_without_secrets(cloud: Cloud) -> None:
    resp = cloud.client("sts").get_session_token(DurationSeconds=900)
    creds = resp["Credentials"]
    (event,) = events(cloud, "GetSessionToken")
    assert event["responseElements"] == {
        "credentials": {
            "accessKeyId": creds["AccessKeyId"],
            "expiration": trail_time(creds["Expiration"]),
        }
    }
    assert event["requestParameters"] == {"durationSeconds": 900}
    assert "resources" not in event
    cloud.client("sts", **creds_of(resp)).get_caller_identity()
    (who,) = events(cloud, "GetCallerIdentity")
    identity = who["userIdentity"]
    assert (identity["type"], identity["arn"], identity["principalId"]) == ("Root", ROOT, ACCOUNT)
    assert identity["accessKeyId"] == creds["AccessKeyId"]
    assert "sessionIssuer" not in identity["sessionContext"]
    assert_secrets_absent(cloud, creds["SecretAccessKey"], creds["SessionToken"])


def test_web_identity_is_audited_without_the_token(cloud: Cloud) -> None:
    with open_fake_issuer(cloud) as fake:
        token = fake.token()
        resp = cloud.client("sts").assume_role_with_web_identity(
            RoleArn=FAKE_ROLE_ARN, RoleSessionName="web", WebIdentityToken=token
        )
        bad = fake.token(aud="not-sts")
        err = refused(cloud.client("sts").assume_role_with_web_identity, RoleArn=FAKE_ROLE_ARN,
                      RoleSessionName="web", WebIdentityToken=bad)  # fmt: skip
        assert err.code == "InvalidIdentityToken"
    ok, failed = events(cloud, "AssumeRoleWithWebIdentity")
    provider = f"arn:aws:iam::{ACCOUNT}:oidc-provider/{fake.url.removeprefix('https://')}"
    assert ok["userIdentity"] == {
        "type": "WebIdentityUser", "principalId": f"{provider}:sts.amazonaws.com:local-apps",
        "userName": "local-apps", "identityProvider": provider,
    }  # fmt: skip
    # The token verified, then its audience was refused: who presented it is known.
    assert failed["userIdentity"] == {
        "type": "WebIdentityUser", "principalId": f"{provider}:not-sts:local-apps",
        "userName": "local-apps", "identityProvider": provider,
    }  # fmt: skip
    role = [{"accountId": ACCOUNT, "type": "AWS::IAM::Role", "ARN": FAKE_ROLE_ARN}]
    assert ok["resources"] == failed["resources"] == role
    assert ok["responseElements"] == {
        "credentials": {
            "accessKeyId": resp["Credentials"]["AccessKeyId"],
            "expiration": trail_time(resp["Credentials"]["Expiration"]),
        },
        "assumedRoleUser": {
            "assumedRoleId": resp["AssumedRoleUser"]["AssumedRoleId"],
            "arn": resp["AssumedRoleUser"]["Arn"],
        },
        "provider": provider,
        "audience": "sts.amazonaws.com",
        "subjectFromWebIdentityToken": "local-apps",
    }
    assert failed["errorCode"] == "InvalidIdentityToken"
    assert failed["responseElements"] is None
    creds = resp["Credentials"]
    assert_secrets_absent(cloud, token, bad, token.split(".")[2], creds["SecretAccessKey"],
                          creds["SessionToken"])  # fmt: skip


def test_a_web_identity_the_trust_policy_refuses_is_named_with_its_role(cloud: Cloud) -> None:
    with open_fake_issuer(cloud) as fake:
        other = trust_document(provider_arn(cloud, fake.url), {f"{fake.url[8:]}:sub": "someone"})
        arn = cloud.client("iam").create_role(
            RoleName="web-denied", AssumeRolePolicyDocument=other
        )["Role"]["Arn"]
        err = refused(cloud.client("sts").assume_role_with_web_identity, RoleArn=arn,
                      RoleSessionName="web", WebIdentityToken=fake.token())  # fmt: skip
        assert err.code == "AccessDenied"
        forged = fake.token()[:-8] + "AAAAAAAA"  # its signature no longer verifies
        err = refused(cloud.client("sts").assume_role_with_web_identity, RoleArn=arn,
                      RoleSessionName="web", WebIdentityToken=forged)  # fmt: skip
        assert err.code == "InvalidIdentityToken"
    denied, unverified = events(cloud, "AssumeRoleWithWebIdentity")
    provider = provider_arn(cloud, fake.url)
    assert denied["errorCode"] == "AccessDenied"
    assert denied["userIdentity"] == {
        "type": "WebIdentityUser", "principalId": f"{provider}:sts.amazonaws.com:local-apps",
        "userName": "local-apps", "identityProvider": provider,
    }  # fmt: skip
    role = [{"accountId": ACCOUNT, "type": "AWS::IAM::Role", "ARN": arn}]
    assert denied["resources"] == unverified["resources"] == role
    # A token that does not verify names nobody: its claims are the caller's say-so.
    assert unverified["userIdentity"] == {}
    assert unverified["requestParameters"] == {"roleArn": arn, "roleSessionName": "web"}


def test_iam_answers_never_reach_response_elements(cloud: Cloud) -> None:
    iam = cloud.client("iam")
    try:
        iam.create_user(UserName="erin")
        key = iam.create_access_key(UserName="erin")["AccessKey"]
    except Exception as exc:
        pytest.skip(f"IAM users are not available yet: {exc.__class__.__name__}")
    (event,) = events(cloud, "CreateAccessKey")
    assert event["responseElements"] is None
    assert_secrets_absent(cloud, key["SecretAccessKey"])
    user = cloud.client("sts", aws_access_key_id=key["AccessKeyId"],
                        aws_secret_access_key=key["SecretAccessKey"])  # fmt: skip
    user.get_caller_identity()
    (who,) = events(cloud, "GetCallerIdentity")
    assert who["userIdentity"]["type"] == "IAMUser"
    assert who["userIdentity"]["arn"] == f"arn:aws:iam::{ACCOUNT}:user/erin"
    assert who["userIdentity"]["userName"] == "erin"  # as CloudTrail names an IAM user
    session = creds_of(user.get_session_token())
    cloud.client("sts", **session).get_caller_identity()
    identity = events(cloud, "GetCallerIdentity")[-1]["userIdentity"]
    assert (identity["type"], identity["userName"]) == ("IAMUser", "erin")
    assert identity["accessKeyId"] == session["aws_access_key_id"]


def test_redaction_is_a_second_line_of_defence() -> None:
    elements = {
        "AccessKey": {"AccessKeyId": "AKIA1", "SecretAccessKey": "s3cr3t", "Status": "Active"},
        "credentials": [{"sessionToken": "t0k3n", "accessKeyId": "ASIA1"}],
        "WebIdentityToken": "eyJ...",
    }
    assert redacted(elements) == {
        "AccessKey": {"AccessKeyId": "AKIA1", "Status": "Active"},
        "credentials": [{"accessKeyId": "ASIA1"}],
    }
