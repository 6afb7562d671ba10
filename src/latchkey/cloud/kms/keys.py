"""KMS keys: resolving a KeyId (or alias), key states, metadata in AWS's shape, material via
the root key."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from latchkey.aws.errors import AwsError
from latchkey.aws.policy import PolicyDocument, parse_policy
from latchkey.clock import Clock, SystemClock
from latchkey.cloud.kms.specs import spec_metadata
from latchkey.crypto.aead import InvalidCiphertext, generate_key
from latchkey.crypto.ciphertext import key_id_bytes
from latchkey.crypto.rootkey import RootKey
from latchkey.store.base import KeyMaterialRecord, KmsKeyRecord, Store

MATERIAL_KIND = "kms-key-material"
ALIAS_PREFIX = "alias/"

# Key states (KeyMetadata.KeyState) and how AWS words a key found in the wrong one.
ENABLED, DISABLED = "Enabled", "Disabled"
PENDING_DELETION, PENDING_IMPORT = "PendingDeletion", "PendingImport"
ALL_STATES = frozenset({ENABLED, DISABLED, PENDING_DELETION, PENDING_IMPORT})
_STATE_WORDS = {
    ENABLED: "enabled",
    DISABLED: "disabled",
    PENDING_DELETION: "pending deletion",
    PENDING_IMPORT: "pending import",
}


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


def attribute_keys(spec: str, usage: str, origin: str) -> dict[str, Any]:
    """The key's properties as condition keys: ``kms:KeySpec``, ``kms:KeyUsage`` and their
    deprecated names (AWS still honours ``kms:CustomerMasterKeySpec``/``...KeyUsage`` in old
    policies), ``kms:KeyOrigin``, and ``kms:MultiRegion`` (every key has it; no key here is
    multi-Region)."""
    return {
        "kms:KeySpec": spec,
        "kms:CustomerMasterKeySpec": spec,
        "kms:KeyUsage": usage,
        "kms:CustomerMasterKeyUsage": usage,
        "kms:KeyOrigin": origin,
        "kms:MultiRegion": False,
    }


def record_keys(record: KmsKeyRecord) -> dict[str, Any]:
    """``attribute_keys`` of a key that exists (or is about to)."""
    return attribute_keys(record.key_spec, record.key_usage, record.origin)


def material_record_id(key_id: str, version: int) -> str:
    return f"{key_id}/{version}"


def material_id(key_id: str, version: int) -> str:
    """The KeyMaterialId of generated (AWS_KMS) material: 64 hex digits naming a version,
    derived from public values only."""
    return hashlib.sha256(f"latchkey-kms-material:{key_id}/{version}".encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class KeyRing:
    """Where keys live for one (account, region), and the clock their dates come from."""

    store: Store
    root_key: RootKey
    account: str
    region: str
    clock: Clock = field(default_factory=SystemClock)

    def now(self) -> float:
        return self.clock.now().timestamp()

    def arn(self, key_id: str) -> str:
        return f"arn:aws:kms:{self.region}:{self.account}:key/{key_id}"

    def alias_arn(self, alias: str) -> str:
        return f"arn:aws:kms:{self.region}:{self.account}:{alias}"

    def resolve(self, key_id: object, *, aliases: bool = True) -> KmsKeyRecord:
        """A KeyId as AWS accepts it: key id, key ARN and, where the operation takes them
        (``aliases``: cryptographic operations, DescribeKey), alias name or alias ARN."""
        if not isinstance(key_id, str) or not key_id:
            raise AwsError("ValidationException", "KeyId is required")
        raw = key_id
        if key_id.startswith("arn:"):
            parts = key_id.split(":", 5)
            if len(parts) != 6 or parts[2] != "kms":
                raise AwsError("NotFoundException", f"Invalid arn {key_id}")
            if aliases and parts[5].startswith(ALIAS_PREFIX):
                if parts[3] != self.region or parts[4] != self.account:
                    raise AwsError("NotFoundException", f"Alias {key_id} is not found.")
                return self._by_alias(parts[5])
            if not parts[5].startswith("key/"):
                raise AwsError("NotFoundException", f"Invalid arn {key_id}")
            if parts[3] != self.region or parts[4] != self.account:
                raise AwsError("NotFoundException", f"Key '{key_id}' does not exist")
            raw = parts[5][len("key/") :]
        elif aliases and key_id.startswith(ALIAS_PREFIX):
            return self._by_alias(key_id)
        try:
            key_id_bytes(raw)
        except ValueError:
            raise AwsError("NotFoundException", f"Invalid keyId '{key_id}'") from None
        record = self.store.load_kms_key(raw)
        if record is None or record.account != self.account or record.region != self.region:
            raise AwsError("NotFoundException", f"Key '{self.arn(raw)}' does not exist")
        return record

    def _by_alias(self, name: str) -> KmsKeyRecord:
        alias = self.store.load_kms_alias(self.account, self.region, name)
        record = self.store.load_kms_key(alias.key_id) if alias is not None else None
        if record is None:
            raise AwsError("NotFoundException", f"Alias {self.alias_arn(name)} is not found.")
        return record

    @staticmethod
    def request_keys(requested: object) -> dict[str, Any]:
        """``kms:RequestAlias`` when the request named the key by an alias (no lookup)."""
        if isinstance(requested, str):
            name = requested.split(":", 5)[-1] if requested.startswith("arn:") else requested
            if name.startswith(ALIAS_PREFIX):
                return {"kms:RequestAlias": name}
        return {}

    def resource_keys(self, record: KmsKeyRecord) -> dict[str, Any]:
        """``kms:ResourceAliases`` and ``aws:ResourceTag/<key>``: store lookups, so callers
        pass them lazily (only a policy that asks for them pays)."""
        keys: dict[str, Any] = {}
        names = [
            a.name for a in self.store.list_kms_aliases(self.account, self.region, record.key_id)
        ]
        if names:
            keys["kms:ResourceAliases"] = names
        for tag_key, value in self.store.list_kms_key_tags(record.key_id):
            keys[f"aws:ResourceTag/{tag_key}"] = value
        return keys

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

    def new_material(
        self, record: KmsKeyRecord, version: int, rotation_type: str | None
    ) -> KeyMaterialRecord:
        """Fresh random material for ``version`` of the key, wrapped by the root key."""
        wrapped = self.root_key.wrap(
            MATERIAL_KIND, material_record_id(record.key_id, version), generate_key()
        )
        return KeyMaterialRecord(record.key_id, version, wrapped, self.now(), rotation_type)


def key_policy(record: KmsKeyRecord) -> PolicyDocument:
    return parse_policy(record.policy, require_principal=True)


def check_state(record: KmsKeyRecord, allowed: Collection[str]) -> None:
    """Refuse a key whose state the operation does not accept, in AWS's words: a Disabled key
    is ``DisabledException``, any other state ``KMSInvalidStateException``."""
    if record.state in allowed:
        return
    words = _STATE_WORDS.get(record.state, record.state)
    code = "DisabledException" if record.state == DISABLED else "KMSInvalidStateException"
    raise AwsError(code, f"{record.arn} is {words}.")


def check_usable(record: KmsKeyRecord) -> None:
    """Cryptographic operations need an Enabled key."""
    check_state(record, (ENABLED,))


def key_metadata(record: KmsKeyRecord, imported_material_id: str | None = None) -> dict[str, Any]:
    """DescribeKey's KeyMetadata; the algorithm lists come from the key spec. Imported
    material's id (a keyed fingerprint, see imports.py) is passed in by the caller."""
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
    # PendingDeletionWindowInDays: only for PendingReplicaDeletion (multi-Region primaries),
    # which this cloud has none of; the window shows in DeletionDate.
    symmetric = record.key_spec == "SYMMETRIC_DEFAULT"
    if record.origin == "AWS_KMS" and record.current_version > 0 and symmetric:
        meta["CurrentKeyMaterialId"] = material_id(record.key_id, record.current_version)
    if (
        record.origin == "EXTERNAL"
        and imported_material_id
        and record.current_version > 0
        and symmetric
    ):
        meta["CurrentKeyMaterialId"] = imported_material_id
    # No ExpirationModel while an EXTERNAL key has no material (PendingImport, or material
    # deleted while pending deletion). An Enabled or Disabled key always has some.
    has_material = record.expiration_model is not None or record.state in (ENABLED, DISABLED)
    if record.origin == "EXTERNAL" and has_material:
        meta["ExpirationModel"] = record.expiration_model or "KEY_MATERIAL_DOES_NOT_EXPIRE"
        if record.valid_to is not None:
            meta["ValidTo"] = record.valid_to
    return meta
