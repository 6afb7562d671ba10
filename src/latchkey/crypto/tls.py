"""TLS contexts from in-memory PEM, and a per-host cache of minted leaf contexts.

``ssl.SSLContext.load_cert_chain`` only reads files, so :func:`server_ssl_context`
writes the PEMs into an anonymous memory file (``memfd_create``, read back through
``/proc/self/fd``: no name in any directory, never on disk, closed right after loading).
Where that is not available it writes them into a fresh private directory (``0700``,
files ``0600``; on ``/dev/shm`` when available so keys stay off disk) and removes it right
after loading.  Import these names from :mod:`latchkey.crypto.x509`, which re-exports them.
"""

from __future__ import annotations

import os
import shutil
import ssl
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from latchkey.crypto.x509 import CertificateAuthority

__all__ = ["LeafCache", "NameNotPermitted", "client_ssl_context", "server_ssl_context"]

_SHM = "/dev/shm"  # noqa: S108 - a private 0700 subdirectory is created inside it
_REFRESH_FRACTION = 0.8


def _write_private(path: str, data: bytes) -> None:
    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def _private_tmpdir() -> str:
    base = _SHM if os.path.isdir(_SHM) and os.access(_SHM, os.W_OK | os.X_OK) else None
    return tempfile.mkdtemp(prefix="latchkey-tls-", dir=base)  # created with mode 0700


def _load_from_memory(ctx: ssl.SSLContext, pem: bytes) -> bool:
    """Load cert chain and key (one PEM) from an anonymous memory file; False where there
    is no ``memfd_create`` or no ``/proc/self/fd``."""
    memfd_create = getattr(os, "memfd_create", None)
    if memfd_create is None or not os.path.isdir("/proc/self/fd"):
        return False
    try:
        fd = memfd_create("latchkey-tls", getattr(os, "MFD_CLOEXEC", 0))
    except OSError:
        return False
    try:
        view = memoryview(pem)
        while view:
            view = view[os.write(fd, view) :]
        ctx.load_cert_chain(f"/proc/self/fd/{fd}")
    finally:
        os.close(fd)
    return True


def server_ssl_context(
    cert_pem: bytes,
    key_pem: bytes,
    *,
    chain_pem: bytes = b"",
    alpn: Sequence[str] = ("http/1.1",),
) -> ssl.SSLContext:
    """A TLS (>= 1.2) server context for ``cert_pem`` (+ ``chain_pem``) and ``key_pem``."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    chain = chain_pem if not chain_pem or cert_pem.endswith(b"\n") else b"\n" + chain_pem
    certs = cert_pem + chain
    if _load_from_memory(ctx, certs + (b"" if certs.endswith(b"\n") else b"\n") + key_pem):
        pass
    else:
        tmpdir = _private_tmpdir()
        try:
            cert_file = os.path.join(tmpdir, "cert.pem")
            key_file = os.path.join(tmpdir, "key.pem")
            _write_private(cert_file, certs)
            _write_private(key_file, key_pem)
            ctx.load_cert_chain(cert_file, key_file)
        finally:
            shutil.rmtree(tmpdir, ignore_errors=True)
    if alpn:
        ctx.set_alpn_protocols(list(alpn))
    return ctx


def client_ssl_context(
    ca_files: Sequence[Path] = (), *, use_system_store: bool = True
) -> ssl.SSLContext:
    """A verifying TLS client context (hostname checks on, TLS >= 1.2, ALPN http/1.1).

    Trusts the system store when ``use_system_store`` and each file in ``ca_files``.
    """
    if use_system_store:
        ctx = ssl.create_default_context()
    else:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.check_hostname = True
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    for ca_file in ca_files:
        ctx.load_verify_locations(cafile=os.fspath(ca_file))
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


class NameNotPermitted(ValueError):
    """The CA's name constraints do not cover the host: clients would reject the leaf."""


class LeafCache:
    """Bounded, thread-safe LRU of server contexts per (lowercased) host.

    A context is re-minted once 80 % of its leaf's validity (from minting to
    ``notAfter``) has passed.  ``hits`` and ``misses`` count lookups; a re-mint
    counts as a miss; ``mints`` counts leaves made.  Minting is single-flight per
    host: threads missing on the same host at once wait for one mint (other hosts
    are not held up).
    """

    def __init__(
        self,
        ca: CertificateAuthority,
        *,
        now: Callable[[], datetime],
        lifetime: timedelta = timedelta(days=1),
        max_size: int = 1024,
    ) -> None:
        if max_size < 1:
            raise ValueError("max_size must be at least 1")
        if lifetime <= timedelta(0):
            raise ValueError("lifetime must be positive")
        self._ca = ca
        self._now = now
        self._lifetime = lifetime
        self._max_size = max_size
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, tuple[ssl.SSLContext, datetime]] = OrderedDict()
        self._minting: dict[str, threading.Lock] = {}
        self.hits = 0
        self.misses = 0
        self.mints = 0

    @property
    def lifetime(self) -> timedelta:
        return self._lifetime

    def _cached(self, key: str, now: datetime) -> ssl.SSLContext | None:
        """(Under ``self._lock``.)"""
        entry = self._entries.get(key)
        if entry is not None and now < entry[1]:
            self._entries.move_to_end(key)
            return entry[0]
        return None

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def cached(self, host: str) -> ssl.SSLContext | None:
        """The host's context if one is cached and fresh (never mints: safe on an event loop)."""
        with self._lock:
            found = self._cached(host.lower(), self._now())
            if found is not None:
                self.hits += 1
            return found

    def context_for(self, host: str) -> ssl.SSLContext:
        """The server context for ``host``, minting (and caching) a leaf on a miss.

        Raises :class:`NameNotPermitted` for a host outside the CA's name constraints.
        """
        key = host.lower()
        if not key:
            raise ValueError("host must not be empty")
        now = self._now()
        with self._lock:
            found = self._cached(key, now)
            if found is not None:
                self.hits += 1
                return found
            self.misses += 1
            flight = self._minting.setdefault(key, threading.Lock())
        with flight:
            with self._lock:
                found = self._cached(key, now)
            if found is not None:
                return found  # another thread minted it while this one waited
            try:
                ctx, refresh_at = self._mint(key, now)
                with self._lock:
                    self._entries[key] = (ctx, refresh_at)
                    self._entries.move_to_end(key)
                    while len(self._entries) > self._max_size:
                        self._entries.popitem(last=False)
            finally:
                with self._lock:
                    self._minting.pop(key, None)
        return ctx

    def _mint(self, key: str, now: datetime) -> tuple[ssl.SSLContext, datetime]:
        if not self._ca.permits(key):
            raise NameNotPermitted(
                f"the latchkey CA's name constraints do not cover {key}; clients would reject "
                "its certificate (see `latchkey ca`)"
            )
        cert_pem, key_pem = self._ca.mint_leaf([key], now=now, lifetime=self._lifetime)
        ctx = server_ssl_context(cert_pem, key_pem)
        not_after = min(now + self._lifetime, self._ca.certificate.not_valid_after_utc)
        with self._lock:
            self.mints += 1
        return ctx, now + (not_after - now) * _REFRESH_FRACTION
