"""Fetching an OIDC issuer's discovery document and JWKS, over verified HTTPS only.

Used by the cloud's STS (keys found through discovery) and by the edge's trust providers,
which may instead name the JWKS URL themselves (``jwks_url``: then no discovery document is
read). Everything below is per (issuer, JWKS URL given or ``None``).

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
openid-configuration`` and the ``jwks_uri`` it names (or the configured ``jwks_url``), all
``https://``, redirects refused, documents at most :data:`MAX_DOCUMENT_BYTES`.
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


# (issuer, the JWKS URL to fetch directly -- None: the one discovery names)
_Source = tuple[str, str | None]


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
        self._cache: dict[_Source, tuple[float, IssuerKeys]] = {}  # exact issuer -> keys
        self._last_success: dict[_Source, float] = {}  # canonical issuer -> time
        self._last_failure: dict[_Source, tuple[float, str]] = {}  # exact -> (time, reason)
        self._locks: dict[_Source, asyncio.Lock] = {}
        self.fetches = 0  # discovery round trips attempted (for tests and metrics)

    # -- public ----------------------------------------------------------------------------

    async def keys(self, issuer: str, *, jwks_url: str | None = None) -> IssuerKeys:
        """The issuer's keys, from the cache when fresh, else fetched (rate limits apply):
        from ``jwks_url`` when given, else from the ``jwks_uri`` of its discovery document.

        Raises :class:`DiscoveryError` (unreachable, bad documents) or :class:`RefreshLimited`.
        """
        source = (issuer, jwks_url)
        fresh = self._fresh(source, self._cache_seconds)
        if fresh is not None:
            return fresh
        async with self._lock(source):
            fresh = self._fresh(source, self._cache_seconds)
            if fresh is not None:
                return fresh
            if self._recently_fetched(source):
                raise RefreshLimited(issuer)
            return await self._fetch(source)

    async def refresh(self, issuer: str, *, jwks_url: str | None = None) -> IssuerKeys | None:
        """Fetch again (after an unknown ``kid``), unless that happened under
        :data:`REFRESH_INTERVAL` ago: then ``None`` and no network traffic."""
        source = (issuer, jwks_url)
        async with self._lock(source):
            if self._recently_fetched(source):
                return None
            return await self._fetch(source)

    async def jwks(
        self, issuer: str, *, refresh: bool = False, jwks_url: str | None = None
    ) -> dict[str, Any]:
        """Just the JWKS (``refresh`` honours the rate limit: a limited refresh is the cache)."""
        if refresh:
            fetched = await self.refresh(issuer, jwks_url=jwks_url)
            if fetched is not None:
                return fetched.jwks
        return (await self.keys(issuer, jwks_url=jwks_url)).jwks

    # -- internals -------------------------------------------------------------------------

    @staticmethod
    def _canonical(source: _Source) -> _Source:
        return source[0].rstrip("/").lower(), source[1]

    def _lock(self, source: _Source) -> asyncio.Lock:
        return self._locks.setdefault(self._canonical(source), asyncio.Lock())

    def _fresh(self, source: _Source, max_age: float) -> IssuerKeys | None:
        cached = self._cache.get(source)
        if cached is not None and self._now() - cached[0] < max_age:
            return cached[1]
        return None

    def _recently_fetched(self, source: _Source) -> bool:
        last = self._last_success.get(self._canonical(source))
        return last is not None and self._now() - last < self._refresh_interval

    async def _fetch(self, source: _Source) -> IssuerKeys:
        failed = self._last_failure.get(source)
        if failed is not None and self._now() - failed[0] < self._failure_backoff:
            raise DiscoveryError(failed[1])
        self.fetches += 1
        try:
            keys = await self._download(*source)
        except DiscoveryError as exc:
            self._last_failure[source] = (self._now(), str(exc))
            raise
        self._last_failure.pop(source, None)
        now = self._now()
        self._last_success[self._canonical(source)] = now
        self._cache[source] = (now, keys)
        return keys

    async def _download(self, issuer: str, jwks_url: str | None) -> IssuerKeys:
        async with httpx.AsyncClient(
            verify=self._ssl, timeout=self._timeout, follow_redirects=False, trust_env=False
        ) as client:
            if jwks_url is not None:  # configured: no discovery document (and no algorithms)
                jwks = await self._get_json(client, jwks_url)
                if not isinstance(jwks.get("keys"), list):
                    raise DiscoveryError("the JWKS has no keys")
                return IssuerKeys(issuer=issuer, jwks=jwks, algorithms=None)
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
            raise DiscoveryError("refusing a non-HTTPS URL for keys or discovery")
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
