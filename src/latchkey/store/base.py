"""Records and the storage protocol. Records are plain frozen values; secrets are wrapped bytes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


class StoreError(Exception):
    """The store could not do what was asked (disk full, fsync failed, closed)."""


class Conflict(StoreError):
    """A record with that identity already exists."""


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
    state: str
    origin: str
    policy: str
    current_version: int


@dataclass(frozen=True, slots=True)
class KeyMaterialRecord:
    key_id: str
    version: int
    wrapped: bytes = field(repr=False)
    created: float


@dataclass(frozen=True, slots=True)
class OidcProviderRecord:
    arn: str
    url: str  # without scheme, as IAM stores it: "host[:port][/path]"
    client_ids: tuple[str, ...]
    thumbprints: tuple[str, ...]
    created: float


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


@dataclass(frozen=True, slots=True)
class AccessKeyRecord:
    access_key_id: str
    wrapped_secret: bytes = field(repr=False)
    principal_arn: str  # the identity the key signs as
    kind: str  # "root" | "session"
    created: float
    expiration: float | None = None  # epoch seconds; sessions only
    session_token_sha256: str | None = None
    role_arn: str | None = None
    session_context: str = "{}"  # JSON: how the session was made (web identity, issuer, sub)


class Store(Protocol):
    # kms
    def save_kms_key(self, key: KmsKeyRecord, material: KeyMaterialRecord) -> None: ...
    def load_kms_key(self, key_id: str) -> KmsKeyRecord | None: ...
    def list_kms_keys(self, account: str, region: str) -> list[KmsKeyRecord]: ...
    def load_key_material(self, key_id: str, version: int) -> KeyMaterialRecord | None: ...

    # iam
    def save_oidc_provider(self, provider: OidcProviderRecord) -> None: ...
    def load_oidc_provider(self, arn: str) -> OidcProviderRecord | None: ...
    def list_oidc_providers(self) -> list[OidcProviderRecord]: ...
    def save_role(self, role: RoleRecord) -> None: ...
    def load_role(self, name: str) -> RoleRecord | None: ...
    def put_role_policy(self, role_name: str, policy_name: str, document: str) -> None: ...
    def update_role_trust_policy(self, role_name: str, document: str) -> None: ...

    # credentials
    def save_access_key(self, key: AccessKeyRecord) -> None: ...
    def load_access_key(self, access_key_id: str) -> AccessKeyRecord | None: ...
    def delete_expired_access_keys(self, now: float) -> int: ...

    def close(self) -> None: ...
