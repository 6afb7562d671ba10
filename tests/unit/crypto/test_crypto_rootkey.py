"""Tests for latchkey.crypto.rootkey."""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path

import pytest

from latchkey.crypto.aead import InvalidCiphertext
from latchkey.crypto.rootkey import RootKey


@pytest.mark.usefixtures("umask_zero")
def test_created_file_is_0600_and_32_raw_bytes(tmp_path: Path) -> None:
    path = tmp_path / "root.key"
    RootKey.load_or_create(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert len(path.read_bytes()) == 32


def test_reload_gives_the_same_key(tmp_path: Path) -> None:
    path = tmp_path / "root.key"
    first = RootKey.load_or_create(path)
    wrapped = first.wrap("kms-key", "rec-1", b"material")
    second = RootKey.load_or_create(path)
    assert second.unwrap("kms-key", "rec-1", wrapped) == b"material"
    assert RootKey.from_bytes(path.read_bytes()).unwrap("kms-key", "rec-1", wrapped) == b"material"


def test_wrap_round_trip_and_randomised() -> None:
    root = RootKey.from_bytes(os.urandom(32))
    a = root.wrap("k", "r", b"secret")
    b = root.wrap("k", "r", b"secret")
    assert a != b
    assert root.unwrap("k", "r", a) == root.unwrap("k", "r", b) == b"secret"


@pytest.mark.parametrize(
    ("kind", "record_id"),
    [
        ("kms-key", "rec-2"),  # moved to another record
        ("access-key", "rec-1"),  # moved to another kind
        ("kms-keyr", "ec-1"),  # boundary shifted between the fields
        ("kms-key", "rec-1\x00"),
    ],
)
def test_value_moved_elsewhere_fails(kind: str, record_id: str) -> None:
    root = RootKey.from_bytes(os.urandom(32))
    wrapped = root.wrap("kms-key", "rec-1", b"material")
    with pytest.raises(InvalidCiphertext):
        root.unwrap(kind, record_id, wrapped)


def test_field_boundaries_are_unambiguous() -> None:
    root = RootKey.from_bytes(os.urandom(32))
    wrapped = root.wrap("a", "bc", b"x")
    with pytest.raises(InvalidCiphertext):
        root.unwrap("ab", "c", wrapped)


def test_other_root_key_fails() -> None:
    wrapped = RootKey.from_bytes(os.urandom(32)).wrap("k", "r", b"x")
    with pytest.raises(InvalidCiphertext):
        RootKey.from_bytes(os.urandom(32)).unwrap("k", "r", wrapped)


@pytest.mark.parametrize("wrapped", [b"", b"\x01", b"\x02" + b"\x00" * 40, b"\x01" + b"\x00" * 27])
def test_garbage_fails(wrapped: bytes) -> None:
    with pytest.raises(InvalidCiphertext):
        RootKey.from_bytes(os.urandom(32)).unwrap("k", "r", wrapped)


def test_tampering_any_byte_fails() -> None:
    root = RootKey.from_bytes(os.urandom(32))
    wrapped = root.wrap("k", "r", b"material")
    for i in range(len(wrapped)):
        tampered = bytearray(wrapped)
        tampered[i] ^= 0x80
        with pytest.raises(InvalidCiphertext):
            root.unwrap("k", "r", bytes(tampered))


def test_repr_hides_the_key() -> None:
    raw = os.urandom(32)
    root = RootKey.from_bytes(raw)
    for text in (repr(root), str(root), f"{root}"):
        assert raw.hex() not in text
        assert raw.hex().upper() not in text
        assert base64.b64encode(raw).decode() not in text
        assert repr(raw) not in text
    assert not hasattr(root, "__dict__")


@pytest.mark.parametrize("length", [0, 16, 31, 33, 64])
def test_wrong_length_file_is_refused(tmp_path: Path, length: int) -> None:
    path = tmp_path / "root.key"
    path.write_bytes(b"k" * length)
    path.chmod(0o600)
    with pytest.raises(ValueError, match=r"root\.key"):
        RootKey.load_or_create(path)
    assert path.read_bytes() == b"k" * length  # never overwritten


def test_readable_by_others_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "root.key"
    RootKey.load_or_create(path)
    path.chmod(0o644)
    with pytest.raises(PermissionError, match=r"root\.key"):
        RootKey.load_or_create(path)


@pytest.mark.parametrize("length", [0, 16, 31, 33])
def test_from_bytes_wrong_length(length: int) -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        RootKey.from_bytes(b"k" * length)
