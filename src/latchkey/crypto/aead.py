"""AES-256-GCM sealing with a random 96-bit nonce.

Wire layout of a sealed value: ``nonce (12) || ciphertext || tag (16)``.
Every failure to open collapses into :class:`InvalidCiphertext` with one fixed
message, so callers (and their clients) learn nothing about why it failed.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from latchkey.crypto import randombytes

__all__ = [
    "KEY_SIZE",
    "NONCE_SIZE",
    "OVERHEAD",
    "TAG_SIZE",
    "InvalidCiphertext",
    "generate_key",
    "open_sealed",
    "seal",
]

KEY_SIZE = 32
NONCE_SIZE = 12
TAG_SIZE = 16
#: Bytes a sealed value is longer than its plaintext.
OVERHEAD = NONCE_SIZE + TAG_SIZE

_MESSAGE = "invalid ciphertext"


class InvalidCiphertext(Exception):
    """Opaque decryption failure; the message is always ``"invalid ciphertext"``."""

    def __init__(self) -> None:
        super().__init__(_MESSAGE)


def generate_key() -> bytes:
    """Return a fresh random 256-bit key."""
    return os.urandom(KEY_SIZE)


def seal(key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    """Encrypt and authenticate ``plaintext`` (and ``aad``) under a 32-byte ``key``."""
    if len(key) != KEY_SIZE:
        raise ValueError("AES-256-GCM needs a 32-byte key")
    nonce = randombytes.token_bytes(NONCE_SIZE)
    return nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


def open_sealed(key: bytes, sealed: bytes, aad: bytes) -> bytes:
    """Authenticate and decrypt a value made by :func:`seal`.

    Raises :class:`InvalidCiphertext` on any failure: wrong key length, short
    input, wrong key, wrong ``aad`` or any tampering.
    """
    if len(key) != KEY_SIZE or len(sealed) < OVERHEAD:
        raise InvalidCiphertext()
    try:
        nonce, body = sealed[:NONCE_SIZE], sealed[NONCE_SIZE:]
        return AESGCM(key).decrypt(nonce, body, aad)
    except (InvalidTag, ValueError, TypeError, OverflowError):
        raise InvalidCiphertext() from None
