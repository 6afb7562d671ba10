"""Tests for latchkey.crypto.aead (AES-256-GCM seal/open)."""

from __future__ import annotations

import pytest

from latchkey.crypto import aead
from latchkey.crypto.aead import InvalidCiphertext, generate_key, open_sealed, seal


def test_generate_key_is_32_random_bytes() -> None:
    a, b = generate_key(), generate_key()
    assert len(a) == len(b) == 32
    assert a != b


def test_round_trip() -> None:
    key = generate_key()
    sealed = seal(key, b"attack at dawn", b"aad")
    assert len(sealed) == 12 + len(b"attack at dawn") + 16
    assert open_sealed(key, sealed, b"aad") == b"attack at dawn"


def test_empty_plaintext_round_trips() -> None:
    key = generate_key()
    assert open_sealed(key, seal(key, b"", b""), b"") == b""


def test_same_plaintext_twice_gives_different_outputs() -> None:
    key = generate_key()
    assert seal(key, b"same", b"aad") != seal(key, b"same", b"aad")


def test_tampering_any_byte_fails() -> None:
    key = generate_key()
    sealed = seal(key, b"some plaintext", b"aad")
    for i in range(len(sealed)):
        tampered = bytearray(sealed)
        tampered[i] ^= 0x01
        with pytest.raises(InvalidCiphertext):
            open_sealed(key, bytes(tampered), b"aad")


def test_wrong_aad_fails() -> None:
    key = generate_key()
    sealed = seal(key, b"pt", b"aad-1")
    with pytest.raises(InvalidCiphertext):
        open_sealed(key, sealed, b"aad-2")


def test_wrong_key_fails() -> None:
    sealed = seal(generate_key(), b"pt", b"")
    with pytest.raises(InvalidCiphertext):
        open_sealed(generate_key(), sealed, b"")


@pytest.mark.parametrize("length", [0, 1, 27])
def test_short_input_fails(length: int) -> None:
    with pytest.raises(InvalidCiphertext):
        open_sealed(generate_key(), b"\x00" * length, b"")


@pytest.mark.parametrize("key_len", [0, 16, 24, 31, 33])
def test_wrong_key_length_on_open_is_invalid_ciphertext(key_len: int) -> None:
    sealed = seal(generate_key(), b"pt", b"")
    with pytest.raises(InvalidCiphertext):
        open_sealed(b"k" * key_len, sealed, b"")


def test_wrong_key_length_on_seal_is_value_error() -> None:
    with pytest.raises(ValueError, match="32-byte"):
        seal(b"k" * 16, b"pt", b"")


def test_error_is_opaque() -> None:
    key = generate_key()
    sealed = seal(key, b"PLAINTEXT-MARKER", b"")
    with pytest.raises(InvalidCiphertext) as info:
        open_sealed(key, sealed[:-1] + bytes([sealed[-1] ^ 1]), b"")
    assert str(info.value) == "invalid ciphertext"
    assert info.value.__cause__ is None
    assert info.value.__suppress_context__
    assert key.hex() not in repr(info.value)
    assert str(InvalidCiphertext()) == "invalid ciphertext"


def test_invalid_ciphertext_is_exported_from_the_package() -> None:
    import latchkey.crypto

    assert latchkey.crypto.InvalidCiphertext is aead.InvalidCiphertext
