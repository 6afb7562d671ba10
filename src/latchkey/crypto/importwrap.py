"""Key material import (BYOK): RSA wrapping keys, unwrapping as AWS KMS defines it, and a keyed
fingerprint that recognises material again without keeping it.

Wrapping algorithms (AWS KMS ``GetParametersForImport``):

- ``RSAES_OAEP_SHA_1`` / ``RSAES_OAEP_SHA_256``: the material is RSA-OAEP encrypted directly
  (MGF1 with the same hash, no label), as ``openssl pkeyutl -pkeyopt rsa_padding_mode:oaep``.
- ``RSA_AES_KEY_WRAP_SHA_1`` / ``RSA_AES_KEY_WRAP_SHA_256``: an ephemeral AES key encrypted with
  RSA-OAEP, followed by the material wrapped under that AES key with AES key wrap with padding
  (RFC 5649, ``openssl enc -id-aes256-wrap-pad``).

Every unwrapping failure is the same opaque :class:`InvalidCiphertext`.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Final

from cryptography.exceptions import InvalidKey, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, keywrap, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from latchkey.crypto.aead import InvalidCiphertext

__all__ = [
    "WRAPPING_ALGORITHMS",
    "WRAPPING_KEY_SPECS",
    "InvalidCiphertext",
    "WrappingKey",
    "generate_wrapping_key",
    "material_fingerprint",
    "private_key_spec",
    "unwrap_key_material",
]

WRAPPING_KEY_SPECS: Final = {"RSA_2048": 2048, "RSA_3072": 3072, "RSA_4096": 4096}

# algorithm -> (OAEP hash, two-step RSA + AES key wrap?)
_ALGORITHMS: Final[dict[str, tuple[type[hashes.HashAlgorithm], bool]]] = {
    "RSAES_OAEP_SHA_1": (hashes.SHA1, False),
    "RSAES_OAEP_SHA_256": (hashes.SHA256, False),
    "RSA_AES_KEY_WRAP_SHA_1": (hashes.SHA1, True),
    "RSA_AES_KEY_WRAP_SHA_256": (hashes.SHA256, True),
}
WRAPPING_ALGORITHMS: Final = frozenset(_ALGORITHMS)
_AES_KEY_SIZES: Final = frozenset({16, 24, 32})


class WrappingKey:
    """An RSA wrapping key pair: the private half as PKCS#8 DER, the public as SPKI DER."""

    __slots__ = ("private_der", "public_der")

    def __init__(self, private_der: bytes, public_der: bytes) -> None:
        self.private_der = private_der
        self.public_der = public_der

    def __repr__(self) -> str:
        return "WrappingKey(<redacted>)"


def generate_wrapping_key(spec: str) -> WrappingKey:
    """A fresh RSA key pair of ``spec`` (``RSA_2048`` ...). Slow for 4096 bits: call it off the
    event loop."""
    if spec not in WRAPPING_KEY_SPECS:
        raise ValueError(f"unsupported wrapping key spec {spec}")
    key = rsa.generate_private_key(public_exponent=65537, key_size=WRAPPING_KEY_SPECS[spec])
    private_der = key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public_der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return WrappingKey(private_der, public_der)


def _oaep(hash_type: type[hashes.HashAlgorithm]) -> padding.OAEP:
    return padding.OAEP(mgf=padding.MGF1(algorithm=hash_type()), algorithm=hash_type(), label=None)


def unwrap_key_material(private_der: bytes, algorithm: str, blob: bytes) -> bytes:
    """The plaintext material from ``blob`` (``EncryptedKeyMaterial``) under the wrapping key."""
    if algorithm not in _ALGORITHMS:
        raise ValueError(f"unsupported wrapping algorithm {algorithm}")
    hash_type, two_step = _ALGORITHMS[algorithm]
    try:
        key = serialization.load_der_private_key(private_der, password=None)
    except (ValueError, TypeError):
        raise InvalidCiphertext() from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise InvalidCiphertext()
    size = key.key_size // 8
    try:
        if not two_step:
            if len(blob) != size:
                raise InvalidCiphertext()
            return key.decrypt(blob, _oaep(hash_type))
        if len(blob) <= size:
            raise InvalidCiphertext()
        aes_key = key.decrypt(blob[:size], _oaep(hash_type))
        if len(aes_key) not in _AES_KEY_SIZES:
            raise InvalidCiphertext()
        return keywrap.aes_key_unwrap_with_padding(aes_key, blob[size:])
    except (ValueError, InvalidKey, keywrap.InvalidUnwrap):
        raise InvalidCiphertext() from None


def material_fingerprint(fingerprint_key: bytes, key_id: str, material: bytes) -> str:
    """HMAC-SHA256 over the KMS key id and the material, hex: recognises the same material on a
    reimport (and serves as its ``KeyMaterialId``) without storing the material."""
    mac = hmac.new(fingerprint_key, digestmod=hashlib.sha256)
    raw_id = key_id.encode("utf-8")
    mac.update(len(raw_id).to_bytes(4, "big") + raw_id)
    mac.update(material)
    return mac.hexdigest()


_CURVES: Final = {
    "secp256r1": "ECC_NIST_P256",
    "secp384r1": "ECC_NIST_P384",
    "secp521r1": "ECC_NIST_P521",
    "secp256k1": "ECC_SECG_P256K1",
}


def private_key_spec(material: bytes) -> tuple[str, bytes]:
    """(KMS key spec, canonical PKCS#8 DER) of imported asymmetric material (a PKCS#8 DER
    private key); ``ValueError`` for anything else or a key no KMS key spec names."""
    try:
        key = serialization.load_der_private_key(material, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise ValueError("not a PKCS#8 DER private key") from None
    spec: str | None = None
    if isinstance(key, rsa.RSAPrivateKey) and key.key_size in WRAPPING_KEY_SPECS.values():
        spec = f"RSA_{key.key_size}"
    elif isinstance(key, ec.EllipticCurvePrivateKey):
        spec = _CURVES.get(key.curve.name)
    elif isinstance(key, ed25519.Ed25519PrivateKey):
        spec = "ECC_NIST_EDWARDS25519"
    if spec is None:
        raise ValueError("no KMS key spec for this private key")
    canonical = key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return spec, canonical
