"""The root key: wraps per-record secrets (KMS key material, access-key secrets).

On disk the root key is exactly 32 **raw** bytes (no encoding, no newline),
written atomically with mode ``0600`` via :func:`latchkey.secretfile.write_secret_file`.

A wrapped value is ``0x01 || nonce || ciphertext || tag`` (AES-256-GCM).  The AAD
is ``b"latchkey/rootkey/v1" || u32 len(kind) || kind || u32 len(record_id) ||
record_id`` (lengths big-endian, strings UTF-8), so a wrapped value copied onto
another record or another kind of record fails to unwrap.
"""

from __future__ import annotations

import struct
from pathlib import Path

from latchkey.crypto.aead import KEY_SIZE, InvalidCiphertext, generate_key, open_sealed, seal
from latchkey.secretfile import read_secret_file, write_secret_file

__all__ = ["RootKey"]

_FORMAT = b"\x01"
_AAD_TAG = b"latchkey/rootkey/v1"


def _field(value: str) -> bytes:
    raw = value.encode("utf-8")
    return struct.pack(">I", len(raw)) + raw


def _aad(kind: str, record_id: str) -> bytes:
    return _AAD_TAG + _field(kind) + _field(record_id)


class RootKey:
    """A 256-bit key-encryption key.  Its ``repr`` never shows the key."""

    __slots__ = ("_key",)

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_SIZE:
            raise ValueError(f"root key must be {KEY_SIZE} bytes")
        self._key = bytes(key)

    @classmethod
    def from_bytes(cls, key: bytes) -> RootKey:
        """Wrap existing key bytes (exactly 32)."""
        return cls(key)

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
        return open_sealed(self._key, wrapped[1:], aad)

    def __repr__(self) -> str:
        return "RootKey(<redacted>)"

    __str__ = __repr__
