"""Which keys a call used, how its audit event names them, and GetKeyLastUsage.

A call's ``KeyRing`` is a ``TrackedKeyRing``: every key a handler resolves (the KeyId, the key
a ciphertext names, both keys of ReEncrypt) becomes a resource of the call's event, also when
the call then fails (AccessDenied, DisabledException). A successful cryptographic operation
marks its keys as used; GetKeyLastUsage answers from those marks in the audit store.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any

from latchkey.aws.errors import AwsError
from latchkey.cloud.audit import AuditEvent, trail_members
from latchkey.cloud.kms.common import Call, Handler, authorize_key
from latchkey.cloud.kms.keys import KeyRing
from latchkey.store.audit import AuditStore
from latchkey.store.base import KmsKeyRecord

# The operations GetKeyLastUsage reports (botocore: KeyLastUsageTrackingOperation).
TRACKED_OPERATIONS = frozenset(
    {
        "Decrypt", "DeriveSharedSecret", "Encrypt", "GenerateDataKey", "GenerateDataKeyPair",
        "GenerateDataKeyPairWithoutPlaintext", "GenerateDataKeyWithoutPlaintext",
        "GenerateMac", "ReEncrypt", "Sign", "Verify", "VerifyMac", "Encapsulate", "Decapsulate",
    }
)  # fmt: skip

# Answer members CloudTrail records as responseElements; every other KMS answer is recorded
# as null (cryptographic operations above all: their answers hold plaintexts and blobs).
RESPONSE_ELEMENTS: dict[str, frozenset[str]] = {
    "CreateKey": frozenset({"KeyMetadata"}),
    "ScheduleKeyDeletion": frozenset({"KeyId", "DeletionDate", "KeyState", "PendingWindowInDays"}),
    "CancelKeyDeletion": frozenset({"KeyId"}),
    "CreateGrant": frozenset({"GrantId"}),  # never the GrantToken
    "ImportKeyMaterial": frozenset({"KeyId", "KeyMaterialId"}),
    "RotateKeyOnDemand": frozenset({"KeyId"}),
}
# Operations that answer nothing but whose events name the key's ARN as responseElements.keyId.
KEY_ARN_ELEMENTS = frozenset({"EnableKey", "DisableKey"})
# Answer members that are times (epoch seconds in the answer; CloudTrail's date text in the event).
DATE_MEMBERS = frozenset({"CreationDate", "DeletionDate", "ValidTo", "NextRotationDate"})


@dataclass(frozen=True, slots=True, kw_only=True)
class TrackedKeyRing(KeyRing):
    """A ``KeyRing`` that remembers the keys a call resolved and can read the audit store."""

    trail: AuditStore | None = None
    touched: list[str] = field(default_factory=list)

    def resolve(self, key_id: object, **options: Any) -> KmsKeyRecord:
        record = KeyRing.resolve(self, key_id, **options)
        if record.arn not in self.touched:
            self.touched.append(record.arn)
        return record


def _result_arns(result: dict[str, Any]) -> list[str]:
    found = []
    for value in (result.get("KeyId"), (result.get("KeyMetadata") or {}).get("Arn")):
        if isinstance(value, str) and value.startswith("arn:"):
            found.append(value)
    return found


def describe_call(
    event: AuditEvent,
    keys: TrackedKeyRing,
    operation: str,
    result: dict[str, Any] | None,
) -> None:
    """Fill ``event``'s resources, responseElements and used keys; ``result`` is None for a
    call that failed."""
    arns = list(dict.fromkeys([*keys.touched, *_result_arns(result or {})]))
    event.resources = [
        {"accountId": keys.account, "type": "AWS::KMS::Key", "ARN": arn} for arn in arns
    ]
    event.recipient_account = keys.account
    if result is None:
        return
    members = RESPONSE_ELEMENTS.get(operation, frozenset())
    elements = {k: v for k, v in result.items() if k in members}
    if operation in KEY_ARN_ELEMENTS and keys.touched:
        elements["KeyId"] = keys.touched[0]
    # (named as CloudTrail names them: keyMetadata.keyId, creationDate "Aug 10, 2022, 10:38 PM")
    event.response_elements = trail_members(elements, DATE_MEMBERS) or None
    if operation in TRACKED_OPERATIONS:
        event.used_keys = tuple(arns)


def _epoch(event_time: str) -> float:
    when = dt.datetime.strptime(event_time, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
    return when.timestamp()


async def get_key_last_usage(call: Call) -> dict[str, Any]:
    record = call.keys.resolve(call.params.get("KeyId"), aliases=False)
    authorize_key(call, "GetKeyLastUsage", record)
    trail = call.keys.trail if isinstance(call.keys, TrackedKeyRing) else None
    if trail is None:
        raise AwsError("KMSInternalException", "Key usage tracking is unavailable.", 500)
    usage: dict[str, Any] = {}
    row = trail.last_use(record.arn)
    if row is not None:
        usage = {
            "Operation": row.event_name,
            "Timestamp": _epoch(row.event_time),
            "CloudTrailEventId": row.event_id,
            "KmsRequestId": json.loads(row.line).get("requestID"),
        }
    return {
        "KeyId": record.key_id,
        "KeyLastUsage": usage,
        "TrackingStartDate": max(trail.tracking_start(), record.created),
        "KeyCreationDate": record.created,
    }


OPERATIONS: dict[str, Handler] = {"GetKeyLastUsage": get_key_last_usage}
READ_ONLY = frozenset({"GetKeyLastUsage"})
AUDITABLE_PARAMS = frozenset({"KeyId"})
