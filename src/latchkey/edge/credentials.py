"""Short-lived AWS credentials by OIDC federation, cached per (provider, client workload).

Flow: the idp mints a JWT for the client workload -> STS AssumeRoleWithWebIdentity swaps it
for temporary keys -> cached. The cache key is the credential provider's whole configuration
(role, audience, STS endpoint, region, session duration and name...) and the client's name, so
an edited provider never serves keys fetched for its old configuration; :meth:`CredentialCache.
retain` drops what a new configuration no longer has. Lifecycle per (provider, client):

- after 80 % of the lifetime a request still gets the cached keys and starts one background
  refresh (single-flight: concurrent requests share one STS call);
- transient STS failures (connect errors, timeouts, 5xx, ``IDPCommunicationError``,
  throttling) are retried with bounded backoff; permanent refusals are not;
- while refreshing fails, the cached keys serve until 30 s before they expire; after that a
  request waits for one refresh attempt and, if it fails, gets :class:`CredentialError` (the
  edge answers 503 with ``Retry-After`` and the reason).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import logging
import ssl
import time
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import urlencode
from xml.etree import ElementTree as ET

import httpx

from latchkey.aws.sigv4 import Credentials
from latchkey.clock import Clock
from latchkey.control.model import ClientWorkload, Config, CredentialProvider

log = logging.getLogger("latchkey.edge.credentials")

STS_NS = "{https://sts.amazonaws.com/doc/2011-06-15/}"
MAX_SESSION_NAME = 64  # AWS's limit on RoleSessionName

# (the provider's whole configuration, the client workload's name): frozen dataclasses hash
# and compare by value, so an unchanged provider of a reloaded configuration finds its entry
# and a changed one (another role, audience, endpoint...) does not.
CacheKey = tuple[CredentialProvider, str]


class TokenSource(Protocol):
    """latchkey's idp: a signed JWT naming the client workload and the credential provider."""

    def __call__(self, *, provider: str, client: str, audience: str) -> str: ...


class CredentialError(Exception):
    """Credentials could not be had; the message names why (never a secret)."""


class TransientCredentialError(CredentialError):
    """A failure worth retrying: STS unreachable, overloaded, or its IdP unreachable."""


RETRY_DELAYS = (0.25, 0.5, 1.0)  # at most four tries, 1.75 s of waiting
FAILED_REFRESH_PAUSE = 5.0  # seconds between background refresh attempts after a failure
EXPIRY_MARGIN = dt.timedelta(seconds=30)  # never hand out keys closer than this to expiry
TRANSIENT_STS_CODES = frozenset(
    {"IDPCommunicationError", "Throttling", "ThrottlingException", "ServiceUnavailable",
     "InternalFailure", "RequestLimitExceeded"}
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class CachedCredentials:
    credentials: Credentials = field(repr=False)
    expiration: dt.datetime
    fetched: dt.datetime

    refresh_at: dt.datetime = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        lifetime = self.expiration - self.fetched
        object.__setattr__(self, "refresh_at", self.fetched + lifetime * 0.8)

    def fresh(self, now: dt.datetime) -> bool:
        """Usable without a refresh: less than 80 % of the lifetime has passed."""
        return now < self.refresh_at


def sts_endpoint(provider: CredentialProvider) -> str:
    return provider.sts_endpoint or f"https://sts.{provider.region}.amazonaws.com"


def role_session_name(provider: CredentialProvider, client: ClientWorkload) -> str:
    """The RoleSessionName sent: the provider's, else ``latchkey-<client>``; a name over
    AWS's 64 characters keeps 55 of them and ends in ``-`` and 8 hex digits of the SHA-256 of
    the client's name, so long client names that differ only at the end stay distinct."""
    if provider.role_session_name:
        return provider.role_session_name[:MAX_SESSION_NAME]  # (the schema allows <= 64)
    name = f"latchkey-{client.name}"
    if len(name) <= MAX_SESSION_NAME:
        return name
    digest = hashlib.sha256(client.name.encode()).hexdigest()[:8]
    return f"{name[:55]}-{digest}"


def parse_sts_response(body: bytes) -> tuple[Credentials, dt.datetime]:
    try:
        root = ET.fromstring(body)  # noqa: S314 (our own STS or AWS, over verified TLS)
    except ET.ParseError:
        raise CredentialError("STS answered something that is not XML") from None
    creds = root.find(f".//{STS_NS}Credentials")
    if creds is None:
        raise CredentialError("STS answered without credentials")

    def text(name: str) -> str:
        node = creds.find(f"{STS_NS}{name}")
        if node is None or not node.text:
            raise CredentialError(f"STS answered without {name}")
        return node.text

    expiration = dt.datetime.fromisoformat(text("Expiration").replace("Z", "+00:00"))
    return (
        Credentials(text("AccessKeyId"), text("SecretAccessKey"), text("SessionToken")),
        expiration,
    )


def sts_error_parts(body: bytes) -> tuple[str, str]:
    try:
        root = ET.fromstring(body)  # noqa: S314
    except ET.ParseError:
        return "?", "unparseable error"
    code = root.find(f".//{STS_NS}Code")
    message = root.find(f".//{STS_NS}Message")
    return (code.text or "?" if code is not None else "?",
            message.text or "" if message is not None else "")  # fmt: skip


class CredentialCache:
    def __init__(
        self,
        tokens: TokenSource,
        clock: Clock,
        ssl_context: ssl.SSLContext,
        *,
        timeout: float = 10,
        retry_delays: tuple[float, ...] = RETRY_DELAYS,
    ) -> None:
        self._tokens = tokens
        self._clock = clock
        self._ssl = ssl_context
        self._timeout = timeout
        self._retry_delays = retry_delays
        self._cache: dict[CacheKey, CachedCredentials] = {}
        self._inflight: dict[CacheKey, asyncio.Task[CachedCredentials]] = {}
        self._last_failure: dict[CacheKey, tuple[float, str]] = {}
        self.fetches = 0  # STS calls made (each try counts)
        self.failures = 0  # refreshes that failed after their retries
        self.background_refreshes = 0

    async def get(self, provider: CredentialProvider, client: ClientWorkload) -> Credentials:
        return (await self.get_with_result(provider, client))[0]

    async def get_with_result(
        self, provider: CredentialProvider, client: ClientWorkload
    ) -> tuple[Credentials, str]:
        """The credentials and how they were had: ``cached``, ``refreshing`` (cached, while a
        background refresh runs or waits out a failure) or ``fetched`` (this request waited)."""
        key = (provider, client.name)
        now = self._clock.now()
        cached = self._cache.get(key)
        if cached is not None and cached.fresh(now):
            return cached.credentials, "cached"
        if cached is not None and now < cached.expiration - EXPIRY_MARGIN:
            failed = self._last_failure.get(key)
            if failed is None or time.monotonic() - failed[0] >= FAILED_REFRESH_PAUSE:
                if key not in self._inflight:
                    self.background_refreshes += 1
                self._refresh(key, provider, client)
            return cached.credentials, "refreshing"
        try:
            fetched = await asyncio.shield(self._refresh(key, provider, client))
            return fetched.credentials, "fetched"
        except CredentialError as exc:
            raise CredentialError(f"no usable credentials for client {client.name} via "
                                  f"{provider.name}: {exc}") from None  # fmt: skip

    def retain(self, config: Config) -> int:
        """Forget the credentials, failure notes and in-flight refreshes of providers (as
        configured: a changed provider counts as gone) or clients ``config`` no longer has;
        the number of cached credentials dropped. Called when the configuration changes."""
        providers = frozenset(config.credential_providers)
        clients = frozenset(c.name for c in config.client_workloads)

        def gone(key: CacheKey) -> bool:
            return key[0] not in providers or key[1] not in clients

        dropped = 0
        for store in (self._cache, self._last_failure, self._inflight):
            for key in [k for k in store if gone(k)]:
                del store[key]  # a retired refresh still answers whoever awaits it
                dropped += store is self._cache
        if dropped:
            log.info("dropped %d cached credential(s) of changed or removed credential "
                     "providers or client workloads", dropped)  # fmt: skip
        return dropped

    def _refresh(
        self, key: CacheKey, provider: CredentialProvider, client: ClientWorkload
    ) -> asyncio.Task[CachedCredentials]:
        """The one refresh of ``key`` in flight, started if there is none."""
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.create_task(self._fetch_with_retries(key, provider, client))
            self._inflight[key] = task  # the dict holds the strong reference
            task.add_done_callback(lambda done: self._refreshed(key, done))
        return task

    def _refreshed(self, key: CacheKey, task: asyncio.Task[CachedCredentials]) -> None:
        if self._inflight.get(key) is not task:  # retired by retain(): the provider or client
            if not task.cancelled():  # left the configuration; its result is not cached
                task.exception()  # (retrieved: no "never retrieved" warning)
            return
        del self._inflight[key]
        if task.cancelled():
            return
        exc = task.exception()
        if exc is None:
            self._cache[key] = task.result()
            self._last_failure.pop(key, None)
            return
        self.failures += 1
        self._last_failure[key] = (time.monotonic(), str(exc))
        if key in self._cache:
            log.warning("credential refresh for client %s via %s failed (%s); serving the "
                        "cached credentials until they expire", key[1], key[0].name,
                        exc)  # fmt: skip

    async def _fetch_with_retries(
        self, key: CacheKey, provider: CredentialProvider, client: ClientWorkload
    ) -> CachedCredentials:
        for delay in (*self._retry_delays, None):
            try:
                return await self._fetch(provider, client)
            except TransientCredentialError as exc:
                if delay is None:
                    raise
                log.info("STS call for client %s via %s failed (%s); retrying in %.2f s",
                         client.name, provider.name, exc, delay)  # fmt: skip
                await asyncio.sleep(delay)
        raise AssertionError("unreachable")

    async def _fetch(
        self, provider: CredentialProvider, client: ClientWorkload
    ) -> CachedCredentials:
        self.fetches += 1
        try:
            token = self._tokens(
                provider=provider.name, client=client.name, audience=provider.audience
            )
        except Exception as exc:  # a broken keyring must not take the edge down
            raise CredentialError(f"the idp cannot sign a token: {exc}") from None
        session_name = role_session_name(provider, client)
        form = {
            "Action": "AssumeRoleWithWebIdentity",
            "Version": "2011-06-15",
            "RoleArn": provider.role_arn,
            "RoleSessionName": session_name,
            "WebIdentityToken": token,
            "DurationSeconds": str(provider.session_duration),
        }
        url = sts_endpoint(provider)
        started = self._clock.now()
        try:
            async with httpx.AsyncClient(
                verify=self._ssl, timeout=self._timeout, trust_env=False
            ) as client_http:
                resp = await client_http.post(
                    url,
                    content=urlencode(form).encode(),
                    headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
                )
        except httpx.HTTPError as exc:
            raise TransientCredentialError(
                f"cannot reach STS at {url}: {exc.__class__.__name__}"
            ) from None
        if resp.status_code != 200:
            code, message = sts_error_parts(resp.content)
            why = (f"STS refused AssumeRoleWithWebIdentity for role {provider.role_arn}: "
                   f"{code}: {message}")  # fmt: skip
            if resp.status_code >= 500 or code in TRANSIENT_STS_CODES:
                raise TransientCredentialError(f"{why} (HTTP {resp.status_code})")
            raise CredentialError(why)
        credentials, expiration = parse_sts_response(resp.content)
        log.info(
            "credentials for client %s via %s: %s until %s",
            client.name,
            provider.name,
            credentials.access_key,
            expiration.isoformat(),
        )
        return CachedCredentials(credentials, expiration, started)
