"""Imported key material (BYOK): GetParametersForImport, ImportKeyMaterial,
DeleteImportedKeyMaterial, and the expiry of material whose ValidTo has passed.

The wrapping private key of each import token and the key used to fingerprint imported material
are stored only wrapped by the root key; the material is stored like any other material
(wrapped, ``imported=True``) and deleting it really deletes it: only a keyed hash remains, so
the same material can be reimported and different material refused.

One material per key: ``ImportType=NEW_KEY_MATERIAL`` on a key that already has material (AWS's
multi-material imports for on-demand rotation) is refused as unsupported.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import secrets
import uuid
from dataclasses import dataclass, field, replace
from typing import Any, Final

from latchkey.aws.errors import AwsError, validation_error
from latchkey.aws.jsonproto import decode_blob, encode_blob
from latchkey.cloud.kms.common import Call, Handler, authorize_key
from latchkey.cloud.kms.keys import (
    DISABLED,
    ENABLED,
    MATERIAL_KIND,
    PENDING_IMPORT,
    check_state,
    material_record_id,
)
from latchkey.cloud.kms.specs import NIST_EC, RSA
from latchkey.crypto import importwrap
from latchkey.crypto.aead import InvalidCiphertext
from latchkey.store.base import (
    ImportFingerprintRecord,
    ImportTokenRecord,
    KeyMaterialRecord,
    KmsKeyRecord,
    Store,
)

log = logging.getLogger("latchkey.cloud.kms")

WRAPPING_KEY_KIND = "kms-import-wrapping-key"
FINGERPRINT_KIND = "kms-import-fingerprint"
PARAMETERS_VALID = dt.timedelta(hours=24)
MAX_VALID_TO = dt.timedelta(days=365)
TOKENS_PER_KEY = 20  # outstanding GetParametersForImport answers kept per key (oldest go)
TOKEN_GRACE = dt.timedelta(hours=24)  # expired tokens answer ExpiredImportToken this long
_TOKEN_FORMAT = b"\x01"

ALGORITHM_ENUM: Final = (
    "RSAES_PKCS1_V1_5",
    "RSAES_OAEP_SHA_1",
    "RSAES_OAEP_SHA_256",
    "RSA_AES_KEY_WRAP_SHA_1",
    "RSA_AES_KEY_WRAP_SHA_256",
    "SM2PKE",
)
KEY_SPEC_ENUM: Final = ("RSA_2048", "RSA_3072", "RSA_4096", "SM2")
EXPIRES = "KEY_MATERIAL_EXPIRES"
DOES_NOT_EXPIRE = "KEY_MATERIAL_DOES_NOT_EXPIRE"
IMPORT_TYPES: Final = ("NEW_KEY_MATERIAL", "EXISTING_KEY_MATERIAL")

# Asymmetric key specs whose private key can be imported (PKCS#8 DER); not ML-DSA or ML-KEM.
ASYMMETRIC: Final = frozenset((*RSA, *NIST_EC, "ECC_SECG_P256K1", "ECC_NIST_EDWARDS25519"))
# Material sizes AWS accepts per key spec (bytes, inclusive).
MATERIAL_SIZES: Final = {
    "SYMMETRIC_DEFAULT": (32, 32),
    "HMAC_224": (28, 64),
    "HMAC_256": (32, 64),
    "HMAC_384": (48, 128),
    "HMAC_512": (64, 128),
}


def _enum(params: dict[str, Any], member: str, name: str, allowed: tuple[str, ...]) -> str:
    value = params.get(member)
    if value is None:
        raise validation_error(name, None, "Member must not be null")
    if value not in allowed:
        raise validation_error(
            name, value, f"Member must satisfy enum value set: [{', '.join(allowed)}]"
        )
    return str(value)


def _check_external(record: KmsKeyRecord) -> None:
    if record.origin != "EXTERNAL":
        raise AwsError(
            "UnsupportedOperationException",
            f"{record.arn} origin is {record.origin} which is not valid for this operation.",
        )


def _check_state_for_import(record: KmsKeyRecord) -> None:
    check_state(record, (ENABLED, DISABLED, PENDING_IMPORT))


def _check_importable(record: KmsKeyRecord) -> None:
    if record.key_spec not in MATERIAL_SIZES and record.key_spec not in ASYMMETRIC:
        raise AwsError(
            "UnsupportedOperationException",
            f"Importing key material into a {record.key_spec} KMS key is not supported.",
        )


def _check_algorithm_fits(record: KmsKeyRecord, algorithm: str, spec: str) -> None:
    """AWS's pairings: RSA private keys need an RSA_AES algorithm; an RSA_2048 wrapping key
    cannot wrap P-521 material directly."""
    two_step = algorithm.startswith("RSA_AES_")
    if record.key_spec.startswith("RSA_") and not two_step:
        raise AwsError(
            "UnsupportedOperationException",
            f"{algorithm} cannot wrap {record.key_spec} key material. Use "
            "RSA_AES_KEY_WRAP_SHA_256 or RSA_AES_KEY_WRAP_SHA_1.",
        )
    if record.key_spec == "ECC_NIST_P521" and spec == "RSA_2048" and not two_step:
        raise AwsError(
            "UnsupportedOperationException",
            f"{algorithm} with an RSA_2048 wrapping key cannot wrap ECC_NIST_P521 key material. "
            "Use a longer wrapping key or an RSA_AES_KEY_WRAP algorithm.",
        )


# -- GetParametersForImport ---------------------------------------------------------------------


async def get_parameters_for_import(call: Call) -> dict[str, Any]:
    p = call.params
    algorithm = _enum(p, "WrappingAlgorithm", "wrappingAlgorithm", ALGORITHM_ENUM)
    spec = _enum(p, "WrappingKeySpec", "wrappingKeySpec", KEY_SPEC_ENUM)
    record = call.keys.resolve(p.get("KeyId"), aliases=False)
    authorize_key(
        call,
        "GetParametersForImport",
        record,
        **{"kms:WrappingAlgorithm": algorithm, "kms:WrappingKeySpec": spec},
    )
    _check_external(record)
    _check_state_for_import(record)
    if algorithm == "SM2PKE" or spec == "SM2":
        name = "WrappingAlgorithm SM2PKE" if algorithm == "SM2PKE" else "WrappingKeySpec SM2"
        raise AwsError("UnsupportedOperationException", f"{name} is not supported in this Region")
    if algorithm == "RSAES_PKCS1_V1_5":
        raise AwsError(
            "UnsupportedOperationException",
            "The RSAES_PKCS1_V1_5 wrapping algorithm is no longer supported. Use "
            "RSAES_OAEP_SHA_256, RSAES_OAEP_SHA_1, RSA_AES_KEY_WRAP_SHA_256 or "
            "RSA_AES_KEY_WRAP_SHA_1.",
        )
    _check_importable(record)
    _check_algorithm_fits(record, algorithm, spec)

    wrapping = await asyncio.to_thread(importwrap.generate_wrapping_key, spec)
    now = call.keys.now()
    token_id = uuid.uuid4()
    wrapped = call.keys.root_key.wrap(
        WRAPPING_KEY_KIND, f"{record.key_id}/{token_id.hex}", wrapping.private_der
    )
    valid_to = now + PARAMETERS_VALID.total_seconds()
    call.keys.store.save_import_token(
        ImportTokenRecord(
            token_id=token_id.hex,
            key_id=record.key_id,
            wrapping_algorithm=algorithm,
            wrapping_key_spec=spec,
            wrapped_private_key=wrapped,
            created=now,
            valid_to=valid_to,
        ),
        keep=TOKENS_PER_KEY,
    )
    return {
        "KeyId": record.arn,
        "ImportToken": encode_blob(_TOKEN_FORMAT + token_id.bytes),
        "PublicKey": encode_blob(wrapping.public_der),
        "ParametersValidTo": valid_to,
    }


# -- ImportKeyMaterial --------------------------------------------------------------------------


def _blob(params: dict[str, Any], member: str, name: str) -> bytes:
    if params.get(member) is None:
        raise validation_error(name, None, "Member must not be null")
    data = decode_blob(params[member], member)
    if not 1 <= len(data) <= 6144:
        raise validation_error(
            name, "...", "Member must have length between 1 and 6144"
        )  # never echo the blob
    return data


def _valid_to(value: object, now: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise AwsError("SerializationException", "Value for 'ValidTo' must be a timestamp")
    if isinstance(value, str):
        try:
            parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise AwsError(
                "SerializationException", "Value for 'ValidTo' must be a timestamp"
            ) from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=dt.UTC)
        when = parsed.timestamp()
    else:
        when = float(value)
    if when <= now:
        raise AwsError("ValidationException", "ValidTo must be in the future")
    if when > now + MAX_VALID_TO.total_seconds():
        raise AwsError(
            "ValidationException", "ValidTo must be no more than 365 days from the request date"
        )
    return when


def _expiration(params: dict[str, Any], now: float) -> tuple[str, float | None]:
    """(ExpirationModel, ValidTo) as AWS checks them; the model defaults to EXPIRES."""
    model = params.get("ExpirationModel")
    if model is None:
        model = EXPIRES
    elif model not in (EXPIRES, DOES_NOT_EXPIRE):
        raise validation_error(
            "expirationModel",
            model,
            f"Member must satisfy enum value set: [{DOES_NOT_EXPIRE}, {EXPIRES}]",
        )
    raw = params.get("ValidTo")
    if model == EXPIRES and raw is None:
        raise AwsError(
            "ValidationException",
            "A validTo date must be set if the ExpirationModel is KEY_MATERIAL_EXPIRES",
        )
    if model == DOES_NOT_EXPIRE and raw is not None:
        raise AwsError(
            "ValidationException",
            "The parameter ValidTo cannot be specified for a key with an expiration model of "
            "KEY_MATERIAL_DOES_NOT_EXPIRE",
        )
    return model, None if raw is None else _valid_to(raw, now)


def _optional_text(params: dict[str, Any], member: str, name: str, size: tuple[int, int]) -> Any:
    value = params.get(member)
    if value is not None and (not isinstance(value, str) or not size[0] <= len(value) <= size[1]):
        raise validation_error(
            name, value, f"Member must have length between {size[0]} and {size[1]}"
        )
    return value


def _load_token(call: Call, record: KmsKeyRecord, raw: bytes, now: float) -> ImportTokenRecord:
    invalid = AwsError(
        "InvalidImportTokenException",
        "The import token is invalid or is associated with a different KMS key.",
    )
    if len(raw) != 17 or raw[:1] != _TOKEN_FORMAT:
        raise invalid
    token = call.keys.store.load_import_token(uuid.UUID(bytes=raw[1:]).hex)
    if token is None or token.key_id != record.key_id:
        raise invalid
    if token.valid_to <= now:
        raise AwsError(
            "ExpiredImportTokenException",
            "The import token has expired. Use GetParametersForImport to get a new import "
            "token and public key.",
        )
    return token


def _unwrap(call: Call, token: ImportTokenRecord, encrypted: bytes) -> bytes:
    try:
        private_der = call.keys.root_key.unwrap(
            WRAPPING_KEY_KIND, f"{token.key_id}/{token.token_id}", token.wrapped_private_key
        )
    except InvalidCiphertext:
        raise AwsError("KMSInternalException", "The import token is unreadable.", 500) from None
    try:
        return importwrap.unwrap_key_material(private_der, token.wrapping_algorithm, encrypted)
    except InvalidCiphertext:
        raise AwsError("InvalidCiphertextException", "") from None


def _checked_material(record: KmsKeyRecord, material: bytes) -> bytes:
    """The material to keep for the key: raw bytes of the right size (symmetric, HMAC) or the
    private key of the key's spec in canonical PKCS#8 DER (asymmetric)."""
    if record.key_spec in ASYMMETRIC:
        try:
            spec, canonical = importwrap.private_key_spec(material)
        except ValueError:
            spec, canonical = "", b""
        if spec != record.key_spec:
            raise AwsError(
                "IncorrectKeyMaterialException",
                f"The key material is not a {record.key_spec} private key in PKCS#8 DER form.",
            )
        return canonical
    low, high = MATERIAL_SIZES[record.key_spec]
    if not low <= len(material) <= high:
        size = f"{low} bytes" if low == high else f"between {low} and {high} bytes"
        raise AwsError(
            "IncorrectKeyMaterialException",
            f"Key material for a {record.key_spec} KMS key must be {size}.",
        )
    return material


def _fingerprint(
    call: Call, record: KmsKeyRecord, material: bytes, now: float
) -> tuple[ImportFingerprintRecord, bool, bool]:
    """(fingerprint record, first import?, same material as before?): the stored record, or a
    fresh one on the first import."""
    stored = call.keys.store.load_import_fingerprint(record.key_id)
    if stored is None:
        fp_key = secrets.token_bytes(32)
        wrapped = call.keys.root_key.wrap(FINGERPRINT_KIND, record.key_id, fp_key)
        material_id = importwrap.material_fingerprint(fp_key, record.key_id, material)
        return ImportFingerprintRecord(record.key_id, wrapped, material_id, now), True, True
    try:
        fp_key = call.keys.root_key.unwrap(
            FINGERPRINT_KIND, record.key_id, stored.wrapped_fingerprint_key
        )
    except InvalidCiphertext:
        raise AwsError("KMSInternalException", "The key material is unreadable.", 500) from None
    material_id = importwrap.material_fingerprint(fp_key, record.key_id, material)
    return stored, False, secrets.compare_digest(material_id, stored.key_material_id)


def _import_type(params: dict[str, Any]) -> str | None:
    import_type = params.get("ImportType")
    if import_type is not None and import_type not in IMPORT_TYPES:
        raise validation_error(
            "importType",
            import_type,
            f"Member must satisfy enum value set: [{', '.join(IMPORT_TYPES)}]",
        )
    if import_type == "NEW_KEY_MATERIAL" and params.get("KeyMaterialId") is not None:
        raise AwsError(
            "ValidationException",
            "You cannot specify a key material ID with ImportType set to NEW_KEY_MATERIAL.",
        )
    return import_type


def _check_symmetric_only(params: dict[str, Any], record: KmsKeyRecord) -> None:
    if record.key_spec == "SYMMETRIC_DEFAULT":
        return
    for member in ("ImportType", "KeyMaterialId", "KeyMaterialDescription"):
        if params.get(member) is not None:
            raise AwsError(
                "ValidationException",
                f"{member} is only supported for symmetric encryption KMS keys.",
            )


def _check_material_matches(
    import_type: str | None, first: bool, same: bool, material_id: str, given_id: str | None
) -> None:
    """AWS's reimport rules, with one material per key."""
    if import_type == "EXISTING_KEY_MATERIAL" and first:
        raise AwsError(
            "IncorrectKeyMaterialException",
            "No key material has been imported into this KMS key yet; import it with "
            "ImportType NEW_KEY_MATERIAL.",
        )
    if import_type == "NEW_KEY_MATERIAL" and not first:
        if same:
            raise AwsError(
                "IncorrectKeyMaterialException",
                "The key material is already associated with this KMS key; reimport it with "
                "ImportType EXISTING_KEY_MATERIAL.",
            )
        raise AwsError(
            "UnsupportedOperationException",
            "Importing new key material into a KMS key that already has key material (for "
            "on-demand rotation) is not supported.",
        )
    if not same:
        raise AwsError(
            "IncorrectKeyMaterialException",
            "The key material is not the key material that was previously imported into "
            "this KMS key.",
        )
    if given_id is not None and given_id != material_id:
        raise AwsError(
            "IncorrectKeyMaterialException",
            "The key material does not match the specified KeyMaterialId.",
        )


@dataclass(frozen=True, slots=True)
class _ImportRequest:
    token: bytes = field(repr=False)
    encrypted: bytes = field(repr=False)
    expiration_model: str
    valid_to: float | None
    import_type: str | None
    material_id: str | None
    description: str | None


def _parse_import(params: dict[str, Any], now: float) -> _ImportRequest:
    """ImportKeyMaterial's members, checked as AWS checks them before looking at the key."""
    token = _blob(params, "ImportToken", "importToken")
    encrypted = _blob(params, "EncryptedKeyMaterial", "encryptedKeyMaterial")
    model, valid_to = _expiration(params, now)
    material_id = params.get("KeyMaterialId")
    if material_id is not None and (
        not isinstance(material_id, str)
        or len(material_id) != 64
        or material_id.strip("0123456789abcdef")
    ):
        raise validation_error(
            "keyMaterialId",
            material_id,
            "Member must satisfy regular expression pattern: ^[a-f0-9]+$",
        )
    description = _optional_text(
        params, "KeyMaterialDescription", "keyMaterialDescription", (0, 256)
    )
    import_type = _import_type(params)
    return _ImportRequest(token, encrypted, model, valid_to, import_type, material_id, description)


async def import_key_material(call: Call) -> dict[str, Any]:
    p = call.params
    now = call.keys.now()
    req = _parse_import(p, now)
    record = call.keys.resolve(p.get("KeyId"), aliases=False)
    keys: dict[str, Any] = {"kms:ExpirationModel": req.expiration_model}
    if req.valid_to is not None:
        keys["kms:ValidTo"] = int(req.valid_to)
    authorize_key(call, "ImportKeyMaterial", record, **keys)
    _check_external(record)
    _check_state_for_import(record)
    _check_importable(record)
    _check_symmetric_only(p, record)
    token = _load_token(call, record, req.token, now)
    material = await asyncio.to_thread(_unwrap, call, token, req.encrypted)
    material = _checked_material(record, material)
    fingerprint, first, same = _fingerprint(call, record, material, now)
    _check_material_matches(req.import_type, first, same, fingerprint.key_material_id,
                            req.material_id)  # fmt: skip

    # The key as it is now (it may have changed while the material was unwrapped).
    current = call.keys.store.load_kms_key(record.key_id)
    if current is None:
        raise AwsError("NotFoundException", f"Key '{record.arn}' does not exist")
    _check_state_for_import(current)
    version = current.current_version or 1
    wrapped = call.keys.root_key.wrap(
        MATERIAL_KIND, material_record_id(current.key_id, version), material
    )
    updated = replace(
        current,
        state=ENABLED if current.state == PENDING_IMPORT else current.state,
        current_version=version,
        expiration_model=req.expiration_model,
        valid_to=req.valid_to,
    )
    call.keys.store.import_key_material(
        KeyMaterialRecord(current.key_id, version, wrapped, now, imported=True),
        updated,
        replace(fingerprint, description=req.description) if first else None,
        req.description,
    )
    return {"KeyId": record.arn, "KeyMaterialId": fingerprint.key_material_id}


# -- DeleteImportedKeyMaterial ------------------------------------------------------------------


async def delete_imported_key_material(call: Call) -> dict[str, Any]:
    p = call.params
    record = call.keys.resolve(p.get("KeyId"), aliases=False)
    given_id = p.get("KeyMaterialId")
    authorize_key(call, "DeleteImportedKeyMaterial", record)
    _check_external(record)
    fingerprint = call.keys.store.load_import_fingerprint(record.key_id)
    if given_id is not None and (fingerprint is None or given_id != fingerprint.key_material_id):
        raise AwsError(
            "NotFoundException",
            f"Key material {given_id} is not associated with {record.arn}.",
        )
    call.keys.store.delete_imported_key_material(record)
    out: dict[str, Any] = {"KeyId": record.arn}
    if fingerprint is not None:
        out["KeyMaterialId"] = fingerprint.key_material_id
    return out


# -- expiry (the sweeper's job) -----------------------------------------------------------------


def expire_imported_material(store: Store, now: float) -> list[str]:
    """Delete imported material whose ValidTo has passed (the key goes to PendingImport) and
    import tokens long expired; the ids of the keys that lost their material."""
    expired = store.expire_imported_key_material(now)
    store.delete_import_tokens_expired_before(now - TOKEN_GRACE.total_seconds())
    for key_id in expired:
        log.info("kms: imported key material of key %s expired", key_id)
    return expired


OPERATIONS: dict[str, Handler] = {
    "GetParametersForImport": get_parameters_for_import,
    "ImportKeyMaterial": import_key_material,
    "DeleteImportedKeyMaterial": delete_imported_key_material,
}
READ_ONLY = frozenset({"GetParametersForImport"})
# Never ImportToken or EncryptedKeyMaterial.
AUDITABLE_PARAMS = frozenset(
    {
        "KeyId",
        "WrappingAlgorithm",
        "WrappingKeySpec",
        "ExpirationModel",
        "ValidTo",
        "ImportType",
        "KeyMaterialId",
        "KeyMaterialDescription",
    }
)
