"""`latchkey up` with each root key source: the key file (default), ``LATCHKEY_ROOT_KEY`` and a
passphrase (``LATCHKEY_ROOT_PASSPHRASE`` or ``--root-key-passphrase-file``). A key that is not
the store's is refused at start-up with one clear line, and no key or passphrase is ever shown.
"""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config as BotoConfig

from latchkey_testing import VENV_BIN, UpProcess, client_base_env, start_up_process

pytestmark = pytest.mark.e2e

PLAINTEXT = b"latchkey-root-key-source-4d1e"
PASSPHRASE = "correct horse battery staple 81f0"


def kms_client(up: UpProcess) -> Any:
    admin = json.loads((up.data_dir / "cloud-admin.json").read_text())
    return boto3.client(
        "kms", endpoint_url=up.info.cloud, region_name="us-east-1", verify=up.info.ca_bundle,
        aws_access_key_id=admin["AccessKeyId"], aws_secret_access_key=admin["SecretAccessKey"],
        config=BotoConfig(retries={"max_attempts": 1}, proxies={}),
    )  # fmt: skip


def encrypt_once(data_dir: Path, *args: str, secrets: tuple[str, ...] = ()) -> bytes:
    up = start_up_process(data_dir, *args)
    kms = kms_client(up)
    try:
        key_id = kms.create_key()["KeyMetadata"]["KeyId"]
        return bytes(kms.encrypt(KeyId=key_id, Plaintext=PLAINTEXT)["CiphertextBlob"])
    finally:
        kms.close()
        assert_no_secret(up.stop(), *secrets)


def decrypt_once(data_dir: Path, blob: bytes, *args: str, secrets: tuple[str, ...] = ()) -> bytes:
    up = start_up_process(data_dir, *args)
    kms = kms_client(up)
    try:
        return bytes(kms.decrypt(CiphertextBlob=blob)["Plaintext"])
    finally:
        kms.close()
        assert_no_secret(up.stop(), *secrets)


def refused_start(data_dir: Path, *args: str, env: dict[str, str] | None = None) -> str:
    """`latchkey up` that must exit 1 before serving; its one-line reason."""
    run_env = client_base_env(data_dir.parent) | (env or {})
    cmd = [str(VENV_BIN / "latchkey"), "up", "--data-dir", str(data_dir),
           "--edge", "0", "--cloud", "0", "--idp", "0", *args]  # fmt: skip
    result = subprocess.run(cmd, env=run_env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert not (data_dir / "run.json").exists()
    lines = [line for line in result.stderr.splitlines() if line.startswith("latchkey: ")]
    assert len(lines) == 1, result.stderr
    assert_no_secret(result.stdout + result.stderr, *(env or {}).values())
    return lines[0]


def assert_no_secret(text: str, *secrets: str) -> None:
    """Neither the test's passphrase nor any of ``secrets`` (keys, passphrases) in ``text``."""
    for secret in [PASSPHRASE, *secrets]:
        if len(secret) >= 8:
            assert secret not in text


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_root_key_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data_dir = tmp_path / "data"
    raw = os.urandom(32)
    shown = (raw.hex(), base64.b64encode(raw).decode())
    monkeypatch.setenv("LATCHKEY_ROOT_KEY", raw.hex())
    blob = encrypt_once(data_dir, secrets=shown)
    assert not (data_dir / "root.key").exists()
    assert mode(data_dir / "root-key.check") == 0o600
    for name in ("latchkey.db", "root-key.check"):
        assert raw not in (data_dir / name).read_bytes()

    monkeypatch.setenv("LATCHKEY_ROOT_KEY", base64.b64encode(raw).decode())  # same key, base64
    assert decrypt_once(data_dir, blob, secrets=shown) == PLAINTEXT

    monkeypatch.delenv("LATCHKEY_ROOT_KEY")
    other = base64.b64encode(os.urandom(32)).decode()
    reason = refused_start(data_dir, env={"LATCHKEY_ROOT_KEY": other})
    assert reason.startswith(
        "latchkey: root key: the root key from $LATCHKEY_ROOT_KEY does not open this store ("
    )
    reason = refused_start(data_dir)  # no source given: the key file, which it never had
    assert "root.key is missing" in reason
    assert not (data_dir / "root.key").exists()


def test_root_key_from_a_passphrase(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data_dir = tmp_path / "data"
    pass_file = tmp_path / "passphrase"
    pass_file.write_text(PASSPHRASE + "\n")
    pass_file.chmod(0o600)
    blob = encrypt_once(data_dir, "--root-key-passphrase-file", str(pass_file))
    doc = json.loads((data_dir / "root-key.scrypt.json").read_text())
    assert (doc["kdf"], doc["n"], doc["r"], doc["p"]) == ("scrypt", 2**17, 8, 1)
    assert mode(data_dir / "root-key.scrypt.json") == 0o600
    assert not (data_dir / "root.key").exists()

    monkeypatch.setenv("LATCHKEY_ROOT_PASSPHRASE", PASSPHRASE)  # the same passphrase, by env
    assert decrypt_once(data_dir, blob) == PLAINTEXT
    monkeypatch.delenv("LATCHKEY_ROOT_PASSPHRASE")

    wrong = PASSPHRASE[:-1] + "1"
    reason = refused_start(data_dir, env={"LATCHKEY_ROOT_PASSPHRASE": wrong})
    assert "does not open this store" in reason
    assert reason.endswith("(wrong passphrase?)")

    pass_file.chmod(0o644)
    reason = refused_start(data_dir, "--root-key-passphrase-file", str(pass_file))
    assert "chmod 600" in reason


def test_key_file_store_refuses_other_sources(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    encrypt_once(data_dir)
    assert mode(data_dir / "root.key") == 0o600
    assert mode(data_dir / "root-key.check") == 0o600
    reason = refused_start(data_dir, env={"LATCHKEY_ROOT_PASSPHRASE": PASSPHRASE})
    assert "was not made with a passphrase" in reason
    assert not (data_dir / "root-key.scrypt.json").exists()
    reason = refused_start(data_dir, env={"LATCHKEY_ROOT_KEY": os.urandom(32).hex()})
    assert "does not open this store" in reason


@pytest.mark.parametrize(
    ("env", "expected"),
    [({"LATCHKEY_ROOT_KEY": "c2hvcnQta2V5LXNlY3JldA=="}, "must hold a 32-byte root key"),
     ({"LATCHKEY_ROOT_KEY": "00" * 32, "LATCHKEY_ROOT_PASSPHRASE": PASSPHRASE},
      "give one root key source"),
     ({"LATCHKEY_ROOT_PASSPHRASE": ""}, "passphrase from LATCHKEY_ROOT_PASSPHRASE is empty")],
)  # fmt: skip
def test_bad_root_key_settings_stop_before_anything_is_made(
    tmp_path: Path, env: dict[str, str], expected: str
) -> None:
    data_dir = tmp_path / "data"
    reason = refused_start(data_dir, env=env)
    assert expected in reason
    assert not (data_dir / "latchkey.db").exists()
    assert not (data_dir / "root-key.check").exists()
