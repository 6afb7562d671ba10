"""What each KMS key spec allows: usages and algorithm lists for KeyMetadata and checks."""

from __future__ import annotations

from typing import Any


def spec_metadata(key_spec: str, key_usage: str) -> dict[str, Any]:
    """The algorithm members of KeyMetadata for a key of this spec and usage."""
    if key_spec == "SYMMETRIC_DEFAULT":
        return {"EncryptionAlgorithms": ["SYMMETRIC_DEFAULT"]}
    return {}
