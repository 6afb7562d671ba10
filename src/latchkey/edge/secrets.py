"""The secrets of ``static`` credential providers, read where the configuration says.

``secretFile``: read when first needed and again whenever the file changes (a rewrite, a
replacement, a swapped symlink, a chmod), so a rotated secret takes effect on the next request.
The file must be a regular file, owned by the user latchkey runs as, with no access for group
or others (``chmod 600``); the check is made on the opened descriptor. ``secretEnv``: the
environment variable of the latchkey process (the loader already refused a missing one).

Errors name the credential provider and the file or variable, never the secret.
"""

from __future__ import annotations

import os
import stat
import threading
from collections.abc import Mapping
from pathlib import Path

from latchkey.control.model import AuthScheme, CredentialProvider
from latchkey.edge.inject import check_secret
from latchkey.edge.tokenfile import MAX_TOKEN_BYTES, TokenFile, TokenFileError

MAX_SECRET_BYTES = MAX_TOKEN_BYTES


class SecretUnavailable(Exception):
    """A static secret cannot be had; the message names the provider and where it looked."""


class SecretFile(TokenFile):
    """A 0600 file holding one secret (surrounding whitespace, e.g. a final newline, dropped)."""

    label = "secret file"

    def _read(self, size: int) -> str:
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
        except OSError as exc:
            raise TokenFileError(f"cannot read secret file {self.path}: {exc.strerror}") from None
        try:
            st = os.fstat(fd)
            self._check(st)
            raw = os.read(fd, MAX_SECRET_BYTES + 1)
        except OSError as exc:
            raise TokenFileError(f"cannot read secret file {self.path}: {exc.strerror}") from None
        finally:
            os.close(fd)
        if len(raw) > MAX_SECRET_BYTES:
            raise TokenFileError(f"secret file {self.path} is larger than {MAX_SECRET_BYTES} bytes")
        try:
            secret = raw.decode("utf-8").strip()
        except UnicodeDecodeError:
            raise TokenFileError(f"secret file {self.path} is not UTF-8 text") from None
        if not secret:
            raise TokenFileError(f"secret file {self.path} is empty")
        return secret

    def _check(self, st: os.stat_result) -> None:
        if not stat.S_ISREG(st.st_mode):
            raise TokenFileError(f"secret file {self.path} is not a regular file")
        if st.st_uid != os.geteuid():
            raise TokenFileError(
                f"secret file {self.path} is owned by uid {st.st_uid}, not by uid "
                f"{os.geteuid()} that latchkey runs as"
            )
        mode = stat.S_IMODE(st.st_mode)
        if mode & 0o077:
            raise TokenFileError(
                f"secret file {self.path} has mode {mode:04o}: group and others must have no "
                "access (chmod 600)"
            )


class StaticSecrets:
    """The current secret of each static credential provider."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._environ = os.environ if environ is None else environ
        self._files: dict[str, SecretFile] = {}
        self._lock = threading.Lock()

    def _file(self, path: str) -> SecretFile:
        with self._lock:
            found = self._files.get(path)
            if found is None:
                found = self._files[path] = SecretFile(Path(path))
            return found

    def secret_for(self, provider: CredentialProvider, scheme: AuthScheme) -> str:
        """The provider's secret, checked to fit ``scheme``; :class:`SecretUnavailable` else."""
        where = f"credential provider '{provider.name}'"
        if provider.secret_file is not None:
            source = f"secret file {provider.secret_file}"
            try:
                secret = self._file(provider.secret_file).current()
            except TokenFileError as exc:
                raise SecretUnavailable(f"{where}: {exc}") from None
        elif provider.secret_env is not None:
            source = f"environment variable {provider.secret_env}"
            secret = self._environ.get(provider.secret_env, "").strip()
            if not secret:
                raise SecretUnavailable(f"{where}: {source} is not set or empty")
        else:
            raise SecretUnavailable(f"{where} ({provider.type}) holds no static secret")
        why = check_secret(scheme, secret)
        if why is not None:
            raise SecretUnavailable(f"{where}: the secret in {source} cannot be sent as "
                                    f"{scheme.value} credentials: {why}")  # fmt: skip
        return secret
