"""Key material per KMS key spec: every signature checked by pyca straight from the public key,
RSA-OAEP, HMAC against the standard library, ECDH from both sides, ML-KEM both ways."""

from __future__ import annotations

import hashlib
import hmac
from functools import cache

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, mldsa, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from latchkey.crypto import keyspecs
from latchkey.crypto.aead import InvalidCiphertext

MESSAGE = b"latchkey signs this"
HASHES = {"SHA_256": hashes.SHA256, "SHA_384": hashes.SHA384, "SHA_512": hashes.SHA512}


@cache
def material(spec: str) -> bytes:
    """One key per spec for the whole module (RSA-4096 generation is slow)."""
    return keyspecs.generate(spec)


def public(spec: str) -> object:
    return serialization.load_der_public_key(keyspecs.public_key_der(material(spec)))


def _hash(algorithm: str) -> hashes.HashAlgorithm:
    return next(h() for suffix, h in HASHES.items() if algorithm.endswith(suffix))


def pyca_verify(spec: str, algorithm: str, signature: bytes, message: bytes, digest: bool) -> None:
    """Verify the way a client does: pyca, the SPKI public key, the algorithm's parameters."""
    key = public(spec)
    chosen: hashes.HashAlgorithm | Prehashed = _hash(algorithm)
    if digest:
        chosen = Prehashed(_hash(algorithm))
    if isinstance(key, rsa.RSAPublicKey):
        pad: padding.AsymmetricPadding = padding.PKCS1v15()
        if "PSS" in algorithm:
            h = _hash(algorithm)
            pad = padding.PSS(mgf=padding.MGF1(h), salt_length=h.digest_size)
        key.verify(signature, message, pad, chosen)
    elif isinstance(key, ec.EllipticCurvePublicKey):
        key.verify(signature, message, ec.ECDSA(chosen))
    else:
        raise AssertionError(type(key))


SIGNING = [
    ("RSA_2048", "RSASSA_PSS_SHA_256"),
    ("RSA_2048", "RSASSA_PSS_SHA_512"),
    ("RSA_2048", "RSASSA_PKCS1_V1_5_SHA_384"),
    ("RSA_3072", "RSASSA_PKCS1_V1_5_SHA_256"),
    ("ECC_NIST_P256", "ECDSA_SHA_256"),
    ("ECC_NIST_P384", "ECDSA_SHA_384"),
    ("ECC_NIST_P521", "ECDSA_SHA_512"),
    ("ECC_SECG_P256K1", "ECDSA_SHA_256"),
]


@pytest.mark.parametrize(("spec", "algorithm"), SIGNING)
def test_raw_and_digest_signatures_verify_with_the_public_key(spec: str, algorithm: str) -> None:
    raw = keyspecs.sign(material(spec), algorithm, MESSAGE, "RAW")
    pyca_verify(spec, algorithm, raw, MESSAGE, digest=False)
    h = hashes.Hash(_hash(algorithm))
    h.update(MESSAGE)
    digest = h.finalize()
    signed_digest = keyspecs.sign(material(spec), algorithm, digest, "DIGEST")
    pyca_verify(spec, algorithm, signed_digest, digest, digest=True)
    # A signature of the digest is a signature of the message.
    pyca_verify(spec, algorithm, signed_digest, MESSAGE, digest=False)
    assert keyspecs.verify(material(spec), algorithm, MESSAGE, "RAW", signed_digest)
    assert not keyspecs.verify(material(spec), algorithm, MESSAGE + b"!", "RAW", raw)


@pytest.mark.slow
def test_rsa_4096_signs_and_encrypts() -> None:
    spec = "RSA_4096"
    signature = keyspecs.sign(material(spec), "RSASSA_PSS_SHA_384", MESSAGE, "RAW")
    pyca_verify(spec, "RSASSA_PSS_SHA_384", signature, MESSAGE, digest=False)
    sealed = keyspecs.rsa_encrypt(material(spec), "RSAES_OAEP_SHA_1", b"x" * 470)
    assert len(sealed) == 512
    assert keyspecs.rsa_decrypt(material(spec), "RSAES_OAEP_SHA_1", sealed) == b"x" * 470


def test_a_digest_of_the_wrong_length_is_refused() -> None:
    with pytest.raises(ValueError, match="Digest is invalid length"):
        keyspecs.sign(material("ECC_NIST_P256"), "ECDSA_SHA_256", b"short", "DIGEST")


def test_ed25519_signs_raw_messages() -> None:
    signature = keyspecs.sign(material("ECC_NIST_EDWARDS25519"), "ED25519_SHA_512", MESSAGE, "RAW")
    key = public("ECC_NIST_EDWARDS25519")
    assert isinstance(key, ed25519.Ed25519PublicKey)
    key.verify(signature, MESSAGE)
    with pytest.raises(keyspecs.UnsupportedSpec):
        keyspecs.sign(material("ECC_NIST_EDWARDS25519"), "ED25519_PH_SHA_512", b"d" * 64, "DIGEST")


@pytest.mark.parametrize(
    ("spec", "cls"),
    [
        ("ML_DSA_44", mldsa.MLDSA44PublicKey),
        ("ML_DSA_65", mldsa.MLDSA65PublicKey),
        ("ML_DSA_87", mldsa.MLDSA87PublicKey),
    ],
)
def test_ml_dsa_signs_raw_messages_and_external_mu(spec: str, cls: type) -> None:
    key = public(spec)
    assert isinstance(key, cls)
    signature = keyspecs.sign(material(spec), "ML_DSA_SHAKE_256", MESSAGE, "RAW")
    key.verify(signature, MESSAGE)  # type: ignore[attr-defined]
    hasher = mldsa.MLDSAMuHasher(key)
    hasher.update(MESSAGE)
    mu = hasher.finalize()
    over_mu = keyspecs.sign(material(spec), "ML_DSA_SHAKE_256", mu, "EXTERNAL_MU")
    key.verify(over_mu, MESSAGE)  # type: ignore[attr-defined]
    assert keyspecs.verify(material(spec), "ML_DSA_SHAKE_256", MESSAGE, "RAW", over_mu)
    assert not keyspecs.verify(material(spec), "ML_DSA_SHAKE_256", b"other", "RAW", over_mu)


@pytest.mark.parametrize(("spec", "bits"), [("RSA_2048", 2048), ("RSA_3072", 3072)])
@pytest.mark.parametrize(("algorithm", "h"), [("RSAES_OAEP_SHA_1", 20), ("RSAES_OAEP_SHA_256", 32)])
def test_rsa_oaep_round_trip_at_the_size_limit(
    spec: str, bits: int, algorithm: str, h: int
) -> None:
    limit = keyspecs.rsa_max_plaintext(bits, algorithm)
    assert limit == bits // 8 - 2 * h - 2  # 214 / 190 bytes for RSA_2048, as AWS documents
    plaintext = b"p" * limit
    sealed = keyspecs.rsa_encrypt(material(spec), algorithm, plaintext)
    key = serialization.load_der_private_key(material(spec), None)
    assert isinstance(key, rsa.RSAPrivateKey)
    sha1 = algorithm.endswith("SHA_1")  # RSAES_OAEP_SHA_1 is an AWS algorithm
    digest = hashes.SHA1() if sha1 else hashes.SHA256()  # noqa: S303
    oaep = padding.OAEP(mgf=padding.MGF1(digest), algorithm=digest, label=None)
    assert key.decrypt(sealed, oaep) == plaintext
    with pytest.raises(ValueError, match="too long"):
        keyspecs.rsa_encrypt(material(spec), algorithm, plaintext + b"!")
    other = "RSAES_OAEP_SHA_256" if algorithm.endswith("SHA_1") else "RSAES_OAEP_SHA_1"
    with pytest.raises(InvalidCiphertext):
        keyspecs.rsa_decrypt(material(spec), other, sealed)


@pytest.mark.parametrize(("spec", "size"), list(keyspecs.HMAC_KEY_SIZES.items()))
def test_hmac_matches_the_standard_library(spec: str, size: int) -> None:
    key = material(spec)
    assert len(key) == size
    algorithm = f"HMAC_SHA_{spec.removeprefix('HMAC_')}"
    digest = getattr(hashlib, f"sha{spec.removeprefix('HMAC_')}")
    tag = keyspecs.mac(key, algorithm, MESSAGE)
    assert tag == hmac.new(key, MESSAGE, digest).digest()
    assert keyspecs.verify_mac(key, algorithm, MESSAGE, tag)
    assert not keyspecs.verify_mac(key, algorithm, MESSAGE, tag[:-1] + bytes([tag[-1] ^ 1]))


@pytest.mark.parametrize("spec", ["ECC_NIST_P256", "ECC_NIST_P384", "ECC_NIST_P521"])
def test_ecdh_gives_both_sides_the_same_secret(spec: str) -> None:
    curve = keyspecs.EC_CURVES[spec]()
    peer = ec.generate_private_key(curve)
    peer_spki = peer.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    ours = keyspecs.derive_shared_secret(material(spec), peer_spki)
    ours_public = public(spec)
    assert isinstance(ours_public, ec.EllipticCurvePublicKey)
    assert ours == peer.exchange(ec.ECDH(), ours_public)


def test_ecdh_refuses_a_peer_on_another_curve_and_garbage() -> None:
    other = ec.generate_private_key(ec.SECP384R1()).public_key()
    spki = other.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with pytest.raises(ValueError, match="curve"):
        keyspecs.derive_shared_secret(material("ECC_NIST_P256"), spki)
    with pytest.raises(ValueError, match="SubjectPublicKeyInfo"):
        keyspecs.derive_shared_secret(material("ECC_NIST_P256"), b"not a key")


@pytest.mark.parametrize("spec", ["ML_KEM_768", "ML_KEM_1024"])
def test_ml_kem_encapsulates_and_decapsulates(spec: str) -> None:
    secret, ciphertext = keyspecs.encapsulate(material(spec))
    assert len(secret) == 32
    assert len(ciphertext) == keyspecs.MLKEM_CIPHERTEXT_SIZES[spec]
    assert keyspecs.decapsulate(spec, material(spec), ciphertext) == secret
    tampered = bytes([ciphertext[0] ^ 1]) + ciphertext[1:]
    assert keyspecs.decapsulate(spec, material(spec), tampered) != secret  # implicit rejection
    with pytest.raises(InvalidCiphertext):
        keyspecs.decapsulate(spec, material(spec), ciphertext[:-1])


def test_ml_kem_512_is_reported_unsupported() -> None:
    with pytest.raises(keyspecs.UnsupportedSpec):
        keyspecs.generate("ML_KEM_512")


def test_data_key_pairs_are_pkcs8_and_spki() -> None:
    private, spki = keyspecs.generate_pair("ECC_NIST_P256")
    key = serialization.load_der_private_key(private, None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert (
        key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        == spki
    )
    assert keyspecs.generate_pair("ECC_NIST_P256")[0] != private


def test_symmetric_material_is_random_and_sized() -> None:
    assert len(keyspecs.generate("SYMMETRIC_DEFAULT")) == 32
    assert keyspecs.generate("SYMMETRIC_DEFAULT") != keyspecs.generate("SYMMETRIC_DEFAULT")


def test_a_bad_signature_is_false_not_an_error() -> None:
    spec = "ECC_NIST_P256"
    assert not keyspecs.verify(material(spec), "ECDSA_SHA_256", MESSAGE, "RAW", b"\x30\x00")
    with pytest.raises(InvalidSignature):
        pyca_verify(spec, "ECDSA_SHA_256", b"\x30\x00", MESSAGE, digest=False)
