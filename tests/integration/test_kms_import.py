"""Imported key material (BYOK) as AWS KMS does it, driven by real boto3: the wrapping public key
and import token, key material wrapped client-side exactly as AWS's guide does it with OpenSSL
(RSA-OAEP, or RSA-OAEP of an AES key followed by AES key wrap with padding), reimport of the
same material only, deletion and expiry back to PendingImport, and nothing secret in the
database file."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import botocore.auth
import pytest
from cryptography.hazmat.primitives import hashes, keywrap, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from latchkey.cloud.kms.imports import expire_imported_material
from latchkey.crypto import ciphertext
from latchkey_testing import (
    ACCOUNT,
    AUDIENCE,
    ROOT,
    Cloud,
    SettableClock,
    allow,
    deny,
    policy,
    refused,
)

OAEP_256 = "RSAES_OAEP_SHA_256"
NO_EXPIRY = {"ExpirationModel": "KEY_MATERIAL_DOES_NOT_EXPIRE"}
DAY = 24 * 3600


def wrap(public_der: bytes, algorithm: str, material: bytes) -> bytes:
    """What ``openssl pkeyutl -encrypt -pkeyopt rsa_padding_mode:oaep -pkeyopt rsa_oaep_md:..
    -pkeyopt rsa_mgf1_md:..`` makes (RSAES_OAEP_*), or for RSA_AES_KEY_WRAP_*: a random AES-256
    key encrypted that way, followed by ``openssl enc -id-aes256-wrap-pad`` of the material."""
    public = serialization.load_der_public_key(public_der)
    assert isinstance(public, rsa.RSAPublicKey)
    digest = hashes.SHA256 if algorithm.endswith("SHA_256") else hashes.SHA1
    oaep = padding.OAEP(mgf=padding.MGF1(algorithm=digest()), algorithm=digest(), label=None)
    if algorithm.startswith("RSAES_OAEP"):
        return public.encrypt(material, oaep)
    aes_key = os.urandom(32)
    return public.encrypt(aes_key, oaep) + keywrap.aes_key_wrap_with_padding(aes_key, material)


def external_key(kms: Any, **extra: Any) -> str:
    return str(kms.create_key(Origin="EXTERNAL", **extra)["KeyMetadata"]["KeyId"])


def parameters(kms: Any, key_id: str, algorithm: str = OAEP_256, spec: str = "RSA_2048") -> Any:
    return kms.get_parameters_for_import(
        KeyId=key_id, WrappingAlgorithm=algorithm, WrappingKeySpec=spec
    )


def import_material(
    kms: Any,
    key_id: str,
    material: bytes,
    algorithm: str = OAEP_256,
    spec: str = "RSA_2048",
    **extra: Any,
) -> Any:
    params = parameters(kms, key_id, algorithm, spec)
    return kms.import_key_material(
        KeyId=key_id,
        ImportToken=params["ImportToken"],
        EncryptedKeyMaterial=wrap(params["PublicKey"], algorithm, material),
        **(extra or NO_EXPIRY),
    )


def state(kms: Any, key_id: str) -> str:
    return str(kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"])


@pytest.fixture
def signing_clock(monkeypatch: pytest.MonkeyPatch, settable_clock: SettableClock) -> SettableClock:
    """Clients sign at the node's (moved) time, so SigV4's five minutes stay satisfied."""
    real = botocore.auth.get_current_datetime

    def shifted(remove_tzinfo: bool = True) -> dt.datetime:
        return real(remove_tzinfo) + settable_clock.offset

    monkeypatch.setattr(botocore.auth, "get_current_datetime", shifted)
    return settable_clock


# -- the round trip -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("algorithm", "spec"),
    [
        ("RSAES_OAEP_SHA_1", "RSA_2048"),
        ("RSAES_OAEP_SHA_256", "RSA_3072"),
        ("RSA_AES_KEY_WRAP_SHA_1", "RSA_2048"),
        ("RSA_AES_KEY_WRAP_SHA_256", "RSA_2048"),
    ],
)
def test_import_round_trip(cloud: Cloud, kms: Any, algorithm: str, spec: str) -> None:
    key_id = external_key(kms)
    arn = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/{key_id}"
    assert state(kms, key_id) == "PendingImport"
    before = dt.datetime.now(dt.UTC)
    params = parameters(kms, key_id, algorithm, spec)
    assert params["KeyId"] == arn
    valid = (params["ParametersValidTo"] - before).total_seconds()
    assert DAY - 60 <= valid <= DAY + 60
    public = serialization.load_der_public_key(params["PublicKey"])
    assert isinstance(public, rsa.RSAPublicKey)
    assert public.key_size == int(spec.removeprefix("RSA_"))

    material = os.urandom(32)
    done = kms.import_key_material(
        KeyId=key_id,
        ImportToken=params["ImportToken"],
        EncryptedKeyMaterial=wrap(params["PublicKey"], algorithm, material),
        **NO_EXPIRY,
    )
    assert done["KeyId"] == arn
    assert len(done["KeyMaterialId"]) == 64
    meta = kms.describe_key(KeyId=key_id)["KeyMetadata"]
    assert (meta["KeyState"], meta["Enabled"], meta["Origin"]) == ("Enabled", True, "EXTERNAL")
    assert meta["ExpirationModel"] == "KEY_MATERIAL_DOES_NOT_EXPIRE"
    assert "ValidTo" not in meta

    blob = kms.encrypt(KeyId=key_id, Plaintext=b"bring your own key")["CiphertextBlob"]
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"bring your own key"
    # The ciphertext is made with exactly the material the caller imported.
    opened = ciphertext.decrypt_symmetric(material, ciphertext.decode_blob(blob), {})
    assert opened == b"bring your own key"


def test_each_answer_has_its_own_wrapping_key_and_token(kms: Any) -> None:
    key_id = external_key(kms)
    first, second = parameters(kms, key_id), parameters(kms, key_id)
    assert first["PublicKey"] != second["PublicKey"]
    assert first["ImportToken"] != second["ImportToken"]
    material = os.urandom(32)
    # Material wrapped for one public key does not import with the other's token.
    err = refused(
        kms.import_key_material,
        KeyId=key_id,
        ImportToken=second["ImportToken"],
        EncryptedKeyMaterial=wrap(first["PublicKey"], OAEP_256, material),
        **NO_EXPIRY,
    )
    assert err[:2] == ("InvalidCiphertextException", 400)
    assert state(kms, key_id) == "PendingImport"


# -- delete, reimport, different material -------------------------------------------------------


def material_entries(kms: Any, key_id: str) -> list[dict[str, Any]]:
    listed = kms.list_key_rotations(KeyId=key_id, IncludeKeyMaterial="ALL_KEY_MATERIAL")
    return list(listed["Rotations"])


def test_deleted_material_refuses_crypto_until_the_same_material_returns(kms: Any) -> None:
    key_id = external_key(kms)
    assert "ExpirationModel" not in kms.describe_key(KeyId=key_id)["KeyMetadata"]  # no material
    assert material_entries(kms, key_id) == []
    material = os.urandom(32)
    first_id = import_material(kms, key_id, material)["KeyMaterialId"]
    blob = kms.encrypt(KeyId=key_id, Plaintext=b"kept")["CiphertextBlob"]
    [entry] = material_entries(kms, key_id)
    assert (entry["KeyMaterialId"], entry["ImportState"]) == (first_id, "IMPORTED")

    gone = kms.delete_imported_key_material(KeyId=key_id)
    assert gone["KeyMaterialId"] == first_id
    meta = kms.describe_key(KeyId=key_id)["KeyMetadata"]
    assert (meta["KeyState"], meta["Enabled"]) == ("PendingImport", False)
    assert "ExpirationModel" not in meta
    assert material_entries(kms, key_id) == [  # still listed, waiting for its material
        {"KeyId": key_id, "KeyMaterialId": first_id, "KeyMaterialState": "CURRENT",
         "ImportState": "PENDING_IMPORT"}
    ]  # fmt: skip
    for call, kwargs in [
        (kms.encrypt, {"KeyId": key_id, "Plaintext": b"x"}),
        (kms.decrypt, {"CiphertextBlob": blob}),
        (kms.generate_data_key, {"KeyId": key_id, "KeySpec": "AES_256"}),
    ]:
        err = refused(call, **kwargs)
        assert err[:2] == ("KMSInvalidStateException", 400)
        assert "pending import" in err.message.lower() or "PendingImport" in err.message

    # Deleting again changes nothing (AWS: no effect on a PendingImport key).
    kms.delete_imported_key_material(KeyId=key_id)
    assert state(kms, key_id) == "PendingImport"

    again = import_material(kms, key_id, material, "RSA_AES_KEY_WRAP_SHA_256")
    assert again["KeyMaterialId"] == first_id
    assert state(kms, key_id) == "Enabled"
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"kept"


def test_key_material_description_is_kept_with_the_material(kms: Any) -> None:
    key_id = external_key(kms)
    material = os.urandom(32)
    import_material(kms, key_id, material, KeyMaterialDescription="hsm export 2026-11",
                    **NO_EXPIRY)  # fmt: skip
    [entry] = material_entries(kms, key_id)
    assert entry["KeyMaterialDescription"] == "hsm export 2026-11"
    import_material(kms, key_id, material, **NO_EXPIRY)  # no description: the old one stays
    assert material_entries(kms, key_id)[0]["KeyMaterialDescription"] == "hsm export 2026-11"
    kms.delete_imported_key_material(KeyId=key_id)
    import_material(kms, key_id, material, KeyMaterialDescription="reimported", **NO_EXPIRY)
    assert material_entries(kms, key_id)[0]["KeyMaterialDescription"] == "reimported"
    too_long = refused(import_material, kms, key_id, material, KeyMaterialDescription="d" * 257,
                       **NO_EXPIRY)  # fmt: skip
    assert too_long[:2] == ("ValidationException", 400)


def test_different_material_is_refused(kms: Any) -> None:
    key_id = external_key(kms)
    material = os.urandom(32)
    import_material(kms, key_id, material)
    blob = kms.encrypt(KeyId=key_id, Plaintext=b"mine")["CiphertextBlob"]

    err = refused(import_material, kms, key_id, os.urandom(32))
    assert err[:2] == ("IncorrectKeyMaterialException", 400)
    kms.delete_imported_key_material(KeyId=key_id)
    err = refused(import_material, kms, key_id, os.urandom(32))
    assert err[:2] == ("IncorrectKeyMaterialException", 400)
    assert state(kms, key_id) == "PendingImport"

    import_material(kms, key_id, material)  # the original still fits
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"mine"


def test_reimport_while_enabled_changes_the_expiration(kms: Any) -> None:
    key_id = external_key(kms)
    material = os.urandom(32)
    import_material(kms, key_id, material)
    valid_to = dt.datetime.now(dt.UTC) + dt.timedelta(days=30)
    import_material(kms, key_id, material, ExpirationModel="KEY_MATERIAL_EXPIRES", ValidTo=valid_to)
    meta = kms.describe_key(KeyId=key_id)["KeyMetadata"]
    assert meta["KeyState"] == "Enabled"
    assert meta["ExpirationModel"] == "KEY_MATERIAL_EXPIRES"
    assert abs((meta["ValidTo"] - valid_to).total_seconds()) < 1


@pytest.mark.parametrize("size", [16, 31, 33, 64])
def test_symmetric_material_must_be_32_bytes(kms: Any, size: int) -> None:
    key_id = external_key(kms)
    err = refused(import_material, kms, key_id, os.urandom(size))
    assert err[:2] == ("IncorrectKeyMaterialException", 400)
    assert "32 bytes" in err.message
    assert state(kms, key_id) == "PendingImport"


def test_import_type_and_key_material_id(kms: Any) -> None:
    key_id = external_key(kms)
    material = os.urandom(32)
    err = refused(import_material, kms, key_id, material, ImportType="EXISTING_KEY_MATERIAL",
                  **NO_EXPIRY)  # fmt: skip
    assert err.code == "IncorrectKeyMaterialException"
    material_id = import_material(
        kms, key_id, material, ImportType="NEW_KEY_MATERIAL", **NO_EXPIRY
    )["KeyMaterialId"]
    # The same material as "new": it is already this key's.
    err = refused(import_material, kms, key_id, material, ImportType="NEW_KEY_MATERIAL",
                  **NO_EXPIRY)  # fmt: skip
    assert err.code == "IncorrectKeyMaterialException"
    # Different material as "new" would be a second material for rotation: not offered.
    err = refused(import_material, kms, key_id, os.urandom(32), ImportType="NEW_KEY_MATERIAL",
                  **NO_EXPIRY)  # fmt: skip
    assert err.code == "UnsupportedOperationException"
    err = refused(import_material, kms, key_id, material, KeyMaterialId="0" * 64, **NO_EXPIRY)
    assert err.code == "IncorrectKeyMaterialException"
    again = import_material(kms, key_id, material, KeyMaterialId=material_id,
                            ImportType="EXISTING_KEY_MATERIAL", **NO_EXPIRY)  # fmt: skip
    assert again["KeyMaterialId"] == material_id
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["CurrentKeyMaterialId"] == material_id
    err = refused(kms.delete_imported_key_material, KeyId=key_id, KeyMaterialId="a" * 64)
    assert err.code == "NotFoundException"
    assert state(kms, key_id) == "Enabled"
    kms.delete_imported_key_material(KeyId=key_id, KeyMaterialId=material_id)
    assert state(kms, key_id) == "PendingImport"


# -- tokens -------------------------------------------------------------------------------------


def test_expired_import_token(kms: Any, signing_clock: SettableClock) -> None:
    key_id = external_key(kms)
    params = parameters(kms, key_id)
    signing_clock.advance(DAY + 1)
    err = refused(
        kms.import_key_material,
        KeyId=key_id,
        ImportToken=params["ImportToken"],
        EncryptedKeyMaterial=wrap(params["PublicKey"], OAEP_256, os.urandom(32)),
        **NO_EXPIRY,
    )
    assert err[:2] == ("ExpiredImportTokenException", 400)
    assert state(kms, key_id) == "PendingImport"
    import_material(kms, key_id, os.urandom(32))  # fresh parameters work
    assert state(kms, key_id) == "Enabled"


def test_another_keys_token_or_a_made_up_one_is_invalid(kms: Any) -> None:
    mine, other = external_key(kms), external_key(kms)
    params = parameters(kms, other)
    encrypted = wrap(params["PublicKey"], OAEP_256, os.urandom(32))
    for token in (params["ImportToken"], b"\x01" + os.urandom(16), b"not a token"):
        err = refused(
            kms.import_key_material,
            KeyId=mine,
            ImportToken=token,
            EncryptedKeyMaterial=encrypted,
            **NO_EXPIRY,
        )
        assert err[:2] == ("InvalidImportTokenException", 400)
    assert state(kms, mine) == "PendingImport"


def test_garbage_encrypted_material_is_invalid_ciphertext(kms: Any) -> None:
    key_id = external_key(kms)
    params = parameters(kms, key_id, "RSA_AES_KEY_WRAP_SHA_256")
    good = wrap(params["PublicKey"], "RSA_AES_KEY_WRAP_SHA_256", os.urandom(32))
    for encrypted in (os.urandom(256), good[:256], good[:-1] + bytes([good[-1] ^ 1])):
        err = refused(
            kms.import_key_material,
            KeyId=key_id,
            ImportToken=params["ImportToken"],
            EncryptedKeyMaterial=encrypted,
            **NO_EXPIRY,
        )
        assert err[:2] == ("InvalidCiphertextException", 400)


# -- expiry -------------------------------------------------------------------------------------


def sweep(cloud: Cloud) -> None:
    """One run of the node's KMS sweeper, on the node's loop (as its periodic task runs it)."""
    sweeper = cloud.node.node.sweeper
    assert sweeper is not None

    async def once() -> None:
        await sweeper.sweep()

    cloud.node.run(once())


def test_material_expires_at_valid_to(cloud: Cloud, kms: Any, signing_clock: SettableClock) -> None:
    key_id = external_key(kms)
    material = os.urandom(32)
    valid_to = dt.datetime.now(dt.UTC) + dt.timedelta(hours=2)
    import_material(kms, key_id, material, ExpirationModel="KEY_MATERIAL_EXPIRES",
                    ValidTo=valid_to)  # fmt: skip
    meta = kms.describe_key(KeyId=key_id)["KeyMetadata"]
    assert meta["ExpirationModel"] == "KEY_MATERIAL_EXPIRES"
    assert abs((meta["ValidTo"] - valid_to).total_seconds()) < 1
    blob = kms.encrypt(KeyId=key_id, Plaintext=b"until then")["CiphertextBlob"]

    signing_clock.advance(2 * 3600 - 60)
    sweep(cloud)
    assert state(kms, key_id) == "Enabled"  # not yet
    signing_clock.advance(61)
    sweep(cloud)
    meta = kms.describe_key(KeyId=key_id)["KeyMetadata"]
    assert (meta["KeyState"], meta["Enabled"]) == ("PendingImport", False)
    assert "ValidTo" not in meta
    err = refused(kms.decrypt, CiphertextBlob=blob)
    assert err[:2] == ("KMSInvalidStateException", 400)
    assert refused(kms.encrypt, KeyId=key_id, Plaintext=b"x").code == "KMSInvalidStateException"

    import_material(kms, key_id, material)  # the same material, now without expiry
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"until then"
    signing_clock.advance(400 * DAY)
    sweep(cloud)
    assert state(kms, key_id) == "Enabled"


def test_expire_imported_material_reports_the_keys(cloud: Cloud, kms: Any) -> None:
    soon, later = external_key(kms), external_key(kms)
    now = dt.datetime.now(dt.UTC)
    for key_id, hours in ((soon, 1), (later, 3)):
        import_material(kms, key_id, os.urandom(32), ExpirationModel="KEY_MATERIAL_EXPIRES",
                        ValidTo=now + dt.timedelta(hours=hours))  # fmt: skip
    store = cloud.node.node.store
    assert store is not None
    assert expire_imported_material(store, (now + dt.timedelta(hours=2)).timestamp()) == [soon]
    assert (state(kms, soon), state(kms, later)) == ("PendingImport", "Enabled")


@pytest.mark.parametrize(
    ("extra", "code", "words"),
    [
        ({"ExpirationModel": "KEY_MATERIAL_EXPIRES"}, "ValidationException", "validTo"),
        ({}, "ValidationException", "validTo"),  # the model defaults to KEY_MATERIAL_EXPIRES
        ({"ExpirationModel": "KEY_MATERIAL_DOES_NOT_EXPIRE", "ValidTo": 4102444800},
         "ValidationException", "ValidTo cannot be specified"),
        ({"ExpirationModel": "KEY_MATERIAL_EXPIRES", "ValidTo": 946684800},
         "ValidationException", "future"),
        ({"ExpirationModel": "KEY_MATERIAL_EXPIRES", "ValidTo": 4102444800},
         "ValidationException", "365 days"),
    ],
)  # fmt: skip
def test_expiration_model_and_valid_to(kms: Any, extra: dict[str, Any], code: str,
                                       words: str) -> None:  # fmt: skip
    key_id = external_key(kms)
    params = parameters(kms, key_id)
    err = refused(
        kms.import_key_material,
        KeyId=key_id,
        ImportToken=params["ImportToken"],
        EncryptedKeyMaterial=wrap(params["PublicKey"], OAEP_256, os.urandom(32)),
        **extra,
    )
    assert err[:2] == (code, 400)
    assert words in err.message
    assert state(kms, key_id) == "PendingImport"


# -- what AWS refuses ---------------------------------------------------------------------------


def test_keys_with_kms_material_refuse_import(kms: Any) -> None:
    key_id = str(kms.create_key()["KeyMetadata"]["KeyId"])
    arn = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/{key_id}"
    want = f"{arn} origin is AWS_KMS which is not valid for this operation."
    assert refused(parameters, kms, key_id) == ("UnsupportedOperationException", 400, want)
    external = external_key(kms)
    params = parameters(kms, external)
    err = refused(
        kms.import_key_material,
        KeyId=key_id,
        ImportToken=params["ImportToken"],
        EncryptedKeyMaterial=wrap(params["PublicKey"], OAEP_256, os.urandom(32)),
        **NO_EXPIRY,
    )
    assert err == ("UnsupportedOperationException", 400, want)
    err = refused(kms.delete_imported_key_material, KeyId=key_id)
    assert err == ("UnsupportedOperationException", 400, want)
    assert kms.decrypt(CiphertextBlob=kms.encrypt(KeyId=key_id, Plaintext=b"x")["CiphertextBlob"])


@pytest.mark.parametrize(
    ("algorithm", "spec", "words"),
    [
        ("RSAES_PKCS1_V1_5", "RSA_2048", "RSAES_PKCS1_V1_5"),
        ("SM2PKE", "RSA_2048", "not supported in this Region"),
        (OAEP_256, "SM2", "not supported in this Region"),
    ],
)
def test_retired_and_china_only_wrapping_choices(kms: Any, algorithm: str, spec: str,
                                                 words: str) -> None:  # fmt: skip
    err = refused(parameters, kms, external_key(kms), algorithm, spec)
    assert err[:2] == ("UnsupportedOperationException", 400)
    assert words in err.message


def test_unknown_wrapping_algorithm_is_a_validation_error(cloud: Cloud) -> None:
    kms = cloud.unvalidated("kms")
    err = refused(parameters, kms, external_key(kms), "RSA_OAEP_SHA_512", "RSA_2048")
    assert err[:2] == ("ValidationException", 400)
    assert "wrappingAlgorithm" in err.message
    err = refused(parameters, kms, external_key(kms), OAEP_256, "RSA_1024")
    assert err[:2] == ("ValidationException", 400)
    assert "wrappingKeySpec" in err.message


def test_aliases_are_not_accepted(kms: Any) -> None:
    key_id = external_key(kms)
    kms.create_alias(AliasName="alias/byok", TargetKeyId=key_id)
    assert refused(parameters, kms, "alias/byok").code == "NotFoundException"


def test_pending_deletion(kms: Any) -> None:
    key_id = external_key(kms)
    material = os.urandom(32)
    import_material(kms, key_id, material)
    params = parameters(kms, key_id)
    kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
    arn = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/{key_id}"
    err = refused(parameters, kms, key_id)
    assert err == ("KMSInvalidStateException", 400, f"{arn} is pending deletion.")
    err = refused(
        kms.import_key_material,
        KeyId=key_id,
        ImportToken=params["ImportToken"],
        EncryptedKeyMaterial=wrap(params["PublicKey"], OAEP_256, material),
        **NO_EXPIRY,
    )
    assert err == ("KMSInvalidStateException", 400, f"{arn} is pending deletion.")
    # Material can still be deleted; the key stays pending deletion.
    kms.delete_imported_key_material(KeyId=key_id)
    assert state(kms, key_id) == "PendingDeletion"


# -- authorization ------------------------------------------------------------------------------


def role_kms(cloud: Cloud, name: str, inline: str) -> Any:
    host_port = urlsplit(cloud.node.info.idp).netloc
    trust = {"Effect": "Allow", "Action": "sts:AssumeRoleWithWebIdentity",
             "Principal": {"Federated": f"arn:aws:iam::{ACCOUNT}:oidc-provider/{host_port}"},
             "Condition": {"StringEquals": {f"{host_port}:aud": AUDIENCE}}}  # fmt: skip
    iam = cloud.client("iam")
    arn = iam.create_role(RoleName=name, AssumeRolePolicyDocument=policy(trust))["Role"]["Arn"]
    iam.put_role_policy(RoleName=name, PolicyName="inline", PolicyDocument=inline)
    issuer = cloud.node.node.issuer
    assert issuer is not None
    resp = cloud.client("sts").assume_role_with_web_identity(
        RoleArn=arn, RoleSessionName="s1", WebIdentityToken=issuer.mint("app", AUDIENCE)
    )
    return cloud.as_key("kms", resp["Credentials"])


def test_import_permissions_and_condition_keys(cloud: Cloud, kms: Any) -> None:
    inline = policy(
        allow(["kms:GetParametersForImport", "kms:DescribeKey"],
              Condition={"StringEquals": {"kms:WrappingAlgorithm": "RSA_AES_KEY_WRAP_SHA_256",
                                          "kms:WrappingKeySpec": "RSA_4096"}}),
        allow("kms:ImportKeyMaterial",
              Condition={"StringEquals": {"kms:ExpirationModel": "KEY_MATERIAL_EXPIRES"},
                         "NumericLessThanEquals": {"kms:ValidTo": "4102444800"}}),
        deny("kms:DeleteImportedKeyMaterial"),
    )  # fmt: skip
    role = role_kms(cloud, "importer", inline)
    key_id = external_key(kms)
    assert refused(parameters, role, key_id, OAEP_256, "RSA_4096").code == "AccessDeniedException"
    assert refused(parameters, role, key_id, "RSA_AES_KEY_WRAP_SHA_256").code == (
        "AccessDeniedException"
    )
    params = parameters(role, key_id, "RSA_AES_KEY_WRAP_SHA_256", "RSA_4096")
    material = os.urandom(32)
    encrypted = wrap(params["PublicKey"], "RSA_AES_KEY_WRAP_SHA_256", material)
    base = {"KeyId": key_id, "ImportToken": params["ImportToken"],
            "EncryptedKeyMaterial": encrypted}  # fmt: skip
    err = refused(role.import_key_material, **base, **NO_EXPIRY)
    assert err.code == "AccessDeniedException"
    assert "kms:ImportKeyMaterial" in err.message
    soon = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
    role.import_key_material(**base, ExpirationModel="KEY_MATERIAL_EXPIRES", ValidTo=soon)
    assert state(kms, key_id) == "Enabled"
    assert refused(role.delete_imported_key_material, KeyId=key_id).code == (
        "AccessDeniedException"
    )
    # A key policy that names only the root (no IAM allow for this role) refuses too.
    locked = external_key(kms, Policy=policy(allow("kms:*", ROOT),
                                             deny("kms:GetParametersForImport", ROOT)),
                          BypassPolicyLockoutSafetyCheck=True)  # fmt: skip
    assert refused(parameters, kms, locked).code == "AccessDeniedException"


# -- nothing secret at rest ---------------------------------------------------------------------


def _database_bytes(data_dir: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(data_dir.glob("**/*.db*")) if p.is_file())


def test_material_and_wrapping_keys_never_stored_in_clear(cloud: Cloud, kms: Any) -> None:
    key_id = external_key(kms)
    material = os.urandom(32)
    params = parameters(kms, key_id)
    public = serialization.load_der_public_key(params["PublicKey"])
    assert isinstance(public, rsa.RSAPublicKey)
    numbers = public.public_numbers()
    modulus = numbers.n.to_bytes(public.key_size // 8, "big")
    kms.import_key_material(
        KeyId=key_id,
        ImportToken=params["ImportToken"],
        EncryptedKeyMaterial=wrap(params["PublicKey"], OAEP_256, material),
        **NO_EXPIRY,
    )
    parameters(kms, key_id, "RSA_AES_KEY_WRAP_SHA_1")  # an outstanding token too
    kms.delete_imported_key_material(KeyId=key_id)
    import_material(kms, key_id, material)
    stored = _database_bytes(cloud.node.data_dir)
    assert len(stored) > 4096
    # A private key in clear would carry its modulus; the material would be there as is.
    for secret in (material, modulus, modulus[:32], material.hex().encode()):
        assert secret not in stored


def _iterate_audit(data_dir: Path) -> Iterator[str]:
    for path in sorted(data_dir.glob("**/*.jsonl")):
        yield path.read_text()


def test_audit_never_holds_the_token_or_the_encrypted_material(cloud: Cloud, kms: Any) -> None:
    key_id = external_key(kms)
    params = parameters(kms, key_id)
    encrypted = wrap(params["PublicKey"], OAEP_256, os.urandom(32))
    kms.import_key_material(KeyId=key_id, ImportToken=params["ImportToken"],
                            EncryptedKeyMaterial=encrypted, **NO_EXPIRY)  # fmt: skip
    audit = "".join(_iterate_audit(cloud.node.data_dir))
    assert "ImportKeyMaterial" in audit
    for secret in (params["ImportToken"], encrypted, params["PublicKey"]):
        assert base64.b64encode(secret).decode()[:40] not in audit


# -- asymmetric and HMAC material ---------------------------------------------------------------


def _pkcs8(key: Any) -> bytes:
    return bytes(
        key.private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


def test_imported_ecc_key_signs(kms: Any) -> None:
    key_id = external_key(kms, KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")
    private = ec.generate_private_key(ec.SECP256R1())
    material = _pkcs8(private)
    # The wrong curve is not this key's material.
    other = _pkcs8(ec.generate_private_key(ec.SECP384R1()))
    err = refused(import_material, kms, key_id, other, "RSA_AES_KEY_WRAP_SHA_256")
    assert err[:2] == ("IncorrectKeyMaterialException", 400)
    import_material(kms, key_id, material, "RSA_AES_KEY_WRAP_SHA_256")
    assert state(kms, key_id) == "Enabled"

    signature = kms.sign(KeyId=key_id, Message=b"imported", SigningAlgorithm="ECDSA_SHA_256")
    private.public_key().verify(
        signature["Signature"], b"imported", ec.ECDSA(hashes.SHA256())
    )  # raises if the KMS signed with any other key
    public = kms.get_public_key(KeyId=key_id)["PublicKey"]
    assert public == private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    # Asymmetric keys take no material ids or import types.
    err = refused(import_material, kms, key_id, material, "RSA_AES_KEY_WRAP_SHA_1",
                  ImportType="EXISTING_KEY_MATERIAL", **NO_EXPIRY)  # fmt: skip
    assert err.code == "ValidationException"
    # Reimport of the same private key is fine, another one is not.
    import_material(kms, key_id, material, "RSAES_OAEP_SHA_256")
    err = refused(import_material, kms, key_id, _pkcs8(ec.generate_private_key(ec.SECP256R1())))
    assert err.code == "IncorrectKeyMaterialException"


def test_imported_rsa_key_decrypts_and_needs_rsa_aes_wrapping(kms: Any) -> None:
    key_id = external_key(kms, KeySpec="RSA_2048", KeyUsage="ENCRYPT_DECRYPT")
    err = refused(parameters, kms, key_id, OAEP_256)
    assert err[:2] == ("UnsupportedOperationException", 400)
    assert "RSA_AES_KEY_WRAP" in err.message
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    import_material(kms, key_id, _pkcs8(private), "RSA_AES_KEY_WRAP_SHA_256", "RSA_4096")
    oaep = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
    blob = private.public_key().encrypt(b"to the imported key", oaep)
    out = kms.decrypt(KeyId=key_id, CiphertextBlob=blob, EncryptionAlgorithm="RSAES_OAEP_SHA_256")
    assert out["Plaintext"] == b"to the imported key"


def test_p521_material_needs_more_than_rsa_2048_oaep(kms: Any) -> None:
    key_id = external_key(kms, KeySpec="ECC_NIST_P521", KeyUsage="SIGN_VERIFY")
    assert refused(parameters, kms, key_id, OAEP_256, "RSA_2048").code == (
        "UnsupportedOperationException"
    )
    parameters(kms, key_id, OAEP_256, "RSA_3072")
    parameters(kms, key_id, "RSA_AES_KEY_WRAP_SHA_256", "RSA_2048")


def test_imported_hmac_key_macs(kms: Any) -> None:
    key_id = external_key(kms, KeySpec="HMAC_256", KeyUsage="GENERATE_VERIFY_MAC")
    err = refused(import_material, kms, key_id, os.urandom(16))
    assert err[:2] == ("IncorrectKeyMaterialException", 400)
    material = os.urandom(48)
    import_material(kms, key_id, material)
    mac = kms.generate_mac(KeyId=key_id, Message=b"m", MacAlgorithm="HMAC_SHA_256")["Mac"]
    assert mac == hmac.new(material, b"m", hashlib.sha256).digest()
