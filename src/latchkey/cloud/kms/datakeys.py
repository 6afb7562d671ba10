"""Data keys for use outside KMS: GenerateDataKey(WithoutPlaintext), GenerateDataKeyPair
(WithoutPlaintext), and GenerateRandom. Data keys are sealed under a symmetric encryption key."""

from __future__ import annotations

import asyncio
from typing import Any

from latchkey.aws.errors import AwsError, validation_error
from latchkey.aws.jsonproto import encode_blob
from latchkey.cloud.authz import authorize
from latchkey.cloud.kms import specs
from latchkey.cloud.kms.common import Call, Handler, authorize_key, encryption_context
from latchkey.cloud.kms.crypto_ops import algorithm_keys, check_can_seal, seal
from latchkey.cloud.kms.cryptoparams import (
    check_dry_run,
    enum_param,
    key_material_id,
    refuse_recipient,
    unsupported,
)
from latchkey.cloud.kms.keys import check_usable
from latchkey.crypto import keyspecs, randombytes
from latchkey.store.base import KmsKeyRecord

DATA_KEY_SPECS = {"AES_256": 32, "AES_128": 16}
# botocore's DataKeyPairSpec enum, in its order (SM2 is refused: China Regions only).
KEY_PAIR_SPECS = (
    *specs.RSA,
    *specs.NIST_EC,
    "ECC_SECG_P256K1",
    "SM2",
    "ECC_NIST_EDWARDS25519",
    *specs.ML_KEM,
)


def _check_data_key_key(record: KmsKeyRecord, operation: str, ctx: dict[str, str]) -> None:
    """Data keys need a symmetric encryption key."""
    if record.key_spec != "SYMMETRIC_DEFAULT":
        specs.check_usage(record, operation, "ENCRYPT_DECRYPT")
        raise specs.incompatible("SYMMETRIC_DEFAULT", record.key_spec)
    check_can_seal(record, operation, "SYMMETRIC_DEFAULT", ctx, 0)


def _byte_count(params: dict[str, Any]) -> int:
    spec, count = params.get("KeySpec"), params.get("NumberOfBytes")
    if (spec is None) == (count is None):
        raise AwsError("ValidationException", "Please specify either number of bytes or key spec.")
    if spec is not None:
        return DATA_KEY_SPECS[enum_param(params, "KeySpec", list(DATA_KEY_SPECS))]
    if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= 1024:
        raise validation_error("numberOfBytes", str(count), _range_constraint(count))
    return count


def _range_constraint(count: object) -> str:
    if isinstance(count, int) and count > 1024:
        return "Member must have value less than or equal to 1024"
    return "Member must have value greater than or equal to 1"


async def _data_key(call: Call, operation: str, *, with_plaintext: bool) -> dict[str, Any]:
    p = call.params
    record = call.keys.resolve(p.get("KeyId"))
    count = _byte_count(p)
    ctx = encryption_context(p)
    authorize_key(call, operation, record, **algorithm_keys("SYMMETRIC_DEFAULT", ctx))
    check_usable(record)
    _check_data_key_key(record, operation, ctx)
    check_dry_run(p)
    plaintext = randombytes.token_bytes(count)
    out = {
        "CiphertextBlob": encode_blob(seal(call, record, "SYMMETRIC_DEFAULT", plaintext, ctx)),
        "KeyId": record.arn,
        **key_material_id(call, record, record.current_version),
    }
    if with_plaintext:
        out["Plaintext"] = encode_blob(plaintext)
    return out


async def generate_data_key(call: Call) -> dict[str, Any]:
    refuse_recipient(call.params)
    return await _data_key(call, "GenerateDataKey", with_plaintext=True)


async def generate_data_key_without_plaintext(call: Call) -> dict[str, Any]:
    return await _data_key(call, "GenerateDataKeyWithoutPlaintext", with_plaintext=False)


async def _data_key_pair(call: Call, operation: str, *, with_plaintext: bool) -> dict[str, Any]:
    p = call.params
    record = call.keys.resolve(p.get("KeyId"))
    pair_spec = enum_param(p, "KeyPairSpec", KEY_PAIR_SPECS)
    if pair_spec == "SM2":
        raise AwsError(
            "UnsupportedOperationException", "KeyPairSpec SM2 is not supported in this Region"
        )
    ctx = encryption_context(p)
    keys = {**algorithm_keys("SYMMETRIC_DEFAULT", ctx), "kms:DataKeyPairSpec": pair_spec}
    authorize_key(call, operation, record, **keys)
    check_usable(record)
    _check_data_key_key(record, operation, ctx)
    check_dry_run(p)
    try:  # RSA generation takes up to ~0.4 s: off the event loop
        private, public = await asyncio.to_thread(keyspecs.generate_pair, pair_spec)
    except keyspecs.UnsupportedSpec as exc:
        raise unsupported(exc) from None
    out = {
        "PrivateKeyCiphertextBlob": encode_blob(
            seal(call, record, "SYMMETRIC_DEFAULT", private, ctx)
        ),
        "PublicKey": encode_blob(public),
        "KeyId": record.arn,
        "KeyPairSpec": pair_spec,
        **key_material_id(call, record, record.current_version),
    }
    if with_plaintext:
        out["PrivateKeyPlaintext"] = encode_blob(private)
    return out


async def generate_data_key_pair(call: Call) -> dict[str, Any]:
    refuse_recipient(call.params)
    return await _data_key_pair(call, "GenerateDataKeyPair", with_plaintext=True)


async def generate_data_key_pair_without_plaintext(call: Call) -> dict[str, Any]:
    return await _data_key_pair(call, "GenerateDataKeyPairWithoutPlaintext", with_plaintext=False)


async def generate_random(call: Call) -> dict[str, Any]:
    p = call.params
    refuse_recipient(p)
    count = p.get("NumberOfBytes")
    if count is None:
        raise AwsError("ValidationException", "NumberOfBytes is required.")
    if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= 1024:
        raise validation_error("numberOfBytes", str(count), _range_constraint(count))
    authorize(call.keys.store, call.caller, "kms:GenerateRandom", "*")
    if p.get("CustomKeyStoreId") is not None:
        raise AwsError(
            "UnsupportedOperationException",
            "Custom key stores are not supported by this local cloud.",
        )
    return {"Plaintext": encode_blob(randombytes.token_bytes(count))}


OPERATIONS: dict[str, Handler] = {
    "GenerateDataKey": generate_data_key,
    "GenerateDataKeyWithoutPlaintext": generate_data_key_without_plaintext,
    "GenerateDataKeyPair": generate_data_key_pair,
    "GenerateDataKeyPairWithoutPlaintext": generate_data_key_pair_without_plaintext,
    "GenerateRandom": generate_random,
}
READ_ONLY = frozenset(OPERATIONS)
# Never Plaintext, PrivateKeyPlaintext or a ciphertext.
AUDITABLE_PARAMS = frozenset(
    {
        "KeyId",
        "KeySpec",
        "KeyPairSpec",
        "NumberOfBytes",
        "EncryptionContext",
        "DryRun",
        "CustomKeyStoreId",
    }
)
