"""CreateKey for every KeySpec botocore knows, with AWS's metadata and AWS's refusals; the
private key is stored as PKCS#8 key material wrapped by the root key (real boto3, real TLS)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization

from latchkey.cloud.kms.keys import MATERIAL_KIND, material_record_id
from latchkey_testing import Cloud, refused, start_node_thread, stop_node_thread

RSA_SIGNING = [
    "RSASSA_PKCS1_V1_5_SHA_256",
    "RSASSA_PKCS1_V1_5_SHA_384",
    "RSASSA_PKCS1_V1_5_SHA_512",
    "RSASSA_PSS_SHA_256",
    "RSASSA_PSS_SHA_384",
    "RSASSA_PSS_SHA_512",
]
# (KeySpec, KeyUsage) -> the algorithm members AWS puts in KeyMetadata.
EXPECTED: dict[tuple[str, str], dict[str, list[str]]] = {
    ("SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT"): {"EncryptionAlgorithms": ["SYMMETRIC_DEFAULT"]},
    ("RSA_2048", "ENCRYPT_DECRYPT"): {
        "EncryptionAlgorithms": ["RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256"]
    },
    ("RSA_3072", "SIGN_VERIFY"): {"SigningAlgorithms": RSA_SIGNING},
    ("ECC_NIST_P256", "SIGN_VERIFY"): {"SigningAlgorithms": ["ECDSA_SHA_256"]},
    ("ECC_NIST_P384", "SIGN_VERIFY"): {"SigningAlgorithms": ["ECDSA_SHA_384"]},
    ("ECC_NIST_P521", "SIGN_VERIFY"): {"SigningAlgorithms": ["ECDSA_SHA_512"]},
    ("ECC_NIST_P384", "KEY_AGREEMENT"): {"KeyAgreementAlgorithms": ["ECDH"]},
    ("ECC_SECG_P256K1", "SIGN_VERIFY"): {"SigningAlgorithms": ["ECDSA_SHA_256"]},
    ("ECC_NIST_EDWARDS25519", "SIGN_VERIFY"): {
        "SigningAlgorithms": ["ED25519_SHA_512", "ED25519_PH_SHA_512"]
    },
    ("ML_DSA_44", "SIGN_VERIFY"): {"SigningAlgorithms": ["ML_DSA_SHAKE_256"]},
    ("ML_DSA_65", "SIGN_VERIFY"): {"SigningAlgorithms": ["ML_DSA_SHAKE_256"]},
    ("ML_DSA_87", "SIGN_VERIFY"): {"SigningAlgorithms": ["ML_DSA_SHAKE_256"]},
    ("HMAC_224", "GENERATE_VERIFY_MAC"): {"MacAlgorithms": ["HMAC_SHA_224"]},
    ("HMAC_256", "GENERATE_VERIFY_MAC"): {"MacAlgorithms": ["HMAC_SHA_256"]},
    ("HMAC_384", "GENERATE_VERIFY_MAC"): {"MacAlgorithms": ["HMAC_SHA_384"]},
    ("HMAC_512", "GENERATE_VERIFY_MAC"): {"MacAlgorithms": ["HMAC_SHA_512"]},
    ("ML_KEM_768", "ENCAPSULATE_DECAPSULATE"): {"EncapsulationAlgorithms": ["ML_KEM"]},
    ("ML_KEM_1024", "ENCAPSULATE_DECAPSULATE"): {"EncapsulationAlgorithms": ["ML_KEM"]},
}
ALGORITHM_MEMBERS = {
    "EncryptionAlgorithms",
    "SigningAlgorithms",
    "MacAlgorithms",
    "KeyAgreementAlgorithms",
    "EncapsulationAlgorithms",
}


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    """One node for the module: key generation, not node start-up, is what these tests cost."""
    handle, thread = start_node_thread(tmp_path_factory.mktemp("keyspecs") / "data")
    made = Cloud(handle)
    try:
        yield made
    finally:
        made.close()
        stop_node_thread(handle, thread)


@pytest.fixture(scope="module")
def kms(cloud: Cloud) -> Any:
    return cloud.client("kms")


def algorithms(meta: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in meta.items() if k in ALGORITHM_MEMBERS}


@pytest.mark.parametrize(("spec", "usage"), list(EXPECTED))
def test_create_key_of_every_spec(kms: Any, spec: str, usage: str) -> None:
    meta = kms.create_key(KeySpec=spec, KeyUsage=usage)["KeyMetadata"]
    assert (meta["KeySpec"], meta["KeyUsage"], meta["KeyState"]) == (spec, usage, "Enabled")
    assert algorithms(meta) == EXPECTED[spec, usage]
    described = kms.describe_key(KeyId=meta["KeyId"])["KeyMetadata"]
    assert algorithms(described) == EXPECTED[spec, usage]
    if spec.startswith(("SYMMETRIC", "HMAC")):
        err = refused(kms.get_public_key, KeyId=meta["KeyId"])
        assert err[:2] == ("UnsupportedOperationException", 400)
        return
    public = kms.get_public_key(KeyId=meta["KeyId"])
    assert (public["KeySpec"], public["KeyUsage"]) == (spec, usage)
    assert algorithms(public) == EXPECTED[spec, usage]
    assert serialization.load_der_public_key(public["PublicKey"]) is not None


def test_rsa_4096_once(kms: Any) -> None:
    meta = kms.create_key(KeySpec="RSA_4096", KeyUsage="ENCRYPT_DECRYPT")["KeyMetadata"]
    public = serialization.load_der_public_key(kms.get_public_key(KeyId=meta["KeyId"])["PublicKey"])
    assert getattr(public, "key_size", None) == 4096


def test_symmetric_is_the_default_and_the_only_spec_without_key_usage(kms: Any) -> None:
    meta = kms.create_key()["KeyMetadata"]
    assert (meta["KeySpec"], meta["KeyUsage"]) == ("SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT")
    for spec in ("RSA_2048", "HMAC_256", "ECC_NIST_P256"):
        assert refused(kms.create_key, KeySpec=spec) == (
            "ValidationException",
            400,
            "You must specify a KeyUsage value for all KMS keys except for symmetric "
            "encryption keys.",
        )


@pytest.mark.parametrize(
    ("spec", "usage"),
    [
        ("RSA_2048", "KEY_AGREEMENT"),
        ("ECC_SECG_P256K1", "KEY_AGREEMENT"),
        ("ECC_NIST_EDWARDS25519", "KEY_AGREEMENT"),
        ("SYMMETRIC_DEFAULT", "SIGN_VERIFY"),
        ("HMAC_256", "ENCRYPT_DECRYPT"),
        ("ML_DSA_65", "ENCRYPT_DECRYPT"),
        ("ML_KEM_768", "SIGN_VERIFY"),
        ("ECC_NIST_P256", "ENCRYPT_DECRYPT"),
    ],
)
def test_a_usage_the_spec_does_not_have_is_refused(kms: Any, spec: str, usage: str) -> None:
    assert refused(kms.create_key, KeySpec=spec, KeyUsage=usage) == (
        "ValidationException",
        400,
        f"KeyUsage {usage} is not compatible with KeySpec {spec}",
    )


def test_sm2_is_refused_as_outside_china(kms: Any) -> None:
    assert refused(kms.create_key, KeySpec="SM2", KeyUsage="SIGN_VERIFY") == (
        "UnsupportedOperationException",
        400,
        "KeySpec SM2 is not supported in this Region",
    )


def test_ml_kem_512_is_refused_here(kms: Any) -> None:
    err = refused(kms.create_key, KeySpec="ML_KEM_512", KeyUsage="ENCAPSULATE_DECAPSULATE")
    assert err[:2] == ("UnsupportedOperationException", 400)
    assert "ML_KEM_512" in err.message


def test_multi_region_and_custom_key_stores_are_refused(kms: Any) -> None:
    err = refused(kms.create_key, MultiRegion=True)
    assert err[:2] == ("UnsupportedOperationException", 400)
    assert "Multi-Region keys are not supported" in err.message
    for extra in ({"Origin": "AWS_CLOUDHSM"}, {"Origin": "EXTERNAL_KEY_STORE"}):
        err = refused(kms.create_key, **extra)
        assert err[:2] == ("UnsupportedOperationException", 400)
        assert "Custom key stores" in err.message
    assert refused(kms.create_key, CustomKeyStoreId="cks-1234").code == (
        "UnsupportedOperationException"
    )
    listed = {k["KeyId"] for k in kms.list_keys()["Keys"]}
    assert all(kms.describe_key(KeyId=k)["KeyMetadata"]["MultiRegion"] is False for k in listed)


def test_customer_master_key_spec_is_the_same_parameter(kms: Any) -> None:
    meta = kms.create_key(CustomerMasterKeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")
    assert meta["KeyMetadata"]["KeySpec"] == "ECC_NIST_P256"


@pytest.mark.parametrize(
    ("spec", "usage"),
    [("ML_DSA_44", "SIGN_VERIFY"), ("ECC_NIST_EDWARDS25519", "SIGN_VERIFY"),
     ("RSA_2048", "ENCRYPT_DECRYPT")],
)  # fmt: skip
def test_customer_master_key_spec_mirrors_key_spec_in_both_answers(
    kms: Any, spec: str, usage: str
) -> None:
    key_id = kms.create_key(KeySpec=spec, KeyUsage=usage)["KeyMetadata"]["KeyId"]
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["CustomerMasterKeySpec"] == spec
    assert kms.get_public_key(KeyId=key_id)["CustomerMasterKeySpec"] == spec


def test_private_key_is_pkcs8_material_wrapped_by_the_root_key(cloud: Cloud, kms: Any) -> None:
    key_id = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
    node = cloud.node.node
    assert node.store is not None
    assert node.root_key is not None
    stored = node.store.load_key_material(key_id, 1)
    assert stored is not None
    assert stored.version == 1
    public_der = kms.get_public_key(KeyId=key_id)["PublicKey"]
    assert public_der not in stored.wrapped  # not even the public half is readable at rest
    pkcs8 = node.root_key.unwrap(MATERIAL_KIND, material_record_id(key_id, 1), stored.wrapped)
    private = serialization.load_der_private_key(pkcs8, None)
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    assert private.public_key().public_bytes(serialization.Encoding.DER, spki) == public_der
    assert node.store.load_key_material(key_id, 2) is None
