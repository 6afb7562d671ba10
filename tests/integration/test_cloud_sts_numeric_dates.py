"""AssumeRoleWithWebIdentity with a time claim that overflows to infinity (``1e400``): refused
as ``InvalidIdentityToken`` (400), never accepted forever and never an internal error (500)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest
from joserfc import jws
from joserfc.jwk import ECKey

from latchkey_testing import (
    AUDIENCE,
    FAKE_ROLE_ARN,
    SUBJECT,
    Cloud,
    FakeIssuer,
    SettableClock,
    add_sts_role,
    open_fake_issuer,
    post_raw,
)


@pytest.fixture
def cloud(cloud: Cloud) -> Cloud:
    return add_sts_role(cloud)


@pytest.fixture
def fake(cloud: Cloud) -> Iterator[FakeIssuer]:
    with open_fake_issuer(cloud) as made:
        yield made


def raw_token(fake: FakeIssuer, claims: dict[str, str]) -> str:
    """A token signed by ``fake`` whose payload holds ``claims`` as raw JSON number text."""
    now = int(dt.datetime.now(dt.UTC).timestamp())
    times = {"iat": str(now), "exp": str(now + 300)} | claims
    payload = (
        f'{{"iss": "{fake.url}", "sub": "{SUBJECT}", "aud": "{AUDIENCE}", '
        + ", ".join(f'"{name}": {text}' for name, text in times.items())
        + "}"
    )
    key = ECKey.import_key(fake.key.private_pem())
    header = {"alg": "ES256", "typ": "JWT", "kid": fake.key.kid}
    return jws.serialize_compact(header, payload.encode(), key)


def call(cloud: Cloud, token: str) -> tuple[int, str, str]:
    return post_raw(cloud, {
        "Action": "AssumeRoleWithWebIdentity", "Version": "2011-06-15",
        "RoleArn": FAKE_ROLE_ARN, "RoleSessionName": "dates", "WebIdentityToken": token,
    })  # fmt: skip


@pytest.mark.parametrize(
    "claims",
    [{"exp": "1e400"}, {"exp": "-1e400"}, {"nbf": "-1e400"}, {"iat": "-1e400"}],
)
def test_non_finite_time_claims_are_invalid_tokens(
    cloud: Cloud, fake: FakeIssuer, settable_clock: SettableClock, claims: dict[str, str]
) -> None:
    token = raw_token(fake, claims)
    status, code, body = call(cloud, token)
    assert (status, code) == (400, "InvalidIdentityToken")
    assert "<Credentials>" not in body
    settable_clock.advance(100 * 365 * 86400)  # a century on: still no credentials
    status, code, body = call(cloud, token)
    assert (status, code) == (400, "InvalidIdentityToken")
    assert "<Credentials>" not in body


def test_a_finite_token_still_works(cloud: Cloud, fake: FakeIssuer) -> None:
    status, code, body = call(cloud, raw_token(fake, {}))
    assert (status, code) == (200, "")
    assert "<Credentials>" in body
