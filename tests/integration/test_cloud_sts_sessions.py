"""The temporary credentials AssumeRoleWithWebIdentity hands out: what they may do, when they
stop working, and that only their own session token goes with them (real boto3, real TLS)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from latchkey_testing import (
    ACCOUNT,
    AUDIENCE,
    ROLE_ARN,
    ROLE_NAME,
    SUBJECT,
    Cloud,
    SettableClock,
    add_sts_role,
    creds_of,
    refused,
)

ASSUMED = f"arn:aws:sts::{ACCOUNT}:assumed-role/{ROLE_NAME}/app-session"


@pytest.fixture
def cloud(cloud: Cloud) -> Cloud:
    """The shared ``cloud`` with role ``sts-test`` (see ``add_sts_role``)."""
    return add_sts_role(cloud)


def assume(cloud: Cloud, **extra: Any) -> Any:
    issuer = cloud.node.node.issuer
    assert issuer is not None
    return cloud.client("sts").assume_role_with_web_identity(
        RoleArn=ROLE_ARN,
        RoleSessionName="app-session",
        WebIdentityToken=issuer.mint(SUBJECT, AUDIENCE),
        **extra,
    )


def test_get_caller_identity_is_the_assumed_role(cloud: Cloud) -> None:
    resp = assume(cloud)
    identity = cloud.client("sts", **creds_of(resp)).get_caller_identity()
    assert identity["Arn"] == ASSUMED
    assert identity["Account"] == ACCOUNT
    assert identity["UserId"] == resp["AssumedRoleUser"]["AssumedRoleId"]
    assert identity["UserId"].startswith("AROA")


def test_session_uses_kms_through_the_role_policy(cloud: Cloud) -> None:
    kms = cloud.client("kms", **creds_of(assume(cloud)))
    key_id = kms.create_key(Description="from a role session")["KeyMetadata"]["KeyId"]
    blob = kms.encrypt(KeyId=key_id, Plaintext=b"role secret")["CiphertextBlob"]
    decrypted = kms.decrypt(CiphertextBlob=blob)
    assert decrypted["Plaintext"] == b"role secret"
    assert decrypted["KeyId"].endswith(f":key/{key_id}")
    data_key = kms.generate_data_key(KeyId=key_id, KeySpec="AES_256")
    assert len(data_key["Plaintext"]) == 32
    # The admin's key (default key policy: the account, so IAM decides) is usable too.
    admin_key = cloud.client("kms").create_key()["KeyMetadata"]["KeyId"]
    kms.encrypt(KeyId=admin_key, Plaintext=b"x")


IAM_CALLS = [
    ("get_role", {"RoleName": ROLE_NAME}),
    ("create_role", {"RoleName": "escalate", "AssumeRolePolicyDocument": "{}"}),
]


@pytest.mark.parametrize(("call", "params"), IAM_CALLS)
def test_session_without_iam_permissions_is_refused_iam(
    cloud: Cloud, call: str, params: dict[str, str]
) -> None:
    iam = cloud.client("iam", **creds_of(assume(cloud)))
    assert refused(getattr(iam, call), **params).code in ("AccessDenied", "AccessDeniedException")
    assert cloud.client("iam").get_role(RoleName=ROLE_NAME)  # nothing was changed
    assert refused(cloud.client("iam").get_role, RoleName="escalate").code == "NoSuchEntity"


@pytest.mark.parametrize(("call", "params"), IAM_CALLS)
def test_iam_access_denied_is_access_denied_403(
    cloud: Cloud, call: str, params: dict[str, str]
) -> None:
    iam = cloud.client("iam", **creds_of(assume(cloud)))
    assert refused(getattr(iam, call), **params)[:2] == ("AccessDenied", 403)


def test_duration_seconds_sets_the_expiration(cloud: Cloud) -> None:
    before = dt.datetime.now(dt.UTC)
    resp = assume(cloud, DurationSeconds=900)
    assert 890 <= (resp["Credentials"]["Expiration"] - before).total_seconds() <= 910


def test_session_credentials_expire(cloud: Cloud, settable_clock: SettableClock) -> None:
    resp = assume(cloud, DurationSeconds=900)
    kms = cloud.client("kms", **creds_of(resp))
    kms.list_keys()
    expires_in = resp["Credentials"]["Expiration"] - dt.datetime.now(dt.UTC)
    settable_clock.advance(expires_in.total_seconds() + 1)
    err = refused(kms.list_keys)
    assert err[:2] == ("ExpiredTokenException", 400)
    assert err.message == "The security token included in the request is expired"


def test_expired_session_on_sts_is_expired_token(
    cloud: Cloud, settable_clock: SettableClock
) -> None:
    sts = cloud.client("sts", **creds_of(assume(cloud, DurationSeconds=900)))
    settable_clock.advance(901)
    assert refused(sts.get_caller_identity).code == "ExpiredToken"


@pytest.mark.parametrize("service", ["sts", "iam"])
def test_expired_session_on_query_services_is_403(
    cloud: Cloud, settable_clock: SettableClock, service: str
) -> None:
    client = cloud.client(service, **creds_of(assume(cloud, DurationSeconds=900)))
    settable_clock.advance(901)
    call = client.get_caller_identity if service == "sts" else client.get_role
    kwargs = {} if service == "sts" else {"RoleName": ROLE_NAME}
    assert refused(call, **kwargs)[:2] == ("ExpiredToken", 403)


@pytest.mark.parametrize("token", ["wrong", "missing", "other-session", "admin-with-token"])
def test_wrong_session_token_is_unrecognized(cloud: Cloud, token: str) -> None:
    resp = assume(cloud)
    if token == "wrong":
        creds = creds_of(resp, aws_session_token=resp["Credentials"]["SessionToken"][::-1])
    elif token == "missing":
        creds = creds_of(resp)
        del creds["aws_session_token"]
    elif token == "other-session":
        creds = creds_of(resp, aws_session_token=assume(cloud)["Credentials"]["SessionToken"])
    else:
        admin = cloud.node.admin()
        creds = {"aws_access_key_id": admin["AccessKeyId"],
                 "aws_secret_access_key": admin["SecretAccessKey"],
                 "aws_session_token": resp["Credentials"]["SessionToken"]}  # fmt: skip
    err = refused(cloud.client("kms", **creds).list_keys)
    assert err[:2] == ("UnrecognizedClientException", 400)
    sts_err = refused(cloud.client("sts", **creds).get_caller_identity)
    assert sts_err[:2] == ("InvalidClientTokenId", 403)


def test_wrong_secret_for_a_session_is_a_bad_signature(cloud: Cloud) -> None:
    creds = creds_of(assume(cloud), aws_secret_access_key="x" * 40)
    err = refused(cloud.client("kms", **creds).list_keys)
    assert err[:2] == ("InvalidSignatureException", 400)
