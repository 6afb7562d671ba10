"""The root key: wraps per-record secrets (KMS key material, access-key secrets).

On disk the root key is exactly 32 **raw** bytes (no encoding, no newline),
written atomically with mode ``0600`` via :func:`latchkey.secretfile.write_secret_file`.

A wrapped value is ``0x01 || nonce || ciphertext || tag`` (AES-256-GCM).  The AAD
is ``b"latchkey/rootkey/v1" || u32 len(kind) || kind || u32 len(record_id) ||
record_id`` (lengths big-endian, strings UTF-8), so a wrapped value copied onto
another record or another kind of record fails to unwrap.

A root key can also be derived from a passphrase with scrypt (:class:`ScryptParams` holds the
salt and cost, which the caller keeps beside the store), and it makes a *check value*: a known
plaintext wrapped under the key, so a wrong key is refused at start-up instead of producing
garbage later (:meth:`RootKey.check_value`, :meth:`RootKey.opens`).
"""

from __future__ import annotations

import hmac
import os
import struct
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from latchkey.crypto.aead import KEY_SIZE, InvalidCiphertext, generate_key, open_sealed, seal
from latchkey.secretfile import read_secret_file, write_secret_file

UNWRAPPED_CACHE_SIZE = 131072  # entries; each a key's material or a secret (bytes to a few KiB)
UNWRAPPED_CACHE_BYTES = 32 * 1024 * 1024  # and at most this much unwrapped data

__all__ = ["RootKey", "ScryptParams"]

_FORMAT = b"\x01"
_AAD_TAG = b"latchkey/rootkey/v1"
_CHECK_KIND = "root-key-check"
_CHECK_RECORD = "latchkey"
_CHECK_PLAINTEXT = b"latchkey root key check v1"

SALT_SIZE = 16
# Bounds on parameters read back from a file, so an edited file cannot ask for more than
# 1 GiB of memory (scrypt needs 128 * N * r bytes) or hours of work.
_MAX_LOG2_N = 22
_MAX_R = 32
_MAX_P = 16
_MAX_MEMORY = 2**30


@dataclass(frozen=True, slots=True)
class ScryptParams:
    """The salt and cost of a passphrase-derived root key (not secret; kept beside the store).

    The default cost is N=2**17, r=8, p=1 (128 MiB, well under a second), OWASP's scrypt
    recommendation for passwords.
    """

    salt: bytes = field(repr=False)
    n: int = 2**17
    r: int = 8
    p: int = 1

    def __post_init__(self) -> None:
        if len(self.salt) < SALT_SIZE:
            raise ValueError(f"scrypt salt must be at least {SALT_SIZE} bytes")
        if self.n < 2 or self.n & (self.n - 1) or self.n > 2**_MAX_LOG2_N:
            raise ValueError(f"scrypt N must be a power of two from 2 to 2**{_MAX_LOG2_N}")
        if not 1 <= self.r <= _MAX_R or not 1 <= self.p <= _MAX_P:
            raise ValueError(f"scrypt r must be 1..{_MAX_R} and p 1..{_MAX_P}")
        if 128 * self.n * self.r > _MAX_MEMORY:
            raise ValueError("scrypt N and r ask for more than 1 GiB of memory")

    @classmethod
    def generate(cls) -> ScryptParams:
        """Fresh random salt, default cost."""
        return cls(os.urandom(SALT_SIZE))


def _field(value: str) -> bytes:
    raw = value.encode("utf-8")
    return struct.pack(">I", len(raw)) + raw


def _aad(kind: str, record_id: str) -> bytes:
    return _AAD_TAG + _field(kind) + _field(record_id)


class RootKey:
    """A 256-bit key-encryption key.  Its ``repr`` never shows the key."""

    __slots__ = ("_key", "_opened", "_opened_bytes", "_opened_lock")

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_SIZE:
            raise ValueError(f"root key must be {KEY_SIZE} bytes")
        self._key = bytes(key)
        # Recently unwrapped values, keyed by exactly what was unwrapped (kind, record id and
        # the wrapped bytes, so a changed row is a miss): hot keys skip AES-GCM on every call.
        self._opened: OrderedDict[tuple[str, str, bytes], bytes] = OrderedDict()
        self._opened_bytes = 0
        self._opened_lock = threading.Lock()

    @classmethod
    def from_bytes(cls, key: bytes) -> RootKey:
        """Wrap existing key bytes (exactly 32)."""
        return cls(key)

    @classmethod
    def from_passphrase(cls, passphrase: bytes, params: ScryptParams) -> RootKey:
        """Derive the key from ``passphrase`` with scrypt (``ValueError`` if it is empty)."""
        if not passphrase:
            raise ValueError("the root key passphrase is empty")
        kdf = Scrypt(salt=params.salt, length=KEY_SIZE, n=params.n, r=params.r, p=params.p)
        return cls(kdf.derive(passphrase))

    def check_value(self) -> bytes:
        """A fixed plaintext wrapped under this key: stored beside the store, it tells a
        later start whether the key it was given is this one (:meth:`opens`)."""
        return self.wrap(_CHECK_KIND, _CHECK_RECORD, _CHECK_PLAINTEXT)

    def opens(self, check: bytes) -> bool:
        """Whether ``check`` (from :meth:`check_value`) was made with this key."""
        try:
            return self.unwrap(_CHECK_KIND, _CHECK_RECORD, check) == _CHECK_PLAINTEXT
        except InvalidCiphertext:
            return False

    def same_key(self, other: RootKey) -> bool:
        """Constant-time comparison of two root keys."""
        return hmac.compare_digest(self._key, other._key)

    @classmethod
    def load_or_create(cls, path: Path) -> RootKey:
        """Load the key at ``path``, creating a fresh random one if it does not exist.

        Raises ``ValueError`` naming the path if the file is not exactly 32 bytes,
        and ``PermissionError`` if group/others can access it.  Creation assumes a
        single process owns ``path`` (two racing creators would each keep their own key).
        """
        path = Path(path)
        try:
            raw = read_secret_file(path)
        except FileNotFoundError:
            key = generate_key()
            write_secret_file(path, key)
            return cls(key)
        if len(raw) != KEY_SIZE:
            raise ValueError(
                f"root key file {path} must hold exactly {KEY_SIZE} raw bytes, found {len(raw)}"
            )
        return cls(raw)

    def wrap(self, kind: str, record_id: str, secret: bytes) -> bytes:
        """Encrypt ``secret`` bound to ``(kind, record_id)``."""
        return _FORMAT + seal(self._key, secret, _aad(kind, record_id))

    def unwrap(self, kind: str, record_id: str, wrapped: bytes) -> bytes:
        """Decrypt a value from :meth:`wrap`; :class:`InvalidCiphertext` on any failure."""
        try:
            aad = _aad(kind, record_id)
        except (UnicodeEncodeError, AttributeError):
            raise InvalidCiphertext() from None
        if wrapped[:1] != _FORMAT:
            raise InvalidCiphertext()
        entry = (kind, record_id, bytes(wrapped))
        with self._opened_lock:
            found = self._opened.get(entry)
            if found is not None:
                self._opened.move_to_end(entry)
                return found
        opened = open_sealed(self._key, wrapped[1:], aad)
        with self._opened_lock:
            if entry not in self._opened:
                self._opened[entry] = opened
                self._opened_bytes += len(opened)
            while (
                len(self._opened) > UNWRAPPED_CACHE_SIZE
                or self._opened_bytes > UNWRAPPED_CACHE_BYTES
            ):
                _, dropped = self._opened.popitem(last=False)
                self._opened_bytes -= len(dropped)
        return opened

    def __repr__(self) -> str:
        return "RootKey(<redacted>)"

    __str__ = __repr__
