"""Access conditions at the edge, with the aws CLI: allowed actions and time windows."""

from __future__ import annotations

import base64
import datetime as dt
import json
import ssl
from pathlib import Path

import pytest

from latchkey_testing import UpProcess, aws, edge_tunnel, outcomes, start_with_config

pytestmark = pytest.mark.e2e


POLICY = """\
apiVersion: latchkey/v1
kind: ClientWorkload
metadata: {name: local-apps}
spec:
  identities: [{sourceCidr: 127.0.0.0/8}]
---
apiVersion: latchkey/v1
kind: AccessPolicy
metadata: {name: local-apps-to-kms}
spec:
  clients: [local-apps]
  server: aws-kms
  credentialProvider: kms-federation
  conditions: [$condition]
---
apiVersion: latchkey/v1
kind: AccessCondition
metadata: {name: $condition}
spec:
"""


def start(tmp_path: Path, condition: str, spec: str) -> UpProcess:
    return start_with_config(tmp_path, POLICY.replace("$condition", condition) + spec + "\n")


def test_encrypt_only_refuses_decrypt(tmp_path: Path) -> None:
    proc = start(tmp_path, "encrypt-only", '  aws: {actions: ["kms:CreateKey", "kms:Encrypt"]}')
    try:
        env = proc.env()
        key_id = json.loads(aws(env, "kms", "create-key").stdout)["KeyMetadata"]["KeyId"]
        plain = tmp_path / "p.bin"
        plain.write_bytes(b"conditions")
        blob = json.loads(
            aws(env, "kms", "encrypt", "--key-id", key_id, "--plaintext", f"fileb://{plain}").stdout
        )["CiphertextBlob"]
        (tmp_path / "c.bin").write_bytes(base64.b64decode(blob))
        blob_arg = f"fileb://{tmp_path / 'c.bin'}"
        denied = aws(env, "kms", "decrypt", "--ciphertext-blob", blob_arg, check=False)
    finally:
        proc.stop()
    assert denied.returncode != 0
    assert "AccessDeniedException" in denied.stderr
    assert "ConditionFailed" in denied.stderr
    assert "encrypt-only" in denied.stderr
    assert "kms:Decrypt" in denied.stderr
    assert "denied:ConditionFailed" in outcomes(proc.data_dir)


def test_outside_the_time_window_is_refused(tmp_path: Path) -> None:
    later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=3)
    window = f"{later:%H}:00-{(later + dt.timedelta(hours=1)):%H}:00"
    proc = start(tmp_path, "later-today", f'  timeWindow: {{timezone: UTC, hours: ["{window}"]}}')
    try:
        denied = aws(proc.env(), "kms", "list-keys", check=False)
    finally:
        proc.stop()
    assert denied.returncode != 0
    assert "ConditionFailed" in denied.stderr
    assert "outside the time window" in denied.stderr


def _head(tls: ssl.SSLSocket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        more = tls.recv(65536)
        assert more, data
        data += more
    return data


def _send(up: UpProcess, head: bytes, body: bytes, framing: str) -> bytes:
    """One request on a fresh tunnel, its body sized, chunked, or sized after a 100-continue;
    the answer's head (and whatever came with it)."""
    with edge_tunnel(up) as tls:
        if framing == "chunked":
            tls.sendall(head + b"Transfer-Encoding: chunked\r\n\r\n")
            tls.sendall(b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body))
            return _head(tls)
        sized = head + b"Content-Length: %d\r\n" % len(body)
        if framing == "expect":
            tls.sendall(sized + b"Expect: 100-continue\r\n\r\n")
            interim = _head(tls)
            if not interim.startswith(b"HTTP/1.1 100"):
                return interim  # answered before the body: fine for a refusal
            tls.sendall(body)
            return _head(tls)
        tls.sendall(sized + b"\r\n" + body)
        return _head(tls)


FRAMINGS = ["sized", "expect", "chunked"]


def test_the_body_is_read_before_conditions_judge_it(tmp_path: Path) -> None:
    """A streamed body (100-continue, chunked) is judged as a sized one: the key named in a
    JSON body, the Action in a form body, and an Action named twice, differently."""
    proc = start(tmp_path, "one-key", '  aws: {actions: ["kms:Encrypt", "kms:ListKeys"],'
                 ' keys: ["alias/allowed"]}')  # fmt: skip
    json_head = (
        b"POST / HTTP/1.1\r\nHost: kms.us-east-1.amazonaws.com\r\n"
        b"X-Amz-Target: TrentService.Encrypt\r\nContent-Type: application/x-amz-json-1.1\r\n"
    )
    form_head = (
        b"POST /?Action=ListKeys HTTP/1.1\r\nHost: kms.us-east-1.amazonaws.com\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\n"
    )
    try:
        for framing in FRAMINGS:
            other = _send(proc, json_head, b'{"KeyId": "alias/other", "Plaintext": "eA=="}',
                          framing)  # fmt: skip
            assert other.startswith(b"HTTP/1.1 403"), (framing, other)
            assert b"key alias/other is not one of alias/allowed" in other, framing
            allowed = _send(proc, json_head, b'{"KeyId": "alias/allowed", "Plaintext": "eA=="}',
                            framing)  # fmt: skip
            assert b"ConditionFailed" not in allowed, (framing, allowed)  # the cloud answers
            twice = _send(proc, json_head, b'{"KeyId": "alias/allowed", "KeyId": "alias/other"}',
                          framing)  # fmt: skip
            assert twice.startswith(b"HTTP/1.1 403"), (framing, twice)
            assert b"names a member more than once" in twice, framing
            smuggled = _send(proc, form_head, b"Action=ScheduleKeyDeletion&KeyId=x", framing)
            assert smuggled.startswith(b"HTTP/1.1 403"), (framing, smuggled)
            assert b"names more than one Action" in smuggled, framing
    finally:
        proc.stop()
