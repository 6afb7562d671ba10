"""Encrypt, Decrypt and ReEncrypt with symmetric keys (latchkey's versioned blob) and RSA keys
(raw RSAES-OAEP output, as AWS returns it: Decrypt then needs KeyId and EncryptionAlgorithm)."""

from __future__ import annotations

from typing import Any

from latchkey.aws.errors import AwsError
from latchkey.aws.jsonproto import encode_blob
from latchkey.cloud.kms import specs
from latchkey.cloud.kms.common import (
    Call,
    Handler,
    authorize_key,
    context_keys,
    encryption_context,
    plaintext_param,
)
from latchkey.cloud.kms.cryptoparams import (
    MAX_CIPHERTEXT,
    blob_param,
    check_dry_run,
    current_material,
    enum_param,
    ignores_ciphertext,
    key_material_id,
    refuse_recipient,
)
from latchkey.cloud.kms.keys import check_usable
from latchkey.crypto import ciphertext, keyspecs
from latchkey.crypto.aead import InvalidCiphertext
from latchkey.crypto.ciphertext import CiphertextBlob
from latchkey.store.base import KmsKeyRecord

ALGORITHMS = ("SYMMETRIC_DEFAULT", "RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256", "SM2PKE")


def _invalid_ciphertext() -> AwsError:
    return AwsError("InvalidCiphertextException", "")


def _algorithm(params: dict[str, Any], name: str = "EncryptionAlgorithm") -> str:
    return enum_param(params, name, ALGORITHMS, default="SYMMETRIC_DEFAULT")


def algorithm_keys(algorithm: str, ctx: dict[str, str]) -> dict[str, Any]:
    return {**context_keys(ctx), "kms:EncryptionAlgorithm": algorithm}


def check_can_seal(
    record: KmsKeyRecord, operation: str, algorithm: str, ctx: dict[str, str], size: int
) -> None:
    """Everything that could refuse an encryption, checked before any work is done."""
    specs.check_usage(record, operation, "ENCRYPT_DECRYPT")
    specs.check_encryption_algorithm(record, algorithm)
    if record.key_spec in specs.RSA:
        if ctx:
            raise AwsError(
                "ValidationException",
                "EncryptionContext is not supported for asymmetric KMS keys.",
            )
        limit = keyspecs.rsa_max_plaintext(keyspecs.RSA_SIZES[record.key_spec], algorithm)
        if size > limit:
            raise AwsError(
                "ValidationException",
                f"Algorithm {algorithm} and key spec {record.key_spec} cannot encrypt data "
                f"larger than {limit} bytes.",
            )


def seal(
    call: Call, record: KmsKeyRecord, algorithm: str, plaintext: bytes, ctx: dict[str, str]
) -> bytes:
    """Encrypt under the key's current material (checked with :func:`check_can_seal`)."""
    material = current_material(call, record)
    if record.key_spec in specs.RSA:
        return keyspecs.rsa_encrypt(material, algorithm, plaintext)
    return ciphertext.encrypt_symmetric(
        material,
        key_id=record.key_id,
        material_version=record.current_version,
        plaintext=plaintext,
        context=ctx,
    )


def source_key(
    call: Call, key_id: object, data: bytes
) -> tuple[KmsKeyRecord, CiphertextBlob | None]:
    """The key that can open ``data``: the named RSA key (raw RSA ciphertext, no blob), or the
    key the symmetric blob names, which must be the named key if one is named."""
    wanted = call.keys.resolve(key_id) if key_id is not None else None
    if wanted is not None and wanted.key_spec in specs.RSA:
        return wanted, None
    try:
        blob = ciphertext.decode_blob(data)
    except InvalidCiphertext:
        raise _invalid_ciphertext() from None
    try:
        record = call.keys.resolve(blob.key_id)
    except AwsError:
        raise _invalid_ciphertext() from None
    if wanted is not None and wanted.key_id != record.key_id:
        raise AwsError(
            "IncorrectKeyException",
            "The key ID in the request does not identify a CMK that can perform this operation.",
        )
    return record, blob


def check_can_open(
    record: KmsKeyRecord, operation: str, algorithm: str, ctx: dict[str, str]
) -> None:
    specs.check_usage(record, operation, "ENCRYPT_DECRYPT")
    specs.check_encryption_algorithm(record, algorithm)
    if record.key_spec in specs.RSA and ctx:
        raise AwsError(
            "ValidationException", "EncryptionContext is not supported for asymmetric KMS keys."
        )


def open_ciphertext(
    call: Call,
    record: KmsKeyRecord,
    blob: CiphertextBlob | None,
    data: bytes,
    algorithm: str,
    ctx: dict[str, str],
) -> bytes:
    """Decrypt with the material version the blob names (RSA keys: their only version)."""
    try:
        if blob is None:
            material = current_material(call, record)
            return keyspecs.rsa_decrypt(material, algorithm, data)
        material = call.keys.material(record, blob.material_version)
        return ciphertext.decrypt_symmetric(material, blob, ctx)
    except InvalidCiphertext:
        raise _invalid_ciphertext() from None


async def encrypt(call: Call) -> dict[str, Any]:
    p = call.params
    record = call.keys.resolve(p.get("KeyId"))
    plaintext = plaintext_param(p)
    ctx = encryption_context(p)
    algorithm = _algorithm(p)
    authorize_key(call, "Encrypt", record, **algorithm_keys(algorithm, ctx))
    check_usable(record)
    check_can_seal(record, "Encrypt", algorithm, ctx, len(plaintext))
    check_dry_run(p)
    return {
        "CiphertextBlob": encode_blob(seal(call, record, algorithm, plaintext, ctx)),
        "KeyId": record.arn,
        "EncryptionAlgorithm": algorithm,
    }


async def decrypt(call: Call) -> dict[str, Any]:
    p = call.params
    refuse_recipient(p)
    ctx = encryption_context(p)
    algorithm = _algorithm(p)
    if ignores_ciphertext(p):
        record = call.keys.resolve(p.get("KeyId"))
        authorize_key(call, "Decrypt", record, **algorithm_keys(algorithm, ctx))
        check_usable(record)
        check_dry_run(p)
    data = blob_param(p, "CiphertextBlob", MAX_CIPHERTEXT)
    record, blob = source_key(call, p.get("KeyId"), data)
    authorize_key(call, "Decrypt", record, **algorithm_keys(algorithm, ctx))
    check_usable(record)
    check_can_open(record, "Decrypt", algorithm, ctx)
    check_dry_run(p)
    plaintext = open_ciphertext(call, record, blob, data, algorithm, ctx)
    version = blob.material_version if blob is not None else 0
    return {
        "KeyId": record.arn,
        "Plaintext": encode_blob(plaintext),
        "EncryptionAlgorithm": algorithm,
        **key_material_id(call, record, version),
    }


async def re_encrypt(call: Call) -> dict[str, Any]:
    p = call.params
    source_ctx = encryption_context({"EncryptionContext": p.get("SourceEncryptionContext")})
    dest_ctx = encryption_context({"EncryptionContext": p.get("DestinationEncryptionContext")})
    source_algorithm = _algorithm(p, "SourceEncryptionAlgorithm")
    dest_algorithm = _algorithm(p, "DestinationEncryptionAlgorithm")
    destination = call.keys.resolve(p.get("DestinationKeyId"))
    if ignores_ciphertext(p):
        source = call.keys.resolve(p.get("SourceKeyId"))
        blob: CiphertextBlob | None = None
        data = b""
    else:
        data = blob_param(p, "CiphertextBlob", MAX_CIPHERTEXT)
        source, blob = source_key(call, p.get("SourceKeyId"), data)
    same = {"kms:ReEncryptOnSameKey": source.key_id == destination.key_id}
    # Each half's kms:RequestAlias: the alias, if any, that named its key (there is no KeyId).
    from_keys = {
        **algorithm_keys(source_algorithm, source_ctx),
        **call.keys.request_keys(p.get("SourceKeyId")),
    }
    to_keys = {
        **algorithm_keys(dest_algorithm, dest_ctx),
        **call.keys.request_keys(p.get("DestinationKeyId")),
    }
    authorize_key(call, "ReEncryptFrom", source, **from_keys, **same)
    authorize_key(call, "ReEncryptTo", destination, **to_keys, **same)
    check_usable(source)
    check_usable(destination)
    check_can_open(source, "ReEncrypt", source_algorithm, source_ctx)
    check_can_seal(destination, "ReEncrypt", dest_algorithm, dest_ctx, 0)
    check_dry_run(p)
    plaintext = open_ciphertext(call, source, blob, data, source_algorithm, source_ctx)
    check_can_seal(destination, "ReEncrypt", dest_algorithm, dest_ctx, len(plaintext))
    return {
        "CiphertextBlob": encode_blob(seal(call, destination, dest_algorithm, plaintext, dest_ctx)),
        "SourceKeyId": source.arn,
        "KeyId": destination.arn,
        "SourceEncryptionAlgorithm": source_algorithm,
        "DestinationEncryptionAlgorithm": dest_algorithm,
        **{
            f"Source{k}": v
            for k, v in key_material_id(
                call, source, blob.material_version if blob is not None else 0
            ).items()
        },
        **{
            f"Destination{k}": v
            for k, v in key_material_id(call, destination, destination.current_version).items()
        },
    }


OPERATIONS: dict[str, Handler] = {
    "Encrypt": encrypt,
    "Decrypt": decrypt,
    "ReEncrypt": re_encrypt,
}
# CloudTrail records KMS cryptographic operations as read-only events.
READ_ONLY = frozenset(OPERATIONS)
# Never Plaintext or CiphertextBlob.
AUDITABLE_PARAMS = frozenset(
    {
        "KeyId",
        "EncryptionContext",
        "EncryptionAlgorithm",
        "DryRun",
        "DryRunModifiers",
        "SourceKeyId",
        "DestinationKeyId",
        "SourceEncryptionContext",
        "DestinationEncryptionContext",
        "SourceEncryptionAlgorithm",
        "DestinationEncryptionAlgorithm",
    }
)
