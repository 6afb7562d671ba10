"""The keys behind the edge's trust providers, against fake issuers on real HTTPS: cached per
(issuer, JWKS URL) so an edited provider never verifies with its old issuer's keys, one
rate-limited refetch for an unknown ``kid`` (key rotation), a short back-off after a failure,
a cap on the size of what is read; and the checks of the token itself (``aud`` exactly one of
the provider's audiences, time claims finite)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from joserfc import jws
from joserfc.jwk import ECKey

from latchkey.clock import FrozenClock
from latchkey.control.model import TokenCheck, TrustProvider
from latchkey.crypto.jwk import SigningKey
from latchkey.crypto.x509 import CertificateAuthority, client_ssl_context, load_or_create_ca
from latchkey.edge.trust import TrustVerifier
from latchkey.issuerkeys import (
    FAILURE_BACKOFF,
    MAX_DOCUMENT_BYTES,
    REFRESH_INTERVAL,
    JwksFetcher,
)
from latchkey_testing import FakeIssuer, Ticks

DISCOVERY = "/.well-known/openid-configuration"
AUD = "latchkey"


@pytest.fixture
def ca(tmp_path: Path) -> CertificateAuthority:
    return load_or_create_ca(tmp_path / "ca.pem", tmp_path / "ca-key.pem",
                             now=dt.datetime.now(dt.UTC))  # fmt: skip


@pytest.fixture
def issuers(ca: CertificateAuthority) -> Iterator[tuple[FakeIssuer, FakeIssuer]]:
    made = FakeIssuer(ca), FakeIssuer(ca)
    try:
        yield made
    finally:
        for issuer in made:
            issuer.close()


@pytest.fixture
def issuer(issuers: tuple[FakeIssuer, FakeIssuer]) -> FakeIssuer:
    return issuers[0]


@pytest.fixture
def ticks() -> Ticks:
    return Ticks()


@pytest.fixture
def verifier(tmp_path: Path, ca: CertificateAuthority, ticks: Ticks) -> TrustVerifier:
    context = client_ssl_context([tmp_path / "ca.pem"], use_system_store=False)
    fetcher = JwksFetcher(context, timeout=5.0, monotonic=ticks)
    return TrustVerifier(FrozenClock(dt.datetime.now(dt.UTC)), context, fetcher=fetcher)


def provider(issuer: FakeIssuer, name: str = "ci", **extra: object) -> TrustProvider:
    fields: dict[str, object] = {"audiences": (AUD,)} | extra
    return TrustProvider(name, "oidc", issuer.url, **fields)  # type: ignore[arg-type]


def check(verifier: TrustVerifier, trusted: TrustProvider, token: str) -> TokenCheck:
    return asyncio.run(verifier.check(trusted, token))


def test_an_edited_issuer_never_verifies_with_the_old_issuers_keys(
    verifier: TrustVerifier, issuers: tuple[FakeIssuer, FakeIssuer]
) -> None:
    old, new = issuers
    assert check(verifier, provider(old), old.token(aud=AUD)).error is None
    # The operator edits TrustProvider 'ci' (same name) to trust only the new issuer.
    edited = provider(new)
    forged = old.token(aud=AUD, iss=new.url)  # signed with the old issuer's key
    assert check(verifier, edited, forged).error == "bad signature (no key with that kid)"
    assert check(verifier, edited, new.token(aud=AUD)).error is None
    assert new.requests[:2] == [DISCOVERY, "/jwks"]


def test_a_jwks_url_edit_takes_effect_at_once(
    verifier: TrustVerifier, issuers: tuple[FakeIssuer, FakeIssuer]
) -> None:
    first, other = issuers
    trusted = provider(first, jwks_url=f"{first.url}/jwks")
    assert check(verifier, trusted, first.token(aud=AUD)).error is None
    assert first.requests == ["/jwks"]  # a configured JWKS URL: no discovery document
    # keys now from another URL (the other server's JWKS): the old keys no longer verify
    moved = provider(first, jwks_url=f"{other.url}/jwks")
    assert check(verifier, moved, first.token(aud=AUD)).error is not None
    assert other.requests == ["/jwks"]


def test_providers_of_one_issuer_share_its_keys(
    verifier: TrustVerifier, issuer: FakeIssuer
) -> None:
    for name in ("ci", "ci-too", "ci-three"):
        assert check(verifier, provider(issuer, name), issuer.token(aud=AUD)).error is None
    assert issuer.requests == [DISCOVERY, "/jwks"]


def test_key_rotation_refetches_once_rate_limited(
    verifier: TrustVerifier, issuer: FakeIssuer, ticks: Ticks
) -> None:
    trusted = provider(issuer)
    assert check(verifier, trusted, issuer.token(aud=AUD)).error is None
    ticks.now += REFRESH_INTERVAL + 1  # (still cached: CACHE_SECONDS is five minutes)
    issuer.key = SigningKey.generate()  # the issuer rotates: its JWKS has the new key at once
    assert check(verifier, trusted, issuer.token(aud=AUD)).error is None
    assert issuer.jwks_requests() == 2
    # Unknown kids within the minute (a spray, or a second rotation) fetch nothing more.
    issuer.key = SigningKey.generate()
    for _ in range(5):
        refused = check(verifier, trusted, issuer.token(aud=AUD))
        assert refused.error == "bad signature (no key with that kid)"
    assert issuer.jwks_requests() == 2
    ticks.now += REFRESH_INTERVAL + 1
    assert check(verifier, trusted, issuer.token(aud=AUD)).error is None
    assert issuer.jwks_requests() == 3


def test_inline_keys_are_never_refetched(verifier: TrustVerifier, issuer: FakeIssuer) -> None:
    inline = provider(issuer, jwks=issuer.key.jwks())
    issuer.key = SigningKey.generate()
    assert check(verifier, inline, issuer.token(aud=AUD)).error is not None
    assert issuer.requests == []


def test_a_failing_issuer_is_not_asked_again_at_once(
    verifier: TrustVerifier, issuer: FakeIssuer, ticks: Ticks
) -> None:
    issuer.status = 503
    trusted = provider(issuer)
    token = issuer.token(aud=AUD)
    for _ in range(5):
        result = check(verifier, trusted, token)
        assert result.error is not None
        assert "unavailable" in result.error
        assert "HTTP 503" in result.error
    assert issuer.requests == [DISCOVERY]  # one round trip, not five
    issuer.status = 200
    ticks.now += FAILURE_BACKOFF + 0.1
    assert check(verifier, trusted, token).error is None


def test_an_oversized_jwks_is_refused(verifier: TrustVerifier, issuer: FakeIssuer) -> None:
    keys = [issuer.key.public_jwk()] * (MAX_DOCUMENT_BYTES // 100)
    body = json.dumps({"keys": keys}).encode()
    assert len(body) > MAX_DOCUMENT_BYTES
    issuer.overrides["/jwks"] = (200, {"Content-Type": "application/json"}, body)
    result = check(verifier, provider(issuer), issuer.token(aud=AUD))
    assert result.error is not None
    assert "too large" in result.error


def test_http_urls_are_never_fetched(verifier: TrustVerifier, issuer: FakeIssuer) -> None:
    """(The schema refuses them; a provider built another way still fetches nothing.)"""
    plain = issuer.url.replace("https://", "http://")
    for trusted in (
        TrustProvider("ci", "oidc", plain, audiences=(AUD,)),
        provider(issuer, jwks_url=f"{plain}/jwks"),
    ):
        result = check(verifier, trusted, issuer.token(aud=AUD, iss=trusted.issuer))
        assert result.error is not None
        assert "non-HTTPS" in result.error
    assert issuer.requests == []


def test_a_provider_without_audiences_accepts_no_token(
    verifier: TrustVerifier, issuer: FakeIssuer
) -> None:
    open_aud = TrustProvider("ci", "oidc", issuer.url)  # (the schema refuses this)
    for aud in ("https://some-other-relying-party.example", AUD):
        result = check(verifier, open_aud, issuer.token(aud=aud))
        assert result.claims is None
        assert result.error == "trust provider 'ci' names no audiences"


def test_a_token_for_another_audience_is_refused(
    verifier: TrustVerifier, issuer: FakeIssuer
) -> None:
    result = check(verifier, provider(issuer), issuer.token(aud="https://other.example"))
    assert result.error == "wrong audience"


def raw_token(issuer: FakeIssuer, payload: str) -> str:
    key = ECKey.import_key(issuer.key.private_pem())
    header = {"alg": "ES256", "typ": "JWT", "kid": issuer.key.kid}
    return jws.serialize_compact(header, payload.encode(), key)


@pytest.mark.parametrize(
    ("claim", "value"),
    [("exp", "1e400"), ("exp", "-1e400"), ("nbf", "-1e400"), ("iat", "-1e400")],
)
def test_non_finite_time_claims_are_malformed(
    tmp_path: Path, issuer: FakeIssuer, claim: str, value: str
) -> None:
    now = int(dt.datetime.now(dt.UTC).timestamp())
    times = {"iat": str(now), "exp": str(now + 300)} | {claim: value}
    payload = (
        f'{{"iss": "{issuer.url}", "sub": "x", "aud": "{AUD}", '
        + ", ".join(f'"{name}": {text}' for name, text in times.items())
        + "}"
    )
    context = client_ssl_context([tmp_path / "ca.pem"], use_system_store=False)
    # Fifty years on, a token that "expires" at 1e400 would still be accepted.
    later = FrozenClock(dt.datetime.now(dt.UTC) + dt.timedelta(days=50 * 365))
    for clock in (FrozenClock(dt.datetime.now(dt.UTC)), later):
        result = asyncio.run(
            TrustVerifier(clock, context).check(provider(issuer), raw_token(issuer, payload))
        )
        assert result.claims is None
        assert result.error == "malformed token"
