"""Tokens callers present to the proxy, and the trust providers that vouch for them.

A workload presents a JWT as ``Proxy-Authorization: Bearer TOKEN`` or as the password of
Basic proxy auth (``HTTPS_PROXY=http://workload:TOKEN@127.0.0.1:8000``). Each trust provider
named by a token identity checks it: signature against its keys (inline, a JWKS URL, or the
issuer's discovery document — always over verified HTTPS), then ``iss``, ``aud`` (exactly one
of the provider's ``audiences``), ``exp``.
The token itself never reaches a log line or an error message.
"""

from __future__ import annotations

import base64
import binascii
import ssl
from collections.abc import Iterable

from latchkey.clock import Clock
from latchkey.control.model import TokenCheck, TrustProvider
from latchkey.crypto.jwt import InvalidToken, check_claims, verify_jwt
from latchkey.issuerkeys import DiscoveryError, JwksFetcher, RefreshLimited

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
    """Verifies presented tokens for trust providers.

    Keys come from a :class:`JwksFetcher` (the one the cloud's STS uses), cached per (issuer,
    JWKS URL) -- so a trust provider whose issuer or ``jwksUrl`` is edited never verifies with
    the keys of the old one -- for five minutes. A token whose ``kid`` is not in the cached keys
    makes one new fetch (the issuer rotated its key), at most once a minute per issuer; after
    a failed fetch, the issuer is not asked again for five seconds (the check fails at once).
    Bodies are capped at 256 KiB; only ``https://``, no redirects.
    """

    def __init__(
        self,
        clock: Clock,
        ssl_context: ssl.SSLContext,
        *,
        timeout: float = 5.0,
        fetcher: JwksFetcher | None = None,
    ) -> None:
        self._clock = clock
        self._keys = fetcher if fetcher is not None else JwksFetcher(ssl_context, timeout=timeout)

    async def check(self, provider: TrustProvider, token: str) -> TokenCheck:
        if provider.type != "oidc":
            return TokenCheck(error=f"trust provider '{provider.name}' does not verify tokens")
        if not provider.audiences:  # (the schema requires them: aud is matched exactly)
            return TokenCheck(error=f"trust provider '{provider.name}' names no audiences")
        if len(token) > MAX_TOKEN_CHARS:
            return TokenCheck(error="token too long")
        try:
            claims = await self._verified_claims(provider, token)
            check_claims(
                claims, issuer=provider.issuer, audiences=provider.audiences, now=self._clock.now()
            )
        except InvalidToken as exc:
            return TokenCheck(error=REASONS.get(exc.reason, exc.reason))
        except RefreshLimited:
            return TokenCheck(error="keys of trust provider unavailable (fetched too recently)")
        except DiscoveryError as exc:
            return TokenCheck(error=f"keys of trust provider unavailable ({exc})")
        return TokenCheck(claims=claims)

    async def _verified_claims(self, provider: TrustProvider, token: str) -> dict[str, object]:
        if provider.jwks is not None:
            return verify_jwt(token, provider.jwks)[1]
        keys = await self._keys.keys(provider.issuer, jwks_url=provider.jwks_url)
        try:
            return verify_jwt(token, keys.jwks)[1]
        except InvalidToken as exc:
            if exc.reason != "unknown_kid":
                raise
        # The issuer may have rotated its key: fetch once more, unless it was fetched under a
        # minute ago (None), so tokens with unknown kids cannot make the edge hammer it.
        fresh = await self._keys.refresh(provider.issuer, jwks_url=provider.jwks_url)
        if fresh is None:
            raise InvalidToken("unknown_kid")
        return verify_jwt(token, fresh.jwks)[1]
