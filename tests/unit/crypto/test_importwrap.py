"""latchkey.crypto.importwrap: wrapping keys, unwrapping as AWS KMS defines each wrapping
algorithm (material wrapped here independently with pyca, as OpenSSL does it), the imported
private key's spec, and the material fingerprint."""

from __future__ import annotations

import os

import pytest
from cryptography.hazmat.primitives import hashes, keywrap, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from latchkey.crypto import importwrap
from latchkey.crypto.importwrap import InvalidCiphertext, WrappingKey

ALGORITHMS = sorted(importwrap.WRAPPING_ALGORITHMS)


@pytest.fixture(scope="module")
def wrapping() -> WrappingKey:
    return importwrap.generate_wrapping_key("RSA_2048")


def wrap(public_der: bytes, algorithm: str, material: bytes, aes_key: bytes | None = None) -> bytes:
    public = serialization.load_der_public_key(public_der)
    assert isinstance(public, rsa.RSAPublicKey)
    digest = hashes.SHA256 if algorithm.endswith("SHA_256") else hashes.SHA1
    oaep = padding.OAEP(mgf=padding.MGF1(algorithm=digest()), algorithm=digest(), label=None)
    if algorithm.startswith("RSAES_OAEP"):
        return public.encrypt(material, oaep)
    aes_key = aes_key if aes_key is not None else os.urandom(32)
    return public.encrypt(aes_key, oaep) + keywrap.aes_key_wrap_with_padding(aes_key, material)


def test_wrapping_key_pair_matches_and_is_fresh(wrapping: WrappingKey) -> None:
    private = serialization.load_der_private_key(wrapping.private_der, password=None)
    assert isinstance(private, rsa.RSAPrivateKey)
    assert private.key_size == 2048
    public = serialization.load_der_public_key(wrapping.public_der)
    assert isinstance(public, rsa.RSAPublicKey)
    assert public.public_numbers() == private.public_key().public_numbers()
    assert "redacted" in repr(wrapping)
    assert wrapping.private_der.hex() not in repr(wrapping)


def test_unknown_wrapping_key_spec() -> None:
    with pytest.raises(ValueError, match="RSA_1024"):
        importwrap.generate_wrapping_key("RSA_1024")


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize("size", [1, 28, 32, 64])
def test_round_trip(wrapping: WrappingKey, algorithm: str, size: int) -> None:
    material = os.urandom(size)
    blob = wrap(wrapping.public_der, algorithm, material)
    assert importwrap.unwrap_key_material(wrapping.private_der, algorithm, blob) == material


@pytest.mark.parametrize("aes_size", [16, 24, 32])
def test_rsa_aes_key_wrap_takes_any_aes_key_size(wrapping: WrappingKey, aes_size: int) -> None:
    material = os.urandom(48)
    blob = wrap(wrapping.public_der, "RSA_AES_KEY_WRAP_SHA_256", material, os.urandom(aes_size))
    got = importwrap.unwrap_key_material(wrapping.private_der, "RSA_AES_KEY_WRAP_SHA_256", blob)
    assert got == material


def test_rsa_aes_key_wrap_carries_a_whole_private_key(wrapping: WrappingKey) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    der = key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    blob = wrap(wrapping.public_der, "RSA_AES_KEY_WRAP_SHA_1", der)
    assert (
        importwrap.unwrap_key_material(wrapping.private_der, "RSA_AES_KEY_WRAP_SHA_1", blob) == der
    )


@pytest.mark.parametrize(
    ("wrapped_with", "unwrapped_with"),
    [
        ("RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256"),
        ("RSAES_OAEP_SHA_256", "RSA_AES_KEY_WRAP_SHA_256"),
        ("RSA_AES_KEY_WRAP_SHA_1", "RSA_AES_KEY_WRAP_SHA_256"),
        ("RSA_AES_KEY_WRAP_SHA_256", "RSAES_OAEP_SHA_256"),
    ],
)
def test_another_algorithm_fails_opaquely(
    wrapping: WrappingKey, wrapped_with: str, unwrapped_with: str
) -> None:
    blob = wrap(wrapping.public_der, wrapped_with, os.urandom(32))
    with pytest.raises(InvalidCiphertext):
        importwrap.unwrap_key_material(wrapping.private_der, unwrapped_with, blob)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_damaged_or_foreign_blobs_fail_opaquely(wrapping: WrappingKey, algorithm: str) -> None:
    other = importwrap.generate_wrapping_key("RSA_2048")
    good = wrap(wrapping.public_der, algorithm, os.urandom(32))
    flipped = good[:-1] + bytes([good[-1] ^ 1])
    for blob in (b"", good[:-1], flipped, good + b"\x00" * 8, os.urandom(len(good))):
        with pytest.raises(InvalidCiphertext):
            importwrap.unwrap_key_material(wrapping.private_der, algorithm, blob)
    with pytest.raises(InvalidCiphertext):
        importwrap.unwrap_key_material(other.private_der, algorithm, good)


def test_aes_key_of_a_size_aes_has_not_is_refused(wrapping: WrappingKey) -> None:
    public = serialization.load_der_public_key(wrapping.public_der)
    assert isinstance(public, rsa.RSAPublicKey)
    oaep = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
    blob = public.encrypt(os.urandom(20), oaep) + os.urandom(40)
    with pytest.raises(InvalidCiphertext):
        importwrap.unwrap_key_material(wrapping.private_der, "RSA_AES_KEY_WRAP_SHA_256", blob)


def test_unreadable_wrapping_key_and_unknown_algorithm(wrapping: WrappingKey) -> None:
    with pytest.raises(InvalidCiphertext):
        importwrap.unwrap_key_material(b"not a key", "RSAES_OAEP_SHA_256", os.urandom(256))
    with pytest.raises(ValueError, match="RSAES_PKCS1_V1_5"):
        importwrap.unwrap_key_material(wrapping.private_der, "RSAES_PKCS1_V1_5", b"x")


def _pkcs8(key: object) -> bytes:
    out = key.private_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    assert isinstance(out, bytes)
    return out


@pytest.mark.parametrize(
    ("make", "spec"),
    [
        (lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048), "RSA_2048"),
        (lambda: ec.generate_private_key(ec.SECP256R1()), "ECC_NIST_P256"),
        (lambda: ec.generate_private_key(ec.SECP384R1()), "ECC_NIST_P384"),
        (lambda: ec.generate_private_key(ec.SECP521R1()), "ECC_NIST_P521"),
        (lambda: ec.generate_private_key(ec.SECP256K1()), "ECC_SECG_P256K1"),
        (ed25519.Ed25519PrivateKey.generate, "ECC_NIST_EDWARDS25519"),
    ],
)
def test_private_key_spec(make: object, spec: str) -> None:
    key = make()  # type: ignore[operator]
    der = _pkcs8(key)
    assert importwrap.private_key_spec(der) == (spec, der)


def test_private_key_spec_refuses_what_no_kms_key_spec_names() -> None:
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505
    other_curve = ec.generate_private_key(ec.SECP224R1())
    for material in (_pkcs8(small), _pkcs8(other_curve), os.urandom(32), b""):
        with pytest.raises(ValueError, match="private key"):
            importwrap.private_key_spec(material)


def test_fingerprint_is_keyed_and_bound_to_the_key_id() -> None:
    fp_key, material = os.urandom(32), os.urandom(32)
    one = importwrap.material_fingerprint(fp_key, "key-1", material)
    assert one == importwrap.material_fingerprint(fp_key, "key-1", material)
    assert len(one) == 64
    assert int(one, 16) >= 0
    assert material.hex() not in one
    assert one != importwrap.material_fingerprint(os.urandom(32), "key-1", material)
    assert one != importwrap.material_fingerprint(fp_key, "key-2", material)
    assert one != importwrap.material_fingerprint(fp_key, "key-1", os.urandom(32))
    # The key id is length-prefixed: moving bytes between id and material changes the answer.
    assert importwrap.material_fingerprint(fp_key, "ab", b"c") != (
        importwrap.material_fingerprint(fp_key, "a", b"bc")
    )
