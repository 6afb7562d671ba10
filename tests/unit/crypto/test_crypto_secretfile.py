"""Tests for latchkey.secretfile: atomic owner-only writes and guarded reads."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from latchkey.secretfile import read_secret_file, write_public_file, write_secret_file


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.usefixtures("umask_zero")
def test_write_creates_0600_even_with_umask_zero(tmp_path: Path) -> None:
    target = tmp_path / "secret"
    write_secret_file(target, b"hunter2")
    assert _mode(target) == 0o600
    assert read_secret_file(target) == b"hunter2"


def test_write_is_0600_even_with_a_restrictive_umask(tmp_path: Path) -> None:
    old = os.umask(0o277)
    try:
        write_secret_file(tmp_path / "secret", b"x")
    finally:
        os.umask(old)
    assert _mode(tmp_path / "secret") == 0o600


def test_overwrite_replaces_content_and_mode_and_leaves_no_temp_files(tmp_path: Path) -> None:
    target = tmp_path / "secret"
    target.write_bytes(b"old")
    target.chmod(0o644)
    write_secret_file(target, b"new")
    assert _mode(target) == 0o600
    assert read_secret_file(target) == b"new"
    assert [p.name for p in tmp_path.iterdir()] == ["secret"]


def test_large_payload_round_trips(tmp_path: Path) -> None:
    data = os.urandom(1 << 20)
    write_secret_file(tmp_path / "big", data)
    assert read_secret_file(tmp_path / "big") == data


@pytest.mark.usefixtures("umask_zero")
def test_write_public_file_is_0644(tmp_path: Path) -> None:
    write_public_file(tmp_path / "ca.pem", b"cert")
    assert _mode(tmp_path / "ca.pem") == 0o644
    assert (tmp_path / "ca.pem").read_bytes() == b"cert"


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o620, 0o602, 0o610, 0o660, 0o644])
def test_read_refuses_group_or_other_access(tmp_path: Path, mode: int) -> None:
    target = tmp_path / "secret"
    write_secret_file(target, b"TOPSECRETVALUE")
    target.chmod(mode)
    with pytest.raises(PermissionError) as info:
        read_secret_file(target)
    assert str(target) in str(info.value)
    assert "TOPSECRETVALUE" not in str(info.value)


def test_read_accepts_owner_only_modes(tmp_path: Path) -> None:
    target = tmp_path / "secret"
    write_secret_file(target, b"ok")
    target.chmod(0o400)
    assert read_secret_file(target) == b"ok"


def test_read_missing_file_raises_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_secret_file(tmp_path / "absent")


def test_read_refuses_a_directory(tmp_path: Path) -> None:
    directory = tmp_path / "d"
    directory.mkdir(mode=0o700)
    with pytest.raises(ValueError, match="not a regular file"):
        read_secret_file(directory)
