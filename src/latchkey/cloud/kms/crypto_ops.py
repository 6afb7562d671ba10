"""Cryptographic operations: Encrypt, Decrypt, GenerateDataKey."""

from __future__ import annotations

import secrets
from typing import Any

from latchkey.aws.errors import AwsError, validation_error
from latchkey.aws.jsonproto import decode_blob, encode_blob
from latchkey.cloud.kms.common import (
    Call,
    Handler,
    authorize_key,
    check_symmetric_algorithm,
    context_keys,
    encryption_context,
    plaintext_param,
)
from latchkey.cloud.kms.keys import check_usable
from latchkey.crypto import ciphertext
from latchkey.crypto.aead import InvalidCiphertext
from latchkey.store.base import KmsKeyRecord


def _encrypt(call: Call, record: KmsKeyRecord, plaintext: bytes, ctx: dict[str, str]) -> bytes:
    material = call.keys.material(record, record.current_version)
    return ciphertext.encrypt_symmetric(
        material,
        key_id=record.key_id,
        material_version=record.current_version,
        plaintext=plaintext,
        context=ctx,
    )


async def encrypt(call: Call) -> dict[str, Any]:
    record = call.keys.resolve(call.params.get("KeyId"))
    plaintext = plaintext_param(call.params)
    ctx = encryption_context(call.params)
    check_symmetric_algorithm(call.params)
    authorize_key(call, "Encrypt", record, **context_keys(ctx))
    check_usable(record)
    blob = _encrypt(call, record, plaintext, ctx)
    return {
        "CiphertextBlob": encode_blob(blob),
        "KeyId": record.arn,
        "EncryptionAlgorithm": "SYMMETRIC_DEFAULT",
    }


async def decrypt(call: Call) -> dict[str, Any]:
    if "CiphertextBlob" not in call.params:
        raise validation_error("ciphertextBlob", None, "Member must not be null")
    data = decode_blob(call.params["CiphertextBlob"], "CiphertextBlob")
    ctx = encryption_context(call.params)
    check_symmetric_algorithm(call.params)
    try:
        blob = ciphertext.decode_blob(data)
    except InvalidCiphertext:
        raise AwsError("InvalidCiphertextException", "") from None
    try:
        record = call.keys.resolve(blob.key_id)
    except AwsError:
        raise AwsError("InvalidCiphertextException", "") from None
    if call.params.get("KeyId") is not None:
        wanted = call.keys.resolve(call.params["KeyId"])
        if wanted.key_id != record.key_id:
            raise AwsError(
                "IncorrectKeyException",
                "The key ID in the request does not identify a CMK that can perform this "
                "operation.",
            )
    authorize_key(call, "Decrypt", record, **context_keys(ctx))
    check_usable(record)
    material = call.keys.material(record, blob.material_version)
    try:
        plaintext = ciphertext.decrypt_symmetric(material, blob, ctx)
    except InvalidCiphertext:
        raise AwsError("InvalidCiphertextException", "") from None
    return {
        "KeyId": record.arn,
        "Plaintext": encode_blob(plaintext),
        "EncryptionAlgorithm": "SYMMETRIC_DEFAULT",
    }


async def generate_data_key(call: Call) -> dict[str, Any]:
    p = call.params
    record = call.keys.resolve(p.get("KeyId"))
    spec = p.get("KeySpec")
    count = p.get("NumberOfBytes")
    if (spec is None) == (count is None):
        raise AwsError("ValidationException", "Please specify either number of bytes or key spec.")
    if spec is not None:
        sizes = {"AES_256": 32, "AES_128": 16}
        if spec not in sizes:
            raise validation_error(
                "keySpec", spec, "Member must satisfy enum value set: [AES_256, AES_128]"
            )
        count = sizes[spec]
    if not isinstance(count, int) or not 1 <= count <= 1024:
        raise validation_error("numberOfBytes", count, "Member must have value between 1 and 1024")
    ctx = encryption_context(p)
    authorize_key(call, "GenerateDataKey", record, **context_keys(ctx))
    check_usable(record)
    plaintext = secrets.token_bytes(count)
    blob = _encrypt(call, record, plaintext, ctx)
    return {
        "CiphertextBlob": encode_blob(blob),
        "Plaintext": encode_blob(plaintext),
        "KeyId": record.arn,
    }


OPERATIONS: dict[str, Handler] = {
    "Encrypt": encrypt,
    "Decrypt": decrypt,
    "GenerateDataKey": generate_data_key,
}
READ_ONLY: frozenset[str] = frozenset()
# Never Plaintext or CiphertextBlob.
AUDITABLE_PARAMS = frozenset(
    {"KeyId", "KeySpec", "EncryptionContext", "EncryptionAlgorithm", "NumberOfBytes"}
)
