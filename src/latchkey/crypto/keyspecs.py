"""Key material per KMS key spec, and what each kind of key does. Pure: bytes in, bytes out.

Material travels as bytes: symmetric and HMAC keys raw, private keys as PKCS#8 DER (ML-DSA and
ML-KEM in their seed form), public keys as DER SubjectPublicKeyInfo. Which algorithm a spec
allows is the KMS's business (``latchkey.cloud.kms.specs``); this module maps AWS algorithm
names to pyca primitives and refuses a pairing it cannot do with ``ValueError``.

Errors: ``ValueError`` for input the caller chose (a digest of the wrong length, a peer key on
another curve); ``InvalidCiphertext`` for every decryption failure; ``UnsupportedSpec`` for a
spec or algorithm this build of pyca/cryptography cannot do (ML-KEM-512, Ed25519ph).
Verification answers ``False``; it never raises for a bad signature.
"""

from __future__ import annotations

import hmac as std_hmac
import os
from collections.abc import Callable

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives import hmac as pyca_hmac
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, mldsa, mlkem, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from latchkey.crypto.aead import InvalidCiphertext

__all__ = [
    "EC_CURVES",
    "HMAC_KEY_SIZES",
    "MLDSA_SPECS",
    "MLKEM_CIPHERTEXT_SIZES",
    "MLKEM_SPECS",
    "RSA_SIZES",
    "SYMMETRIC_KEY_SIZE",
    "UnsupportedSpec",
    "decapsulate",
    "derive_shared_secret",
    "digest_size",
    "encapsulate",
    "generate",
    "generate_pair",
    "mac",
    "public_key_der",
    "rsa_decrypt",
    "rsa_encrypt",
    "rsa_max_plaintext",
    "sign",
    "verify",
    "verify_mac",
]

SYMMETRIC_KEY_SIZE = 32
HMAC_KEY_SIZES = {"HMAC_224": 28, "HMAC_256": 32, "HMAC_384": 48, "HMAC_512": 64}
RSA_SIZES = {"RSA_2048": 2048, "RSA_3072": 3072, "RSA_4096": 4096}
EC_CURVES: dict[str, Callable[[], ec.EllipticCurve]] = {
    "ECC_NIST_P256": ec.SECP256R1,
    "ECC_NIST_P384": ec.SECP384R1,
    "ECC_NIST_P521": ec.SECP521R1,
    "ECC_SECG_P256K1": ec.SECP256K1,
}
ED25519 = "ECC_NIST_EDWARDS25519"
MLDSA_SPECS = ("ML_DSA_44", "ML_DSA_65", "ML_DSA_87")
MLKEM_SPECS = ("ML_KEM_512", "ML_KEM_768", "ML_KEM_1024")
MLKEM_CIPHERTEXT_SIZES = {"ML_KEM_512": 768, "ML_KEM_768": 1088, "ML_KEM_1024": 1568}
MU_SIZE = 64

_HASHES: dict[str, Callable[[], hashes.HashAlgorithm]] = {
    "SHA_1": hashes.SHA1,
    "SHA_224": hashes.SHA224,
    "SHA_256": hashes.SHA256,
    "SHA_384": hashes.SHA384,
    "SHA_512": hashes.SHA512,
}
_DER = serialization.Encoding.DER
_SPKI = serialization.PublicFormat.SubjectPublicKeyInfo


class UnsupportedSpec(Exception):
    """A key spec or algorithm that this build of pyca/cryptography cannot do."""


def _hash_of(algorithm: str) -> hashes.HashAlgorithm:
    """``RSASSA_PSS_SHA_256`` -> SHA256(); the hash is named by the algorithm's last part."""
    for suffix, factory in _HASHES.items():
        if algorithm.endswith(suffix):
            return factory()
    raise ValueError(f"no hash in {algorithm}")


def digest_size(algorithm: str) -> int:
    """The digest length a ``MessageType=DIGEST`` message must have for ``algorithm``."""
    return _hash_of(algorithm).digest_size


# -- generation and serialization ----------------------------------------------------------


def _pkcs8(key: object) -> bytes:
    private_bytes = getattr(key, "private_bytes", None)
    if private_bytes is None:
        raise TypeError("not a private key")
    out = private_bytes(_DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    assert isinstance(out, bytes)
    return out


def _new_private_key(spec: str) -> object:
    try:
        if spec in RSA_SIZES:
            return rsa.generate_private_key(public_exponent=65537, key_size=RSA_SIZES[spec])
        if spec in EC_CURVES:
            return ec.generate_private_key(EC_CURVES[spec]())
        if spec == ED25519:
            return ed25519.Ed25519PrivateKey.generate()
        if spec == "ML_DSA_44":
            return mldsa.MLDSA44PrivateKey.generate()
        if spec == "ML_DSA_65":
            return mldsa.MLDSA65PrivateKey.generate()
        if spec == "ML_DSA_87":
            return mldsa.MLDSA87PrivateKey.generate()
        if spec == "ML_KEM_768":
            return mlkem.MLKEM768PrivateKey.generate()
        if spec == "ML_KEM_1024":
            return mlkem.MLKEM1024PrivateKey.generate()
    except UnsupportedAlgorithm:
        raise UnsupportedSpec(spec) from None
    raise UnsupportedSpec(spec)


def generate(spec: str) -> bytes:
    """Fresh key material for a KMS key of ``spec`` (RSA generation takes 40-400 ms)."""
    if spec == "SYMMETRIC_DEFAULT":
        return os.urandom(SYMMETRIC_KEY_SIZE)
    if spec in HMAC_KEY_SIZES:
        return os.urandom(HMAC_KEY_SIZES[spec])
    return _pkcs8(_new_private_key(spec))


def generate_pair(spec: str) -> tuple[bytes, bytes]:
    """A data key pair: (PKCS#8 DER private key, SubjectPublicKeyInfo DER public key)."""
    private = generate(spec)
    return private, public_key_der(private)


def _load_private(material: bytes) -> object:
    try:
        return serialization.load_der_private_key(material, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise ValueError("key material is not a readable private key") from None


def public_key_der(material: bytes) -> bytes:
    """The SubjectPublicKeyInfo DER of the private key in ``material`` (PKCS#8 DER)."""
    public = getattr(_load_private(material), "public_key", None)
    if public is None:
        raise ValueError("not an asymmetric private key")
    out = public().public_bytes(_DER, _SPKI)
    assert isinstance(out, bytes)
    return out


# -- signatures ------------------------------------------------------------------------------


def _rsa_padding(algorithm: str) -> padding.AsymmetricPadding:
    if algorithm.startswith("RSASSA_PSS_"):
        digest = _hash_of(algorithm)
        return padding.PSS(mgf=padding.MGF1(digest), salt_length=digest.digest_size)
    if algorithm.startswith("RSASSA_PKCS1_V1_5_"):
        return padding.PKCS1v15()
    raise ValueError(f"{algorithm} is not an RSA signing algorithm")


def _prepared(algorithm: str, message_type: str) -> hashes.HashAlgorithm | Prehashed:
    digest = _hash_of(algorithm)
    if message_type == "DIGEST":
        return Prehashed(digest)
    if message_type == "RAW":
        return digest
    raise ValueError(f"message type {message_type} does not fit {algorithm}")


def _check_digest(algorithm: str, message: bytes, message_type: str) -> None:
    if message_type == "DIGEST" and len(message) != digest_size(algorithm):
        raise ValueError(f"Digest is invalid length for algorithm {algorithm}.")


def sign(material: bytes, algorithm: str, message: bytes, message_type: str) -> bytes:
    """Sign ``message`` (``RAW``, ``DIGEST`` or ``EXTERNAL_MU``) with the private key."""
    key = _load_private(material)
    if isinstance(key, rsa.RSAPrivateKey):
        _check_digest(algorithm, message, message_type)
        return key.sign(message, _rsa_padding(algorithm), _prepared(algorithm, message_type))
    if isinstance(key, ec.EllipticCurvePrivateKey):
        if not algorithm.startswith("ECDSA_"):
            raise ValueError(f"{algorithm} is not an ECDSA algorithm")
        _check_digest(algorithm, message, message_type)
        return key.sign(message, ec.ECDSA(_prepared(algorithm, message_type)))
    if isinstance(key, ed25519.Ed25519PrivateKey):
        if algorithm == "ED25519_PH_SHA_512":
            raise UnsupportedSpec(algorithm)  # pyca/cryptography has no Ed25519ph
        if algorithm != "ED25519_SHA_512" or message_type != "RAW":
            raise ValueError(f"{algorithm} with {message_type} does not fit an Ed25519 key")
        return key.sign(message)
    if isinstance(key, mldsa.MLDSA44PrivateKey | mldsa.MLDSA65PrivateKey | mldsa.MLDSA87PrivateKey):
        if algorithm != "ML_DSA_SHAKE_256":
            raise ValueError(f"{algorithm} does not fit an ML-DSA key")
        if message_type == "EXTERNAL_MU":
            if len(message) != MU_SIZE:
                raise ValueError(f"Digest is invalid length for algorithm {algorithm}.")
            return key.sign_mu(message)
        if message_type != "RAW":
            raise ValueError(f"message type {message_type} does not fit an ML-DSA key")
        return key.sign(message)
    raise ValueError("this key does not sign")


def verify(
    material: bytes, algorithm: str, message: bytes, message_type: str, signature: bytes
) -> bool:
    """Whether ``signature`` is the private key's signature of ``message``."""
    key = _load_private(material)
    try:
        if isinstance(key, rsa.RSAPrivateKey):
            _check_digest(algorithm, message, message_type)
            key.public_key().verify(
                signature, message, _rsa_padding(algorithm), _prepared(algorithm, message_type)
            )
            return True
        if isinstance(key, ec.EllipticCurvePrivateKey):
            _check_digest(algorithm, message, message_type)
            prepared = ec.ECDSA(_prepared(algorithm, message_type))
            key.public_key().verify(signature, message, prepared)
            return True
        if isinstance(key, ed25519.Ed25519PrivateKey):
            if algorithm == "ED25519_PH_SHA_512":
                raise UnsupportedSpec(algorithm)
            if algorithm != "ED25519_SHA_512" or message_type != "RAW":
                raise ValueError(f"{algorithm} with {message_type} does not fit an Ed25519 key")
            key.public_key().verify(signature, message)
            return True
        mldsa_keys = mldsa.MLDSA44PrivateKey | mldsa.MLDSA65PrivateKey | mldsa.MLDSA87PrivateKey
        if isinstance(key, mldsa_keys):
            if message_type == "EXTERNAL_MU":
                if len(message) != MU_SIZE:
                    raise ValueError(f"Digest is invalid length for algorithm {algorithm}.")
                key.public_key().verify_mu(signature, message)
            elif message_type == "RAW":
                key.public_key().verify(signature, message)
            else:
                raise ValueError(f"message type {message_type} does not fit an ML-DSA key")
            return True
    except InvalidSignature:
        return False
    raise ValueError("this key does not verify")


# -- RSA encryption --------------------------------------------------------------------------


def _oaep(algorithm: str) -> padding.OAEP:
    if algorithm not in ("RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256"):
        raise ValueError(f"{algorithm} is not an RSA encryption algorithm")
    digest = _hash_of(algorithm)
    return padding.OAEP(mgf=padding.MGF1(digest), algorithm=digest, label=None)


def rsa_max_plaintext(key_bits: int, algorithm: str) -> int:
    """The longest plaintext RSA-OAEP takes: k - 2*hLen - 2 bytes."""
    return key_bits // 8 - 2 * _hash_of(algorithm).digest_size - 2


def _rsa_key(material: bytes) -> rsa.RSAPrivateKey:
    key = _load_private(material)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("not an RSA key")
    return key


def rsa_encrypt(material: bytes, algorithm: str, plaintext: bytes) -> bytes:
    """RSAES-OAEP with the public half; the raw RSA output, as AWS returns it."""
    key = _rsa_key(material)
    if len(plaintext) > rsa_max_plaintext(key.key_size, algorithm):
        raise ValueError("plaintext too long")
    return key.public_key().encrypt(plaintext, _oaep(algorithm))


def rsa_decrypt(material: bytes, algorithm: str, ciphertext: bytes) -> bytes:
    """Undo :func:`rsa_encrypt`; :class:`InvalidCiphertext` on any failure."""
    key = _rsa_key(material)
    try:
        return key.decrypt(ciphertext, _oaep(algorithm))
    except ValueError:
        raise InvalidCiphertext() from None


# -- HMAC --------------------------------------------------------------------------------------


def mac(material: bytes, algorithm: str, message: bytes) -> bytes:
    """HMAC (RFC 2104) of ``message`` with ``HMAC_SHA_*``."""
    if not algorithm.startswith("HMAC_SHA_"):
        raise ValueError(f"{algorithm} is not an HMAC algorithm")
    h = pyca_hmac.HMAC(material, _hash_of(algorithm))
    h.update(message)
    return h.finalize()


def verify_mac(material: bytes, algorithm: str, message: bytes, tag: bytes) -> bool:
    """Whether ``tag`` is the HMAC of ``message``; compared in constant time."""
    return std_hmac.compare_digest(mac(material, algorithm, message), tag)


# -- key agreement and encapsulation -----------------------------------------------------------


def derive_shared_secret(material: bytes, peer_public_key: bytes) -> bytes:
    """ECDH between the private key and a peer's SubjectPublicKeyInfo DER on the same curve."""
    key = _load_private(material)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError("not an elliptic-curve key")
    try:
        peer = serialization.load_der_public_key(peer_public_key)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise ValueError("the peer public key is not DER SubjectPublicKeyInfo") from None
    if not isinstance(peer, ec.EllipticCurvePublicKey) or peer.curve.name != key.curve.name:
        raise ValueError("the peer public key is not on the key's curve")
    return key.exchange(ec.ECDH(), peer)


def _mlkem_key(material: bytes) -> mlkem.MLKEM768PrivateKey | mlkem.MLKEM1024PrivateKey:
    key = _load_private(material)
    if not isinstance(key, mlkem.MLKEM768PrivateKey | mlkem.MLKEM1024PrivateKey):
        raise ValueError("not an ML-KEM key")
    return key


def encapsulate(material: bytes) -> tuple[bytes, bytes]:
    """(shared secret, ciphertext) under the ML-KEM key's public half."""
    return _mlkem_key(material).public_key().encapsulate()


def decapsulate(spec: str, material: bytes, ciphertext: bytes) -> bytes:
    """The shared secret in ``ciphertext``. Only a length that does not fit the spec fails
    (:class:`InvalidCiphertext`); any other ciphertext gives a pseudo-random secret (FIPS 203
    implicit rejection)."""
    if len(ciphertext) != MLKEM_CIPHERTEXT_SIZES.get(spec):
        raise InvalidCiphertext()
    try:
        return _mlkem_key(material).decapsulate(ciphertext)
    except ValueError:
        raise InvalidCiphertext() from None
