"""Config as code against a running node: apply / get / diff / delete / explain / events, the
REST API's refusals, and a change taking effect on an open keep-alive connection."""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from latchkey_testing import VENV_BIN, UpProcess, aws

pytestmark = pytest.mark.e2e


def latchkey(up: UpProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(VENV_BIN / "latchkey"), *args, "--data-dir", str(up.data_dir)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_get_apply_round_trip_and_diff(up: UpProcess, tmp_path: Path) -> None:
    printed = latchkey(up, "get", "all", "-o", "yaml")
    assert printed.returncode == 0, printed.stderr
    assert "oidcIssuerUrl: " + up.info.idp in printed.stdout  # read-only status, for AWS IAM
    saved = tmp_path / "all.yaml"
    saved.write_text(printed.stdout)
    again = latchkey(up, "apply", "-f", str(saved))
    assert again.returncode == 0, again.stderr
    assert again.stdout.split("\n")[:-1] == [
        "serverworkload/aws-kms unchanged",
        "credentialprovider/kms-federation unchanged",
        "clientworkload/local-apps unchanged",
        "accesspolicy/local-apps-to-kms unchanged",
    ]
    assert latchkey(up, "diff", "-f", str(saved)).returncode == 0

    extra = tmp_path / "extra.yaml"
    extra.write_text(
        "apiVersion: latchkey/v1\nkind: AccessCondition\nmetadata: {name: enc}\n"
        "spec: {aws: {actions: ['kms:Encrypt']}}\n"
    )
    diff = latchkey(up, "diff", "-f", str(extra))
    assert (diff.returncode, diff.stdout) == (1, "accesscondition/enc created\n")
    dry = latchkey(up, "apply", "-f", str(extra), "--dry-run")
    assert dry.stdout == "accesscondition/enc created (dry run)\n"
    assert "enc" not in latchkey(up, "get", "ac").stdout
    assert latchkey(up, "apply", "-f", str(extra)).stdout == "accesscondition/enc created\n"
    table = latchkey(up, "get", "accessconditions").stdout
    assert "AccessCondition  enc" in table
    assert latchkey(up, "delete", "ac", "enc").stdout == "accesscondition/enc deleted\n"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("apiVersion: latchkey/v1\nkind: ClientWorkload\nmetadata: {name: x}\n"
         "spec:\n  identities: [{sourceCidr: 10.0.0.1/8}]\n",
         ":5:29: spec.identities[0].sourceCidr: invalid CIDR"),
        ("apiVersion: latchkey/v1\nkind: AccessPolicy\nmetadata: {name: p}\n"
         "spec: {clients: [ghost], server: aws-kms, credentialProvider: kms-federation}\n",
         "spec.clients[0]: no ClientWorkload named 'ghost'"),
        ("apiVersion: latchkey/v1\nkind: Widget\nmetadata: {name: w}\nspec: {}\n", "kind"),
    ],
)  # fmt: skip
def test_bad_apply_changes_nothing(up: UpProcess, tmp_path: Path, text: str, expected: str) -> None:
    before = latchkey(up, "get", "all", "-o", "json").stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    result = latchkey(up, "apply", "-f", str(bad))
    assert result.returncode == 1
    assert "nothing was changed" in result.stderr
    assert expected in result.stderr
    assert latchkey(up, "get", "all", "-o", "json").stdout == before


def test_delete_refuses_what_is_referred_to(up: UpProcess) -> None:
    result = latchkey(up, "delete", "sw", "aws-kms")
    assert result.returncode == 1
    assert "AccessPolicy 'local-apps-to-kms' refer" in result.stderr


def test_api_needs_the_admin_token(up: UpProcess) -> None:
    base = up.info.idp_listen + "/api/v1"
    ctx = ssl.create_default_context(cafile=up.info.ca_bundle)
    with httpx.Client(verify=ctx, trust_env=False) as client:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": b"Bearer \xe9"}):
            resp = client.get(base + "/objects", headers=headers)
            assert resp.status_code == 401
            assert resp.json()["code"] == "Unauthorized"
        token = (up.data_dir / "control-token").read_text().strip()
        auth = {"Authorization": f"Bearer {token}"}
        spec = client.get(base + "/openapi.json", headers=auth).json()
        assert spec["openapi"].startswith("3.")
        assert "/api/v1/apply" in spec["paths"]
        missing = client.get(base + "/sw/nope", headers=auth)
        assert (missing.status_code, missing.json()["code"]) == (404, "NotFound")
        doc = {"spec": {"aws": {"actions": ["kms:Encrypt"]}}}
        put = client.put(base + "/accessconditions/via-put", headers=auth, json=doc)
        assert put.json()["changes"] == [
            {"kind": "AccessCondition", "name": "via-put", "action": "created"}
        ]
        bad = client.put(base + "/ac/bad", headers=auth, json={"spec": {"aws": {}}})
        assert (bad.status_code, bad.json()["code"]) == (422, "InvalidConfiguration")
        assert bad.json()["issues"][0]["field"] == "spec.aws"
        gone = client.delete(base + "/ac/via-put", headers=auth)
        assert gone.json()["changes"][0]["action"] == "deleted"
    assert (up.data_dir / "control-token").stat().st_mode & 0o777 == 0o600


def test_explain_agrees_with_the_edge_and_events_record_it(up: UpProcess) -> None:
    env = up.env()
    aws(env, "kms", "list-keys")
    explained = latchkey(up, "explain", "--host", "kms.us-east-1.amazonaws.com",
                         "--action", "kms:ListKeys")  # fmt: skip
    assert explained.returncode == 0
    assert explained.stdout.splitlines()[-1] == "ALLOWED"
    elsewhere = latchkey(up, "explain", "--host", "kms.us-east-1.amazonaws.com",
                         "--client-ip", "10.9.9.9")  # fmt: skip
    assert elsewhere.returncode == 3
    assert elsewhere.stdout.splitlines()[-1] == "DENIED (IdentityNotMatched)"
    deadline = time.monotonic() + 5
    events: list[dict[str, object]] = []
    while time.monotonic() < deadline and not events:
        out = latchkey(up, "events", "--json", "--decision", "allowed").stdout
        events = [json.loads(line) for line in out.splitlines()]
        time.sleep(0.2)
    assert events
    assert events[-1]["client"] == "local-apps"
    assert events[-1]["policy"] == "local-apps-to-kms"
    assert events[-1]["path"] == "/"
    table = latchkey(up, "events").stdout.splitlines()
    assert table[0].split()[:3] == ["TIME", "DECISION", "REASON"]


def _connect(up: UpProcess) -> ssl.SSLSocket:
    edge = urlsplit(up.info.edge)
    raw = socket.create_connection((str(edge.hostname), int(edge.port or 0)), timeout=10)
    raw.sendall(b"CONNECT kms.us-east-1.amazonaws.com:443 HTTP/1.1\r\nHost: x\r\n\r\n")
    assert raw.recv(1024).startswith(b"HTTP/1.1 200")
    ctx = ssl.create_default_context(cafile=up.info.ca_bundle)
    return ctx.wrap_socket(raw, server_hostname="kms.us-east-1.amazonaws.com")


def _list_keys(tls: ssl.SSLSocket) -> bytes:
    tls.sendall(
        b"POST / HTTP/1.1\r\nHost: kms.us-east-1.amazonaws.com\r\n"
        b"X-Amz-Target: TrentService.ListKeys\r\n"
        b"Content-Type: application/x-amz-json-1.1\r\nContent-Length: 2\r\n\r\n{}"
    )
    answer = b""
    while b"\r\n\r\n" not in answer:
        answer += tls.recv(65536)
    head, _, body = answer.partition(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    while len(body) < length:
        body += tls.recv(65536)
    return head


def test_an_applied_change_takes_effect_on_an_open_connection(
    tmp_path: Path,
) -> None:
    from latchkey.cli.control import ControlClient
    from latchkey_testing import start_up_process

    proc = start_up_process(tmp_path / "data")
    try:
        with _connect(proc) as tls:
            assert _list_keys(tls).startswith(b"HTTP/1.1 200")
            narrowed = tmp_path / "narrow.yaml"
            narrowed.write_text(
                "apiVersion: latchkey/v1\nkind: ClientWorkload\nmetadata: {name: local-apps}\n"
                "spec: {identities: [{sourceCidr: 10.0.0.0/8}]}\n"
            )
            # Timed from the push over the REST API (what `latchkey apply` sends), not from
            # starting a CLI process: the clock measures the node, not Python's start-up.
            client = ControlClient(proc.data_dir)
            started = time.monotonic()
            changes = client.call("POST", "/apply", json={
                "documents": narrowed.read_text(), "filename": str(narrowed),
                "prune": False, "dryRun": False,
            })["changes"]  # fmt: skip
            head = _list_keys(tls)  # the same keep-alive connection
            took = time.monotonic() - started
            client.client.close()
            assert [c["action"] for c in changes] == ["updated"], changes
            assert head.startswith(b"HTTP/1.1 403")
            assert b"x-latchkey-reason: IdentityNotMatched" in head
            assert took < 2.0
    finally:
        proc.stop()
