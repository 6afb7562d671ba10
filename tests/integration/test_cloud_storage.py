"""What the local cloud leaves on disk: key material and secrets only ever wrapped by the root
key (bound to their record), files private to the user, and an audit trail with one event per
call that never holds plaintext, secrets or tokens."""

from __future__ import annotations

import base64
import json
import sqlite3
import stat
from collections.abc import Callable
from typing import Any, NamedTuple

from botocore.config import Config as BotoConfig

from latchkey_testing import Cloud, NodeHandle, error_response

ROLE_ARN = "arn:aws:iam::000000000000:role/latchkey-kms"
PLAINTEXT = b"latchkey-storage-plaintext-5e1d"


class Refusal(NamedTuple):
    code: str
    status: int
    body: dict[str, Any]


def refused(call: Callable[..., Any], **kwargs: Any) -> Refusal:
    """Call what must fail; keep only code/status/body (see ``error_response``)."""
    resp = error_response(call, **kwargs)
    return Refusal(resp["Error"]["Code"], resp["ResponseMetadata"]["HTTPStatusCode"], resp)


def no_retry_kms(cloud: Cloud) -> Any:
    """Admin KMS client that does not retry a 500 (one call, one answer, one event)."""
    return cloud.client("kms", BotoConfig(retries={"total_max_attempts": 1}, proxies={}))


def store_bytes(node: NodeHandle) -> bytes:
    """The database file and its write-ahead log, as they are on disk right now."""
    db = node.data_dir / "latchkey.db"
    wal = db.with_name(db.name + "-wal")
    return db.read_bytes() + (wal.read_bytes() if wal.exists() else b"")


def wrapped_material(node: NodeHandle, key_id: str) -> bytes:
    uri = f"file:{node.data_dir / 'latchkey.db'}?mode=ro"
    with sqlite3.connect(uri, uri=True) as db:
        row = db.execute(
            "SELECT wrapped FROM kms_key_material WHERE key_id = ? AND version = 1", (key_id,)
        ).fetchone()
    db.close()
    return bytes(row[0])


def audit_events(node: NodeHandle) -> list[dict[str, Any]]:
    path = node.data_dir / "audit" / "cloud.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def assume(cloud: Cloud) -> tuple[str, dict[str, Any]]:
    issuer = cloud.node.node.issuer
    assert issuer is not None
    token = issuer.mint("latchkey:kms-federation:local-apps", "sts.amazonaws.com")
    resp = cloud.client("sts").assume_role_with_web_identity(
        RoleArn=ROLE_ARN, RoleSessionName="storage", WebIdentityToken=token
    )
    return token, resp["Credentials"]


def test_key_material_and_secrets_are_stored_wrapped(cloud: Cloud) -> None:
    kms = cloud.client("kms")
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    kms.encrypt(KeyId=key_id, Plaintext=PLAINTEXT)
    _token, creds = assume(cloud)
    node = cloud.node
    assert node.node.root_key is not None
    material = node.node.root_key.unwrap("kms-key-material", f"{key_id}/1",
                                         wrapped_material(node, key_id))  # fmt: skip
    assert len(material) == 32
    on_disk = store_bytes(node)
    root_key = (node.data_dir / "root.key").read_bytes()
    secrets = [material, root_key, PLAINTEXT, node.admin()["SecretAccessKey"].encode(),
               creds["SecretAccessKey"].encode(), creds["SessionToken"].encode()]  # fmt: skip
    for secret in secrets:
        assert secret not in on_disk
    assert creds["AccessKeyId"].encode() in on_disk  # the search does see the files' contents


def test_secret_files_are_private(cloud: Cloud) -> None:
    cloud.client("kms").create_key()
    data = cloud.node.data_dir
    for name in ("root.key", "latchkey.db", "cloud-admin.json", "ca-key.pem",
                 "idp-signing-key.pem", "audit/cloud.jsonl"):  # fmt: skip
        mode = stat.S_IMODE((data / name).stat().st_mode)
        assert mode & 0o077 == 0, f"{name} is {oct(mode)}"
    assert stat.S_IMODE((data / "audit").stat().st_mode) & 0o077 == 0


def test_audit_trail(cloud: Cloud) -> None:
    node = cloud.node
    before = len(audit_events(node))
    admin = cloud.client("kms")
    key_id = admin.create_key(Description="audited")["KeyMetadata"]["KeyId"]
    token, creds = assume(cloud)
    session = cloud.as_key("kms", creds)
    blob = session.encrypt(KeyId=key_id, Plaintext=PLAINTEXT, EncryptionContext={"app": "t"})
    blob = blob["CiphertextBlob"]
    plain = session.decrypt(CiphertextBlob=blob, EncryptionContext={"app": "t"})["Plaintext"]
    assert plain == PLAINTEXT
    data_key = session.generate_data_key(KeyId=key_id, NumberOfBytes=64)["Plaintext"]
    refused(session.decrypt, CiphertextBlob=blob, EncryptionContext={"app": "u"})
    refused(admin.encrypt, KeyId="00000000-0000-4000-8000-000000000000", Plaintext=PLAINTEXT)
    refused(cloud.client("sts").assume_role_with_web_identity, RoleArn=ROLE_ARN,
            RoleSessionName="xx", WebIdentityToken=token + "x")  # fmt: skip
    cloud.as_key("sts", creds).get_caller_identity()

    events = audit_events(node)[before:]
    assert [(e["eventSource"], e["eventName"], e.get("errorCode")) for e in events] == [
        ("kms.amazonaws.com", "CreateKey", None),
        ("sts.amazonaws.com", "AssumeRoleWithWebIdentity", None),
        ("kms.amazonaws.com", "Encrypt", None),
        ("kms.amazonaws.com", "Decrypt", None),
        ("kms.amazonaws.com", "GenerateDataKey", None),
        ("kms.amazonaws.com", "Decrypt", "InvalidCiphertextException"),
        ("kms.amazonaws.com", "Encrypt", "NotFoundException"),
        ("sts.amazonaws.com", "AssumeRoleWithWebIdentity", "InvalidIdentityToken"),
        ("sts.amazonaws.com", "GetCallerIdentity", None),
    ]
    assumed = "arn:aws:sts::000000000000:assumed-role/latchkey-kms/storage"
    assert events[2]["userIdentity"]["arn"] == assumed
    assert events[2]["userIdentity"]["sessionContext"]["sessionIssuer"]["arn"] == ROLE_ARN
    assert events[2]["requestParameters"]["encryptionContext"] == {"app": "t"}
    assert events[0]["userIdentity"]["type"] == "Root"
    issued = events[1]["responseElements"]["credentials"]
    assert issued["accessKeyId"] == creds["AccessKeyId"]
    assert len({e["eventID"] for e in events}) == len(events)

    text = (node.data_dir / "audit" / "cloud.jsonl").read_text()
    never = [PLAINTEXT.decode(), base64.b64encode(PLAINTEXT).decode(),
             base64.b64encode(data_key).decode(), base64.b64encode(blob).decode(),
             creds["SecretAccessKey"], creds["SessionToken"], token, token.split(".")[2],
             node.admin()["SecretAccessKey"]]  # fmt: skip
    for secret in never:
        assert secret not in text
