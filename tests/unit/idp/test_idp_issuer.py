"""Issuer: the claims of a workload token, the subject format, the issuer URL, discovery."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from latchkey.clock import FrozenClock
from latchkey.crypto.jwk import SigningKey
from latchkey.crypto.jwt import check_claims, verify_jwt
from latchkey.idp.issuer import (
    Issuer,
    StaticKeys,
    check_issuer_url,
    subject_prefix,
    workload_subject,
)

URL = "https://idp.example.com/latchkey"


def token_claims(issuer: Issuer, token: str) -> tuple[dict[str, object], dict[str, object]]:
    return verify_jwt(token, issuer.jwks())


def test_workload_token_carries_every_claim(es256: SigningKey, clock: FrozenClock) -> None:
    issuer = Issuer(URL, es256, clock)
    token = issuer.workload_token(provider="kms-federation", client="local-apps")
    header, claims = token_claims(issuer, token)
    assert header == {"alg": "ES256", "typ": "JWT", "kid": es256.kid}
    ts = int(clock.now().timestamp())
    assert claims == {
        "iss": URL,
        "sub": "latchkey:kms-federation:local-apps",
        "aud": "sts.amazonaws.com",
        "iat": ts,
        "nbf": ts,
        "exp": ts + 300,  # five minutes by default
        "jti": claims["jti"],
        "latchkey": {"client_workload": "local-apps", "credential_provider": "kms-federation"},
    }
    assert uuid.UUID(str(claims["jti"]))
    check_claims(claims, issuer=URL, audiences=["sts.amazonaws.com"], now=clock.now())


def test_every_token_has_its_own_jti(es256: SigningKey, clock: FrozenClock) -> None:
    issuer = Issuer(URL, es256, clock)
    jtis = {
        token_claims(issuer, issuer.workload_token(provider="p1", client="c1"))[1]["jti"]
        for _ in range(5)
    }
    assert len(jtis) == 5


def test_audience_and_ttl(es256: SigningKey, clock: FrozenClock) -> None:
    issuer = Issuer(URL, es256, clock)
    token = issuer.workload_token(
        provider="p1", client="c1", audience="my-aud", lifetime=dt.timedelta(seconds=3600)
    )
    claims = token_claims(issuer, token)[1]
    assert claims["aud"] == "my-aud"
    assert claims["exp"] == int(clock.now().timestamp()) + 3600
    for bad in (dt.timedelta(0), dt.timedelta(seconds=3601), dt.timedelta(seconds=-1)):
        with pytest.raises(ValueError, match="1 second and 1 hour"):
            issuer.workload_token(provider="p1", client="c1", lifetime=bad)


def test_subject_is_stable_readable_and_prefix_safe(es256: SigningKey) -> None:
    assert workload_subject("kms-federation", "local-apps") == "latchkey:kms-federation:local-apps"
    assert subject_prefix("kms-federation") == "latchkey:kms-federation:"
    # the same names give the same sub, whatever the key or the time
    other = Issuer(URL, SigningKey.generate(), FrozenClock(dt.datetime(2030, 1, 1, tzinfo=dt.UTC)))
    claims = token_claims(other, other.workload_token(provider="kms-federation", client="a"))[1]
    assert claims["sub"] == workload_subject("kms-federation", "a")
    assert len(workload_subject("a", "b")) >= 6
    # one provider's prefix never matches another's subjects (names cannot hold ':')
    assert not workload_subject("kms-2", "x").startswith(subject_prefix("kms"))


@pytest.mark.parametrize(
    ("provider", "client"),
    [("kms:x", "c"), ("p", "c:x"), ("P", "c"), ("p", ""), ("p", "-c"), ("p", "c" * 64)],
)
def test_names_must_be_object_names(provider: str, client: str) -> None:
    with pytest.raises(ValueError, match="invalid"):
        workload_subject(provider, client)


def test_low_level_mint_keeps_its_subject(es256: SigningKey, clock: FrozenClock) -> None:
    issuer = Issuer(URL, StaticKeys(es256), clock)
    claims = token_claims(issuer, issuer.mint("anything-at-all", "aud"))[1]
    assert (claims["sub"], claims["aud"], claims["iss"]) == ("anything-at-all", "aud", URL)
    assert "latchkey" not in claims


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://idp.example.com", "https://idp.example.com"),
        ("https://idp.example.com/", "https://idp.example.com"),
        ("https://idp.example.com/tenants/a/", "https://idp.example.com/tenants/a"),
        ("https://127.0.0.1:8443", "https://127.0.0.1:8443"),
        ("https://[::1]:8443", "https://[::1]:8443"),
    ],
)
def test_issuer_url_accepted(url: str, expected: str) -> None:
    assert check_issuer_url(url) == expected


@pytest.mark.parametrize(
    "url",
    [
        "http://idp.example.com",
        "idp.example.com",
        "https://",
        "https://idp.example.com?x=1",
        "https://idp.example.com/#frag",
        "https://user:pw@idp.example.com",
        "https://idp.example.com:99999",
    ],
)
def test_issuer_url_refused(url: str, es256: SigningKey, clock: FrozenClock) -> None:
    with pytest.raises(ValueError, match="issuer URL"):
        check_issuer_url(url)
    with pytest.raises(ValueError, match="issuer URL"):
        Issuer(url, es256, clock)


def test_discovery_names_the_external_url_exactly(es256: SigningKey, clock: FrozenClock) -> None:
    issuer = Issuer(URL + "/", es256, clock)
    doc = issuer.discovery()
    assert doc["issuer"] == URL
    assert doc["jwks_uri"] == URL + "/.well-known/jwks.json"
    assert doc["id_token_signing_alg_values_supported"] == ["ES256"]
    assert doc["subject_types_supported"] == ["public"]
    claims = doc["claims_supported"]
    assert isinstance(claims, list)
    assert {"iss", "sub", "aud", "exp", "jti", "latchkey"} <= set(claims)
    assert issuer.path == "/latchkey"


@pytest.mark.parametrize("alg", ["ES256", "RS256"])
def test_both_algorithms_verify_against_the_jwks(
    alg: str, es256: SigningKey, rs256: SigningKey, clock: FrozenClock
) -> None:
    key = es256 if alg == "ES256" else rs256
    issuer = Issuer(URL, key, clock)
    header, claims = verify_jwt(issuer.workload_token(provider="p1", client="c1"), issuer.jwks())
    assert header["alg"] == alg
    assert header["kid"] == key.kid
    assert claims["sub"] == "latchkey:p1:c1"
    assert issuer.discovery()["id_token_signing_alg_values_supported"] == [alg]
