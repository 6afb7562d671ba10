"""CreateKey."""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

from latchkey.aws.errors import AwsError
from latchkey.cloud.authz import authorize
from latchkey.cloud.kms import specs
from latchkey.cloud.kms.common import Call, Handler, bypass_keys, check_no_lockout
from latchkey.cloud.kms.cryptoparams import enum_param, unsupported
from latchkey.cloud.kms.keys import (
    MATERIAL_KIND,
    attribute_keys,
    default_key_policy,
    key_metadata,
    material_record_id,
)
from latchkey.cloud.kms.policies import stored_policy
from latchkey.cloud.kms.tags import create_key_tags, save_key_tags
from latchkey.crypto import keyspecs
from latchkey.store.base import KeyMaterialRecord, KmsKeyRecord

# botocore's KeySpec enum (SM2 is refused: China Regions only).
KEY_SPECS = (
    *specs.RSA,
    *specs.NIST_EC,
    "ECC_SECG_P256K1",
    "SYMMETRIC_DEFAULT",
    *specs.HMAC,
    "SM2",
    *specs.ML_DSA,
    "ECC_NIST_EDWARDS25519",
    *specs.ML_KEM,
)
KEY_USAGES = (
    "SIGN_VERIFY",
    "ENCRYPT_DECRYPT",
    "GENERATE_VERIFY_MAC",
    "KEY_AGREEMENT",
    "ENCAPSULATE_DECAPSULATE",
)


async def create_key(call: Call) -> dict[str, Any]:
    p = call.params
    spec = enum_param(p, "KeySpec", KEY_SPECS, default="") or enum_param(
        p, "CustomerMasterKeySpec", KEY_SPECS, default="SYMMETRIC_DEFAULT"
    )
    usage = specs.check_create(
        spec, enum_param(p, "KeyUsage", KEY_USAGES) if p.get("KeyUsage") is not None else None
    )
    origin = p.get("Origin") or "AWS_KMS"
    if p.get("MultiRegion") is True:
        raise AwsError(
            "UnsupportedOperationException",
            "Multi-Region keys are not supported by this local cloud.",
        )
    if origin not in ("AWS_KMS", "EXTERNAL") or p.get("CustomKeyStoreId") is not None:
        raise AwsError(
            "UnsupportedOperationException",
            "Custom key stores are not supported by this local cloud.",
        )
    description = str(p.get("Description") or "")  # length checked by validation.py
    if spec in specs.NOT_HERE:
        raise AwsError(
            "UnsupportedOperationException", f"{spec} is not supported by this local cloud."
        )
    keys = {**attribute_keys(spec, usage, origin), **bypass_keys(p)}
    authorize(call.keys.store, call.caller, "kms:CreateKey", "*", keys=keys)
    policy = p.get("Policy") or default_key_policy(call.keys.account)
    policy, document = stored_policy(call, policy)
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
        origin=origin,
        state="PendingImport" if origin == "EXTERNAL" else "Enabled",
        policy=policy,
        current_version=0 if origin == "EXTERNAL" else 1,
    )
    if p.get("Policy") and not p.get("BypassPolicyLockoutSafetyCheck"):
        check_no_lockout(call, record, document)  # judged on the key about to be made
    tags = create_key_tags(call)  # validated and authorized before anything is made

    if origin == "EXTERNAL":  # material arrives with ImportKeyMaterial
        call.keys.store.save_kms_key(record, None)
        save_key_tags(call, key_id, tags)
        return {"KeyMetadata": key_metadata(record)}
    try:  # RSA generation takes 40-400 ms: off the event loop
        material = await asyncio.to_thread(keyspecs.generate, spec)
    except keyspecs.UnsupportedSpec as exc:
        raise unsupported(exc) from None
    wrapped = call.keys.root_key.wrap(MATERIAL_KIND, material_record_id(key_id, 1), material)
    call.keys.store.save_kms_key(record, KeyMaterialRecord(key_id, 1, wrapped, now))
    save_key_tags(call, key_id, tags)
    return {"KeyMetadata": key_metadata(record)}


OPERATIONS: dict[str, Handler] = {"CreateKey": create_key}
READ_ONLY: frozenset[str] = frozenset()
AUDITABLE_PARAMS = frozenset({"Description", "KeySpec", "KeyUsage", "Origin", "MultiRegion"})
