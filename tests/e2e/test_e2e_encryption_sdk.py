"""The AWS Encryption SDK for Python against the local cloud's KMS.

The SDK is pointed at the cloud the supported way: a botocore session on a shared config file
whose profile names the cloud's ``endpoint_url`` and ``ca_bundle`` (what a user's
``~/.aws/config`` would hold), passed to the master key provider as ``botocore_session``. The
SDK's GenerateDataKey and Decrypt calls carry the message's encryption context, so a header
whose context was changed is refused by KMS itself (``InvalidCiphertextException``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aws_encryption_sdk
import botocore.session
import pytest
from aws_encryption_sdk import CommitmentPolicy
from aws_encryption_sdk.exceptions import AWSEncryptionSDKClientError
from aws_encryption_sdk.key_providers.kms import (
    DiscoveryAwsKmsMasterKeyProvider,
    DiscoveryFilter,
    StrictAwsKmsMasterKeyProvider,
)
from cryptography.exceptions import InvalidSignature, InvalidTag

from latchkey_testing import UpProcess

pytestmark = pytest.mark.e2e

CONTEXT = {"purpose": "latchkey-e2e-sdk", "tenant": "blue-tenant"}
PLAINTEXT = b"latchkey encryption sdk plaintext " + os.urandom(8).hex().encode()
PROFILE = "latchkey-cloud"


@pytest.fixture(scope="module")
def session(up: UpProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A botocore session whose profile points at the cloud with the account's admin key."""
    admin = json.loads((up.data_dir / "cloud-admin.json").read_text())
    home = tmp_path_factory.mktemp("aws")
    config = home / "config"
    config.write_text(
        f"[profile {PROFILE}]\n"
        "region = us-east-1\n"
        f"endpoint_url = {up.info.cloud}\n"
        f"ca_bundle = {up.info.ca_bundle}\n"
        f"aws_access_key_id = {admin['AccessKeyId']}\n"
        f"aws_secret_access_key = {admin['SecretAccessKey']}\n"
    )
    config.chmod(0o600)
    with pytest.MonkeyPatch.context() as mp:  # nothing from this process's environment
        for name in list(os.environ):
            if name.startswith("AWS_") or "proxy" in name.lower():
                mp.delenv(name)
        made = botocore.session.Session(profile=PROFILE)
        made.set_config_variable("config_file", str(config))
        made.set_config_variable("credentials_file", str(home / "no-credentials"))
        yield made


@pytest.fixture(scope="module")
def key_arn(session: Any) -> str:
    kms = session.create_client("kms")
    try:
        return str(kms.create_key(Description="encryption sdk")["KeyMetadata"]["Arn"])
    finally:
        kms.close()


@pytest.fixture
def client() -> Any:
    return aws_encryption_sdk.EncryptionSDKClient(
        commitment_policy=CommitmentPolicy.REQUIRE_ENCRYPT_REQUIRE_DECRYPT
    )


def provider(session: Any, *arns: str) -> StrictAwsKmsMasterKeyProvider:
    return StrictAwsKmsMasterKeyProvider(key_ids=list(arns), botocore_session=session)


def audit_events(up: UpProcess) -> list[dict[str, Any]]:
    text = (up.data_dir / "audit" / "cloud.jsonl").read_text()
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_encrypt_and_decrypt_with_an_encryption_context(
    up: UpProcess, session: Any, key_arn: str, client: Any
) -> None:
    keys = provider(session, key_arn)
    message, header = client.encrypt(source=PLAINTEXT, key_provider=keys,
                                     encryption_context=CONTEXT)  # fmt: skip
    assert PLAINTEXT not in message
    edks = [
        (k.key_provider.provider_id, k.key_provider.key_info) for k in header.encrypted_data_keys
    ]
    assert edks == [("aws-kms", key_arn.encode())]
    plaintext, decrypted = client.decrypt(source=message, key_provider=keys)
    assert plaintext == PLAINTEXT
    assert CONTEXT.items() <= decrypted.encryption_context.items()
    assert "aws-crypto-public-key" in decrypted.encryption_context  # the default signing suite

    # KMS saw the context on both calls (and recorded it, never the data key)
    events = [e for e in audit_events(up) if e["eventName"] in ("GenerateDataKey", "Decrypt")]
    for name in ("GenerateDataKey", "Decrypt"):
        last = [e for e in events if e["eventName"] == name][-1]
        assert "errorCode" not in last
        context = last["requestParameters"]["encryptionContext"]
        assert CONTEXT.items() <= context.items()
        assert last["resources"][0]["ARN"] == key_arn


def test_discovery_provider_decrypts_for_the_account(
    session: Any, key_arn: str, client: Any
) -> None:
    message, _ = client.encrypt(source=PLAINTEXT, key_provider=provider(session, key_arn),
                                encryption_context=CONTEXT)  # fmt: skip
    discovery = DiscoveryAwsKmsMasterKeyProvider(
        botocore_session=session,
        discovery_filter=DiscoveryFilter(account_ids=["000000000000"], partition="aws"),
    )
    assert client.decrypt(source=message, key_provider=discovery)[0] == PLAINTEXT
    elsewhere = DiscoveryAwsKmsMasterKeyProvider(
        botocore_session=session,
        discovery_filter=DiscoveryFilter(account_ids=["111111111111"], partition="aws"),
    )
    with pytest.raises(AWSEncryptionSDKClientError):
        client.decrypt(source=message, key_provider=elsewhere)


def test_changed_encryption_context_is_refused_by_kms(
    up: UpProcess, session: Any, key_arn: str, client: Any
) -> None:
    keys = provider(session, key_arn)
    message, _ = client.encrypt(source=PLAINTEXT, key_provider=keys, encryption_context=CONTEXT)
    value = CONTEXT["tenant"].encode()
    assert message.count(value) == 1
    other = b"red " + value[len(b"red ") :]  # same length, so the header still parses
    tampered = message.replace(value, other)
    before = len(audit_events(up))
    with pytest.raises(AWSEncryptionSDKClientError):
        client.decrypt(source=tampered, key_provider=keys)
    refusals = [e for e in audit_events(up)[before:] if e["eventName"] == "Decrypt"]
    assert [e.get("errorCode") for e in refusals] == ["InvalidCiphertextException"]
    assert refusals[0]["requestParameters"]["encryptionContext"]["tenant"] == other.decode()


def test_tampered_message_is_refused(session: Any, key_arn: str, client: Any) -> None:
    keys = provider(session, key_arn)
    message, _ = client.encrypt(source=PLAINTEXT * 200, key_provider=keys,
                                encryption_context=CONTEXT, frame_length=1024)  # fmt: skip
    for position in (len(message) // 2, len(message) - 10):
        tampered = bytearray(message)
        tampered[position] ^= 0x01
        # a frame that fails its tag, or a footer that fails the signature, surface as
        # cryptography's own exceptions
        with pytest.raises((AWSEncryptionSDKClientError, InvalidTag, InvalidSignature)):
            client.decrypt(source=bytes(tampered), key_provider=keys)
    assert client.decrypt(source=message, key_provider=keys)[0] == PLAINTEXT * 200


def test_other_key_cannot_decrypt(session: Any, key_arn: str, client: Any) -> None:
    message, _ = client.encrypt(source=PLAINTEXT, key_provider=provider(session, key_arn),
                                encryption_context=CONTEXT)  # fmt: skip
    kms = session.create_client("kms")
    try:
        other = kms.create_key(Description="not this one")["KeyMetadata"]["Arn"]
    finally:
        kms.close()
    with pytest.raises(AWSEncryptionSDKClientError):
        client.decrypt(source=message, key_provider=provider(session, other))


def test_data_key_never_reaches_the_audit_trail(up: UpProcess, session: Any, key_arn: str,
                                                client: Any) -> None:  # fmt: skip
    message, _ = client.encrypt(source=PLAINTEXT, key_provider=provider(session, key_arn),
                                encryption_context=CONTEXT)  # fmt: skip
    trail = Path(up.data_dir / "audit" / "cloud.jsonl").read_text()
    assert PLAINTEXT.decode() not in trail
    assert message.hex() not in trail
