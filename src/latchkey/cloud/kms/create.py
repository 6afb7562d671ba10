"""CreateKey."""

from __future__ import annotations

import time
import uuid
from typing import Any

from latchkey.aws.errors import AwsError, validation_error
from latchkey.aws.policy import MalformedPolicyDocument, parse_policy
from latchkey.cloud.authz import authorize
from latchkey.cloud.kms.common import Call, Handler, check_no_lockout
from latchkey.cloud.kms.keys import (
    MATERIAL_KIND,
    default_key_policy,
    key_metadata,
    material_record_id,
)
from latchkey.crypto.aead import generate_key
from latchkey.store.base import KeyMaterialRecord, KmsKeyRecord


async def create_key(call: Call) -> dict[str, Any]:
    p = call.params
    spec = p.get("KeySpec") or p.get("CustomerMasterKeySpec") or "SYMMETRIC_DEFAULT"
    usage = p.get("KeyUsage") or "ENCRYPT_DECRYPT"
    origin = p.get("Origin") or "AWS_KMS"
    if spec != "SYMMETRIC_DEFAULT":
        raise AwsError("UnsupportedOperationException", f"KeySpec {spec} is not supported yet.")
    if usage != "ENCRYPT_DECRYPT":
        raise AwsError("ValidationException", f"KeyUsage {usage} is not valid for KeySpec {spec}.")
    if origin not in ("AWS_KMS", "EXTERNAL"):
        raise AwsError("UnsupportedOperationException", f"Origin {origin} is not supported.")
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
        origin=origin,
        state="PendingImport" if origin == "EXTERNAL" else "Enabled",
        policy=policy,
        current_version=0 if origin == "EXTERNAL" else 1,
    )
    if origin == "EXTERNAL":  # material arrives with ImportKeyMaterial
        call.keys.store.save_kms_key(record, None)
        return {"KeyMetadata": key_metadata(record)}
    wrapped = call.keys.root_key.wrap(MATERIAL_KIND, material_record_id(key_id, 1), generate_key())
    call.keys.store.save_kms_key(record, KeyMaterialRecord(key_id, 1, wrapped, now))
    return {"KeyMetadata": key_metadata(record)}


OPERATIONS: dict[str, Handler] = {"CreateKey": create_key}
READ_ONLY: frozenset[str] = frozenset()
AUDITABLE_PARAMS = frozenset({"Description", "KeySpec", "KeyUsage", "Origin", "MultiRegion"})
