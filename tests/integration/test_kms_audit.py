"""The KMS audit trail through the real node: one CloudTrail-shaped event per call in the store
and the file alike, no secret in either, GetKeyLastUsage from the trail, and fail closed when the
trail cannot be written (a full disk, a stuck store) within its time bound."""

from __future__ import annotations

import base64
import json
import re
import sqlite3
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from latchkey.cloud.auditverify import verify_trail
from latchkey.store.audit import AuditStore
from latchkey_testing import (
    ACCOUNT,
    AUDIENCE,
    Cloud,
    NodeHandle,
    allow,
    audit_verified,
    error_response,
    own_node,
    policy,
    refused,
)

PLAINTEXT = b"latchkey-audit-plaintext-5e1d"
ROLE = "audited-app"


def file_events(node: NodeHandle) -> list[dict[str, Any]]:
    text = (node.data_dir / "audit" / "cloud.jsonl").read_text()
    return [json.loads(line) for line in text.splitlines()]


def store_lines(node: NodeHandle) -> list[str]:
    uri = f"file:{node.data_dir / 'audit' / 'cloud.db'}?mode=ro"
    conn = sqlite3.connect(uri, uri=True)
    try:
        return [r[0] for r in conn.execute("SELECT line FROM audit_events ORDER BY sequence")]
    finally:
        conn.close()


def by_request(node: NodeHandle, response: dict[str, Any]) -> dict[str, Any]:
    request_id = response["ResponseMetadata"]["RequestId"]
    (event,) = [e for e in file_events(node) if e["requestID"] == request_id]
    return event


def role_session(cloud: Cloud, inline: str) -> tuple[Any, dict[str, Any]]:
    """A role trusting the node's idp with ``inline`` as its IAM policy, assumed by web
    identity: (its KMS client, its credentials)."""
    host_port = urlsplit(cloud.node.info.idp).netloc
    provider = f"arn:aws:iam::{ACCOUNT}:oidc-provider/{host_port}"
    trust = {"Effect": "Allow", "Action": "sts:AssumeRoleWithWebIdentity",
             "Principal": {"Federated": provider}}  # fmt: skip
    iam = cloud.client("iam")
    arn = iam.create_role(RoleName=ROLE, AssumeRolePolicyDocument=policy(trust))["Role"]["Arn"]
    iam.put_role_policy(RoleName=ROLE, PolicyName="inline", PolicyDocument=inline)
    issuer = cloud.node.node.issuer
    assert issuer is not None
    creds = cloud.client("sts").assume_role_with_web_identity(
        RoleArn=arn, RoleSessionName="s1", WebIdentityToken=issuer.mint("app", AUDIENCE)
    )["Credentials"]
    return cloud.as_key("kms", creds), creds


def test_each_call_is_one_event_in_the_store_and_the_file(cloud: Cloud) -> None:
    key = cloud.client("kms").create_key()["KeyMetadata"]
    kms, creds = role_session(cloud, policy(allow("kms:*")))
    context = {"tenant": "t1"}
    encrypted = kms.encrypt(KeyId=key["KeyId"], Plaintext=PLAINTEXT, EncryptionContext=context)
    blob = encrypted["CiphertextBlob"]
    decrypted = kms.decrypt(CiphertextBlob=blob, EncryptionContext=context)  # key from the blob
    failed = error_response(kms.decrypt, CiphertextBlob=blob, EncryptionContext={"tenant": "t2"})

    node = cloud.node
    enc, dec, bad = (by_request(node, r) for r in (encrypted, decrypted, failed))
    session_arn = f"arn:aws:sts::{ACCOUNT}:assumed-role/{ROLE}/s1"
    for event in (enc, dec, bad):
        assert event["eventVersion"] == "1.08"
        assert (event["eventSource"], event["awsRegion"]) == ("kms.amazonaws.com", "us-east-1")
        assert event["sourceIPAddress"] == "127.0.0.1"
        assert "Boto3" in event["userAgent"]
        assert uuid.UUID(event["eventID"])
        assert event["recipientAccountId"] == ACCOUNT
        assert event["responseElements"] is None  # CloudTrail records none for crypto calls
        assert event["resources"] == [
            {"accountId": ACCOUNT, "type": "AWS::KMS::Key", "ARN": key["Arn"]}
        ]
        who = event["userIdentity"]
        assert (who["type"], who["arn"], who["accountId"]) == ("AssumedRole", session_arn, ACCOUNT)
        assert who["accessKeyId"] == creds["AccessKeyId"]
        issuer = who["sessionContext"]["sessionIssuer"]
        assert (issuer["type"], issuer["userName"]) == ("Role", ROLE)
        assert issuer["arn"] == f"arn:aws:iam::{ACCOUNT}:role/{ROLE}"
        federation = who["sessionContext"]["webIdFederationData"]
        assert federation["federatedProvider"].startswith(f"arn:aws:iam::{ACCOUNT}:oidc-provider/")
    assert [e["eventName"] for e in (enc, dec, bad)] == ["Encrypt", "Decrypt", "Decrypt"]
    # CloudTrail's names: members in lower camel case, the context's own keys as they are.
    assert enc["requestParameters"] == {
        "keyId": key["KeyId"], "encryptionContext": context,
        "encryptionAlgorithm": "SYMMETRIC_DEFAULT",  # as CloudTrail shows it, given or not
    }  # fmt: skip
    assert dec["requestParameters"] == {
        "encryptionContext": context, "encryptionAlgorithm": "SYMMETRIC_DEFAULT"
    }  # fmt: skip
    assert "errorCode" not in enc
    assert "errorCode" not in dec
    assert (bad["errorCode"], bad["errorMessage"]) == ("InvalidCiphertextException", "")
    created = [e for e in file_events(node) if e["eventName"] == "CreateKey"][-1]
    metadata = created["responseElements"]["keyMetadata"]  # CloudTrail's names and dates
    assert (metadata["arn"], metadata["AWSAccountId"]) == (key["Arn"], key["AWSAccountId"])
    assert re.fullmatch(r"[A-Z][a-z]{2} \d{1,2}, \d{4}, \d{1,2}:\d{2}:\d{2} [AP]M",
                        metadata["creationDate"])  # fmt: skip
    assert created["resources"][0]["ARN"] == key["Arn"]

    audit = node.data_dir / "audit"
    assert store_lines(node) == (audit / "cloud.jsonl").read_text().splitlines()
    on_disk = b"".join(
        (audit / name).read_bytes()
        for name in ("cloud.jsonl", "cloud.db", "cloud.db-wal")
        if (audit / name).exists()
    )
    for secret in (PLAINTEXT, base64.b64encode(PLAINTEXT), base64.b64encode(blob),
                   creds["SecretAccessKey"].encode(), creds["SessionToken"].encode()):  # fmt: skip
        assert secret not in on_disk
    store = AuditStore(audit / "cloud.db", readonly=True)
    try:
        report = verify_trail(store, audit / "cloud.jsonl")
    finally:
        store.close()
    assert report.ok, report.findings
    assert report.events == len(store_lines(node))


def test_get_key_last_usage_answers_from_the_trail(cloud: Cloud) -> None:
    kms = cloud.client("kms")
    key = kms.create_key()["KeyMetadata"]
    other = kms.create_key()["KeyMetadata"]
    fresh = kms.get_key_last_usage(KeyId=key["KeyId"])
    assert fresh["KeyId"] == key["KeyId"]
    assert fresh["KeyLastUsage"] == {}
    assert fresh["KeyCreationDate"] == key["CreationDate"]
    assert fresh["TrackingStartDate"] == key["CreationDate"]  # made after tracking began

    encrypted = kms.encrypt(KeyId=key["Arn"], Plaintext=PLAINTEXT)
    kms.describe_key(KeyId=key["KeyId"])  # not a cryptographic operation
    refused(kms.decrypt, CiphertextBlob=encrypted["CiphertextBlob"], EncryptionContext={"a": "b"})
    usage = kms.get_key_last_usage(KeyId=key["Arn"])["KeyLastUsage"]
    event = by_request(cloud.node, encrypted)
    assert usage["Operation"] == "Encrypt"
    assert usage["CloudTrailEventId"] == event["eventID"]
    assert usage["KmsRequestId"] == encrypted["ResponseMetadata"]["RequestId"]
    assert abs(usage["Timestamp"].timestamp() - time.time()) < 60

    decrypted = kms.decrypt(CiphertextBlob=encrypted["CiphertextBlob"])
    usage = kms.get_key_last_usage(KeyId=key["KeyId"])["KeyLastUsage"]
    assert usage["Operation"] == "Decrypt"
    assert usage["KmsRequestId"] == decrypted["ResponseMetadata"]["RequestId"]
    assert kms.get_key_last_usage(KeyId=other["KeyId"])["KeyLastUsage"] == {}


def test_get_key_last_usage_takes_no_alias_and_needs_its_permission(cloud: Cloud) -> None:
    admin = cloud.client("kms")
    key_id = admin.create_key()["KeyMetadata"]["KeyId"]
    admin.create_alias(AliasName="alias/audited", TargetKeyId=key_id)
    assert refused(admin.get_key_last_usage, KeyId="alias/audited").code == "NotFoundException"
    missing = str(uuid.uuid4())
    assert refused(admin.get_key_last_usage, KeyId=missing).code == "NotFoundException"
    kms, _ = role_session(cloud, policy(allow("kms:Encrypt")))
    kms.encrypt(KeyId=key_id, Plaintext=PLAINTEXT)
    err = refused(kms.get_key_last_usage, KeyId=key_id)
    assert err[:2] == ("AccessDeniedException", 400)
    assert "kms:GetKeyLastUsage" in err.message
    assert admin.get_key_last_usage(KeyId=key_id)["KeyLastUsage"]["Operation"] == "Encrypt"


# -- fail closed ------------------------------------------------------------------------------


def test_a_full_disk_fails_every_call_closed(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "audit").mkdir(parents=True)
    (data / "audit" / "cloud.jsonl").symlink_to("/dev/full")  # every write: ENOSPC
    with own_node(data) as node:
        kms, iam = node.client("kms"), node.client("iam")
        try:
            created = error_response(kms.create_key)
            assert "KeyMetadata" not in created  # the call does not report success
            assert created["Error"] == {"Code": "KMSInternalException",
                                        "Message": "The audit trail is unavailable."}  # fmt: skip
            assert created["ResponseMetadata"]["HTTPStatusCode"] == 500
            assert refused(kms.list_keys)[:2] == ("KMSInternalException", 500)
            assert refused(iam.list_roles)[:2] == ("ServiceFailure", 500)
        finally:
            kms.close()
            iam.close()
    (data / "audit" / "cloud.jsonl").unlink()  # room again: the next start levels the file
    with own_node(data):
        pass
    assert audit_verified(data) >= 1  # the store's events, copied to the new file


def test_a_stuck_audit_store_fails_calls_in_bounded_time(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with own_node(data, audit_timeout=0.5) as node:
        kms = node.client("kms")
        try:
            key_id = kms.create_key()["KeyMetadata"]["KeyId"]
            conn = sqlite3.connect(data / "audit" / "cloud.db", isolation_level=None)
            try:
                conn.execute("BEGIN IMMEDIATE")  # the audit writer cannot commit
                started = time.monotonic()
                answer = error_response(kms.encrypt, KeyId=key_id, Plaintext=PLAINTEXT)
                assert time.monotonic() - started < 4.0  # 2 x 0.5 s at most, not 5 s
                assert "CiphertextBlob" not in answer
                assert answer["Error"]["Code"] == "KMSInternalException"
                assert answer["ResponseMetadata"]["HTTPStatusCode"] == 500
            finally:
                conn.execute("ROLLBACK")
                conn.close()
            # The commit was under way past twice the timeout: the answer may disagree with
            # what the trail records, so the trail refuses every call until a restart.
            assert refused(kms.list_keys)[:2] == ("KMSInternalException", 500)
        finally:
            kms.close()
    with own_node(data) as node:
        kms = node.client("kms")
        try:
            blob = kms.encrypt(KeyId=key_id, Plaintext=PLAINTEXT)["CiphertextBlob"]
            assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == PLAINTEXT
        finally:
            kms.close()
    assert audit_verified(data) >= 4
