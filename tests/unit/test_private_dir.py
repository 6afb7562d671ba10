"""The data directory and its key directories: created 0700, tightened if opened up, refused
if another user's."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from latchkey.secretfile import private_dir
from latchkey_testing import VENV_BIN


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_directory_and_its_parents_are_private(tmp_path: Path) -> None:
    path = tmp_path / "a" / "data"
    old = os.umask(0)
    try:
        private_dir(path)
    finally:
        os.umask(old)
    assert mode(path) == 0o700


def test_an_existing_open_directory_is_tightened(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "data"
    path.mkdir()
    path.chmod(0o777)
    private_dir(path)
    assert mode(path) == 0o700
    assert "was open to other users (777): now 0700" in caplog.text


def test_latchkey_ca_init_tightens_an_open_data_directory(tmp_path: Path) -> None:
    data = tmp_path / "d5"
    data.mkdir()
    data.chmod(0o777)
    done = subprocess.run(
        [str(VENV_BIN / "latchkey"), "ca", "init", "--data-dir", str(data)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert mode(data) == 0o700


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to hand a directory to another user")
def test_another_users_directory_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "theirs"
    path.mkdir()
    os.chown(path, 65534, 65534)
    with pytest.raises(PermissionError, match="belongs to another user"):
        private_dir(path)
