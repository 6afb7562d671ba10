"""Operations with asymmetric keys: Sign, Verify, GetPublicKey, DeriveSharedSecret (ECDH),
Encapsulate and Decapsulate (ML-KEM)."""

from __future__ import annotations

from typing import Any

from latchkey.aws.errors import AwsError
from latchkey.aws.jsonproto import encode_blob
from latchkey.cloud.kms import specs
from latchkey.cloud.kms.common import Call, Handler, authorize_key
from latchkey.cloud.kms.cryptoparams import (
    MAX_MESSAGE,
    blob_param,
    check_dry_run,
    current_material,
    enum_param,
    refuse_recipient,
    unsupported,
)
from latchkey.cloud.kms.keys import check_usable
from latchkey.crypto import keyspecs
from latchkey.crypto.aead import InvalidCiphertext
from latchkey.store.base import KmsKeyRecord

SIGNING_ALGORITHMS = (
    "RSASSA_PSS_SHA_256",
    "RSASSA_PSS_SHA_384",
    "RSASSA_PSS_SHA_512",
    "RSASSA_PKCS1_V1_5_SHA_256",
    "RSASSA_PKCS1_V1_5_SHA_384",
    "RSASSA_PKCS1_V1_5_SHA_512",
    "ECDSA_SHA_256",
    "ECDSA_SHA_384",
    "ECDSA_SHA_512",
    "SM2DSA",
    "ML_DSA_SHAKE_256",
    "ED25519_SHA_512",
    "ED25519_PH_SHA_512",
)
MESSAGE_TYPES = ("RAW", "DIGEST", "EXTERNAL_MU")
MAX_PUBLIC_KEY = 8192


def _signing_request(call: Call, action: str) -> tuple[KmsKeyRecord, bytes, str, str]:
    p = call.params
    record = call.keys.resolve(p.get("KeyId"))
    message = blob_param(p, "Message", MAX_MESSAGE)
    algorithm = enum_param(p, "SigningAlgorithm", SIGNING_ALGORITHMS)
    message_type = enum_param(p, "MessageType", MESSAGE_TYPES, default="RAW")
    keys = {"kms:SigningAlgorithm": algorithm, "kms:MessageType": message_type}
    authorize_key(call, action, record, **keys)
    check_usable(record)
    specs.check_usage(record, action, "SIGN_VERIFY")
    specs.check_signing(record, algorithm, message_type, len(message))
    return record, message, algorithm, message_type


async def sign(call: Call) -> dict[str, Any]:
    record, message, algorithm, message_type = _signing_request(call, "Sign")
    check_dry_run(call.params)
    try:
        signature = keyspecs.sign(current_material(call, record), algorithm, message, message_type)
    except keyspecs.UnsupportedSpec as exc:
        raise unsupported(exc) from None
    return {"KeyId": record.arn, "Signature": encode_blob(signature), "SigningAlgorithm": algorithm}


async def verify(call: Call) -> dict[str, Any]:
    record, message, algorithm, message_type = _signing_request(call, "Verify")
    signature = blob_param(call.params, "Signature")
    check_dry_run(call.params)
    material = current_material(call, record)
    try:
        valid = keyspecs.verify(material, algorithm, message, message_type, signature)
    except keyspecs.UnsupportedSpec as exc:
        raise unsupported(exc) from None
    if not valid:  # AWS answers an invalid signature with an error, never SignatureValid=false
        raise AwsError("KMSInvalidSignatureException", "")
    return {"KeyId": record.arn, "SignatureValid": True, "SigningAlgorithm": algorithm}


async def get_public_key(call: Call) -> dict[str, Any]:
    record = call.keys.resolve(call.params.get("KeyId"))
    authorize_key(call, "GetPublicKey", record)
    check_usable(record)
    if record.key_spec not in specs.ASYMMETRIC:
        raise AwsError(
            "UnsupportedOperationException",
            f"{record.arn} key spec is {record.key_spec} which is not valid for GetPublicKey.",
        )
    out: dict[str, Any] = {
        "KeyId": record.arn,
        "PublicKey": encode_blob(keyspecs.public_key_der(current_material(call, record))),
        # The deprecated mirror of KeySpec, filled for every spec as DescribeKey fills it (AWS
        # does so for the newer specs too, though the model's enum stops at SM2).
        "CustomerMasterKeySpec": record.key_spec,
        "KeySpec": record.key_spec,
        "KeyUsage": record.key_usage,
        **specs.spec_metadata(record.key_spec, record.key_usage),
    }
    return out


async def derive_shared_secret(call: Call) -> dict[str, Any]:
    p = call.params
    refuse_recipient(p)
    record = call.keys.resolve(p.get("KeyId"))
    algorithm = enum_param(p, "KeyAgreementAlgorithm", ("ECDH",))
    peer = blob_param(p, "PublicKey", MAX_PUBLIC_KEY)
    authorize_key(call, "DeriveSharedSecret", record, **{"kms:KeyAgreementAlgorithm": algorithm})
    check_usable(record)
    specs.check_usage(record, "DeriveSharedSecret", "KEY_AGREEMENT")
    check_dry_run(p)
    try:
        secret = keyspecs.derive_shared_secret(current_material(call, record), peer)
    except ValueError:
        raise AwsError("ValidationException", "") from None  # AWS says no more than this
    return {
        "KeyId": record.arn,
        "SharedSecret": encode_blob(secret),
        "KeyAgreementAlgorithm": algorithm,
        "KeyOrigin": record.origin,
    }


def _kem_request(call: Call) -> tuple[KmsKeyRecord, str]:
    p = call.params
    record = call.keys.resolve(p.get("KeyId"))
    algorithm = enum_param(p, "EncapsulationAlgorithm", ("ML_KEM",))
    return record, algorithm


def _check_kem(call: Call, action: str, record: KmsKeyRecord) -> None:
    authorize_key(call, action, record)
    check_usable(record)
    specs.check_usage(record, action, "ENCAPSULATE_DECAPSULATE")
    check_dry_run(call.params)


async def encapsulate(call: Call) -> dict[str, Any]:
    record, algorithm = _kem_request(call)
    _check_kem(call, "Encapsulate", record)
    try:
        secret, ciphertext = keyspecs.encapsulate(current_material(call, record))
    except keyspecs.UnsupportedSpec as exc:
        raise unsupported(exc) from None
    return {
        "KeyId": record.arn,
        "SharedSecret": encode_blob(secret),
        "SharedSecretCiphertextBlob": encode_blob(ciphertext),
        "EncapsulationAlgorithm": algorithm,
    }


async def decapsulate(call: Call) -> dict[str, Any]:
    record, algorithm = _kem_request(call)
    ciphertext = blob_param(call.params, "SharedSecretCiphertextBlob")
    _check_kem(call, "Decapsulate", record)
    material = current_material(call, record)
    try:
        secret = keyspecs.decapsulate(record.key_spec, material, ciphertext)
    except InvalidCiphertext:
        raise AwsError("InvalidCiphertextException", "") from None
    return {
        "KeyId": record.arn,
        "SharedSecret": encode_blob(secret),
        "EncapsulationAlgorithm": algorithm,
    }


OPERATIONS: dict[str, Handler] = {
    "Sign": sign,
    "Verify": verify,
    "GetPublicKey": get_public_key,
    "DeriveSharedSecret": derive_shared_secret,
    "Encapsulate": encapsulate,
    "Decapsulate": decapsulate,
}
READ_ONLY = frozenset(OPERATIONS)
# Never Message, Signature or SharedSecretCiphertextBlob; a peer's PublicKey is not secret.
AUDITABLE_PARAMS = frozenset(
    {
        "KeyId",
        "SigningAlgorithm",
        "MessageType",
        "KeyAgreementAlgorithm",
        "PublicKey",
        "EncapsulationAlgorithm",
        "DryRun",
    }
)
