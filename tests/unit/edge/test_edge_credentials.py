"""STS answers (written as AWS sends them) and the freshness rule of cached credentials."""

from __future__ import annotations

import datetime as dt

import pytest

from latchkey.aws.sigv4 import Credentials
from latchkey.edge.credentials import (
    CachedCredentials,
    CredentialError,
    parse_sts_response,
    sts_error_parts,
)

SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY"
TOKEN = "IQoJb3JpZ2luX2VjEXAMPLE//////////wEaCXVzLWVhc3QtMSJHMEUCIQ=="

ASSUME_ROLE_WITH_WEB_IDENTITY = f"""\
<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleWithWebIdentityResult>
    <SubjectFromWebIdentityToken>local-apps</SubjectFromWebIdentityToken>
    <Audience>sts.amazonaws.com</Audience>
    <AssumedRoleUser>
      <Arn>arn:aws:sts::000000000000:assumed-role/latchkey-kms/latchkey-local-apps</Arn>
      <AssumedRoleId>AROACLKWSDQRAOEXAMPLE:latchkey-local-apps</AssumedRoleId>
    </AssumedRoleUser>
    <Credentials>
      <SessionToken>{TOKEN}</SessionToken>
      <SecretAccessKey>{SECRET}</SecretAccessKey>
      <Expiration>2024-05-01T13:00:00Z</Expiration>
      <AccessKeyId>ASIAIOSFODNN7EXAMPLE</AccessKeyId>
    </Credentials>
    <SourceIdentity>local-apps</SourceIdentity>
    <Provider>https://127.0.0.1:8443</Provider>
  </AssumeRoleWithWebIdentityResult>
  <ResponseMetadata>
    <RequestId>ad4156e9-bce1-11e2-82e6-6b6efEXAMPLE</RequestId>
  </ResponseMetadata>
</AssumeRoleWithWebIdentityResponse>
"""

ERROR = """\
<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <Error>
    <Type>Sender</Type>
    <Code>InvalidIdentityToken</Code>
    <Message>No OpenIDConnect provider found in your account for https://idp</Message>
  </Error>
  <RequestId>4fd5bf42-EXAMPLE</RequestId>
</ErrorResponse>
"""


def test_parse_sts_response() -> None:
    creds, expiration = parse_sts_response(ASSUME_ROLE_WITH_WEB_IDENTITY.encode())
    assert creds == Credentials("ASIAIOSFODNN7EXAMPLE", SECRET, TOKEN)
    assert expiration == dt.datetime(2024, 5, 1, 13, 0, tzinfo=dt.UTC)
    assert expiration.utcoffset() == dt.timedelta(0)


@pytest.mark.parametrize(
    ("stamp", "expected"),
    [
        ("2024-05-01T13:00:00.123Z", dt.datetime(2024, 5, 1, 13, 0, 0, 123000, tzinfo=dt.UTC)),
        ("2024-05-01T15:00:00+02:00", dt.datetime(2024, 5, 1, 13, 0, tzinfo=dt.UTC)),
    ],
)
def test_expiration_spellings(stamp: str, expected: dt.datetime) -> None:
    body = ASSUME_ROLE_WITH_WEB_IDENTITY.replace("2024-05-01T13:00:00Z", stamp)
    assert parse_sts_response(body.encode())[1] == expected


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"<html>Service Unavailable", "not XML"),
        (b"", "not XML"),
        (ERROR.encode(), "without credentials"),
        (ASSUME_ROLE_WITH_WEB_IDENTITY.replace(TOKEN, "").encode(), "without SessionToken"),
        (
            ASSUME_ROLE_WITH_WEB_IDENTITY.replace(
                "<AccessKeyId>ASIAIOSFODNN7EXAMPLE</AccessKeyId>", ""
            ).encode(),
            "without AccessKeyId",
        ),
        (  # the right shape in the wrong namespace is not an STS answer
            ASSUME_ROLE_WITH_WEB_IDENTITY.replace("2011-06-15", "2099-01-01").encode(),
            "without credentials",
        ),
    ],
    ids=["html", "empty", "error-body", "no-token", "no-key", "wrong-namespace"],
)
def test_parse_sts_response_refusals(body: bytes, message: str) -> None:
    with pytest.raises(CredentialError, match=message) as info:
        parse_sts_response(body)
    assert SECRET not in str(info.value)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            ERROR.encode(),
            "InvalidIdentityToken: No OpenIDConnect provider found in your account for https://idp",
        ),
        (
            ERROR.replace("<Message>No OpenIDConnect provider found in your account for "
                          "https://idp</Message>", "").encode(),
            "InvalidIdentityToken: ",
        ),
        (b"<ErrorResponse/>", "?: "),
        (b"upstream connect error", "?: unparseable error"),
    ],
    ids=["full", "no-message", "no-code", "not-xml"],
)  # fmt: skip
def test_sts_error_parts(body: bytes, expected: str) -> None:
    assert ": ".join(sts_error_parts(body)) == expected


FETCHED = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)
CACHED = CachedCredentials(
    Credentials("ASIAIOSFODNN7EXAMPLE", SECRET, TOKEN),
    expiration=FETCHED + dt.timedelta(hours=1),
    fetched=FETCHED,
)


@pytest.mark.parametrize(
    ("elapsed", "fresh"),
    [
        (dt.timedelta(0), True),
        (dt.timedelta(minutes=47, seconds=24), True),  # 79 %
        (dt.timedelta(minutes=47, seconds=59), True),  # just under 80 %
        (dt.timedelta(minutes=48), False),  # exactly 80 %
        (dt.timedelta(minutes=48, seconds=36), False),  # 81 %
        (dt.timedelta(hours=1), False),
        (dt.timedelta(hours=2), False),
    ],
)
def test_fresh_until_80_percent_of_the_lifetime(elapsed: dt.timedelta, fresh: bool) -> None:
    assert CACHED.fresh(FETCHED + elapsed) is fresh


def test_repr_keeps_secrets_out() -> None:
    for text in (repr(CACHED), str(CACHED), repr(CACHED.credentials)):
        assert SECRET not in text
        assert TOKEN not in text
    assert "2024" in repr(CACHED)  # the timestamps are still there to debug with
