"""KMS keys: resolving a KeyId, metadata in AWS's shape, material via the root key."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

from latchkey.aws.errors import AwsError
from latchkey.aws.policy import PolicyDocument, parse_policy
from latchkey.cloud.kms.specs import spec_metadata
from latchkey.crypto.aead import InvalidCiphertext
from latchkey.crypto.rootkey import RootKey
from latchkey.store.base import KmsKeyRecord, Store

MATERIAL_KIND = "kms-key-material"


def default_key_policy(account: str) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Id": "key-default-1",
            "Statement": [
                {
                    "Sid": "Enable IAM User Permissions",
                    "Effect": "Allow",
                    "Principal": {"AWS": f"arn:aws:iam::{account}:root"},
                    "Action": "kms:*",
                    "Resource": "*",
                }
            ],
        },
        indent=2,
    )


def material_record_id(key_id: str, version: int) -> str:
    return f"{key_id}/{version}"


@dataclass(frozen=True, slots=True)
class KeyRing:
    """Where keys live for one (account, region)."""

    store: Store
    root_key: RootKey
    account: str
    region: str

    def arn(self, key_id: str) -> str:
        return f"arn:aws:kms:{self.region}:{self.account}:key/{key_id}"

    def resolve(self, key_id: object) -> KmsKeyRecord:
        """A KeyId as AWS accepts it: key id or key ARN (aliases come later)."""
        if not isinstance(key_id, str) or not key_id:
            raise AwsError("ValidationException", "KeyId is required")
        raw = key_id
        if key_id.startswith("arn:"):
            parts = key_id.split(":", 5)
            if len(parts) != 6 or parts[2] != "kms" or not parts[5].startswith("key/"):
                raise AwsError("NotFoundException", f"Invalid arn {key_id}")
            if parts[3] != self.region or parts[4] != self.account:
                raise AwsError("NotFoundException", f"Key '{key_id}' does not exist")
            raw = parts[5][len("key/") :]
        elif key_id.startswith("alias/"):
            raise AwsError("NotFoundException", f"Alias {self.alias_arn(key_id)} is not found.")
        try:
            uuid.UUID(raw)
        except ValueError:
            raise AwsError("NotFoundException", f"Invalid keyId '{key_id}'") from None
        record = self.store.load_kms_key(raw)
        if record is None or record.account != self.account or record.region != self.region:
            raise AwsError("NotFoundException", f"Key '{self.arn(raw)}' does not exist")
        return record

    def alias_arn(self, alias: str) -> str:
        return f"arn:aws:kms:{self.region}:{self.account}:{alias}"

    def material(self, record: KmsKeyRecord, version: int) -> bytes:
        stored = self.store.load_key_material(record.key_id, version)
        if stored is None:
            raise AwsError("InvalidCiphertextException", "")
        try:
            return self.root_key.unwrap(
                MATERIAL_KIND, material_record_id(record.key_id, version), stored.wrapped
            )
        except InvalidCiphertext:
            raise AwsError("KMSInternalException", "key material is unreadable", 500) from None


def key_policy(record: KmsKeyRecord) -> PolicyDocument:
    return parse_policy(record.policy, require_principal=True)


def check_usable(record: KmsKeyRecord) -> None:
    """Cryptographic operations need an Enabled key."""
    if record.state == "Disabled":
        raise AwsError("DisabledException", f"{record.arn} is disabled.")
    if record.state != "Enabled":
        raise AwsError("KMSInvalidStateException", f"{record.arn} is {record.state}.")


def key_metadata(record: KmsKeyRecord) -> dict[str, Any]:
    """DescribeKey's KeyMetadata; the algorithm lists come from the key spec."""
    meta: dict[str, Any] = {
        "AWSAccountId": record.account,
        "KeyId": record.key_id,
        "Arn": record.arn,
        "CreationDate": record.created,
        "Enabled": record.state == "Enabled",
        "Description": record.description,
        "KeyUsage": record.key_usage,
        "KeyState": record.state,
        "Origin": record.origin,
        "KeyManager": "CUSTOMER",
        "CustomerMasterKeySpec": record.key_spec,
        "KeySpec": record.key_spec,
        "MultiRegion": False,
        **spec_metadata(record.key_spec, record.key_usage),
    }
    if record.deletion_date is not None:
        meta["DeletionDate"] = record.deletion_date
    if record.pending_window_days is not None and record.state == "PendingDeletion":
        meta["PendingDeletionWindowInDays"] = record.pending_window_days
    if record.origin == "EXTERNAL":
        meta["ExpirationModel"] = record.expiration_model or "KEY_MATERIAL_DOES_NOT_EXPIRE"
        if record.valid_to is not None:
            meta["ValidTo"] = record.valid_to
    return meta
