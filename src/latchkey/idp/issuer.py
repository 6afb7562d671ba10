"""Minting workload tokens (pure but for the key it is given and the clock it is told)."""

from __future__ import annotations

import datetime as dt
import uuid

from latchkey.clock import Clock
from latchkey.crypto.jwk import SigningKey

DEFAULT_LIFETIME = dt.timedelta(minutes=5)


class Issuer:
    def __init__(self, url: str, key: SigningKey, clock: Clock) -> None:
        if not url.startswith("https://"):
            raise ValueError("the issuer URL must be https")
        self.url = url.rstrip("/")
        self.key = key
        self.clock = clock

    def mint(self, subject: str, audience: str, lifetime: dt.timedelta = DEFAULT_LIFETIME) -> str:
        now = self.clock.now()
        claims = {
            "iss": self.url,
            "sub": subject,
            "aud": audience,
            "iat": int(now.timestamp()),
            "nbf": int(now.timestamp()),
            "exp": int((now + lifetime).timestamp()),
            "jti": str(uuid.uuid4()),
        }
        return self.key.sign_jwt(claims)

    def discovery(self) -> dict[str, object]:
        return {
            "issuer": self.url,
            "jwks_uri": f"{self.url}/.well-known/jwks.json",
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["ES256"],
            "claims_supported": ["iss", "sub", "aud", "iat", "nbf", "exp", "jti"],
        }

    def jwks(self) -> dict[str, object]:
        return {"keys": [self.key.public_jwk()]}
