"""One function per KMS operation: (context, request) -> response. Wire names live in OPERATIONS."""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from latchkey.aws.errors import AwsError, validation_error
from latchkey.aws.jsonproto import decode_blob, encode_blob
from latchkey.aws.policy import MalformedPolicyDocument, PolicyDocument, parse_policy
from latchkey.cloud.authz import authorize
from latchkey.cloud.identity import Caller
from latchkey.cloud.kms.keys import (
    MATERIAL_KIND,
    KeyRing,
    check_usable,
    default_key_policy,
    key_metadata,
    key_policy,
    material_record_id,
)
from latchkey.crypto import ciphertext
from latchkey.crypto.aead import InvalidCiphertext, generate_key
from latchkey.store.base import KeyMaterialRecord, KmsKeyRecord

MAX_PLAINTEXT = 4096


@dataclass(frozen=True, slots=True)
class Call:
    caller: Caller
    keys: KeyRing
    params: dict[str, Any]


Handler = Callable[[Call], Awaitable[dict[str, Any]]]


def _context(params: dict[str, Any]) -> dict[str, str]:
    ctx = params.get("EncryptionContext") or {}
    if not isinstance(ctx, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in ctx.items()
    ):
        raise AwsError("SerializationException", "EncryptionContext must map strings to strings")
    return ctx


def _context_keys(ctx: dict[str, str]) -> dict[str, str | list[str]]:
    keys: dict[str, str | list[str]] = {f"kms:EncryptionContext:{k}": v for k, v in ctx.items()}
    keys["kms:EncryptionContextKeys"] = sorted(ctx)
    return keys


def _authorize_key(call: Call, action: str, record: KmsKeyRecord, **keys: Any) -> None:
    authorize(
        call.keys.store,
        call.caller,
        f"kms:{action}",
        record.arn,
        resource_policy=key_policy(record),
        keys={"kms:KeySpec": record.key_spec, "kms:KeyUsage": record.key_usage, **keys},
    )


def check_no_lockout(call: Call, document: PolicyDocument) -> None:
    """AWS refuses a key policy that would stop its own caller from changing it later."""
    try:
        authorize(
            call.keys.store,
            call.caller,
            "kms:PutKeyPolicy",
            f"arn:aws:kms:{call.keys.region}:{call.keys.account}:key/*",
            resource_policy=document,
        )
    except AwsError:
        raise AwsError(
            "MalformedPolicyDocumentException",
            "The new key policy will not allow you to update the key policy in the future.",
        ) from None


async def create_key(call: Call) -> dict[str, Any]:
    p = call.params
    spec = p.get("KeySpec") or p.get("CustomerMasterKeySpec") or "SYMMETRIC_DEFAULT"
    usage = p.get("KeyUsage") or "ENCRYPT_DECRYPT"
    origin = p.get("Origin") or "AWS_KMS"
    if spec != "SYMMETRIC_DEFAULT":
        raise AwsError("UnsupportedOperationException", f"KeySpec {spec} is not supported yet.")
    if usage != "ENCRYPT_DECRYPT":
        raise AwsError("ValidationException", f"KeyUsage {usage} is not valid for KeySpec {spec}.")
    if origin != "AWS_KMS":
        raise AwsError("UnsupportedOperationException", f"Origin {origin} is not supported yet.")
    description = p.get("Description") or ""
    if not isinstance(description, str) or len(description) > 8192:
        raise validation_error(
            "description", "...", "Member must have length less than or equal to 8192"
        )
    authorize(call.keys.store, call.caller, "kms:CreateKey", "*")
    policy = p.get("Policy") or default_key_policy(call.keys.account)
    try:
        document = parse_policy(policy, require_principal=True)
    except MalformedPolicyDocument as exc:
        raise AwsError("MalformedPolicyDocumentException", str(exc)) from None
    if p.get("Policy") and not p.get("BypassPolicyLockoutSafetyCheck"):
        check_no_lockout(call, document)

    key_id = str(uuid.uuid4())
    now = time.time()
    record = KmsKeyRecord(
        key_id=key_id,
        arn=call.keys.arn(key_id),
        account=call.keys.account,
        region=call.keys.region,
        created=now,
        description=description,
        key_spec=spec,
        key_usage=usage,
        state="Enabled",
        origin=origin,
        policy=policy,
        current_version=1,
    )
    wrapped = call.keys.root_key.wrap(MATERIAL_KIND, material_record_id(key_id, 1), generate_key())
    call.keys.store.save_kms_key(record, KeyMaterialRecord(key_id, 1, wrapped, now))
    return {"KeyMetadata": key_metadata(record)}


async def describe_key(call: Call) -> dict[str, Any]:
    record = call.keys.resolve(call.params.get("KeyId"))
    _authorize_key(call, "DescribeKey", record)
    return {"KeyMetadata": key_metadata(record)}


async def list_keys(call: Call) -> dict[str, Any]:
    authorize(call.keys.store, call.caller, "kms:ListKeys", "*")
    limit = call.params.get("Limit", 1000)
    if not isinstance(limit, int) or not 1 <= limit <= 1000:
        raise validation_error("limit", limit, "Member must have value between 1 and 1000")
    records = call.keys.store.list_kms_keys(call.keys.account, call.keys.region)
    marker = call.params.get("Marker")
    start = 0
    if marker is not None:
        ids = [r.key_id for r in records]
        if marker not in ids:
            raise AwsError("InvalidMarkerException", "Invalid marker")
        start = ids.index(marker) + 1
    page = records[start : start + limit]
    out: dict[str, Any] = {
        "Keys": [{"KeyId": r.key_id, "KeyArn": r.arn} for r in page],
        "Truncated": start + limit < len(records),
    }
    if out["Truncated"]:
        out["NextMarker"] = page[-1].key_id
    return out


def _plaintext(params: dict[str, Any]) -> bytes:
    if "Plaintext" not in params:
        raise validation_error("plaintext", None, "Member must not be null")
    data = decode_blob(params["Plaintext"], "Plaintext")
    if not 1 <= len(data) <= MAX_PLAINTEXT:
        raise AwsError(
            "ValidationException",
            "1 validation error detected: Value at 'plaintext' failed to satisfy constraint: "
            "Member must have length between 1 and 4096",
        )
    return data


def _check_algorithm(params: dict[str, Any]) -> None:
    algorithm = params.get("EncryptionAlgorithm", "SYMMETRIC_DEFAULT")
    if algorithm != "SYMMETRIC_DEFAULT":
        raise AwsError(
            "InvalidKeyUsageException",
            f"{algorithm} is not a supported encryption algorithm for this key.",
        )


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
    plaintext = _plaintext(call.params)
    ctx = _context(call.params)
    _check_algorithm(call.params)
    _authorize_key(call, "Encrypt", record, **_context_keys(ctx))
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
    ctx = _context(call.params)
    _check_algorithm(call.params)
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
    _authorize_key(call, "Decrypt", record, **_context_keys(ctx))
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
    ctx = _context(p)
    _authorize_key(call, "GenerateDataKey", record, **_context_keys(ctx))
    check_usable(record)
    plaintext = secrets.token_bytes(count)
    blob = _encrypt(call, record, plaintext, ctx)
    return {
        "CiphertextBlob": encode_blob(blob),
        "Plaintext": encode_blob(plaintext),
        "KeyId": record.arn,
    }


OPERATIONS: dict[str, Handler] = {
    "CreateKey": create_key,
    "DescribeKey": describe_key,
    "ListKeys": list_keys,
    "Encrypt": encrypt,
    "Decrypt": decrypt,
    "GenerateDataKey": generate_data_key,
}

READ_ONLY = frozenset({"DescribeKey", "ListKeys"})

# Parameters that may be written to the audit trail (never Plaintext or CiphertextBlob).
AUDITABLE_PARAMS = frozenset(
    {
        "KeyId",
        "Description",
        "KeySpec",
        "KeyUsage",
        "Origin",
        "EncryptionContext",
        "EncryptionAlgorithm",
        "NumberOfBytes",
        "Limit",
    }
)
