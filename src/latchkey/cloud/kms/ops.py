"""The KMS operation table: wire name -> handler, merged from one module per area."""

from __future__ import annotations

from types import ModuleType

from latchkey.cloud.kms import (
    aliases,
    asymmetric_ops,
    create,
    crypto_ops,
    datakeys,
    grants,
    imports,
    lifecycle,
    mac_ops,
    policies,
    rotation,
    tags,
    unsupported,
    usage,
)
from latchkey.cloud.kms.common import Call, Handler

__all__ = ["AUDITABLE_PARAMS", "OPERATIONS", "READ_ONLY", "Call", "Handler"]

AREAS: tuple[ModuleType, ...] = (
    create,
    crypto_ops,
    lifecycle,
    imports,
    asymmetric_ops,
    datakeys,
    mac_ops,
    unsupported,
    rotation,
    aliases,
    tags,
    policies,
    grants,
    usage,
)

OPERATIONS: dict[str, Handler] = {}
for _area in AREAS:
    assert not OPERATIONS.keys() & _area.OPERATIONS.keys(), _area.__name__
    OPERATIONS.update(_area.OPERATIONS)

READ_ONLY: frozenset[str] = frozenset().union(*(a.READ_ONLY for a in AREAS))

# Request members that may be written to the audit trail (never Plaintext or CiphertextBlob).
AUDITABLE_PARAMS: frozenset[str] = frozenset().union(*(a.AUDITABLE_PARAMS for a in AREAS))
