"""A token kept in a file that something else rotates (a Kubernetes projected service-account
token, a CI job's OIDC token): re-read when the file changes, never logged.

Kubernetes swaps a ``..data`` symlink to update projected volumes, so the file behind the path
changes inode; other writers replace it or rewrite it in place. ``stat`` follows the symlink,
and any change of (device, inode, size, mtime) triggers a re-read.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

MAX_TOKEN_BYTES = 16_384


class TokenFileError(Exception):
    """The token file cannot be used; the message names the file, never the token."""


class TokenFile:
    label = "token file"  # how messages name the file (subclasses hold other secrets)

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._stamp: tuple[int, ...] | None = None
        self._token = ""
        self.reads = 0  # how many times the file was actually read (for status and tests)

    def current(self) -> str:
        """The token as the file holds it now (re-read only when the file changed)."""
        try:
            st = os.stat(self.path)
        except OSError as exc:
            raise TokenFileError(f"cannot read {self.label} {self.path}: {exc.strerror}") from None
        # (ctime too: a chmod or chown alone must be seen, for files whose mode is checked)
        stamp = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        with self._lock:
            if stamp != self._stamp:
                self._token = self._read(st.st_size)
                self._stamp = stamp
                self.reads += 1
            return self._token

    def _read(self, size: int) -> str:
        if size > MAX_TOKEN_BYTES:
            raise TokenFileError(f"token file {self.path} is larger than {MAX_TOKEN_BYTES} bytes")
        try:
            raw = self.path.read_bytes()
        except OSError as exc:
            raise TokenFileError(f"cannot read token file {self.path}: {exc.strerror}") from None
        try:
            token = raw.decode("ascii").strip()
        except UnicodeDecodeError:
            raise TokenFileError(f"token file {self.path} is not ASCII text") from None
        if not token or any(c.isspace() for c in token):
            raise TokenFileError(f"token file {self.path} does not hold one token")
        return token
