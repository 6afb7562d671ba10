"""The audit trail of STS calls: one CloudTrail-shaped event each, the new credentials named
by access key id and expiration only, never a secret key, session token, web identity token or
external id; the caller's identity typed as CloudTrail types it. IAM answers (CreateAccessKey
holds a secret) never reach responseElements."""

from __future__ import annotations

import json
from typing import Any

import pytest

from latchkey.cloud.app import _redacted
from latchkey_testing import (
    ACCOUNT,
    FAKE_ROLE_ARN,
    ROOT,
    Cloud,
    add_sts_role,
    creds_of,
    open_fake_issuer,
    refused,
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
        PolicyArns=arns, ExternalId="not-for-the-audit",
    )  # fmt: skip
    creds = resp["Credentials"]
    (event,) = events(cloud, "AssumeRole")
    assert event["eventSource"] == "sts.amazonaws.com"
    assert event["userIdentity"]["type"] == "Root"
    assert event["userIdentity"]["principalId"] == ACCOUNT
    assert event["requestParameters"] == {
        "roleArn": arn, "roleSessionName": "audit-me", "sourceIdentity": "alice",
        "policy": POLICY, "policyArns": [{"arn": a["arn"]} for a in arns],
    }  # fmt: skip
    elements = event["responseElements"]
    assert elements["credentials"] == {
        "accessKeyId": creds["AccessKeyId"],
        "expiration": creds["Expiration"].strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    assert elements["AssumedRoleUser"]["Arn"].endswith("assumed-role/audited/audit-me")
    assert elements["SourceIdentity"] == "alice"
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
    assert event["responseElements"] == {"credentials": {
        "accessKeyId": creds["AccessKeyId"],
        "expiration": creds["Expiration"].strftime("%Y-%m-%dT%H:%M:%SZ")}}  # fmt: skip
    assert event["requestParameters"] == {"durationSeconds": "900"}
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
    assert failed["userIdentity"] == {}
    assert (
        ok["responseElements"]["credentials"]["accessKeyId"] == resp["Credentials"]["AccessKeyId"]
    )
    assert ok["responseElements"]["SubjectFromWebIdentityToken"] == "local-apps"
    assert failed["errorCode"] == "InvalidIdentityToken"
    assert failed["responseElements"] is None
    creds = resp["Credentials"]
    assert_secrets_absent(cloud, token, bad, token.split(".")[2], creds["SecretAccessKey"],
                          creds["SessionToken"])  # fmt: skip


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


def test_redaction_is_a_second_line_of_defence() -> None:
    elements = {
        "AccessKey": {"AccessKeyId": "AKIA1", "SecretAccessKey": "s3cr3t", "Status": "Active"},
        "credentials": [{"sessionToken": "t0k3n", "accessKeyId": "ASIA1"}],
        "WebIdentityToken": "eyJ...",
    }
    assert _redacted(elements) == {
        "AccessKey": {"AccessKeyId": "AKIA1", "Status": "Active"},
        "credentials": [{"accessKeyId": "ASIA1"}],
    }
