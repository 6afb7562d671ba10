"""Tokens callers present to the proxy, and the trust providers that vouch for them.

A workload presents a JWT as ``Proxy-Authorization: Bearer TOKEN`` or as the password of
Basic proxy auth (``HTTPS_PROXY=http://workload:TOKEN@127.0.0.1:8000``). Each trust provider
named by a token identity checks it: signature against its keys (inline, a JWKS URL, or the
issuer's discovery document — always over verified HTTPS), then ``iss``, ``aud``, ``exp``.
The token itself never reaches a log line or an error message.
"""

from __future__ import annotations

import base64
import binascii
import json
import ssl
import time
from collections.abc import Iterable, Mapping

import httpx

from latchkey.clock import Clock
from latchkey.control.model import TokenCheck, TrustProvider
from latchkey.crypto.jwt import InvalidToken, check_claims, verify_jwt

CACHE_SECONDS = 300.0
MAX_TOKEN_CHARS = 16_384

REASONS = {
    "bad_signature": "bad signature",
    "unknown_kid": "bad signature (no key with that kid)",
    "expired": "expired",
    "not_yet_valid": "not yet valid",
    "bad_issuer": "unknown issuer",
    "bad_audience": "wrong audience",
    "missing_claim": "a required claim is missing",
    "unsupported_alg": "algorithm not allowed",
    "forbidden_header": "forbidden header",
    "malformed": "malformed token",
}


def extract_token(headers: Iterable[tuple[str, str]]) -> str | None:
    """The token from ``Proxy-Authorization`` (Bearer, or Basic's password), if any."""
    for name, value in headers:
        if name.lower() != "proxy-authorization":
            continue
        scheme, _, credentials = value.strip().partition(" ")
        credentials = credentials.strip()
        if scheme.lower() == "bearer" and credentials:
            return credentials
        if scheme.lower() == "basic" and credentials:
            try:
                decoded = base64.b64decode(credentials, validate=True).decode("utf-8")
            except (binascii.Error, UnicodeDecodeError):
                return None
            _user, sep, password = decoded.partition(":")
            return password if sep and password else None
    return None


class TrustVerifier:
    """Verifies presented tokens for trust providers; JWKS are cached per provider."""

    def __init__(self, clock: Clock, ssl_context: ssl.SSLContext, *, timeout: float = 5.0) -> None:
        self._clock = clock
        self._ssl = ssl_context
        self._timeout = timeout
        self._cache: dict[str, tuple[float, Mapping[str, object]]] = {}

    async def check(self, provider: TrustProvider, token: str) -> TokenCheck:
        if provider.type != "oidc":
            return TokenCheck(error=f"trust provider '{provider.name}' does not verify tokens")
        if len(token) > MAX_TOKEN_CHARS:
            return TokenCheck(error="token too long")
        try:
            jwks = await self._jwks(provider)
        except OSError as exc:  # httpx errors are mapped to OSError below
            return TokenCheck(error=f"keys of trust provider unavailable ({exc})")
        try:
            _header, claims = verify_jwt(token, jwks)
            audiences = provider.audiences or _token_audiences(claims)
            check_claims(claims, issuer=provider.issuer, audiences=audiences, now=self._clock.now())
        except InvalidToken as exc:
            return TokenCheck(error=REASONS.get(exc.reason, exc.reason))
        return TokenCheck(claims=claims)

    async def _jwks(self, provider: TrustProvider) -> Mapping[str, object]:
        if provider.jwks is not None:
            return provider.jwks
        cached = self._cache.get(provider.name)
        if cached is not None and time.monotonic() - cached[0] < CACHE_SECONDS:
            return cached[1]
        async with httpx.AsyncClient(
            verify=self._ssl, timeout=self._timeout, follow_redirects=False, trust_env=False
        ) as client:
            url = provider.jwks_url
            if url is None:
                discovery = await _get_json(
                    client, provider.issuer.rstrip("/") + "/.well-known/openid-configuration"
                )
                if discovery.get("issuer") != provider.issuer:
                    raise OSError("the discovery document names a different issuer")
                found = discovery.get("jwks_uri")
                if not isinstance(found, str) or not found.startswith("https://"):
                    raise OSError("the discovery document has no https jwks_uri")
                url = found
            jwks = await _get_json(client, url)
        if not isinstance(jwks.get("keys"), list):
            raise OSError("the JWKS has no keys")
        self._cache[provider.name] = (time.monotonic(), jwks)
        return jwks


def _token_audiences(claims: Mapping[str, object]) -> list[str]:
    aud = claims.get("aud")
    if isinstance(aud, str):
        return [aud]
    return [a for a in aud if isinstance(a, str)] if isinstance(aud, list) else []


async def _get_json(client: httpx.AsyncClient, url: str) -> dict[str, object]:
    try:
        resp = await client.get(url)
    except httpx.HTTPError as exc:
        raise OSError(f"cannot fetch {url}: {exc.__class__.__name__}") from None
    if resp.status_code != 200:
        raise OSError(f"{url} answered HTTP {resp.status_code}")
    try:
        value = json.loads(resp.content)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise OSError(f"{url} answered something that is not JSON") from None
    if not isinstance(value, dict):
        raise OSError(f"{url} answered JSON that is not an object")
    return value
