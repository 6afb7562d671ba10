"""Records and the storage protocol. Records are plain frozen values; secrets are wrapped bytes."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

T = TypeVar("T")

Tags = tuple[tuple[str, str], ...]  # (key, value), sorted by key


def tag_key_match(arn: str, key: str) -> str:
    """What makes two tag keys of one resource the same key. IAM users and roles: the key
    ignoring case (case is preserved, ``team`` replaces ``Team``); other resources: exact."""
    resource = arn.split(":", 5)[-1]
    return key.lower() if resource.startswith(("role/", "user/")) else key


class StoreError(Exception):
    """The store could not do what was asked (disk full, fsync failed, closed)."""


class StoreBusy(StoreError):
    """Another connection (another process) held the database's write lock past the busy
    timeout; nothing changed and the store goes on accepting writes: retry."""


class WriteUnconfirmed(StoreError):
    """The commit itself failed with an I/O error: its data may have reached the disk before
    the failure, so whether the write stands is unknown (it may reappear after a restart). The
    store refuses writes from then on."""


class Conflict(StoreError):
    """A record with that identity already exists."""


class InUse(StoreError):
    """The record still has dependents (policies, attachments, access keys); nothing changed."""


class LimitReached(StoreError):
    """The change would exceed a per-record quota (tags, attachments, access keys)."""


@dataclass(frozen=True, slots=True)
class KmsKeyRecord:
    key_id: str
    arn: str
    account: str
    region: str
    created: float  # epoch seconds
    description: str
    key_spec: str
    key_usage: str
    state: str  # Enabled | Disabled | PendingDeletion | PendingImport
    origin: str  # AWS_KMS | EXTERNAL
    policy: str
    current_version: int  # 0 while an EXTERNAL key has no material yet
    deletion_date: float | None = None  # PendingDeletion: when the sweeper deletes it
    pending_window_days: int | None = None
    rotation_period_days: int | None = None  # automatic rotation on when set
    next_rotation: float | None = None
    valid_to: float | None = None  # imported material that expires
    expiration_model: str | None = None  # KEY_MATERIAL_EXPIRES | KEY_MATERIAL_DOES_NOT_EXPIRE
    last_used: float | None = None  # last successful cryptographic operation
    last_used_operation: str | None = None


@dataclass(frozen=True, slots=True)
class KeyMaterialRecord:
    key_id: str
    version: int
    wrapped: bytes = field(repr=False)
    created: float
    rotation_type: str | None = None  # None for the first material; AUTOMATIC | ON_DEMAND
    imported: bool = False  # EXTERNAL material (deleted by DeleteImportedKeyMaterial)


@dataclass(frozen=True, slots=True)
class ImportTokenRecord:
    """GetParametersForImport's wrapping key pair; the private key is wrapped by the root key."""

    token_id: str
    key_id: str
    wrapping_algorithm: str
    wrapping_key_spec: str
    wrapped_private_key: bytes = field(repr=False)
    created: float
    valid_to: float  # ParametersValidTo


@dataclass(frozen=True, slots=True)
class ImportFingerprintRecord:
    """What recognises an EXTERNAL key's material on reimport: a keyed hash, never the material
    (the HMAC key is wrapped by the root key)."""

    key_id: str
    wrapped_fingerprint_key: bytes = field(repr=False)
    key_material_id: str  # HMAC-SHA256(key id, material), hex
    created: float
    description: str | None = None  # ImportKeyMaterial's KeyMaterialDescription, the latest


@dataclass(frozen=True, slots=True)
class KmsAliasRecord:
    account: str
    region: str
    name: str  # "alias/..."
    key_id: str
    created: float
    updated: float  # when it was last pointed at a key


@dataclass(frozen=True, slots=True)
class KmsGrantRecord:
    """A KMS grant on one key. Encryption context constraints are (key, value) pairs sorted by
    key; the principals' unique ids (role or user id when the grant was made) bind the grant to
    that identity, not to a later one re-created under the same name."""

    grant_id: str  # 64 hex digits
    key_id: str
    created: float
    grantee_principal: str
    operations: tuple[str, ...]
    issuing_account: str  # arn:aws:iam::ACCOUNT:root
    name: str | None = None
    retiring_principal: str | None = None
    context_subset: tuple[tuple[str, str], ...] | None = None  # EncryptionContextSubset
    context_equals: tuple[tuple[str, str], ...] | None = None  # EncryptionContextEquals
    grantee_id: str | None = None
    retiring_id: str | None = None


@dataclass(frozen=True, slots=True)
class OidcProviderRecord:
    arn: str
    url: str  # without scheme, as IAM stores it: "host[:port][/path]"
    client_ids: tuple[str, ...]
    thumbprints: tuple[str, ...]
    created: float
    tags: Tags = ()


@dataclass(frozen=True, slots=True)
class RoleRecord:
    name: str
    arn: str
    role_id: str
    path: str
    trust_policy: str
    max_session_duration: int
    created: float
    inline_policies: tuple[tuple[str, str], ...] = ()  # (policy name, document)
    description: str = ""
    attached_policies: tuple[str, ...] = ()  # managed policy ARNs
    tags: Tags = ()


@dataclass(frozen=True, slots=True)
class UserRecord:
    name: str
    arn: str
    user_id: str  # AIDA...
    path: str
    created: float
    inline_policies: tuple[tuple[str, str], ...] = ()  # (policy name, document)
    attached_policies: tuple[str, ...] = ()  # managed policy ARNs
    tags: Tags = ()


@dataclass(frozen=True, slots=True)
class ManagedPolicyRecord:
    arn: str
    name: str
    policy_id: str  # ANPA...
    path: str
    description: str
    default_version_id: str  # "v1"
    document: str  # the default version's document
    created: float
    updated: float
    attachment_count: int = 0  # roles + users it is attached to (computed on load)
    tags: Tags = ()


@dataclass(frozen=True, slots=True)
class PolicyVersionRecord:
    policy_arn: str
    version_id: str
    document: str
    created: float
    is_default: bool


@dataclass(frozen=True, slots=True)
class AccessKeyRecord:
    access_key_id: str
    wrapped_secret: bytes = field(repr=False)
    principal_arn: str  # the identity the key signs as
    kind: str  # "root" | "user" | "session"
    created: float
    expiration: float | None = None  # epoch seconds; sessions only
    session_token_sha256: str | None = None
    role_arn: str | None = None
    session_context: str = "{}"  # JSON: how the session was made (web identity, issuer, sub)
    status: str = "Active"  # "Active" | "Inactive" (user keys)


class Store(Protocol):
    def cached(self, name: str, key: Hashable, load: Callable[[], T], *, size: int = ...) -> T:
        """``load()``'s value, remembered until the store's next write (values immutable)."""
        ...

    # kms keys and their material versions (material is wrapped by the root key)
    def save_kms_key(self, key: KmsKeyRecord, material: KeyMaterialRecord | None) -> None: ...
    def update_kms_key(self, key: KmsKeyRecord) -> bool: ...  # every column but key_id
    def load_kms_key(self, key_id: str) -> KmsKeyRecord | None: ...
    def list_kms_keys(self, account: str, region: str) -> list[KmsKeyRecord]: ...
    def delete_kms_key(self, key_id: str) -> bool: ...  # with its material (dependents cascade)
    def save_key_material(
        self, material: KeyMaterialRecord, key: KmsKeyRecord | None = None
    ) -> None: ...  # with ``key``: the key record is updated in the same transaction
    def load_key_material(self, key_id: str, version: int) -> KeyMaterialRecord | None: ...
    def list_key_materials(self, key_id: str) -> list[KeyMaterialRecord]: ...
    def delete_key_materials(self, key_id: str, *, imported_only: bool = False) -> int: ...

    # kms: imported key material (import tokens and fingerprints cascade with their key)
    def save_import_token(self, token: ImportTokenRecord, *, keep: int) -> None: ...
    def load_import_token(self, token_id: str) -> ImportTokenRecord | None: ...
    def delete_import_tokens_expired_before(self, when: float) -> int: ...
    def load_import_fingerprint(self, key_id: str) -> ImportFingerprintRecord | None: ...
    def import_key_material(
        self,
        material: KeyMaterialRecord,
        key: KmsKeyRecord,
        fingerprint: ImportFingerprintRecord | None,
        description: str | None = None,
    ) -> None: ...  # one transaction: replaces imported material, updates the key
    def delete_imported_key_material(self, key: KmsKeyRecord) -> int: ...  # same transaction
    def expire_imported_key_material(self, now: float) -> list[str]: ...  # key ids expired

    # kms: aliases and tags of keys (they go with their key); the sweeper's queries
    def save_kms_alias(self, alias: KmsAliasRecord, *, limit: int) -> None: ...
    def update_kms_alias(
        self, account: str, region: str, name: str, key_id: str, updated: float, *, limit: int
    ) -> bool: ...
    def delete_kms_alias(self, account: str, region: str, name: str) -> bool: ...
    def load_kms_alias(self, account: str, region: str, name: str) -> KmsAliasRecord | None: ...
    def list_kms_aliases(
        self, account: str, region: str, key_id: str | None = None
    ) -> list[KmsAliasRecord]: ...
    def tag_kms_key(self, key_id: str, tags: Sequence[tuple[str, str]], *, limit: int) -> None: ...
    def untag_kms_key(self, key_id: str, tag_keys: Sequence[str]) -> None: ...
    def list_kms_key_tags(self, key_id: str) -> Tags: ...
    def promote_key_material(
        self, key: KmsKeyRecord, version: int, rotation_type: str
    ) -> None: ...  # with the key record, one transaction
    def list_kms_keys_to_delete(self, now: float) -> list[KmsKeyRecord]: ...
    def list_kms_keys_to_rotate(self, now: float) -> list[KmsKeyRecord]: ...

    # kms: grants (deleted with their key). A named grant identical to one on the key is not
    # added again: the existing one is returned (CreateGrant retries). LimitReached at ``limit``.
    def add_kms_grant(self, grant: KmsGrantRecord, *, limit: int) -> KmsGrantRecord: ...
    def load_kms_grant(self, grant_id: str) -> KmsGrantRecord | None: ...
    def list_kms_grants(
        self,
        key_id: str,
        *,
        grantees: Sequence[str] | None = None,
        after: tuple[float, str] | None = None,
        limit: int | None = None,
    ) -> list[KmsGrantRecord]: ...  # by (created, grant_id), after ``after``
    def list_retirable_kms_grants(
        self,
        retiring_principal: str,
        account: str,
        region: str,
        *,
        after: tuple[float, str] | None = None,
        limit: int | None = None,
    ) -> list[KmsGrantRecord]: ...
    def delete_kms_grant(self, grant_id: str) -> bool: ...

    # iam: OIDC providers (Conflict on a duplicate ARN or URL)
    def save_oidc_provider(self, provider: OidcProviderRecord) -> None: ...
    def load_oidc_provider(self, arn: str) -> OidcProviderRecord | None: ...
    def list_oidc_providers(self) -> list[OidcProviderRecord]: ...
    def update_oidc_provider(
        self,
        arn: str,
        *,
        client_ids: tuple[str, ...] | None = None,
        thumbprints: tuple[str, ...] | None = None,
    ) -> bool: ...
    def delete_oidc_provider(self, arn: str) -> bool: ...

    # iam: tags of any IAM resource, by ARN. Keys of roles and users match case-insensitively.
    def tag_resource(self, arn: str, tags: Sequence[tuple[str, str]], *, limit: int) -> None: ...
    def untag_resource(self, arn: str, keys: Sequence[str]) -> None: ...
    def list_tags(self, arn: str) -> Tags: ...

    # iam: roles (names are unique case-insensitively; Conflict on a duplicate)
    def save_role(self, role: RoleRecord) -> None: ...
    def load_role(self, name: str) -> RoleRecord | None: ...
    def list_roles(self, path_prefix: str = "/") -> list[RoleRecord]: ...
    def update_role(
        self, name: str, *, description: str | None = None, max_session_duration: int | None = None
    ) -> bool: ...
    def update_role_trust_policy(self, role_name: str, document: str) -> None: ...
    def delete_role(self, name: str) -> bool: ...  # InUse while it has policies
    def put_role_policy(self, role_name: str, policy_name: str, document: str) -> None: ...
    def delete_role_policy(self, role_name: str, policy_name: str) -> bool: ...
    def attach_role_policy(self, role_name: str, policy_arn: str, *, limit: int) -> bool: ...
    def detach_role_policy(self, role_name: str, policy_arn: str) -> bool: ...

    # iam: customer managed policies (names unique case-insensitively)
    def save_managed_policy(self, policy: ManagedPolicyRecord) -> None: ...
    def load_managed_policy(self, arn: str) -> ManagedPolicyRecord | None: ...
    def load_policy_version(self, arn: str, version_id: str) -> PolicyVersionRecord | None: ...
    def list_managed_policies(
        self, path_prefix: str = "/", *, only_attached: bool = False
    ) -> list[ManagedPolicyRecord]: ...
    def delete_managed_policy(self, arn: str) -> bool: ...  # InUse while attached

    # iam: users
    def save_user(self, user: UserRecord) -> None: ...
    def load_user(self, name: str) -> UserRecord | None: ...
    def list_users(self, path_prefix: str = "/") -> list[UserRecord]: ...
    def delete_user(self, name: str) -> bool: ...  # InUse while it has policies or keys
    def put_user_policy(self, user_name: str, policy_name: str, document: str) -> None: ...
    def delete_user_policy(self, user_name: str, policy_name: str) -> bool: ...
    def attach_user_policy(self, user_name: str, policy_arn: str, *, limit: int) -> bool: ...
    def detach_user_policy(self, user_name: str, policy_arn: str) -> bool: ...

    # credentials
    def save_access_key(self, key: AccessKeyRecord) -> None: ...
    def add_access_key(self, key: AccessKeyRecord, *, limit: int) -> None: ...
    def load_access_key(self, access_key_id: str) -> AccessKeyRecord | None: ...
    def list_access_keys(self, principal_arn: str) -> list[AccessKeyRecord]: ...
    def set_access_key_status(self, access_key_id: str, status: str) -> bool: ...
    def delete_access_key(self, access_key_id: str) -> bool: ...
    def delete_expired_access_keys(self, now: float) -> int: ...

    def close(self) -> None: ...
