"""What the cryptographic operations share: their request members, DryRun, the key's material."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from latchkey.aws.errors import AwsError, validation_error
from latchkey.aws.jsonproto import decode_blob
from latchkey.cloud.kms.common import Call
from latchkey.cloud.kms.keys import material_id
from latchkey.crypto.keyspecs import UnsupportedSpec
from latchkey.store.base import KmsKeyRecord

MAX_MESSAGE = 4096
MAX_CIPHERTEXT = 6144


def _field(name: str) -> str:
    """``SigningAlgorithm`` -> ``signingAlgorithm``, as AWS names members in its messages."""
    return name[:1].lower() + name[1:]


def blob_param(params: dict[str, Any], name: str, max_length: int = MAX_CIPHERTEXT) -> bytes:
    """A required base64 member of 1..``max_length`` bytes."""
    if params.get(name) is None:
        raise validation_error(_field(name), None, "Member must not be null")
    data = decode_blob(params[name], name)
    if not data:
        raise AwsError(
            "ValidationException",
            f"1 validation error detected: Value at '{_field(name)}' failed to satisfy "
            "constraint: Member must have length greater than or equal to 1",
        )
    if len(data) > max_length:
        raise AwsError(
            "ValidationException",
            f"1 validation error detected: Value at '{_field(name)}' failed to satisfy "
            f"constraint: Member must have length less than or equal to {max_length}",
        )
    return data


def enum_param(
    params: dict[str, Any], name: str, allowed: Sequence[str], default: str | None = None
) -> str:
    """A member that must be one of ``allowed`` (required unless it has a default)."""
    value = params.get(name)
    if value is None:
        if default is not None:
            return default
        raise validation_error(_field(name), None, "Member must not be null")
    if value not in allowed:
        raise validation_error(
            _field(name), value, f"Member must satisfy enum value set: [{', '.join(allowed)}]"
        )
    return str(value)


def refuse_recipient(params: dict[str, Any]) -> None:
    """``Recipient`` asks for the result encrypted to a Nitro Enclave's attested public key
    (``CiphertextForRecipient``). There are no enclaves here: say so rather than answer in
    the clear what the caller meant to receive sealed."""
    if params.get("Recipient") is not None:
        raise AwsError(
            "UnsupportedOperationException",
            "Recipient (AWS Nitro Enclaves attestation) is not supported by this local cloud.",
        )


def check_dry_run(params: dict[str, Any]) -> None:
    """After authorization: a DryRun call stops here, with AWS's 412."""
    if params.get("DryRun") is True:
        raise AwsError(
            "DryRunOperationException",
            "The request would have succeeded, but the DryRun option is set.",
            412,
        )


def ignores_ciphertext(params: dict[str, Any]) -> bool:
    """DryRun with DryRunModifiers IGNORE_CIPHERTEXT: authorize only, the blob is not read."""
    modifiers = params.get("DryRunModifiers") or []
    return params.get("DryRun") is True and "IGNORE_CIPHERTEXT" in modifiers


def key_material_id(call: Call, record: KmsKeyRecord, version: int) -> dict[str, str]:
    """``{"KeyMaterialId": ...}`` for a symmetric encryption key's material version, as AWS
    answers it (generated material: an id per version; imported: the material's fingerprint);
    empty for other keys."""
    if record.key_spec != "SYMMETRIC_DEFAULT" or version < 1:
        return {}
    if record.origin == "EXTERNAL":
        fingerprint = call.keys.store.load_import_fingerprint(record.key_id)
        return {"KeyMaterialId": fingerprint.key_material_id} if fingerprint else {}
    return {"KeyMaterialId": material_id(record.key_id, version)}


def current_material(call: Call, record: KmsKeyRecord) -> bytes:
    """The key material the key uses now (its current version)."""
    return call.keys.material(record, record.current_version)


def unsupported(exc: UnsupportedSpec) -> AwsError:
    return AwsError(
        "UnsupportedOperationException", f"{exc.args[0]} is not supported by this local cloud."
    )
