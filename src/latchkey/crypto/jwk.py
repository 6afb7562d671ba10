"""The idp's ES256 (ECDSA P-256) JWT signing key.

Stored as an unencrypted PKCS8 PEM via :mod:`latchkey.secretfile` (mode ``0600``).
The key id is the RFC 7638 JWK thumbprint (SHA-256, base64url) of the public key.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from joserfc import jwt
from joserfc.jwk import ECKey

from latchkey.secretfile import read_secret_file, write_secret_file

__all__ = ["SigningKey"]

ALGORITHM = "ES256"


class SigningKey:
    """An ES256 signing key; its ``repr`` shows only the key id."""

    __slots__ = ("_jwk", "_kid")

    def __init__(self, private_key: ec.EllipticCurvePrivateKey) -> None:
        if not isinstance(private_key.curve, ec.SECP256R1):
            raise ValueError("ES256 needs a P-256 key")
        self._jwk = ECKey.import_key(private_key)
        self._kid = self._jwk.thumbprint()

    @classmethod
    def generate(cls) -> SigningKey:
        """A fresh random key (not persisted)."""
        return cls(ec.generate_private_key(ec.SECP256R1()))

    @classmethod
    def from_pem(cls, pem: bytes) -> SigningKey:
        """Load an unencrypted PKCS8 (or SEC1) PEM P-256 private key."""
        key = serialization.load_pem_private_key(pem, password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError("signing key is not an EC private key")
        return cls(key)

    @classmethod
    def load_or_create(cls, path: Path) -> SigningKey:
        """Load the PEM key at ``path`` or create (and store, ``0600``) a new one."""
        path = Path(path)
        try:
            pem = read_secret_file(path)
        except FileNotFoundError:
            key = cls.generate()
            write_secret_file(path, key.private_pem())
            return key
        try:
            return cls.from_pem(pem)
        except ValueError:
            raise ValueError(f"signing key file {path} does not hold a P-256 PEM key") from None

    def private_pem(self) -> bytes:
        """The private key as unencrypted PKCS8 PEM (for persisting it)."""
        private = self._jwk.private_key
        assert private is not None
        return private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    @property
    def kid(self) -> str:
        """RFC 7638 thumbprint of the public key (base64url SHA-256)."""
        return self._kid

    def public_jwk(self) -> dict[str, str]:
        """The public key as a JWK with ``kid``, ``use`` and ``alg``."""
        public = self._jwk.as_dict(private=False)
        return {
            "kty": "EC",
            "crv": str(public["crv"]),
            "x": str(public["x"]),
            "y": str(public["y"]),
            "kid": self._kid,
            "use": "sig",
            "alg": ALGORITHM,
        }

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        """A JWKS document holding just this key."""
        return {"keys": [self.public_jwk()]}

    def sign_jwt(self, claims: Mapping[str, object]) -> str:
        """Sign ``claims`` (JSON-serialisable) with header ``{"alg","typ":"JWT","kid"}``."""
        header = {"alg": ALGORITHM, "typ": "JWT", "kid": self._kid}
        return jwt.encode(header, dict(claims), self._jwk, algorithms=[ALGORITHM])

    def __repr__(self) -> str:
        return f"SigningKey(kid={self._kid!r})"

    __str__ = __repr__
