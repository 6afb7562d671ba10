"""The local cloud's plain-HTTP listener (`latchkey up --cloud-http`): the same app as the HTTPS
one, SigV4 still required, loopback unless the operator asks otherwise (then a warning), shown by
`latchkey status` and `latchkey env`. Driven by boto3 over ``http://``."""

from __future__ import annotations

import asyncio
import http.client
import json
import logging
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
import pytest
from botocore.config import Config as BotoConfig

from latchkey.cli.main import main as latchkey_main
from latchkey.node import Listen, Node, RunInfo, StartupError
from latchkey_testing import (
    NodeHandle,
    SettableClock,
    UpProcess,
    refused,
    start_up_process,
    stop_node_thread,
)

LOOPBACK_ANY = ("127.0.0.1", 0)
PLAIN = Listen(LOOPBACK_ANY, LOOPBACK_ANY, LOOPBACK_ANY, cloud_http=LOOPBACK_ANY)


@pytest.fixture
def plain_node(tmp_path: Path, settable_clock: SettableClock) -> Iterator[NodeHandle]:
    """A whole node in this process with the plain-HTTP cloud listener on."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    node = Node(tmp_path / "data", listen=PLAIN, clock=settable_clock)
    fut: Future[RunInfo] = asyncio.run_coroutine_threadsafe(node.start(), loop)
    handle = NodeHandle(node, fut.result(30), tmp_path / "data", loop)
    try:
        yield handle
    finally:
        stop_node_thread(handle, thread)


def plain_client(handle: NodeHandle, service: str = "kms", **creds: str) -> Any:
    if not creds:
        admin = handle.admin()
        creds = {
            "aws_access_key_id": admin["AccessKeyId"],
            "aws_secret_access_key": admin["SecretAccessKey"],
        }
    return boto3.client(
        service,
        endpoint_url=handle.info.cloud_http,
        region_name="us-east-1",
        config=BotoConfig(retries={"max_attempts": 1}, proxies={}),
        **creds,
    )


def test_plain_listener_is_on_loopback_and_serves_the_same_cloud(plain_node: NodeHandle) -> None:
    assert urlsplit(plain_node.info.cloud_http).scheme == "http"
    assert urlsplit(plain_node.info.cloud_http).hostname == "127.0.0.1"
    plain, tls = plain_client(plain_node), plain_node.client("kms")
    try:
        key_id = plain.create_key(Description="over plain HTTP")["KeyMetadata"]["KeyId"]
        blob = plain.encrypt(KeyId=key_id, Plaintext=b"x" * 1024)["CiphertextBlob"]
        # One app, one store: the HTTPS listener sees the key and decrypts what HTTP encrypted.
        assert tls.describe_key(KeyId=key_id)["KeyMetadata"]["Description"] == "over plain HTTP"
        assert tls.decrypt(CiphertextBlob=blob)["Plaintext"] == b"x" * 1024
        data_key = plain.generate_data_key(KeyId=key_id, KeySpec="AES_256")
        assert len(data_key["Plaintext"]) == 32
        assert (
            plain.decrypt(CiphertextBlob=data_key["CiphertextBlob"])["Plaintext"]
            == (data_key["Plaintext"])
        )
        sts = plain_client(plain_node, "sts")
        assert sts.get_caller_identity()["Arn"] == "arn:aws:iam::000000000000:root"
        sts.close()
    finally:
        plain.close()
        tls.close()


def test_a_key_policy_can_refuse_plain_http(plain_node: NodeHandle) -> None:
    """aws:SecureTransport is false on the plain listener and true on the HTTPS one."""
    root = "arn:aws:iam::000000000000:root"
    statements = [
        {"Effect": "Allow", "Principal": {"AWS": root}, "Action": "kms:*", "Resource": "*"},
        {"Effect": "Deny", "Principal": {"AWS": root}, "Action": "kms:Encrypt", "Resource": "*",
         "Condition": {"Bool": {"aws:SecureTransport": "false"}}},
    ]  # fmt: skip
    plain, tls = plain_client(plain_node), plain_node.client("kms")
    try:
        document = json.dumps({"Version": "2012-10-17", "Statement": statements})
        key_id = tls.create_key(Policy=document)["KeyMetadata"]["KeyId"]
        assert tls.encrypt(KeyId=key_id, Plaintext=b"x")["CiphertextBlob"]
        assert refused(plain.encrypt, KeyId=key_id, Plaintext=b"x").code == "AccessDeniedException"
    finally:
        plain.close()
        tls.close()


def test_plain_listener_still_requires_sigv4(plain_node: NodeHandle) -> None:
    admin = plain_node.admin()
    parts = urlsplit(plain_node.info.cloud_http)
    assert parts.hostname is not None
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        headers = {
            "X-Amz-Target": "TrentService.ListKeys",
            "Content-Type": "application/x-amz-json-1.1",
        }
        conn.request("POST", "/", body=b"{}", headers=headers)
        resp = conn.getresponse()
        body = json.loads(resp.read())
    finally:
        conn.close()
    assert resp.status == 400
    assert body["__type"] == "MissingAuthenticationTokenException"

    unknown = plain_client(
        plain_node, aws_access_key_id="AKIANOTAKEYWEKNOW000", aws_secret_access_key="x" * 40
    )
    secret = admin["SecretAccessKey"]
    wrong = plain_client(
        plain_node,
        aws_access_key_id=admin["AccessKeyId"],
        aws_secret_access_key=secret[:-1] + ("y" if secret.endswith("x") else "x"),
    )
    try:
        assert refused(unknown.list_keys)[:2] == ("UnrecognizedClientException", 400)
        assert refused(wrong.list_keys)[:2] == ("InvalidSignatureException", 400)
    finally:
        unknown.close()
        wrong.close()


def test_plain_listener_calls_are_audited_before_the_answer(plain_node: NodeHandle) -> None:
    kms = plain_client(plain_node)
    try:
        key_id = kms.create_key()["KeyMetadata"]["KeyId"]
        answer = kms.encrypt(KeyId=key_id, Plaintext=b"secret plaintext")
    finally:
        kms.close()
    request_id = answer["ResponseMetadata"]["RequestId"]
    trail = plain_node.node.paths.audit.read_text()
    lines = [line for line in trail.splitlines() if request_id in line]
    assert len(lines) == 1
    assert '"Encrypt"' in lines[0]
    assert "secret plaintext" not in trail


def test_status_and_env_show_the_plain_listener(
    plain_node: NodeHandle, capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir = str(plain_node.data_dir)
    assert latchkey_main(["status", "--data-dir", data_dir, "--json"]) == 0
    parts = json.loads(capsys.readouterr().out)["parts"]
    assert parts["cloud-http"] == {"url": plain_node.info.cloud_http, "ready": True}

    assert latchkey_main(["env", "--data-dir", data_dir, "--cloud-admin", "--plain-http"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert f"export AWS_ENDPOINT_URL={plain_node.info.cloud_http}" in out
    assert "unset AWS_CA_BUNDLE" in out

    assert latchkey_main(["env", "--data-dir", data_dir, "--cloud-admin"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert f"export AWS_ENDPOINT_URL={plain_node.info.cloud}" in out
    assert f"# plain HTTP (same cloud): {plain_node.info.cloud_http}" in out


def test_env_plain_http_without_the_listener_is_an_error(
    node: NodeHandle, capsys: pytest.CaptureFixture[str]
) -> None:
    assert node.info.cloud_http == ""
    args = ["env", "--data-dir", str(node.data_dir), "--cloud-admin", "--plain-http"]
    assert latchkey_main(args) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "no plain-HTTP listener" in captured.err


def test_a_non_loopback_plain_listener_logs_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # 192.0.2.1 (TEST-NET-1) is on no interface here: the warning is logged, then the bind
    # fails cleanly, and nothing ever listens beyond loopback.
    listen = Listen(LOOPBACK_ANY, LOOPBACK_ANY, LOOPBACK_ANY, cloud_http=("192.0.2.1", 0))
    node = Node(tmp_path / "data", listen=listen)

    async def start() -> str:
        try:
            await node.start()
        except StartupError as exc:
            return str(exc)
        finally:
            await node.stop()
        return "started"

    with caplog.at_level(logging.WARNING, logger="latchkey"):
        outcome = asyncio.run(start())
    assert outcome.startswith("cannot listen on 192.0.2.1:0 for the cloud (plain HTTP)")
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("not loopback-only" in w and "192.0.2.1" in w for w in warnings)


@pytest.fixture(scope="module")
def up_plain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[UpProcess]:
    proc = start_up_process(tmp_path_factory.mktemp("up-plain") / "data", "--cloud-http", "0")
    try:
        yield proc
    finally:
        proc.stop()


@pytest.mark.e2e
def test_latchkey_up_cloud_http_flag(up_plain: UpProcess) -> None:
    assert urlsplit(up_plain.info.cloud_http).hostname == "127.0.0.1"
    admin = json.loads((up_plain.data_dir / "cloud-admin.json").read_text())
    kms = boto3.client(
        "kms",
        endpoint_url=up_plain.info.cloud_http,
        region_name="us-east-1",
        aws_access_key_id=admin["AccessKeyId"],
        aws_secret_access_key=admin["SecretAccessKey"],
        config=BotoConfig(retries={"max_attempts": 1}, proxies={}),
    )
    try:
        key_id = kms.create_key()["KeyMetadata"]["KeyId"]
        blob = kms.encrypt(KeyId=key_id, Plaintext=b"hello")["CiphertextBlob"]
        assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"hello"
    finally:
        kms.close()
    assert "(plain HTTP, same app)" in up_plain.log_path.read_text()
