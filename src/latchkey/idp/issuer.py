"""Minting workload tokens (pure but for the keys it is given and the clock it is told).

A workload token names one client workload getting credentials from one credential provider:

- ``sub`` = ``latchkey:<credential-provider>:<client-workload>`` (see :func:`workload_subject`):
  stable, readable, no personal data, and every client of a provider shares the prefix
  ``latchkey:<credential-provider>:`` a trust policy can pin with ``StringLike``;
- ``latchkey`` = ``{"client_workload": ..., "credential_provider": ...}``;
- ``iss``, ``aud``, ``iat``, ``nbf``, ``exp`` (default 5 minutes), ``jti``.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
from typing import Protocol
from urllib.parse import urlsplit

from latchkey.clock import Clock
from latchkey.control.schema import is_name
from latchkey.crypto.jwk import SigningKey

DEFAULT_LIFETIME = dt.timedelta(minutes=5)
MAX_LIFETIME = dt.timedelta(hours=1)
DEFAULT_AUDIENCE = "sts.amazonaws.com"
SUBJECT_PREFIX = "latchkey"
CLAIMS = ("iss", "sub", "aud", "iat", "nbf", "exp", "jti", "latchkey")


class KeySource(Protocol):
    def signing_key(self) -> SigningKey:
        """The key new tokens are signed with."""
        ...

    def public_keys(self) -> list[SigningKey]:
        """Every key the JWKS publishes now (the signing key among them)."""
        ...


class StaticKeys:
    """One key, never rotated (tests, tools)."""

    def __init__(self, key: SigningKey) -> None:
        self.key = key

    def signing_key(self) -> SigningKey:
        return self.key

    def public_keys(self) -> list[SigningKey]:
        return [self.key]


def subject_prefix(provider: str) -> str:
    """What every ``sub`` of ``provider``'s clients starts with: ``latchkey:<provider>:``."""
    if not is_name(provider):
        raise ValueError(f"invalid credential provider name {provider!r}")
    return f"{SUBJECT_PREFIX}:{provider}:"


def workload_subject(provider: str, client: str) -> str:
    """The ``sub`` of a token for ``client`` via ``provider``: ``latchkey:<provider>:<client>``.

    Names are RFC 1123 labels (no ``:``), so the prefix of one provider never matches another's.
    """
    if not is_name(client):
        raise ValueError(f"invalid client workload name {client!r}")
    return subject_prefix(provider) + client


def check_issuer_url(url: str) -> str:
    """The issuer URL as tokens and discovery carry it: https, a host, no query or fragment,
    no user info, no trailing ``/``. ``ValueError`` otherwise."""
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname:
        raise ValueError(f"the issuer URL must be https://HOST[:PORT][/PATH], got {url!r}")
    if parts.query or parts.fragment or "?" in url or "#" in url:
        raise ValueError(f"the issuer URL cannot have a query or fragment: {url!r}")
    if parts.username is not None or parts.password is not None:
        raise ValueError(f"the issuer URL cannot carry user info: {url!r}")
    try:
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError:
        raise ValueError(f"the issuer URL has a bad port: {url!r}") from None
    return url.rstrip("/")


class Issuer:
    def __init__(
        self,
        url: str,
        keys: KeySource | SigningKey,
        clock: Clock,
        *,
        lifetime: dt.timedelta = DEFAULT_LIFETIME,
    ) -> None:
        self.url = check_issuer_url(url)
        self.path = urlsplit(self.url).path  # "" or "/some/prefix"
        self.keys: KeySource = StaticKeys(keys) if isinstance(keys, SigningKey) else keys
        self.clock = clock
        self.lifetime = lifetime

    def mint(
        self,
        subject: str,
        audience: str,
        lifetime: dt.timedelta | None = None,
        *,
        extra: Mapping[str, object] | None = None,
    ) -> str:
        """A token for ``subject``; ``extra`` claims are added (registered ones cannot be)."""
        now = self.clock.now()
        ts = int(now.timestamp())
        claims: dict[str, object] = dict(extra or {})
        claims |= {
            "iss": self.url,
            "sub": subject,
            "aud": audience,
            "iat": ts,
            "nbf": ts,
            "exp": int((now + (lifetime or self.lifetime)).timestamp()),
            "jti": str(uuid.uuid4()),
        }
        return self.keys.signing_key().sign_jwt(claims)

    def workload_token(
        self,
        *,
        provider: str,
        client: str,
        audience: str = DEFAULT_AUDIENCE,
        lifetime: dt.timedelta | None = None,
    ) -> str:
        """The token the edge swaps at STS for ``client``'s credentials from ``provider``."""
        if lifetime is not None and not dt.timedelta(0) < lifetime <= MAX_LIFETIME:
            raise ValueError("a token lives between 1 second and 1 hour")
        latchkey = {"client_workload": client, "credential_provider": provider}
        return self.mint(
            workload_subject(provider, client), audience, lifetime, extra={"latchkey": latchkey}
        )

    def discovery(self) -> dict[str, object]:
        algorithms = sorted({key.algorithm for key in self.keys.public_keys()})
        return {
            "issuer": self.url,
            "jwks_uri": f"{self.url}/.well-known/jwks.json",
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": algorithms,
            "claims_supported": list(CLAIMS),
        }

    def jwks(self) -> dict[str, object]:
        return {"keys": [key.public_jwk() for key in self.keys.public_keys()]}
