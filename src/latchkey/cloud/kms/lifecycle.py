"""Key lifecycle: describe, list, enable, disable, schedule and cancel deletion, description.

The sweeper (``sweeper.py``) deletes a key once its DeletionDate has passed.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from latchkey.aws.errors import AwsError, validation_error
from latchkey.cloud.authz import authorize
from latchkey.cloud.kms.common import Call, Handler, authorize_key
from latchkey.cloud.kms.keys import (
    DISABLED,
    ENABLED,
    PENDING_DELETION,
    PENDING_IMPORT,
    check_state,
    key_metadata,
)
from latchkey.cloud.kms.paging import page
from latchkey.store.base import KmsKeyRecord

DAY = 86400.0
DEFAULT_PENDING_WINDOW = 30
MIN_PENDING_WINDOW, MAX_PENDING_WINDOW = 7, 30
MAX_DESCRIPTION = 8192
NOT_PENDING_DELETION = frozenset({ENABLED, DISABLED, PENDING_IMPORT})


def _int_param(params: dict[str, Any], name: str, default: int) -> int:
    value = params.get(name, default)
    if value is None:
        return default
    if not isinstance(value, int) or isinstance(value, bool):
        raise AwsError("SerializationException", f"{name} must be an integer")
    return value


def description_param(params: dict[str, Any], *, required: bool) -> str:
    if "Description" not in params or params["Description"] is None:
        if required:
            raise validation_error("description", None, "Member must not be null")
        return ""
    value = params["Description"]
    if not isinstance(value, str):
        raise AwsError("SerializationException", "Description must be a string")
    if len(value) > MAX_DESCRIPTION:
        raise validation_error(
            "description", value, f"Member must have length less than or equal to {MAX_DESCRIPTION}"
        )
    return value


async def describe_key(call: Call) -> dict[str, Any]:
    record = call.keys.resolve(call.params.get("KeyId"))
    authorize_key(call, "DescribeKey", record)
    imported = None
    if record.origin == "EXTERNAL":
        fingerprint = call.keys.store.load_import_fingerprint(record.key_id)
        imported = fingerprint.key_material_id if fingerprint is not None else None
    return {"KeyMetadata": key_metadata(record, imported)}


def _list_order(record: KmsKeyRecord) -> str:
    return f"{record.created:020.6f}/{record.key_id}"


async def list_keys(call: Call) -> dict[str, Any]:
    authorize(call.keys.store, call.caller, "kms:ListKeys", "*")
    records = call.keys.store.list_kms_keys(call.keys.account, call.keys.region)
    shown, members = page(records, call.params, _list_order, default=100)
    return {"Keys": [{"KeyId": r.key_id, "KeyArn": r.arn} for r in shown], **members}


async def enable_key(call: Call) -> dict[str, Any]:
    record = call.keys.resolve(call.params.get("KeyId"), aliases=False)
    authorize_key(call, "EnableKey", record)
    check_state(record, (ENABLED, DISABLED))
    if record.state != ENABLED:
        call.keys.store.update_kms_key(replace(record, state=ENABLED))
    return {}


async def disable_key(call: Call) -> dict[str, Any]:
    record = call.keys.resolve(call.params.get("KeyId"), aliases=False)
    authorize_key(call, "DisableKey", record)
    check_state(record, (ENABLED, DISABLED))
    if record.state != DISABLED:
        call.keys.store.update_kms_key(replace(record, state=DISABLED))
    return {}


async def schedule_key_deletion(call: Call) -> dict[str, Any]:
    record = call.keys.resolve(call.params.get("KeyId"), aliases=False)
    days = _int_param(call.params, "PendingWindowInDays", DEFAULT_PENDING_WINDOW)
    if not MIN_PENDING_WINDOW <= days <= MAX_PENDING_WINDOW:
        raise AwsError(
            "ValidationException",
            f"PendingWindowInDays should be between {MIN_PENDING_WINDOW} and "
            f"{MAX_PENDING_WINDOW}, but it is {days}",
        )
    window = {"kms:ScheduleKeyDeletionPendingWindowInDays": days}
    authorize_key(call, "ScheduleKeyDeletion", record, **window)
    check_state(record, NOT_PENDING_DELETION)
    deletion = call.keys.now() + days * DAY
    updated = replace(
        record, state=PENDING_DELETION, deletion_date=deletion, pending_window_days=days
    )
    call.keys.store.update_kms_key(updated)
    return {
        "KeyId": record.arn,
        "DeletionDate": deletion,
        "KeyState": PENDING_DELETION,
        "PendingWindowInDays": days,
    }


def _state_after_cancel(call: Call, record: KmsKeyRecord) -> str:
    """Disabled, as AWS leaves a key whose deletion was cancelled; an imported key whose
    material is gone goes back to PendingImport."""
    if record.origin == "EXTERNAL" and (
        record.current_version == 0
        or call.keys.store.load_key_material(record.key_id, record.current_version) is None
    ):
        return PENDING_IMPORT
    return DISABLED


async def cancel_key_deletion(call: Call) -> dict[str, Any]:
    record = call.keys.resolve(call.params.get("KeyId"), aliases=False)
    authorize_key(call, "CancelKeyDeletion", record)
    if record.state != PENDING_DELETION:
        raise AwsError("KMSInvalidStateException", f"{record.arn} is not pending deletion.")
    updated = replace(
        record,
        state=_state_after_cancel(call, record),
        deletion_date=None,
        pending_window_days=None,
    )
    call.keys.store.update_kms_key(updated)
    return {"KeyId": record.arn}


async def update_key_description(call: Call) -> dict[str, Any]:
    record = call.keys.resolve(call.params.get("KeyId"), aliases=False)
    description = description_param(call.params, required=True)
    authorize_key(call, "UpdateKeyDescription", record)
    check_state(record, NOT_PENDING_DELETION)
    call.keys.store.update_kms_key(replace(record, description=description))
    return {}


OPERATIONS: dict[str, Handler] = {
    "DescribeKey": describe_key,
    "ListKeys": list_keys,
    "EnableKey": enable_key,
    "DisableKey": disable_key,
    "ScheduleKeyDeletion": schedule_key_deletion,
    "CancelKeyDeletion": cancel_key_deletion,
    "UpdateKeyDescription": update_key_description,
}
READ_ONLY = frozenset({"DescribeKey", "ListKeys"})
AUDITABLE_PARAMS = frozenset({"KeyId", "Limit", "Marker", "PendingWindowInDays", "Description"})
