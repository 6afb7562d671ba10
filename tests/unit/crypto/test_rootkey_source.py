"""Tests for latchkey.rootkey_source: where the root key comes from, and the check that it is
the store's key."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

import pytest

from latchkey.crypto.rootkey import RootKey
from latchkey.rootkey_source import (
    CHECK_FILE,
    ENV_KEY,
    ENV_PASSPHRASE,
    KDF_FILE,
    KEY_FILE,
    RootKeyError,
    RootKeySource,
    SourceKind,
    decode_root_key,
    open_root_key,
    source_from,
)

RAW = bytes(range(32))
PASSPHRASE = b"a long passphrase, 7c2e"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def cheap_params(data: Path) -> None:
    """A params file with a small cost, so the tests run fast (the loader honours it)."""
    doc = {"kdf": "scrypt", "salt": base64.b64encode(os.urandom(16)).decode(), "n": 1024,
           "r": 8, "p": 1}  # fmt: skip
    (data / KDF_FILE).write_text(json.dumps(doc))
    (data / KDF_FILE).chmod(0o600)


def open_key(data: Path, source: RootKeySource) -> RootKey:
    return open_root_key(data, source, store=data / "latchkey.db")


def env_source(raw: bytes = RAW) -> RootKeySource:
    return RootKeySource.env(base64.b64encode(raw).decode())


def passphrase_source(value: bytes = PASSPHRASE) -> RootKeySource:
    return RootKeySource.passphrase(value, ENV_PASSPHRASE)


def assert_no_secret(text: str, *secrets: bytes) -> None:
    for secret in secrets:
        for shown in (secret.hex(), base64.b64encode(secret).decode(), repr(secret)):
            assert shown not in text
        if secret.isascii():
            assert secret.decode() not in text


# -- decoding LATCHKEY_ROOT_KEY ----------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [RAW.hex(), RAW.hex().upper(), base64.b64encode(RAW).decode(),
     base64.urlsafe_b64encode(bytes([250]) * 32).decode(),
     base64.b64encode(RAW).decode().rstrip("="), f"  {RAW.hex()}\n"],
)  # fmt: skip
def test_decode_accepts_hex_and_base64(text: str) -> None:
    expected = bytes([250]) * 32 if "-" in text or "_" in text else RAW
    assert decode_root_key(text) == expected


@pytest.mark.parametrize(
    "text",
    ["", RAW.hex()[:-2], RAW.hex() + "00", base64.b64encode(RAW[:31]).decode(),
     base64.b64encode(RAW + b"x").decode(), "not base64 at all!", "g" * 64],
)  # fmt: skip
def test_decode_refuses_other_lengths_without_echoing(text: str) -> None:
    with pytest.raises(RootKeyError, match="LATCHKEY_ROOT_KEY must hold a 32-byte") as info:
        decode_root_key(text)
    if text:
        assert text not in str(info.value)


# -- choosing the source -----------------------------------------------------------------------


def test_no_source_given_means_the_key_file() -> None:
    assert source_from({}).kind is SourceKind.FILE


def test_env_key_source() -> None:
    source = source_from({ENV_KEY: RAW.hex(), "OTHER": "x"})
    assert (source.kind, source.secret) == (SourceKind.ENV, RAW)
    assert RAW.hex() not in repr(source)


def test_env_passphrase_source() -> None:
    source = source_from({ENV_PASSPHRASE: PASSPHRASE.decode()})
    assert (source.kind, source.secret) == (SourceKind.PASSPHRASE, PASSPHRASE)
    assert PASSPHRASE.decode() not in repr(source)


@pytest.mark.parametrize("ending", [b"", b"\n", b"\r\n"])
def test_passphrase_file_source_drops_one_line_break(tmp_path: Path, ending: bytes) -> None:
    path = tmp_path / "pass"
    path.write_bytes(PASSPHRASE + b"  " + ending)
    path.chmod(0o600)
    source = source_from({}, path)
    assert (source.kind, source.secret) == (SourceKind.PASSPHRASE, PASSPHRASE + b"  ")


def test_passphrase_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "pass"
    path.write_bytes(PASSPHRASE)
    path.chmod(0o644)
    with pytest.raises(RootKeyError, match="chmod 600") as info:
        source_from({}, path)
    assert_no_secret(str(info.value), PASSPHRASE)


def test_missing_passphrase_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(RootKeyError, match="cannot read the root key passphrase file"):
        source_from({}, tmp_path / "nope")


@pytest.mark.parametrize(
    ("environ", "with_file"),
    [({ENV_KEY: RAW.hex(), ENV_PASSPHRASE: "x"}, False), ({ENV_KEY: RAW.hex()}, True),
     ({ENV_PASSPHRASE: "x"}, True)],
)  # fmt: skip
def test_two_sources_are_refused(tmp_path: Path, environ: dict[str, str], with_file: bool) -> None:
    path = tmp_path / "pass"
    path.write_bytes(b"x")
    path.chmod(0o600)
    with pytest.raises(RootKeyError, match="give one root key source"):
        source_from(environ, path if with_file else None)


@pytest.mark.parametrize("environ", [{ENV_PASSPHRASE: ""}])
def test_empty_passphrase_is_refused(tmp_path: Path, environ: dict[str, str]) -> None:
    with pytest.raises(RootKeyError, match="empty"):
        source_from(environ)
    path = tmp_path / "pass"
    path.write_bytes(b"\n")
    path.chmod(0o600)
    with pytest.raises(RootKeyError, match="empty"):
        source_from({}, path)


# -- opening: the key file ---------------------------------------------------------------------


@pytest.mark.usefixtures("umask_zero")
def test_key_file_source_creates_key_and_check_0600(tmp_path: Path) -> None:
    key = open_key(tmp_path, RootKeySource.file())
    assert mode(tmp_path / KEY_FILE) == 0o600
    assert mode(tmp_path / CHECK_FILE) == 0o600
    assert key.same_key(RootKey.from_bytes((tmp_path / KEY_FILE).read_bytes()))
    again = open_key(tmp_path, RootKeySource.file())
    assert again.same_key(key)


def test_replaced_key_file_is_refused(tmp_path: Path) -> None:
    open_key(tmp_path, RootKeySource.file())
    (tmp_path / KEY_FILE).write_bytes(os.urandom(32))
    with pytest.raises(RootKeyError, match="does not open this store"):
        open_key(tmp_path, RootKeySource.file())


def test_missing_key_file_of_an_existing_store_is_not_recreated(tmp_path: Path) -> None:
    open_key(tmp_path, RootKeySource.file())
    (tmp_path / KEY_FILE).unlink()
    with pytest.raises(RootKeyError, match=r"root key file .*root\.key is missing"):
        open_key(tmp_path, RootKeySource.file())
    assert not (tmp_path / KEY_FILE).exists()


def test_store_without_key_file_or_check_is_refused(tmp_path: Path) -> None:
    (tmp_path / "latchkey.db").write_bytes(b"")
    with pytest.raises(RootKeyError, match="is missing"):
        open_key(tmp_path, RootKeySource.file())
    assert not (tmp_path / KEY_FILE).exists()


def test_key_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    open_key(tmp_path, RootKeySource.file())
    (tmp_path / KEY_FILE).chmod(0o640)
    with pytest.raises(RootKeyError, match="chmod 600"):
        open_key(tmp_path, RootKeySource.file())


# -- opening: LATCHKEY_ROOT_KEY ----------------------------------------------------------------


def test_env_key_on_a_new_store_writes_only_the_check(tmp_path: Path) -> None:
    key = open_key(tmp_path, env_source())
    assert key.same_key(RootKey.from_bytes(RAW))
    assert not (tmp_path / KEY_FILE).exists()
    assert mode(tmp_path / CHECK_FILE) == 0o600
    assert RAW not in (tmp_path / CHECK_FILE).read_bytes()
    assert open_key(tmp_path, env_source()).same_key(key)


def test_wrong_env_key_is_refused_without_showing_either_key(tmp_path: Path) -> None:
    open_key(tmp_path, env_source())
    other = os.urandom(32)
    with pytest.raises(RootKeyError) as info:
        open_key(tmp_path, env_source(other))
    message = str(info.value)
    assert "the root key from $LATCHKEY_ROOT_KEY does not open this store" in message
    assert str(tmp_path) in message
    assert_no_secret(message, RAW, other)


def test_key_file_and_env_key_are_interchangeable(tmp_path: Path) -> None:
    made = open_key(tmp_path, RootKeySource.file())
    raw = (tmp_path / KEY_FILE).read_bytes()
    assert open_key(tmp_path, env_source(raw)).same_key(made)


def test_store_made_with_env_key_refuses_a_new_key_file(tmp_path: Path) -> None:
    open_key(tmp_path, env_source())
    with pytest.raises(RootKeyError, match="is missing"):
        open_key(tmp_path, RootKeySource.file())
    assert not (tmp_path / KEY_FILE).exists()


def test_store_from_before_check_values(tmp_path: Path) -> None:
    """A data directory with a store and root.key but no check: the key file's key passes
    (and gets a check), another key does not."""
    (tmp_path / "latchkey.db").write_bytes(b"")
    RootKey.load_or_create(tmp_path / KEY_FILE)
    raw = (tmp_path / KEY_FILE).read_bytes()
    with pytest.raises(RootKeyError, match="has no check value"):
        open_key(tmp_path, env_source())
    assert not (tmp_path / CHECK_FILE).exists()
    open_key(tmp_path, env_source(raw))
    assert (tmp_path / CHECK_FILE).exists()
    with pytest.raises(RootKeyError, match="does not open this store"):
        open_key(tmp_path, env_source())


def test_store_without_check_or_key_file_refuses_an_env_key(tmp_path: Path) -> None:
    (tmp_path / "latchkey.db").write_bytes(b"")
    with pytest.raises(RootKeyError, match="has no check value"):
        open_key(tmp_path, env_source())


# -- opening: a passphrase ---------------------------------------------------------------------


@pytest.mark.usefixtures("umask_zero")
def test_passphrase_on_a_new_store_records_salt_and_cost(tmp_path: Path) -> None:
    key = open_key(tmp_path, passphrase_source())  # default cost, once
    doc = json.loads((tmp_path / KDF_FILE).read_text())
    assert (doc["kdf"], doc["n"], doc["r"], doc["p"]) == ("scrypt", 2**17, 8, 1)
    assert len(base64.b64decode(doc["salt"])) == 16
    assert mode(tmp_path / KDF_FILE) == 0o600
    assert mode(tmp_path / CHECK_FILE) == 0o600
    assert not (tmp_path / KEY_FILE).exists()
    assert open_key(tmp_path, passphrase_source()).same_key(key)


def test_wrong_passphrase_is_refused(tmp_path: Path) -> None:
    cheap_params(tmp_path)
    open_key(tmp_path, passphrase_source())
    wrong = b"a long passphrase, 7c2f"
    with pytest.raises(RootKeyError) as info:
        open_key(tmp_path, passphrase_source(wrong))
    message = str(info.value)
    assert "does not open this store" in message
    assert "wrong passphrase?" in message
    assert_no_secret(message, PASSPHRASE, wrong)


def test_passphrase_from_file_and_env_give_the_same_key(tmp_path: Path) -> None:
    cheap_params(tmp_path)
    key = open_key(tmp_path, passphrase_source())
    from_file = RootKeySource.passphrase(PASSPHRASE, str(tmp_path / "pass"))
    assert open_key(tmp_path, from_file).same_key(key)


def test_passphrase_on_a_store_made_without_one_is_refused(tmp_path: Path) -> None:
    open_key(tmp_path, RootKeySource.file())
    with pytest.raises(RootKeyError, match="was not made with a passphrase"):
        open_key(tmp_path, passphrase_source())
    assert not (tmp_path / KDF_FILE).exists()


def test_lost_salt_is_refused(tmp_path: Path) -> None:
    cheap_params(tmp_path)
    open_key(tmp_path, passphrase_source())
    (tmp_path / KDF_FILE).unlink()
    with pytest.raises(RootKeyError, match="was not made with a passphrase"):
        open_key(tmp_path, passphrase_source())


@pytest.mark.parametrize(
    "doc",
    [{"kdf": "pbkdf2", "salt": "AAAAAAAAAAAAAAAAAAAAAA==", "n": 1024, "r": 8, "p": 1},
     {"kdf": "scrypt", "salt": "AAAAAAAAAAAAAAAAAAAAAA==", "n": 2**30, "r": 8, "p": 1},
     {"kdf": "scrypt", "salt": "short", "n": 1024, "r": 8, "p": 1},
     {"kdf": "scrypt", "n": 1024, "r": 8, "p": 1}, ["not", "an", "object"]],
)  # fmt: skip
def test_bad_params_file_is_refused(tmp_path: Path, doc: object) -> None:
    (tmp_path / KDF_FILE).write_text(json.dumps(doc))
    (tmp_path / KDF_FILE).chmod(0o600)
    with pytest.raises(RootKeyError, match=r"parameters file .* is unreadable"):
        open_key(tmp_path, passphrase_source())


# -- the check file ----------------------------------------------------------------------------


@pytest.mark.parametrize("content", [b"", b"{}", b'{"version": 2, "check": "AA=="}',
                                     b'{"version": 1, "check": "!!"}', b"[1]"])  # fmt: skip
def test_unreadable_check_file_is_refused(tmp_path: Path, content: bytes) -> None:
    open_key(tmp_path, RootKeySource.file())
    (tmp_path / CHECK_FILE).write_bytes(content)
    with pytest.raises(RootKeyError, match=r"check file .* is unreadable"):
        open_key(tmp_path, RootKeySource.file())


def test_tampered_check_value_is_refused(tmp_path: Path) -> None:
    open_key(tmp_path, RootKeySource.file())
    doc = json.loads((tmp_path / CHECK_FILE).read_text())
    check = bytearray(base64.b64decode(doc["check"]))
    check[-1] ^= 1
    doc["check"] = base64.b64encode(bytes(check)).decode()
    (tmp_path / CHECK_FILE).write_text(json.dumps(doc))
    with pytest.raises(RootKeyError, match="does not open this store"):
        open_key(tmp_path, RootKeySource.file())


def test_describe_names_the_source_not_the_secret(tmp_path: Path) -> None:
    assert RootKeySource.file().describe(tmp_path) == f"the file {tmp_path / KEY_FILE}"
    assert env_source().describe(tmp_path) == "$LATCHKEY_ROOT_KEY"
    assert passphrase_source().describe(tmp_path) == "the passphrase in $LATCHKEY_ROOT_PASSPHRASE"
    from_file = RootKeySource.passphrase(PASSPHRASE, "/etc/latchkey/pass")
    assert from_file.describe(tmp_path) == "the passphrase in /etc/latchkey/pass"
