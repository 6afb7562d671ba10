"""STS AssumeRoleWithWebIdentity against the local cloud with tokens from the node's idp:
what it hands out, and every way a token or a role refuses (real boto3, real TLS).
The session credentials themselves are in test_cloud_sts_sessions.py.

What the ``test_cloud_sts*`` modules share is in ``latchkey_testing``: role ``sts-test`` (a
role of the tests' own, so nothing depends on the seeded role's trust policy), a fake OIDC
issuer served over HTTPS with a leaf of the node's CA (it counts what it is asked), and a trap
server that must never be contacted."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
from collections.abc import Callable
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import ECKey

from latchkey.crypto.jwk import SigningKey
from latchkey_testing import (
    ACCOUNT,
    AUDIENCE,
    ROLE_ARN,
    ROLE_NAME,
    SUBJECT,
    Cloud,
    SettableClock,
    add_sts_role,
    b64url,
    create_role,
    host_port,
    post_raw,
    provider_arn,
    refused,
    unb64,
)


@pytest.fixture
def cloud(cloud: Cloud) -> Cloud:
    """The shared ``cloud`` with role ``sts-test`` (see ``add_sts_role``)."""
    return add_sts_role(cloud)


def mint(cloud: Cloud, audience: str = AUDIENCE, **kw: Any) -> str:
    assert cloud.node.node.issuer is not None
    return cloud.node.node.issuer.mint(SUBJECT, audience, **kw)


def assume(cloud: Cloud, token: str, role_arn: str = ROLE_ARN, **extra: Any) -> Any:
    extra.setdefault("RoleSessionName", "app-session")
    return cloud.client("sts").assume_role_with_web_identity(
        RoleArn=role_arn, WebIdentityToken=token, **extra
    )


def post_unsigned(cloud: Cloud, params: dict[str, str]) -> tuple[int, str]:
    status, code, _body = post_raw(cloud, params)
    return status, code


# -- success ----------------------------------------------------------------------------------


def test_assume_role_with_web_identity_returns_session_credentials(cloud: Cloud) -> None:
    before = dt.datetime.now(dt.UTC)
    resp = assume(cloud, mint(cloud))
    c = resp["Credentials"]
    assert c["AccessKeyId"].startswith("ASIA")
    assert len(c["AccessKeyId"]) == 20
    assert c["SecretAccessKey"]
    assert c["SessionToken"]
    lifetime = (c["Expiration"] - before).total_seconds()
    assert 3590 <= lifetime <= 3610
    assumed = f"arn:aws:sts::{ACCOUNT}:assumed-role/{ROLE_NAME}/app-session"
    assert resp["AssumedRoleUser"]["Arn"] == assumed
    assert resp["AssumedRoleUser"]["AssumedRoleId"].endswith(":app-session")
    assert resp["SubjectFromWebIdentityToken"] == SUBJECT
    assert resp["Audience"] == AUDIENCE
    assert resp["Provider"] == provider_arn(cloud)  # AWS answers the provider's ARN
    assert "SourceIdentity" not in resp
    assert "PackedPolicySize" not in resp


# -- refusals: the token ----------------------------------------------------------------------


def foreign_issuer(cloud: Cloud) -> str:
    now = int(dt.datetime.now(dt.UTC).timestamp())
    claims = {"iss": "https://127.0.0.1:1/elsewhere", "sub": SUBJECT, "aud": AUDIENCE,
              "iat": now, "exp": now + 300}  # fmt: skip
    return SigningKey.generate().sign_jwt(claims)


def other_key_real_issuer(cloud: Cloud) -> str:
    return SigningKey.generate().sign_jwt(unb64(mint(cloud).split(".")[1]))


def other_key_same_kid(cloud: Cloud) -> str:
    header, payload, _ = mint(cloud).split(".")
    return jwt.encode(unb64(header), unb64(payload), ECKey.generate_key("P-256"))


def alg_none(cloud: Cloud) -> str:
    payload = mint(cloud).split(".")[1]
    return f"{b64url(json.dumps({'alg': 'none', 'typ': 'JWT'}).encode())}.{payload}."


def hs256_with_public_key(cloud: Cloud) -> str:
    assert cloud.node.node.issuer is not None
    secret = json.dumps(cloud.node.node.issuer.jwks()).encode()
    head = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    signing_input = f"{head}.{mint(cloud).split('.')[1]}"
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(mac)}"


def tampered_payload(cloud: Cloud) -> str:
    header, payload, sig = mint(cloud).split(".")
    claims = unb64(payload) | {"sub": "admin"}
    return f"{header}.{b64url(json.dumps(claims).encode())}.{sig}"


def wrong_audience(cloud: Cloud) -> str:
    return mint(cloud, "not-sts")


def not_a_jwt(cloud: Cloud) -> str:
    return "this-is-not-a-jwt"


@pytest.mark.parametrize(
    "forge",
    [foreign_issuer, other_key_real_issuer, other_key_same_kid, alg_none,
     hs256_with_public_key, tampered_payload, wrong_audience, not_a_jwt],
)  # fmt: skip
def test_bad_tokens_are_invalid_identity_tokens(
    cloud: Cloud, forge: Callable[[Cloud], str]
) -> None:
    err = refused(assume, cloud, forge(cloud))
    assert err[:2] == ("InvalidIdentityToken", 400)
    if forge is wrong_audience:
        assert err.message == "Incorrect token audience"


@pytest.mark.parametrize("how", ["minted-expired", "clock-moved-on"])
def test_expired_token(cloud: Cloud, settable_clock: SettableClock, how: str) -> None:
    if how == "minted-expired":
        token = mint(cloud, lifetime=dt.timedelta(minutes=-6))
    else:
        token = mint(cloud, lifetime=dt.timedelta(minutes=5))  # plus AWS's 5 minutes of grace
        settable_clock.advance(10 * 60 + 5)
    err = refused(assume, cloud, token)
    assert err[:2] == ("ExpiredTokenException", 400)
    assert err.message.startswith("Token expired: current date/time ")


def test_token_within_the_five_minute_grace_is_accepted(
    cloud: Cloud, settable_clock: SettableClock
) -> None:
    token = mint(cloud, lifetime=dt.timedelta(minutes=5))
    settable_clock.advance(9 * 60)  # expired four minutes ago
    assert assume(cloud, token)["Credentials"]["AccessKeyId"].startswith("ASIA")


# -- refusals: the role -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "role_arn",
    [f"arn:aws:iam::{ACCOUNT}:role/no-such-role", f"arn:aws:iam::111122223333:role/{ROLE_NAME}",
     f"arn:aws:iam::{ACCOUNT}:role/other-path/{ROLE_NAME}"],
)  # fmt: skip
def test_role_that_does_not_exist_is_access_denied(cloud: Cloud, role_arn: str) -> None:
    err = refused(assume, cloud, mint(cloud), role_arn=role_arn)
    assert err[:2] == ("AccessDenied", 403)


@pytest.mark.parametrize(("wanted_sub", "allowed"), [("someone-else", False), (SUBJECT, True)])
def test_trust_condition_on_subject(cloud: Cloud, wanted_sub: str, allowed: bool) -> None:
    hp = host_port(cloud)
    arn = create_role(cloud, "sub-bound", {f"{hp}:sub": wanted_sub, f"{hp}:aud": AUDIENCE})
    if allowed:
        user = assume(cloud, mint(cloud), role_arn=arn)["AssumedRoleUser"]
        assert user["Arn"] == f"arn:aws:sts::{ACCOUNT}:assumed-role/sub-bound/app-session"
    else:
        assert refused(assume, cloud, mint(cloud), role_arn=arn)[:2] == ("AccessDenied", 403)


@pytest.mark.parametrize(("max_session", "duration"), [(None, 43201), (3600, 7200)])
def test_duration_above_the_role_maximum(
    cloud: Cloud, max_session: int | None, duration: int
) -> None:
    role_arn = ROLE_ARN
    if max_session is not None:
        kw = {"MaxSessionDuration": max_session}
        role_arn = create_role(cloud, "short", {f"{host_port(cloud)}:aud": AUDIENCE}, **kw)
    err = refused(assume, cloud, mint(cloud), role_arn=role_arn, DurationSeconds=duration)
    assert err[:2] == ("ValidationError", 400)
    if duration > 43200:  # the API's own limit comes first, in AWS's validation wording
        assert err.message == (
            "1 validation error detected: Value '43201' at 'durationSeconds' failed to satisfy "
            "constraint: Member must have value less than or equal to 43200"
        )
    else:
        assert err.message == (
            "The requested DurationSeconds exceeds the MaxSessionDuration set for this role."
        )


# -- validation -------------------------------------------------------------------------------


def web_identity_form(cloud: Cloud, **extra: str) -> dict[str, str]:
    return {"Action": "AssumeRoleWithWebIdentity", "Version": "2011-06-15", "RoleArn": ROLE_ARN,
            "RoleSessionName": "raw-session", "WebIdentityToken": mint(cloud), **extra}  # fmt: skip


def test_unsigned_raw_request_is_served(cloud: Cloud) -> None:
    assert post_unsigned(cloud, web_identity_form(cloud, DurationSeconds="900")) == (200, "")


def test_non_numeric_duration_is_a_client_error(cloud: Cloud) -> None:
    status, code = post_unsigned(cloud, web_identity_form(cloud, DurationSeconds="an-hour"))
    assert status == 400
    assert code in ("ValidationError", "MalformedInput", "InvalidParameterValue")


@pytest.mark.parametrize("name", ["a", "has space", "x" * 65])
def test_invalid_session_name(cloud: Cloud, name: str) -> None:
    status, code = post_unsigned(cloud, web_identity_form(cloud, RoleSessionName=name))
    assert (status, code) == (400, "ValidationError")


@pytest.mark.parametrize("name", ["app-session\n", "sessi\u00f3n"])
def test_session_name_outside_the_aws_pattern(cloud: Cloud, name: str) -> None:
    err = refused(assume, cloud, mint(cloud), RoleSessionName=name)
    assert err[:2] == ("ValidationError", 400)
