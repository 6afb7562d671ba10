"""Fetching an OIDC issuer's discovery document and JWKS, over verified HTTPS only.

Caching and rate limits (all per issuer, compared case-insensitively, so an attacker cannot
multiply fetches by varying the case of ``iss`` or spraying unknown ``kid`` values):

- a successful fetch is used for :data:`CACHE_SECONDS`;
- a fetch is never made again within :data:`REFRESH_INTERVAL` of the last successful one --
  :meth:`JwksFetcher.refresh` (asked for after an unknown ``kid``) then answers ``None``;
- after a failed fetch, callers asking for that exact issuer get :class:`DiscoveryError`
  without a new attempt for :data:`FAILURE_BACKOFF` seconds (per exact spelling, so a request
  for a misspelt variant cannot block the real issuer);
- concurrent fetches of one issuer are coalesced into one.

Keys named inside a token (``jku``, ``x5u``...) are never fetched: only ``<iss>/.well-known/
openid-configuration`` and the ``jwks_uri`` it names, both ``https://``, redirects refused.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

MAX_DOCUMENT_BYTES = 256 * 1024
CACHE_SECONDS = 300.0
REFRESH_INTERVAL = 60.0
FAILURE_BACKOFF = 5.0
DISCOVERY_PATH = "/.well-known/openid-configuration"


class DiscoveryError(Exception):
    """The issuer could not be reached or answered something unusable (no secrets inside)."""


class RefreshLimited(Exception):
    """No keys for this exact issuer, and fetching them now would break the rate limit."""


@dataclass(frozen=True, slots=True)
class IssuerKeys:
    """What one fetch learnt: the JWKS and the algorithms discovery says the issuer uses."""

    issuer: str
    jwks: dict[str, Any]
    algorithms: tuple[str, ...] | None  # id_token_signing_alg_values_supported, if given


class JwksFetcher:
    """Issuer -> keys, through ``/.well-known/openid-configuration``, cached and rate limited."""

    def __init__(
        self,
        ssl_context: ssl.SSLContext,
        *,
        timeout: float = 5.0,
        cache_seconds: float = CACHE_SECONDS,
        refresh_interval: float = REFRESH_INTERVAL,
        failure_backoff: float = FAILURE_BACKOFF,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ssl = ssl_context
        self._timeout = timeout
        self._cache_seconds = cache_seconds
        self._refresh_interval = refresh_interval
        self._failure_backoff = failure_backoff
        self._now = monotonic
        self._cache: dict[str, tuple[float, IssuerKeys]] = {}  # exact issuer -> keys
        self._last_success: dict[str, float] = {}  # canonical issuer -> time
        self._last_failure: dict[str, tuple[float, str]] = {}  # exact -> (time, reason)
        self._locks: dict[str, asyncio.Lock] = {}
        self.fetches = 0  # discovery round trips attempted (for tests and metrics)

    # -- public ----------------------------------------------------------------------------

    async def keys(self, issuer: str) -> IssuerKeys:
        """The issuer's keys, from the cache when fresh, else fetched (rate limits apply).

        Raises :class:`DiscoveryError` (unreachable, bad documents) or :class:`RefreshLimited`.
        """
        fresh = self._fresh(issuer, self._cache_seconds)
        if fresh is not None:
            return fresh
        async with self._lock(issuer):
            fresh = self._fresh(issuer, self._cache_seconds)
            if fresh is not None:
                return fresh
            if self._recently_fetched(issuer):
                raise RefreshLimited(issuer)
            return await self._fetch(issuer)

    async def refresh(self, issuer: str) -> IssuerKeys | None:
        """Fetch again (after an unknown ``kid``), unless that happened under
        :data:`REFRESH_INTERVAL` ago: then ``None`` and no network traffic."""
        async with self._lock(issuer):
            if self._recently_fetched(issuer):
                return None
            return await self._fetch(issuer)

    async def jwks(self, issuer: str, *, refresh: bool = False) -> dict[str, Any]:
        """Just the JWKS (``refresh`` honours the rate limit: a limited refresh is the cache)."""
        if refresh:
            fetched = await self.refresh(issuer)
            if fetched is not None:
                return fetched.jwks
        return (await self.keys(issuer)).jwks

    # -- internals -------------------------------------------------------------------------

    @staticmethod
    def _canonical(issuer: str) -> str:
        return issuer.rstrip("/").lower()

    def _lock(self, issuer: str) -> asyncio.Lock:
        return self._locks.setdefault(self._canonical(issuer), asyncio.Lock())

    def _fresh(self, issuer: str, max_age: float) -> IssuerKeys | None:
        cached = self._cache.get(issuer)
        if cached is not None and self._now() - cached[0] < max_age:
            return cached[1]
        return None

    def _recently_fetched(self, issuer: str) -> bool:
        last = self._last_success.get(self._canonical(issuer))
        return last is not None and self._now() - last < self._refresh_interval

    async def _fetch(self, issuer: str) -> IssuerKeys:
        failed = self._last_failure.get(issuer)
        if failed is not None and self._now() - failed[0] < self._failure_backoff:
            raise DiscoveryError(failed[1])
        self.fetches += 1
        try:
            keys = await self._download(issuer)
        except DiscoveryError as exc:
            self._last_failure[issuer] = (self._now(), str(exc))
            raise
        self._last_failure.pop(issuer, None)
        now = self._now()
        self._last_success[self._canonical(issuer)] = now
        self._cache[issuer] = (now, keys)
        return keys

    async def _download(self, issuer: str) -> IssuerKeys:
        async with httpx.AsyncClient(
            verify=self._ssl, timeout=self._timeout, follow_redirects=False, trust_env=False
        ) as client:
            config = await self._get_json(client, issuer.rstrip("/") + DISCOVERY_PATH)
            if config.get("issuer") != issuer:
                raise DiscoveryError("the discovery document names a different issuer")
            jwks_uri = config.get("jwks_uri")
            if not isinstance(jwks_uri, str):
                raise DiscoveryError("the discovery document has no jwks_uri")
            jwks = await self._get_json(client, jwks_uri)
        if not isinstance(jwks.get("keys"), list):
            raise DiscoveryError("the JWKS has no keys")
        algs = config.get("id_token_signing_alg_values_supported")
        algorithms = (
            tuple(algs)
            if isinstance(algs, list) and all(isinstance(a, str) for a in algs)
            else None
        )
        return IssuerKeys(issuer=issuer, jwks=jwks, algorithms=algorithms)

    async def _get_json(self, client: httpx.AsyncClient, url: str) -> dict[str, Any]:
        if not url.startswith("https://"):
            raise DiscoveryError("refusing a non-HTTPS URL from the discovery document")
        body = bytearray()
        try:
            async with client.stream("GET", url) as resp:
                if resp.status_code != 200:
                    raise DiscoveryError(f"{url} answered HTTP {resp.status_code}")
                async for chunk in resp.aiter_bytes():
                    body += chunk
                    if len(body) > MAX_DOCUMENT_BYTES:
                        raise DiscoveryError(f"{url} answered a document that is too large")
        except httpx.HTTPError as exc:
            raise DiscoveryError(f"cannot fetch {url}: {exc.__class__.__name__}") from None
        try:
            value = json.loads(bytes(body))
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
            raise DiscoveryError(f"{url} answered something that is not JSON") from None
        if not isinstance(value, dict):
            raise DiscoveryError(f"{url} answered JSON that is not an object")
        return value
