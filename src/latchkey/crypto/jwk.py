"""The idp's JWT signing keys: ES256 (ECDSA P-256, the default) or RS256 (RSA >= 2048 bits).

Stored as an unencrypted PKCS8 PEM via :mod:`latchkey.secretfile` (mode ``0600``).
The key id is the RFC 7638 JWK thumbprint (SHA-256, base64url) of the public key.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey

from latchkey.secretfile import read_secret_file, write_secret_file

__all__ = ["ALGORITHMS", "DEFAULT_ALGORITHM", "SigningKey"]

ALGORITHMS = ("ES256", "RS256")
DEFAULT_ALGORITHM = "ES256"
RSA_BITS = 2048
_PUBLIC_FIELDS = {"EC": ("crv", "x", "y"), "RSA": ("n", "e")}

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


class SigningKey:
    """An ES256 or RS256 signing key; its ``repr`` shows only the key id."""

    __slots__ = ("_alg", "_jwk", "_kid")

    def __init__(self, private_key: PrivateKey) -> None:
        self._jwk: ECKey | RSAKey
        if isinstance(private_key, ec.EllipticCurvePrivateKey):
            if not isinstance(private_key.curve, ec.SECP256R1):
                raise ValueError("ES256 needs a P-256 key")
            self._jwk, self._alg = ECKey.import_key(private_key), "ES256"
        elif isinstance(private_key, rsa.RSAPrivateKey):
            if private_key.key_size < RSA_BITS:
                raise ValueError(f"RS256 needs an RSA key of at least {RSA_BITS} bits")
            self._jwk, self._alg = RSAKey.import_key(private_key), "RS256"
        else:
            raise ValueError("a signing key is a P-256 EC key or an RSA key")
        self._kid = self._jwk.thumbprint()

    @classmethod
    def generate(cls, algorithm: str = DEFAULT_ALGORITHM) -> SigningKey:
        """A fresh random key (not persisted). RS256 takes ~0.1 s: not on an event loop."""
        if algorithm == "ES256":
            return cls(ec.generate_private_key(ec.SECP256R1()))
        if algorithm == "RS256":
            return cls(rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS))
        raise ValueError(f"unsupported signing algorithm {algorithm!r} (use ES256 or RS256)")

    @classmethod
    def from_pem(cls, pem: bytes) -> SigningKey:
        """Load an unencrypted PKCS8 (or SEC1 / PKCS1) PEM P-256 or RSA private key."""
        key = serialization.load_pem_private_key(pem, password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
            raise ValueError("signing key is neither an EC nor an RSA private key")
        return cls(key)

    @classmethod
    def load(cls, path: Path) -> SigningKey:
        """Load the PEM key at ``path`` (which must be ``0600``)."""
        pem = read_secret_file(Path(path))
        try:
            return cls.from_pem(pem)
        except ValueError:
            raise ValueError(
                f"signing key file {path} does not hold a P-256 or RSA PEM key"
            ) from None

    @classmethod
    def load_or_create(cls, path: Path, algorithm: str = DEFAULT_ALGORITHM) -> SigningKey:
        """Load the PEM key at ``path`` or create (and store, ``0600``) a new one."""
        path = Path(path)
        try:
            return cls.load(path)
        except FileNotFoundError:
            key = cls.generate(algorithm)
            write_secret_file(path, key.private_pem())
            return key

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

    @property
    def algorithm(self) -> str:
        """``ES256`` or ``RS256``."""
        return self._alg

    def public_jwk(self) -> dict[str, str]:
        """The public key as a JWK with ``kid``, ``use`` and ``alg``."""
        public = self._jwk.as_dict(private=False)
        kty = str(public["kty"])
        jwk = {"kty": kty} | {name: str(public[name]) for name in _PUBLIC_FIELDS[kty]}
        return jwk | {"kid": self._kid, "use": "sig", "alg": self._alg}

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        """A JWKS document holding just this key."""
        return {"keys": [self.public_jwk()]}

    def sign_jwt(self, claims: Mapping[str, object]) -> str:
        """Sign ``claims`` (JSON-serialisable) with header ``{"alg","typ":"JWT","kid"}``."""
        header = {"alg": self._alg, "typ": "JWT", "kid": self._kid}
        return jwt.encode(header, dict(claims), self._jwk, algorithms=[self._alg])

    def __repr__(self) -> str:
        return f"SigningKey(kid={self._kid!r})"

    __str__ = __repr__


def public_jwks_from_pem(pem: str) -> dict[str, list[dict[str, str]]]:
    """A JWKS holding one public key given as PEM (SubjectPublicKeyInfo): RSA >= 2048 bits
    or EC P-256/384/521. ValueError for anything else, including private keys."""
    try:
        public = serialization.load_pem_public_key(pem.encode())
    except (ValueError, TypeError):
        raise ValueError("not a PEM public key (-----BEGIN PUBLIC KEY-----)") from None
    key: RSAKey | ECKey
    if isinstance(public, rsa.RSAPublicKey):
        if public.key_size < 2048:
            raise ValueError("RSA public keys must have at least 2048 bits")
        key = RSAKey.import_key(public)
    elif isinstance(public, ec.EllipticCurvePublicKey) and public.curve.name in (
        "secp256r1", "secp384r1", "secp521r1",
    ):  # fmt: skip
        key = ECKey.import_key(public)
    else:
        raise ValueError("only RSA and EC (P-256, P-384, P-521) public keys are supported")
    jwk = {k: str(v) for k, v in key.as_dict(private=False).items()}
    jwk["kid"] = key.thumbprint()
    jwk["use"] = "sig"
    return {"keys": [jwk]}
