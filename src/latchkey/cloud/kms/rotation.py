"""Key rotation: automatic (Enable/DisableKeyRotation, GetKeyRotationStatus), on demand
(RotateKeyOnDemand) and its history (ListKeyRotations).

A rotation adds a material version and makes it current: Encrypt uses the newest, Decrypt the
version the ciphertext names. The sweeper performs automatic rotations when they fall due.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from latchkey.aws.errors import AwsError, validation_error
from latchkey.cloud.kms.common import Call, Handler, authorize_key
from latchkey.cloud.kms.keys import (
    ENABLED,
    PENDING_DELETION,
    KeyRing,
    check_state,
    material_id,
)
from latchkey.cloud.kms.paging import page
from latchkey.store.base import ImportFingerprintRecord, KeyMaterialRecord, KmsKeyRecord

DAY = 86400.0
DEFAULT_PERIOD, MIN_PERIOD, MAX_PERIOD = 365, 90, 2560
MAX_ON_DEMAND = 25
CONFLICT_WINDOW = 20 * 60.0  # on-demand refused this close to an automatic rotation
AUTOMATIC, ON_DEMAND = "AUTOMATIC", "ON_DEMAND"
INCLUDE_VALUES = ("ALL_KEY_MATERIAL", "ROTATIONS_ONLY")


def check_rotatable(record: KmsKeyRecord) -> None:
    """Automatic rotation is for symmetric encryption keys with generated material only."""
    if record.key_spec != "SYMMETRIC_DEFAULT":
        raise AwsError("UnsupportedOperationException", "")
    if record.origin != "AWS_KMS":
        raise AwsError(
            "UnsupportedOperationException",
            f"{record.arn} origin is {record.origin} which is not valid for this operation.",
        )


def _period_param(params: dict[str, Any]) -> int:
    value = params.get("RotationPeriodInDays")
    if value is None:
        return DEFAULT_PERIOD
    if not isinstance(value, int) or isinstance(value, bool):
        raise AwsError("SerializationException", "RotationPeriodInDays must be an integer")
    if value < MIN_PERIOD:
        raise validation_error(
            "rotationPeriodInDays",
            value,
            f"Member must have value greater than or equal to {MIN_PERIOD}",
        )
    if value > MAX_PERIOD:
        raise validation_error(
            "rotationPeriodInDays",
            value,
            f"Member must have value less than or equal to {MAX_PERIOD}",
        )
    return value


def rotate_key(keys: KeyRing, record: KmsKeyRecord, rotation_type: str) -> KmsKeyRecord:
    """New random material as the key's current version, in one transaction with the key.
    An automatic rotation also sets the next one a rotation period from now."""
    versions = [m.version for m in keys.store.list_key_materials(record.key_id)]
    version = max([record.current_version, *versions]) + 1
    material = keys.new_material(record, version, rotation_type)
    updated = replace(record, current_version=version)
    if rotation_type == AUTOMATIC and record.rotation_period_days is not None:
        updated = replace(
            updated, next_rotation=material.created + record.rotation_period_days * DAY
        )
    keys.store.save_key_material(material, updated)
    return updated


async def enable_key_rotation(call: Call) -> dict[str, Any]:
    record = call.keys.resolve(call.params.get("KeyId"), aliases=False)
    period = _period_param(call.params)
    authorize_key(call, "EnableKeyRotation", record, **{"kms:RotationPeriodInDays": period})
    check_rotatable(record)
    check_state(record, (ENABLED,))
    now = call.keys.now()
    if record.rotation_period_days is not None and record.next_rotation is not None:
        # A new period counts from the last rotation (or from when rotation was enabled).
        anchor = record.next_rotation - record.rotation_period_days * DAY
        next_rotation = max(anchor + period * DAY, now)
    else:
        next_rotation = now + period * DAY
    updated = replace(record, rotation_period_days=period, next_rotation=next_rotation)
    call.keys.store.update_kms_key(updated)
    return {}


async def disable_key_rotation(call: Call) -> dict[str, Any]:
    record = call.keys.resolve(call.params.get("KeyId"), aliases=False)
    authorize_key(call, "DisableKeyRotation", record)
    check_rotatable(record)
    check_state(record, (ENABLED,))
    updated = replace(record, rotation_period_days=None, next_rotation=None)
    call.keys.store.update_kms_key(updated)
    return {}


async def get_key_rotation_status(call: Call) -> dict[str, Any]:
    record = call.keys.resolve(call.params.get("KeyId"), aliases=False)
    authorize_key(call, "GetKeyRotationStatus", record)
    # Keys that cannot rotate automatically (asymmetric, HMAC, imported material) report false,
    # as AWS does, rather than refusing: tools such as Terraform ask for every key's status.
    # A key pending deletion reports false; cancelling the deletion brings its status back.
    enabled = record.rotation_period_days is not None and record.state != PENDING_DELETION
    out: dict[str, Any] = {"KeyId": record.arn, "KeyRotationEnabled": enabled}
    if enabled:
        out["RotationPeriodInDays"] = record.rotation_period_days
        if record.next_rotation is not None:
            out["NextRotationDate"] = record.next_rotation
    return out


def _pending_import(call: Call, record: KmsKeyRecord) -> KeyMaterialRecord | None:
    """Imported material waiting to become current (a version above the current one)."""
    pending = [
        m
        for m in call.keys.store.list_key_materials(record.key_id)
        if m.version > record.current_version and m.imported
    ]
    return min(pending, key=lambda m: m.version) if pending else None


async def rotate_key_on_demand(call: Call) -> dict[str, Any]:
    record = call.keys.resolve(call.params.get("KeyId"), aliases=False)
    authorize_key(call, "RotateKeyOnDemand", record)
    if record.key_spec != "SYMMETRIC_DEFAULT":
        raise AwsError("UnsupportedOperationException", "")
    check_state(record, (ENABLED,))
    materials = call.keys.store.list_key_materials(record.key_id)
    if sum(1 for m in materials if m.rotation_type == ON_DEMAND) >= MAX_ON_DEMAND:
        raise AwsError(
            "LimitExceededException",
            "The on-demand rotations limit has been reached for the given keyId. No more "
            f"on-demand rotations can be performed for this key: {record.arn}",
        )
    if (
        record.rotation_period_days is not None
        and record.next_rotation is not None
        and record.next_rotation - call.keys.now() < CONFLICT_WINDOW
    ):
        raise AwsError(
            "ConflictException",
            "An automatic rotation of this key is in progress or scheduled to begin within "
            "the next 20 minutes.",
        )
    if record.origin == "EXTERNAL":
        pending = _pending_import(call, record)
        if pending is None:
            raise AwsError(
                "KMSInvalidStateException",
                f"No available key material pending rotation for the key: {record.arn}.",
            )
        call.keys.store.promote_key_material(
            replace(record, current_version=pending.version), pending.version, ON_DEMAND
        )
    else:
        rotate_key(call.keys, record, ON_DEMAND)
    return {"KeyId": record.arn}


def _rotation_entry(
    call: Call,
    record: KmsKeyRecord,
    material: KeyMaterialRecord,
    imported: ImportFingerprintRecord | None,
) -> dict[str, Any]:
    if material.version == record.current_version:
        state = "CURRENT"
    elif material.version > record.current_version:
        state = "PENDING_ROTATION"
    else:
        state = "NON_CURRENT"
    entry: dict[str, Any] = {
        "KeyId": record.key_id,
        "KeyMaterialId": (
            imported.key_material_id if imported else material_id(record.key_id, material.version)
        ),
        "KeyMaterialState": state,
    }
    if material.rotation_type is not None and state != "PENDING_ROTATION":
        entry["RotationDate"] = material.created
        entry["RotationType"] = material.rotation_type
    if record.origin == "EXTERNAL":
        if imported is not None and imported.description is not None:
            entry["KeyMaterialDescription"] = imported.description
        entry["ImportState"] = "IMPORTED"
        model = record.expiration_model or "KEY_MATERIAL_DOES_NOT_EXPIRE"
        entry["ExpirationModel"] = model
        if model == "KEY_MATERIAL_EXPIRES" and record.valid_to is not None:
            entry["ValidTo"] = record.valid_to
    return entry


async def list_key_rotations(call: Call) -> dict[str, Any]:
    record = call.keys.resolve(call.params.get("KeyId"), aliases=False)
    include = call.params.get("IncludeKeyMaterial") or "ROTATIONS_ONLY"
    if include not in INCLUDE_VALUES:
        raise validation_error(
            "includeKeyMaterial",
            include,
            f"Member must satisfy enum value set: [{', '.join(INCLUDE_VALUES)}]",
        )
    authorize_key(call, "ListKeyRotations", record)
    if record.key_spec != "SYMMETRIC_DEFAULT":
        raise AwsError("UnsupportedOperationException", "")
    materials = call.keys.store.list_key_materials(record.key_id)
    if include == "ROTATIONS_ONLY":
        materials = [
            m
            for m in materials
            if m.rotation_type is not None and m.version <= record.current_version
        ]
    imported = None
    if record.origin == "EXTERNAL":
        imported = call.keys.store.load_import_fingerprint(record.key_id)
    shown, members = page(materials, call.params, lambda m: f"{m.version:010d}", default=100)
    entries = [_rotation_entry(call, record, m, imported) for m in shown]
    if not materials and imported is not None and include != "ROTATIONS_ONLY":
        # The material was deleted (or expired): it stays listed, waiting to be imported again.
        entries = [_pending_import_entry(record, imported)]
    return {"Rotations": entries, **members}


def _pending_import_entry(
    record: KmsKeyRecord, imported: ImportFingerprintRecord
) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "KeyId": record.key_id,
        "KeyMaterialId": imported.key_material_id,
        "KeyMaterialState": "CURRENT",
    }
    if imported.description is not None:
        entry["KeyMaterialDescription"] = imported.description
    entry["ImportState"] = "PENDING_IMPORT"
    return entry


OPERATIONS: dict[str, Handler] = {
    "EnableKeyRotation": enable_key_rotation,
    "DisableKeyRotation": disable_key_rotation,
    "GetKeyRotationStatus": get_key_rotation_status,
    "RotateKeyOnDemand": rotate_key_on_demand,
    "ListKeyRotations": list_key_rotations,
}
READ_ONLY = frozenset({"GetKeyRotationStatus", "ListKeyRotations"})
AUDITABLE_PARAMS = frozenset({"KeyId", "RotationPeriodInDays", "IncludeKeyMaterial"})
