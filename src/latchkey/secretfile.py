"""Atomic, owner-only files for secrets (root keys, CA keys, signing keys).

``write_secret_file`` never leaves a partially written or briefly world-readable
file behind: it writes a fresh ``0600`` temp file in the target directory, fsyncs
it, renames it over the target and fsyncs the directory.  ``read_secret_file``
refuses files that group or others could read or write, naming the path (never
the content) in the error.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import stat
from pathlib import Path

__all__ = ["private_dir", "read_secret_file", "write_public_file", "write_secret_file"]

_SECRET_MODE = 0o600
_PUBLIC_MODE = 0o644


def private_dir(path: Path) -> None:
    """Make ``path`` (and missing parents) a directory only its owner can use: a new one is
    created ``0700``; an existing one of ours that group or others could use is tightened to
    ``0700`` (its files are private, but others could rename, replace or add files); another
    user's is refused (``PermissionError``, naming the path)."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    info = path.stat()
    if info.st_uid != os.getuid():
        raise PermissionError(
            f"{path} belongs to another user: latchkey keeps its keys in a directory of its own"
        )
    if stat.S_IMODE(info.st_mode) & 0o077:
        os.chmod(path, 0o700)
        logging.getLogger("latchkey").warning(
            "%s was open to other users (%03o): now 0700", path, stat.S_IMODE(info.st_mode)
        )


def _fsync_dir(directory: Path) -> None:
    """Flush a directory entry change (the rename) to disk, where supported."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - some filesystems refuse fsync on dirs
        pass
    finally:
        os.close(fd)


def _atomic_write(path: Path, data: bytes, mode: int) -> None:
    """Write ``data`` to ``path`` atomically with exactly ``mode`` (umask ignored)."""
    path = Path(path)
    directory = path.parent
    tmp = directory / f".{path.name}.{secrets.token_hex(8)}.tmp"
    fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, _SECRET_MODE)
    try:
        try:
            os.fchmod(fd, mode)  # the umask may have stripped bits; set them exactly
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(directory)


def write_secret_file(path: Path, data: bytes) -> None:
    """Atomically replace ``path`` with ``data``; the file ends up mode ``0600``."""
    _atomic_write(path, data, _SECRET_MODE)


def write_public_file(path: Path, data: bytes) -> None:
    """Atomically replace ``path`` with ``data``; mode ``0644`` (e.g. a CA certificate)."""
    _atomic_write(path, data, _PUBLIC_MODE)


def read_secret_file(path: Path) -> bytes:
    """Read a secret file, refusing it if group/other have any access bits.

    Raises ``PermissionError`` (naming the path and the mode, not the content) if
    ``mode & 0o077`` is non-zero, and ``ValueError`` if it is not a regular file.
    The mode is checked on the opened descriptor, so a swap between check and
    read is not possible.
    """
    fd = os.open(path, os.O_RDONLY)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ValueError(f"secret file {path} is not a regular file")
        perms = stat.S_IMODE(st.st_mode)
        if perms & 0o077:
            raise PermissionError(
                f"refusing to read secret file {path}: mode {perms:04o} grants access to "
                "group/others; restrict it with `chmod 600`"
            )
        chunks: list[bytes] = []
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)
