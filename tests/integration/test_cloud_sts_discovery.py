"""The cloud's OIDC discovery client (``JwksFetcher``) against a fake issuer on real HTTPS:
what it fetches, what it refuses, and that caching and rate limits hold however it is asked
(unknown ``kid`` sprays, case-variant issuers, concurrent requests, an issuer that fails)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from latchkey.crypto.x509 import CertificateAuthority, client_ssl_context, load_or_create_ca
from latchkey.issuerkeys import (
    CACHE_SECONDS,
    FAILURE_BACKOFF,
    MAX_DOCUMENT_BYTES,
    REFRESH_INTERVAL,
    DiscoveryError,
    JwksFetcher,
    RefreshLimited,
)
from latchkey_testing import FakeIssuer, Ticks

DISCOVERY = "/.well-known/openid-configuration"


@pytest.fixture
def ca(tmp_path: Path) -> CertificateAuthority:
    return load_or_create_ca(tmp_path / "ca.pem", tmp_path / "ca-key.pem",
                             now=dt.datetime.now(dt.UTC))  # fmt: skip


@pytest.fixture
def issuer(ca: CertificateAuthority) -> Iterator[FakeIssuer]:
    made = FakeIssuer(ca)
    try:
        yield made
    finally:
        made.close()


@pytest.fixture
def ticks() -> Ticks:
    return Ticks()


@pytest.fixture
def fetcher(tmp_path: Path, ca: CertificateAuthority, ticks: Ticks) -> JwksFetcher:
    context = client_ssl_context([tmp_path / "ca.pem"], use_system_store=False)
    return JwksFetcher(context, timeout=5.0, monotonic=ticks)


def test_fetches_discovery_then_jwks_and_caches(issuer: FakeIssuer, fetcher: JwksFetcher) -> None:
    keys = asyncio.run(fetcher.keys(issuer.url))
    assert keys.jwks == issuer.key.jwks()
    assert keys.algorithms == ("ES256",)
    assert keys.issuer == issuer.url
    asyncio.run(fetcher.keys(issuer.url))
    assert issuer.requests == [DISCOVERY, "/jwks"]


def test_cache_expires(issuer: FakeIssuer, fetcher: JwksFetcher, ticks: Ticks) -> None:
    asyncio.run(fetcher.keys(issuer.url))
    ticks.now += CACHE_SECONDS + 1
    asyncio.run(fetcher.keys(issuer.url))
    assert issuer.jwks_requests() == 2


def test_refresh_is_rate_limited(issuer: FakeIssuer, fetcher: JwksFetcher, ticks: Ticks) -> None:
    async def spray() -> list[object]:
        await fetcher.keys(issuer.url)
        return [await fetcher.refresh(issuer.url) for _ in range(50)]

    assert asyncio.run(spray()) == [None] * 50
    assert issuer.jwks_requests() == 1
    assert fetcher.fetches == 1
    ticks.now += REFRESH_INTERVAL + 1
    assert asyncio.run(fetcher.refresh(issuer.url)) is not None
    assert asyncio.run(fetcher.refresh(issuer.url)) is None
    assert issuer.jwks_requests() == 2


def test_concurrent_refreshes_make_one_request(
    issuer: FakeIssuer, fetcher: JwksFetcher, ticks: Ticks
) -> None:
    async def burst() -> list[object]:
        await fetcher.keys(issuer.url)
        ticks.now += REFRESH_INTERVAL + 1
        return list(await asyncio.gather(*(fetcher.refresh(issuer.url) for _ in range(20))))

    results = asyncio.run(burst())
    assert sum(r is not None for r in results) == 1
    assert issuer.jwks_requests() == 2


def test_legacy_jwks_refresh_honours_the_limit(issuer: FakeIssuer, fetcher: JwksFetcher) -> None:
    async def twice() -> None:
        await fetcher.jwks(issuer.url)
        await fetcher.jwks(issuer.url, refresh=True)

    asyncio.run(twice())
    assert issuer.jwks_requests() == 1


def test_a_case_variant_of_the_issuer_fetches_nothing(
    ca: CertificateAuthority, fetcher: JwksFetcher
) -> None:
    named = FakeIssuer(ca, host="localhost")
    try:
        asyncio.run(fetcher.keys(named.url))
        with pytest.raises(RefreshLimited):
            asyncio.run(fetcher.keys(named.url.replace("localhost", "LOCALHOST")))
        assert named.jwks_requests() == 1
    finally:
        named.close()


def test_failures_back_off(issuer: FakeIssuer, fetcher: JwksFetcher, ticks: Ticks) -> None:
    issuer.status = 500
    with pytest.raises(DiscoveryError, match="HTTP 500"):
        asyncio.run(fetcher.keys(issuer.url))
    issuer.status = 200
    with pytest.raises(DiscoveryError, match="HTTP 500"):  # remembered, not asked again
        asyncio.run(fetcher.keys(issuer.url))
    assert issuer.requests == [DISCOVERY]
    ticks.now += FAILURE_BACKOFF + 0.1
    assert asyncio.run(fetcher.keys(issuer.url)).jwks == issuer.key.jwks()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"issuer": "https://elsewhere.example"}, "different issuer"),
        ({"jwks_uri": None}, "no jwks_uri"),
        ({"jwks_uri": "http://127.0.0.1:1/jwks"}, "non-HTTPS"),
    ],
)
def test_unusable_discovery_documents(
    issuer: FakeIssuer, fetcher: JwksFetcher, change: dict[str, object], message: str
) -> None:
    issuer.discovery = {k: v for k, v in (issuer.discovery | change).items() if v is not None}
    with pytest.raises(DiscoveryError, match=message):
        asyncio.run(fetcher.keys(issuer.url))
    assert "/jwks" not in issuer.requests


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        ((302, {"Location": "https://127.0.0.1:1/"}, b""), "HTTP 302"),  # never followed
        ((200, {}, b"not json"), "not JSON"),
        ((200, {}, b"[1, 2]"), "not an object"),
        ((200, {}, b"[" * 100_000), "not JSON"),
        ((200, {}, b'{"pad": "' + b"x" * MAX_DOCUMENT_BYTES + b'"}'), "too large"),
    ],
)
def test_unusable_answers(
    issuer: FakeIssuer,
    fetcher: JwksFetcher,
    answer: tuple[int, dict[str, str], bytes],
    message: str,
) -> None:
    issuer.overrides[DISCOVERY] = answer
    with pytest.raises(DiscoveryError, match=message):
        asyncio.run(fetcher.keys(issuer.url))


def test_jwks_without_keys(issuer: FakeIssuer, fetcher: JwksFetcher) -> None:
    issuer.overrides["/jwks"] = (200, {}, json.dumps({"nokeys": []}).encode())
    with pytest.raises(DiscoveryError, match="no keys"):
        asyncio.run(fetcher.keys(issuer.url))


def test_unreachable_issuer(issuer: FakeIssuer, fetcher: JwksFetcher) -> None:
    url = issuer.url
    issuer.close()
    with pytest.raises(DiscoveryError, match="cannot fetch"):
        asyncio.run(fetcher.keys(url))


def test_untrusted_certificate_is_refused(tmp_path: Path, issuer: FakeIssuer) -> None:
    other = load_or_create_ca(tmp_path / "o.pem", tmp_path / "o-key.pem",
                              now=dt.datetime.now(dt.UTC))  # fmt: skip
    assert other.cert_pem
    context = client_ssl_context([tmp_path / "o.pem"], use_system_store=False)
    with pytest.raises(DiscoveryError, match="cannot fetch"):
        asyncio.run(JwksFetcher(context).keys(issuer.url))
    assert issuer.requests == []


def test_algorithms_absent_or_odd_mean_no_restriction(
    issuer: FakeIssuer, fetcher: JwksFetcher
) -> None:
    issuer.discovery["id_token_signing_alg_values_supported"] = "ES256"
    assert asyncio.run(fetcher.keys(issuer.url)).algorithms is None


def test_a_failing_spelling_does_not_block_the_real_issuer(
    issuer: FakeIssuer, fetcher: JwksFetcher
) -> None:
    with pytest.raises(DiscoveryError, match="different issuer"):
        asyncio.run(fetcher.keys(issuer.url + "/"))  # discovery names the issuer without "/"
    assert asyncio.run(fetcher.keys(issuer.url)).jwks == issuer.key.jwks()
