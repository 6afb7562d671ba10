"""The KMS ciphertext blob: latchkey's own versioned format.

Layout (all integers big-endian)::

    0x01                  format byte
    key id                16 raw UUID bytes
    material version      u32
    sealed                nonce (12) || ciphertext || tag (16)   -- AES-256-GCM

The AAD is the 21-byte header above followed by the canonical encoding of the
encryption context (:func:`encode_encryption_context`), so the key id, the
material version and every context entry are authenticated.
"""

from __future__ import annotations

import functools
import struct
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

from latchkey.crypto.aead import OVERHEAD, InvalidCiphertext, open_sealed, seal

__all__ = [
    "FORMAT_V1",
    "CiphertextBlob",
    "decode_blob",
    "decrypt_symmetric",
    "encode_blob",
    "encode_encryption_context",
    "encrypt_symmetric",
]

FORMAT_V1 = 0x01
_HEADER = struct.Struct(">B16sI")
_U16 = struct.Struct(">H")
_U16_MAX = 0xFFFF
_U32_MAX = 0xFFFF_FFFF


def _u16_field(raw: bytes) -> bytes:
    if len(raw) > _U16_MAX:
        raise ValueError("encryption context entry is too long")
    return _U16.pack(len(raw)) + raw


def encode_encryption_context(ctx: Mapping[str, str]) -> bytes:
    """Canonical, injective encoding of an encryption context.

    ``u16 count`` then, for each entry sorted by the UTF-8 bytes of its key,
    ``u16 len || key`` and ``u16 len || value``.  Empty context -> ``b"\\x00\\x00"``.
    Raises ``ValueError`` for non-string entries or over-long ones.
    """
    entries: list[tuple[bytes, bytes]] = []
    for key, value in ctx.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise ValueError("encryption context keys and values must be strings")
        entries.append((key.encode("utf-8"), value.encode("utf-8")))
    if len(entries) > _U16_MAX:
        raise ValueError("encryption context has too many entries")
    entries.sort()
    parts = [_U16.pack(len(entries))]
    for key_bytes, value_bytes in entries:
        parts.append(_u16_field(key_bytes))
        parts.append(_u16_field(value_bytes))
    return b"".join(parts)


@dataclass(frozen=True, slots=True)
class CiphertextBlob:
    """A decoded ciphertext blob."""

    key_id: str  # a UUID string (the KMS key id)
    material_version: int  # 0..2**32-1
    sealed: bytes  # nonce || ciphertext || tag


@functools.lru_cache(maxsize=65536)
def key_id_bytes(key_id: str) -> bytes:
    """A key id's 16 bytes; ``ValueError`` unless it is a UUID (every call names one)."""
    return uuid.UUID(key_id).bytes


@functools.lru_cache(maxsize=65536)
def key_id_text(raw: bytes) -> str:
    """A key id's 16 bytes as its canonical lowercase hyphenated text."""
    return str(uuid.UUID(bytes=raw))


def _header(key_id: str, material_version: int) -> bytes:
    if not 0 <= material_version <= _U32_MAX:
        raise ValueError("material_version must fit in an unsigned 32-bit integer")
    return _HEADER.pack(FORMAT_V1, key_id_bytes(key_id), material_version)


def encode_blob(blob: CiphertextBlob) -> bytes:
    """Serialize a blob; ``ValueError`` for a non-UUID key id or an out-of-range version."""
    return _header(blob.key_id, blob.material_version) + blob.sealed


def decode_blob(data: bytes) -> CiphertextBlob:
    """Parse a blob; :class:`InvalidCiphertext` on a bad format byte or a short input.

    The key id comes back in canonical lowercase hyphenated form.
    """
    if len(data) < _HEADER.size + OVERHEAD or data[0] != FORMAT_V1:
        raise InvalidCiphertext()
    _, raw_id, version = _HEADER.unpack_from(data)
    return CiphertextBlob(
        key_id=key_id_text(bytes(raw_id)),
        material_version=version,
        sealed=bytes(data[_HEADER.size :]),
    )


def encrypt_symmetric(
    key_material: bytes,
    *,
    key_id: str,
    material_version: int,
    plaintext: bytes,
    context: Mapping[str, str],
) -> bytes:
    """Encrypt ``plaintext`` and return the encoded blob."""
    header = _header(key_id, material_version)
    return header + seal(key_material, plaintext, header + encode_encryption_context(context))


def decrypt_symmetric(
    key_material: bytes, blob: CiphertextBlob, context: Mapping[str, str]
) -> bytes:
    """Decrypt a blob under ``context``; :class:`InvalidCiphertext` on any failure."""
    try:
        aad = _header(blob.key_id, blob.material_version) + encode_encryption_context(context)
    except (ValueError, TypeError, AttributeError, struct.error):
        raise InvalidCiphertext() from None
    return open_sealed(key_material, blob.sealed, aad)
