"""Key lifecycle: describe and list (state changes, rotation and deletion come here too)."""

from __future__ import annotations

from typing import Any

from latchkey.aws.errors import AwsError, validation_error
from latchkey.cloud.authz import authorize
from latchkey.cloud.kms.common import Call, Handler, authorize_key
from latchkey.cloud.kms.keys import key_metadata


async def describe_key(call: Call) -> dict[str, Any]:
    record = call.keys.resolve(call.params.get("KeyId"))
    authorize_key(call, "DescribeKey", record)
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


OPERATIONS: dict[str, Handler] = {"DescribeKey": describe_key, "ListKeys": list_keys}
READ_ONLY = frozenset({"DescribeKey", "ListKeys"})
AUDITABLE_PARAMS = frozenset({"KeyId", "Limit"})
