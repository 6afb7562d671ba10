"""The local cloud across a node's stop and start: what persists, what is closed."""

from __future__ import annotations

import gc
import http.client
import json
import ssl
import warnings
from pathlib import Path
from urllib.parse import urlsplit

from latchkey_testing import start_node_thread, stop_node_thread

PLAINTEXT = b"latchkey-lifecycle-plaintext-93b2"


def test_restart_keeps_keys_and_appends_to_the_audit(tmp_path: Path) -> None:
    data = tmp_path / "restarted"
    blob = b""
    for run in ("first", "second"):
        handle, thread = start_node_thread(data)
        kms = handle.client("kms")  # the admin keys persist in cloud-admin.json
        try:
            if run == "first":
                key_id = kms.create_key()["KeyMetadata"]["KeyId"]
                blob = kms.encrypt(KeyId=key_id, Plaintext=PLAINTEXT)["CiphertextBlob"]
            else:
                assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == PLAINTEXT
        finally:
            kms.close()
            stop_node_thread(handle, thread)
    lines = (data / "audit" / "cloud.jsonl").read_text().splitlines()
    assert [json.loads(line)["eventName"] for line in lines] == ["CreateKey", "Encrypt", "Decrypt"]


def test_stopping_the_node_closes_idle_connections(tmp_path: Path) -> None:
    handle, thread = start_node_thread(tmp_path / "data")
    parts = urlsplit(handle.info.cloud)
    ctx = ssl.create_default_context(cafile=handle.info.ca_bundle)
    conn = http.client.HTTPSConnection(str(parts.hostname), parts.port, context=ctx, timeout=5)
    running = True
    try:
        conn.request("GET", "/healthz")
        response = conn.getresponse()
        assert (response.status, response.read()) == (200, b"ok\n")
        assert not response.will_close  # an idle keep-alive connection
        running = False
        stop_node_thread(handle, thread)
        assert conn.sock is not None
        conn.sock.settimeout(0.5)
        try:
            closed = conn.sock.recv(1) == b""
        except (ssl.SSLError, ConnectionError):
            closed = True
        except TimeoutError:
            closed = False
        assert closed, "the server kept the connection open after it stopped"
    finally:
        conn.close()
        if running:
            stop_node_thread(handle, thread)
        with warnings.catch_warnings():  # the leaked server side, if any, is collected here
            warnings.simplefilter("ignore", ResourceWarning)
            gc.collect()
