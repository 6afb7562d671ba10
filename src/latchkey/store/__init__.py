"""Durable state for the cloud and control, behind small protocols per aggregate.

Rule: key material and secrets enter and leave this package wrapped by the root key; the
store never sees them in clear. Backends are chosen by name (``open_store``).
"""

from latchkey.store.base import (
    AccessKeyRecord,
    KeyMaterialRecord,
    KmsKeyRecord,
    OidcProviderRecord,
    RoleRecord,
    Store,
    StoreError,
)
from latchkey.store.sqlite import SqliteStore

__all__ = [
    "AccessKeyRecord",
    "KeyMaterialRecord",
    "KmsKeyRecord",
    "OidcProviderRecord",
    "RoleRecord",
    "SqliteStore",
    "Store",
    "StoreError",
]
