"""What each KMS key spec allows: key usages, algorithms per usage, and AWS's refusals.

The tables follow AWS's key spec reference; the lists keep AWS's order (DescribeKey and
GetPublicKey return them as they are here).
"""

from __future__ import annotations

from typing import Any

from latchkey.aws.errors import AwsError
from latchkey.store.base import KmsKeyRecord

RSA = ("RSA_2048", "RSA_3072", "RSA_4096")
NIST_EC = ("ECC_NIST_P256", "ECC_NIST_P384", "ECC_NIST_P521")
HMAC = ("HMAC_224", "HMAC_256", "HMAC_384", "HMAC_512")
ML_DSA = ("ML_DSA_44", "ML_DSA_65", "ML_DSA_87")
ML_KEM = ("ML_KEM_512", "ML_KEM_768", "ML_KEM_1024")

#: KeyUsage values each KeySpec accepts (SM2 is refused before: China Regions only).
USAGES: dict[str, tuple[str, ...]] = {
    "SYMMETRIC_DEFAULT": ("ENCRYPT_DECRYPT",),
    **dict.fromkeys(RSA, ("ENCRYPT_DECRYPT", "SIGN_VERIFY")),
    **dict.fromkeys(NIST_EC, ("SIGN_VERIFY", "KEY_AGREEMENT")),
    "ECC_SECG_P256K1": ("SIGN_VERIFY",),
    "ECC_NIST_EDWARDS25519": ("SIGN_VERIFY",),
    **dict.fromkeys(ML_DSA, ("SIGN_VERIFY",)),
    **dict.fromkeys(HMAC, ("GENERATE_VERIFY_MAC",)),
    **dict.fromkeys(ML_KEM, ("ENCAPSULATE_DECAPSULATE",)),
}

RSA_ENCRYPTION = ["RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256"]
RSA_SIGNING = [
    "RSASSA_PKCS1_V1_5_SHA_256",
    "RSASSA_PKCS1_V1_5_SHA_384",
    "RSASSA_PKCS1_V1_5_SHA_512",
    "RSASSA_PSS_SHA_256",
    "RSASSA_PSS_SHA_384",
    "RSASSA_PSS_SHA_512",
]
ECDSA = {
    "ECC_NIST_P256": "ECDSA_SHA_256",
    "ECC_NIST_P384": "ECDSA_SHA_384",
    "ECC_NIST_P521": "ECDSA_SHA_512",
    "ECC_SECG_P256K1": "ECDSA_SHA_256",
}
ED25519 = ["ED25519_SHA_512", "ED25519_PH_SHA_512"]

#: Key specs whose material is a private key (GetPublicKey answers for these).
ASYMMETRIC = frozenset(
    (*RSA, *NIST_EC, "ECC_SECG_P256K1", "ECC_NIST_EDWARDS25519", *ML_DSA, *ML_KEM)
)

#: Key specs AWS has that pyca/cryptography cannot do here (it has no ML-KEM-512).
NOT_HERE = frozenset({"ML_KEM_512"})


def signing_algorithms(key_spec: str) -> list[str]:
    if key_spec in RSA:
        return list(RSA_SIGNING)
    if key_spec in ECDSA:
        return [ECDSA[key_spec]]
    if key_spec == "ECC_NIST_EDWARDS25519":
        return list(ED25519)
    if key_spec in ML_DSA:
        return ["ML_DSA_SHAKE_256"]
    return []


def encryption_algorithms(key_spec: str) -> list[str]:
    if key_spec == "SYMMETRIC_DEFAULT":
        return ["SYMMETRIC_DEFAULT"]
    return list(RSA_ENCRYPTION) if key_spec in RSA else []


def spec_metadata(key_spec: str, key_usage: str) -> dict[str, Any]:
    """The algorithm members of KeyMetadata (and GetPublicKey) for a key of this spec and usage."""
    if key_usage == "ENCRYPT_DECRYPT":
        return {"EncryptionAlgorithms": encryption_algorithms(key_spec)}
    if key_usage == "SIGN_VERIFY":
        return {"SigningAlgorithms": signing_algorithms(key_spec)}
    if key_usage == "GENERATE_VERIFY_MAC":
        return {"MacAlgorithms": [f"HMAC_SHA_{key_spec.removeprefix('HMAC_')}"]}
    if key_usage == "KEY_AGREEMENT":
        return {"KeyAgreementAlgorithms": ["ECDH"]}
    if key_usage == "ENCAPSULATE_DECAPSULATE":
        return {"EncapsulationAlgorithms": ["ML_KEM"]}
    return {}


def check_create(key_spec: str, key_usage: str | None) -> str:
    """The KeyUsage of a new key of ``key_spec``; AWS's refusal for a pairing it does not allow.

    KeyUsage may be left out only for a symmetric encryption key.
    """
    if key_spec == "SM2":
        raise AwsError(
            "UnsupportedOperationException", "KeySpec SM2 is not supported in this Region"
        )
    if key_usage is None:
        if key_spec != "SYMMETRIC_DEFAULT":
            raise AwsError(
                "ValidationException",
                "You must specify a KeyUsage value for all KMS keys except for symmetric "
                "encryption keys.",
            )
        return "ENCRYPT_DECRYPT"
    if key_usage not in USAGES.get(key_spec, ()):
        raise AwsError(
            "ValidationException", f"KeyUsage {key_usage} is not compatible with KeySpec {key_spec}"
        )
    return key_usage


def check_usage(record: KmsKeyRecord, operation: str, *usages: str) -> None:
    """InvalidKeyUsageException unless the key's usage is one of ``usages``."""
    if record.key_usage not in usages:
        raise AwsError(
            "InvalidKeyUsageException",
            f"{record.arn} key usage is {record.key_usage} which is not valid for {operation}.",
        )


def incompatible(algorithm: str, key_spec: str) -> AwsError:
    return AwsError(
        "InvalidKeyUsageException",
        f"Algorithm {algorithm} is incompatible with key spec {key_spec}.",
    )


def check_algorithm(record: KmsKeyRecord, algorithm: str, allowed: list[str]) -> None:
    if algorithm not in allowed:
        raise incompatible(algorithm, record.key_spec)


def check_encryption_algorithm(record: KmsKeyRecord, algorithm: str) -> None:
    check_algorithm(record, algorithm, encryption_algorithms(record.key_spec))


DIGEST_SIZES = {"SHA_256": 32, "SHA_384": 48, "SHA_512": 64, "SHAKE_256": 64}


def check_signing(record: KmsKeyRecord, algorithm: str, message_type: str, length: int) -> None:
    """The algorithm fits the key, the message type fits the algorithm, and a digest (or an
    ML-DSA external mu, 64 bytes) has the algorithm's length."""
    check_algorithm(record, algorithm, signing_algorithms(record.key_spec))
    wanted: tuple[str, ...] = ("RAW", "DIGEST")
    if algorithm == "ED25519_SHA_512":
        wanted = ("RAW",)
    elif algorithm == "ED25519_PH_SHA_512":
        wanted = ("DIGEST",)
    elif record.key_spec in ML_DSA:
        wanted = ("RAW", "EXTERNAL_MU")
    if message_type not in wanted:
        raise AwsError(
            "ValidationException",
            f"Message type {message_type} is incompatible with algorithm {algorithm}.",
        )
    if message_type != "RAW":
        size = next(n for suffix, n in DIGEST_SIZES.items() if algorithm.endswith(suffix))
        if length != size:
            raise AwsError(
                "ValidationException", f"Digest is invalid length for algorithm {algorithm}."
            )


def check_mac_algorithm(record: KmsKeyRecord, algorithm: str) -> None:
    macs: list[str] = spec_metadata(record.key_spec, "GENERATE_VERIFY_MAC")["MacAlgorithms"]
    check_algorithm(record, algorithm, macs if record.key_spec in HMAC else [])
