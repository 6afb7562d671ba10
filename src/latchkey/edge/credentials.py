"""Short-lived AWS credentials by OIDC federation, cached per (provider, client workload).

Flow: the idp mints a JWT for the client workload -> STS AssumeRoleWithWebIdentity swaps it
for temporary keys -> cached until shortly before they expire; one fetch at a time per key.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import ssl
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import urlencode
from xml.etree import ElementTree as ET

import httpx

from latchkey.aws.sigv4 import Credentials
from latchkey.clock import Clock
from latchkey.control.model import ClientWorkload, CredentialProvider

log = logging.getLogger("latchkey.edge.credentials")

STS_NS = "{https://sts.amazonaws.com/doc/2011-06-15/}"


class TokenSource(Protocol):
    """latchkey's idp: a signed JWT naming the client workload and the credential provider."""

    def __call__(self, *, provider: str, client: str, audience: str) -> str: ...


class CredentialError(Exception):
    """Credentials could not be had; the message names why (never a secret)."""


@dataclass(frozen=True, slots=True)
class CachedCredentials:
    credentials: Credentials = field(repr=False)
    expiration: dt.datetime
    fetched: dt.datetime

    def fresh(self, now: dt.datetime) -> bool:
        """Usable without a refresh: less than 80 % of the lifetime has passed."""
        lifetime = self.expiration - self.fetched
        return now < self.fetched + lifetime * 0.8


def sts_endpoint(provider: CredentialProvider) -> str:
    return provider.sts_endpoint or f"https://sts.{provider.region}.amazonaws.com"


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


def parse_sts_error(body: bytes) -> str:
    try:
        root = ET.fromstring(body)  # noqa: S314
    except ET.ParseError:
        return "unparseable error"
    code = root.find(f".//{STS_NS}Code")
    message = root.find(f".//{STS_NS}Message")
    return (
        f"{code.text if code is not None else '?'}: {message.text if message is not None else ''}"
    )


class CredentialCache:
    def __init__(
        self, tokens: TokenSource, clock: Clock, ssl_context: ssl.SSLContext, *, timeout: float = 10
    ) -> None:
        self._tokens = tokens
        self._clock = clock
        self._ssl = ssl_context
        self._timeout = timeout
        self._cache: dict[tuple[str, str], CachedCredentials] = {}
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        self.fetches = 0

    async def get(self, provider: CredentialProvider, client: ClientWorkload) -> Credentials:
        key = (provider.name, client.name)
        cached = self._cache.get(key)
        if cached is not None and cached.fresh(self._clock.now()):
            return cached.credentials
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            cached = self._cache.get(key)
            now = self._clock.now()
            if cached is not None and cached.fresh(now):
                return cached.credentials
            try:
                fresh = await self._fetch(provider, client)
            except CredentialError:
                if cached is not None and now < cached.expiration - dt.timedelta(seconds=30):
                    log.warning("credential refresh failed; serving cached credentials")
                    return cached.credentials
                raise
            self._cache[key] = fresh
            return fresh.credentials

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
        session_name = (provider.role_session_name or f"latchkey-{client.name}")[:64]
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
            raise CredentialError(f"cannot reach STS at {url}: {exc.__class__.__name__}") from None
        if resp.status_code != 200:
            raise CredentialError(
                f"STS refused AssumeRoleWithWebIdentity for role {provider.role_arn}: "
                f"{parse_sts_error(resp.content)}"
            )
        credentials, expiration = parse_sts_response(resp.content)
        log.info(
            "credentials for client %s via %s: %s until %s",
            client.name,
            provider.name,
            credentials.access_key,
            expiration.isoformat(),
        )
        return CachedCredentials(credentials, expiration, started)
