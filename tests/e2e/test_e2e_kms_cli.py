"""The real `aws kms` CLI (v1) straight at the local cloud with the account's admin key
(`latchkey env --cloud-admin`): an operation or two of each group, the way a user types them.
Binary input goes through ``fileb://``; binary output comes back base64 (the CLI's default).
Set-up and checks use boto3 (``api``): each CLI run costs a second of interpreter start."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config as BotoConfig
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from latchkey_testing import UpProcess, aws

pytestmark = pytest.mark.e2e

PLAINTEXT = b"latchkey-cli-plaintext-\x00\xff-6a0b"
ROLE_ARN = "arn:aws:iam::000000000000:role/latchkey-kms"


@pytest.fixture(scope="module")
def env(up: UpProcess) -> dict[str, str]:
    return up.env("--cloud-admin")


@pytest.fixture(scope="module")
def api(up: UpProcess, env: dict[str, str]) -> Iterator[Any]:
    """boto3 on the same cloud and key, for set-up and checks."""
    client = boto3.client(
        "kms", endpoint_url=up.info.cloud, region_name="us-east-1", verify=up.info.ca_bundle,
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        config=BotoConfig(retries={"max_attempts": 1}, proxies={}),
    )  # fmt: skip
    yield client
    client.close()


def kms(env: dict[str, str], *args: str) -> Any:
    """``aws kms ARGS``; its JSON answer (None when it prints nothing)."""
    out = aws(env, "kms", *args).stdout
    return json.loads(out) if out.strip() else None


def kms_error(env: dict[str, str], *args: str) -> str:
    """``aws kms ARGS`` that must fail; its stderr."""
    result = aws(env, "kms", *args, check=False)
    assert result.returncode != 0, result.stdout
    return result.stderr


def blob_file(tmp_path: Path, name: str, data: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(data)
    return f"fileb://{path}"


def test_create_describe_list(env: dict[str, str]) -> None:
    created = kms(env, "create-key", "--description", "cli keys", "--tags",
                  "TagKey=team,TagValue=blue")["KeyMetadata"]  # fmt: skip
    assert (created["KeySpec"], created["KeyUsage"], created["KeyState"]) == (
        "SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT", "Enabled")  # fmt: skip
    described = kms(env, "describe-key", "--key-id", created["Arn"])["KeyMetadata"]
    assert described["KeyId"] == created["KeyId"]
    assert described["Description"] == "cli keys"
    listed = kms(env, "list-keys")["Keys"]
    assert {"KeyId": created["KeyId"], "KeyArn": created["Arn"]} in listed
    missing = kms_error(env, "describe-key", "--key-id", "00000000-0000-4000-8000-000000000000")
    assert "NotFoundException" in missing


def test_encrypt_decrypt_and_data_keys(env: dict[str, str], api: Any, tmp_path: Path) -> None:
    key_id = api.create_key()["KeyMetadata"]["KeyId"]
    plain = blob_file(tmp_path, "plain", PLAINTEXT)
    encrypted = kms(env, "encrypt", "--key-id", key_id, "--plaintext", plain,
                    "--encryption-context", "app=cli,stage=test")  # fmt: skip
    ciphertext = base64.b64decode(encrypted["CiphertextBlob"])
    assert PLAINTEXT not in ciphertext
    blob = blob_file(tmp_path, "blob", ciphertext)
    decrypted = kms(env, "decrypt", "--ciphertext-blob", blob,
                    "--encryption-context", "stage=test,app=cli")  # fmt: skip
    assert base64.b64decode(decrypted["Plaintext"]) == PLAINTEXT
    assert decrypted["KeyId"].endswith(key_id)
    wrong = kms_error(env, "decrypt", "--ciphertext-blob", blob, "--encryption-context",
                      "stage=prod,app=cli")  # fmt: skip
    assert "InvalidCiphertextException" in wrong
    assert base64.b64encode(PLAINTEXT).decode() not in wrong

    data_key = kms(env, "generate-data-key", "--key-id", key_id, "--key-spec", "AES_256",
                   "--encryption-context", "purpose=dek")  # fmt: skip
    assert len(base64.b64decode(data_key["Plaintext"])) == 32
    again = api.decrypt(CiphertextBlob=base64.b64decode(data_key["CiphertextBlob"]),
                        EncryptionContext={"purpose": "dek"})  # fmt: skip
    assert again["Plaintext"] == base64.b64decode(data_key["Plaintext"])


def test_aliases(env: dict[str, str], api: Any, tmp_path: Path) -> None:
    key_id = api.create_key()["KeyMetadata"]["KeyId"]
    made = kms(env, "create-alias", "--alias-name", "alias/cli-test", "--target-key-id", key_id)
    assert made is None  # CreateAlias answers nothing
    plain = blob_file(tmp_path, "plain", PLAINTEXT)
    encrypted = kms(env, "encrypt", "--key-id", "alias/cli-test", "--plaintext", plain)
    assert encrypted["KeyId"].endswith(key_id)
    aliases = {a["AliasName"]: a.get("TargetKeyId") for a in api.list_aliases()["Aliases"]}
    assert aliases["alias/cli-test"] == key_id


def test_tags(env: dict[str, str], api: Any) -> None:
    key_id = api.create_key()["KeyMetadata"]["KeyId"]
    kms(env, "tag-resource", "--key-id", key_id, "--tags", "TagKey=owner,TagValue=cli",
        "TagKey=cost,TagValue=42")  # fmt: skip
    tags = kms(env, "list-resource-tags", "--key-id", key_id)["Tags"]
    assert sorted((t["TagKey"], t["TagValue"]) for t in tags) == [("cost", "42"), ("owner", "cli")]


def test_grants(env: dict[str, str], api: Any) -> None:
    key_id = api.create_key()["KeyMetadata"]["KeyId"]
    grant = kms(env, "create-grant", "--key-id", key_id, "--grantee-principal", ROLE_ARN,
                "--operations", "Encrypt", "Decrypt", "--name", "cli-grant")  # fmt: skip
    assert grant["GrantToken"]
    grants = api.list_grants(KeyId=key_id)["Grants"]
    assert [(g["GrantId"], g["Name"], sorted(g["Operations"])) for g in grants] == [
        (grant["GrantId"], "cli-grant", ["Decrypt", "Encrypt"])
    ]


def test_sign_verify_and_the_public_key(env: dict[str, str], api: Any, tmp_path: Path) -> None:
    key_id = api.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]["KeyId"]
    message = blob_file(tmp_path, "message", PLAINTEXT)
    signed = kms(env, "sign", "--key-id", key_id, "--message", message,
                 "--signing-algorithm", "ECDSA_SHA_256")  # fmt: skip
    signature = base64.b64decode(signed["Signature"])
    verified = kms(env, "verify", "--key-id", key_id, "--message", message, "--signature",
                   blob_file(tmp_path, "sig", signature), "--signing-algorithm",
                   "ECDSA_SHA_256")  # fmt: skip
    assert verified["SignatureValid"] is True
    # the signature checks out against the key's public key, outside latchkey
    public = api.get_public_key(KeyId=key_id)["PublicKey"]
    key = serialization.load_der_public_key(public)
    assert isinstance(key, ec.EllipticCurvePublicKey)
    key.verify(signature, PLAINTEXT, ec.ECDSA(hashes.SHA256()))
    assert "KMSInvalidSignatureException" in refused_verify(api, key_id, signature)


def refused_verify(api: Any, key_id: str, signature: bytes) -> str:
    try:
        api.verify(KeyId=key_id, Message=PLAINTEXT + b"!", Signature=signature,
                   SigningAlgorithm="ECDSA_SHA_256")  # fmt: skip
    except api.exceptions.ClientError as err:
        return str(err.response["Error"]["Code"])
    return "verified"


def test_key_rotation(env: dict[str, str], api: Any) -> None:
    key_id = api.create_key()["KeyMetadata"]["KeyId"]
    assert kms(env, "enable-key-rotation", "--key-id", key_id) is None
    status = kms(env, "get-key-rotation-status", "--key-id", key_id)
    assert status["KeyRotationEnabled"] is True
    assert api.get_key_rotation_status(KeyId=key_id)["RotationPeriodInDays"] == 365


def test_import_key_material(env: dict[str, str], api: Any, tmp_path: Path) -> None:
    key_id = api.create_key(Origin="EXTERNAL")["KeyMetadata"]["KeyId"]
    params = kms(env, "get-parameters-for-import", "--key-id", key_id, "--wrapping-algorithm",
                 "RSAES_OAEP_SHA_256", "--wrapping-key-spec", "RSA_2048")  # fmt: skip
    wrapping_key = serialization.load_der_public_key(base64.b64decode(params["PublicKey"]))
    assert isinstance(wrapping_key, rsa.RSAPublicKey)
    material = os.urandom(32)
    oaep = padding.OAEP(padding.MGF1(hashes.SHA256()), hashes.SHA256(), None)
    kms(env, "import-key-material", "--key-id", key_id,
        "--encrypted-key-material", blob_file(tmp_path, "material",
                                              wrapping_key.encrypt(material, oaep)),
        "--import-token", blob_file(tmp_path, "token", base64.b64decode(params["ImportToken"])),
        "--expiration-model", "KEY_MATERIAL_DOES_NOT_EXPIRE")  # fmt: skip
    assert api.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "Enabled"
    blob = api.encrypt(KeyId=key_id, Plaintext=PLAINTEXT)["CiphertextBlob"]
    assert api.decrypt(CiphertextBlob=blob)["Plaintext"] == PLAINTEXT


def test_key_lifecycle(env: dict[str, str], api: Any) -> None:
    key_id = api.create_key()["KeyMetadata"]["KeyId"]
    assert kms(env, "disable-key", "--key-id", key_id) is None
    assert api.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "Disabled"
    scheduled = kms(env, "schedule-key-deletion", "--key-id", key_id,
                    "--pending-window-in-days", "7")  # fmt: skip
    assert scheduled["KeyState"] == "PendingDeletion"
    assert scheduled["PendingWindowInDays"] == 7
