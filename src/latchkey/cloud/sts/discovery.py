"""Fetching an OIDC issuer's discovery document and JWKS, over verified HTTPS only."""

from __future__ import annotations

import json
import ssl
import time
from typing import Any

import httpx

MAX_DOCUMENT_BYTES = 256 * 1024
CACHE_SECONDS = 300.0


class DiscoveryError(Exception):
    """The issuer could not be reached or answered something unusable (no secrets inside)."""


class JwksFetcher:
    """Issuer -> JWKS, through ``/.well-known/openid-configuration``, cached briefly."""

    def __init__(self, ssl_context: ssl.SSLContext, *, timeout: float = 5.0) -> None:
        self._ssl = ssl_context
        self._timeout = timeout
        self._cache: dict[str, tuple[float, dict[str, Any]]] = {}

    async def _get_json(self, client: httpx.AsyncClient, url: str) -> dict[str, Any]:
        if not url.startswith("https://"):
            raise DiscoveryError(f"refusing a non-HTTPS URL: {url}")
        try:
            resp = await client.get(url)
        except httpx.HTTPError as exc:
            raise DiscoveryError(f"cannot fetch {url}: {exc.__class__.__name__}") from None
        if resp.status_code != 200:
            raise DiscoveryError(f"{url} answered HTTP {resp.status_code}")
        if len(resp.content) > MAX_DOCUMENT_BYTES:
            raise DiscoveryError(f"{url} answered a document that is too large")
        try:
            value = json.loads(resp.content)
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise DiscoveryError(f"{url} answered something that is not JSON") from None
        if not isinstance(value, dict):
            raise DiscoveryError(f"{url} answered JSON that is not an object")
        return value

    async def jwks(self, issuer: str, *, refresh: bool = False) -> dict[str, Any]:
        cached = self._cache.get(issuer)
        if cached and not refresh and time.monotonic() - cached[0] < CACHE_SECONDS:
            return cached[1]
        async with httpx.AsyncClient(
            verify=self._ssl, timeout=self._timeout, follow_redirects=False, trust_env=False
        ) as client:
            config = await self._get_json(
                client, issuer.rstrip("/") + "/.well-known/openid-configuration"
            )
            if config.get("issuer") != issuer:
                raise DiscoveryError("the discovery document names a different issuer")
            jwks_uri = config.get("jwks_uri")
            if not isinstance(jwks_uri, str):
                raise DiscoveryError("the discovery document has no jwks_uri")
            jwks = await self._get_json(client, jwks_uri)
        if not isinstance(jwks.get("keys"), list):
            raise DiscoveryError("the JWKS has no keys")
        self._cache[issuer] = (time.monotonic(), jwks)
        return jwks
