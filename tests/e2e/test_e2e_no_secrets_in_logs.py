"""Nothing in the logs or audit of a run holds a secret key, a session token, a root key,
a JWT, the placeholder secret or a plaintext."""

from __future__ import annotations

import base64
import json
import sqlite3
from pathlib import Path

import boto3
import pytest
from botocore.config import Config as BotoConfig

from latchkey.cli.main import DEFAULT_PLACEHOLDER_SECRET
from latchkey.clock import SystemClock
from latchkey.crypto.jwk import SigningKey
from latchkey.crypto.rootkey import RootKey
from latchkey.idp.issuer import Issuer
from latchkey_testing import aws, start_up_process

pytestmark = pytest.mark.e2e

PLAINTEXT = b"top-secret-plaintext-4c1d"


def _session_secrets(data_dir: Path) -> list[str]:
    root = RootKey.load_or_create(data_dir / "root.key")
    db = sqlite3.connect(f"file:{data_dir / 'latchkey.db'}?mode=ro", uri=True)
    try:
        rows = db.execute("SELECT access_key_id, wrapped_secret FROM access_keys").fetchall()
    finally:
        db.close()
    return [root.unwrap("access-key-secret", key_id, wrapped).decode() for key_id, wrapped in rows]


def test_logs_and_audit_hold_no_secrets(tmp_path: Path) -> None:
    proc = start_up_process(tmp_path / "data", "--log-level", "debug")
    data_dir = proc.data_dir
    try:
        env = proc.env()
        key_id = json.loads(aws(env, "kms", "create-key").stdout)["KeyMetadata"]["KeyId"]
        plain = tmp_path / "p.bin"
        plain.write_bytes(PLAINTEXT)
        blob = json.loads(
            aws(env, "kms", "encrypt", "--key-id", key_id, "--plaintext", f"fileb://{plain}").stdout
        )["CiphertextBlob"]
        (tmp_path / "c.bin").write_bytes(base64.b64decode(blob))
        aws(env, "kms", "decrypt", "--ciphertext-blob", f"fileb://{tmp_path / 'c.bin'}")
        # A federation done by hand too, so its secret and token are known to the test.
        issuer = Issuer(proc.info.idp, SigningKey.load_or_create(data_dir / "idp-signing-key.pem"),
                        SystemClock())  # fmt: skip
        token = issuer.mint("latchkey:kms-federation:local-apps", "sts.amazonaws.com")
        sts = boto3.client(
            "sts", endpoint_url=proc.info.cloud, region_name="us-east-1",
            verify=proc.info.ca_bundle, aws_access_key_id="x", aws_secret_access_key="y",
            config=BotoConfig(proxies={}),
        )  # fmt: skip
        creds = sts.assume_role_with_web_identity(
            RoleArn="arn:aws:iam::000000000000:role/latchkey-kms",
            RoleSessionName="secrets-test",
            WebIdentityToken=token,
        )["Credentials"]
        admin = json.loads((data_dir / "cloud-admin.json").read_text())
        session_secrets = _session_secrets(data_dir)
    finally:
        log = proc.stop()

    texts = {
        "log": log,
        "audit": (data_dir / "audit" / "cloud.jsonl").read_text(),
        "audit store": (data_dir / "audit" / "cloud.db").read_bytes().decode("latin-1"),
        "access events": (data_dir / "events" / "access.jsonl").read_text(),
    }
    root_key = (data_dir / "root.key").read_bytes()
    forbidden = {
        "plaintext": PLAINTEXT.decode(),
        "plaintext (base64)": base64.b64encode(PLAINTEXT).decode(),
        "placeholder secret": DEFAULT_PLACEHOLDER_SECRET,
        "admin secret": admin["SecretAccessKey"],
        "session secret (test)": creds["SecretAccessKey"],
        "session token (test)": creds["SessionToken"],
        "session token prefix": "LKSTS",
        "JWT": token,
        "JWT header": "eyJ",
        "root key (hex)": root_key.hex(),
        "root key (base64)": base64.b64encode(root_key).decode(),
        "CA key": "PRIVATE KEY",
    }
    for i, secret in enumerate(session_secrets):
        forbidden[f"session secret {i}"] = secret
    assert len(session_secrets) >= 2  # the edge's session and the test's
    for where, text in texts.items():
        assert text, f"{where} is empty: the test would prove nothing"
        for what, value in forbidden.items():
            assert value not in text, f"{what} found in the {where}"
