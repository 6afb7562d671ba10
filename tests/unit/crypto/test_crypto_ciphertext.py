"""Tests for latchkey.crypto.ciphertext (the KMS ciphertext blob)."""

from __future__ import annotations

import struct
import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from latchkey.crypto.aead import InvalidCiphertext, generate_key
from latchkey.crypto.ciphertext import (
    CiphertextBlob,
    decode_blob,
    decrypt_symmetric,
    encode_blob,
    encode_encryption_context,
    encrypt_symmetric,
)

KEY_ID = "0b7a6f38-9e6f-4a5e-9b1c-2f1f3c4d5e6f"


def _encrypt(key: bytes, context: dict[str, str], plaintext: bytes = b"hello") -> bytes:
    return encrypt_symmetric(
        key, key_id=KEY_ID, material_version=7, plaintext=plaintext, context=context
    )


def test_round_trip_with_context() -> None:
    key = generate_key()
    data = _encrypt(key, {"purpose": "test", "tenant": "acme"})
    blob = decode_blob(data)
    assert blob.key_id == KEY_ID
    assert blob.material_version == 7
    assert encode_blob(blob) == data
    assert decrypt_symmetric(key, blob, {"tenant": "acme", "purpose": "test"}) == b"hello"


def test_blob_layout() -> None:
    data = _encrypt(generate_key(), {})
    assert data[0] == 0x01
    assert data[1:17] == uuid.UUID(KEY_ID).bytes
    assert struct.unpack(">I", data[17:21]) == (7,)
    assert len(data) == 21 + 12 + len(b"hello") + 16


@pytest.mark.parametrize(
    ("enc_ctx", "dec_ctx"),
    [
        ({"ab": "c"}, {"a": "bc"}),
        ({"Purpose": "x"}, {"purpose": "x"}),
        ({"purpose": "X"}, {"purpose": "x"}),
        ({"a": "1"}, {}),
        ({}, {"a": "1"}),
        ({"a": "1", "b": "2"}, {"a": "1"}),
        ({"a": ""}, {}),
    ],
)
def test_context_mismatch_fails(enc_ctx: dict[str, str], dec_ctx: dict[str, str]) -> None:
    key = generate_key()
    blob = decode_blob(_encrypt(key, enc_ctx))
    with pytest.raises(InvalidCiphertext):
        decrypt_symmetric(key, blob, dec_ctx)


def test_context_order_is_irrelevant() -> None:
    forward = {"a": "1", "b": "2", "c": "3"}
    backward = dict(reversed(list(forward.items())))
    assert encode_encryption_context(forward) == encode_encryption_context(backward)
    key = generate_key()
    assert decrypt_symmetric(key, decode_blob(_encrypt(key, forward)), backward) == b"hello"


def test_encode_encryption_context_format() -> None:
    assert encode_encryption_context({}) == b"\x00\x00"
    assert encode_encryption_context({"b": "2", "a": "1"}) == (
        b"\x00\x02" + b"\x00\x01a\x00\x011" + b"\x00\x01b\x00\x012"
    )
    assert encode_encryption_context({"ab": "c"}) != encode_encryption_context({"a": "bc"})
    # sorted by the UTF-8 bytes of the key (U+FFFF sorts before U+10000, unlike UTF-16)
    encoded = encode_encryption_context({"\U00010000": "", "\uffff": ""})
    assert encoded.index("\uffff".encode()) < encoded.index("\U00010000".encode())


def test_over_long_context_entry_is_refused() -> None:
    with pytest.raises(ValueError, match="too long"):
        encode_encryption_context({"k": "v" * 70_000})


def test_flipping_any_single_byte_of_the_blob_fails() -> None:
    key = generate_key()
    context = {"purpose": "test"}
    data = _encrypt(key, context)
    for i in range(len(data)):
        for bit in (0x01, 0x80):
            tampered = bytearray(data)
            tampered[i] ^= bit
            with pytest.raises(InvalidCiphertext):
                decrypt_symmetric(key, decode_blob(bytes(tampered)), context)


def test_wrong_key_material_fails() -> None:
    data = _encrypt(generate_key(), {})
    with pytest.raises(InvalidCiphertext):
        decrypt_symmetric(generate_key(), decode_blob(data), {})


def test_wrong_material_version_or_key_id_fails() -> None:
    key = generate_key()
    blob = decode_blob(_encrypt(key, {}))
    for other in (
        CiphertextBlob(KEY_ID, 8, blob.sealed),
        CiphertextBlob(str(uuid.uuid4()), 7, blob.sealed),
    ):
        with pytest.raises(InvalidCiphertext):
            decrypt_symmetric(key, other, {})


@pytest.mark.parametrize(
    "garbage",
    [
        b"",
        b"\x01",
        b"\x02" + b"\x00" * 60,
        b"\x00" + b"\x00" * 60,
        b"\x01" + b"\x00" * 47,  # one byte too short for header + nonce + tag
        b"not a ciphertext blob at all, really not",
    ],
)
def test_decode_blob_on_garbage(garbage: bytes) -> None:
    with pytest.raises(InvalidCiphertext):
        decode_blob(garbage)


def test_decrypt_with_bad_blob_fields_is_invalid_ciphertext() -> None:
    key = generate_key()
    for blob in (
        CiphertextBlob("not-a-uuid", 1, b"\x00" * 40),
        CiphertextBlob(KEY_ID, -1, b"\x00" * 40),
        CiphertextBlob(KEY_ID, 2**32, b"\x00" * 40),
        CiphertextBlob(KEY_ID, 1, b""),
    ):
        with pytest.raises(InvalidCiphertext):
            decrypt_symmetric(key, blob, {})


def test_encode_blob_validates_fields() -> None:
    with pytest.raises(ValueError, match="badly formed"):
        encode_blob(CiphertextBlob("nope", 1, b"x" * 28))
    with pytest.raises(ValueError, match="32-bit"):
        encode_blob(CiphertextBlob(KEY_ID, 2**32, b"x" * 28))


def test_material_version_extremes_round_trip() -> None:
    key = generate_key()
    for version in (0, 2**32 - 1):
        data = encrypt_symmetric(
            key, key_id=KEY_ID, material_version=version, plaintext=b"p", context={}
        )
        blob = decode_blob(data)
        assert blob.material_version == version
        assert decrypt_symmetric(key, blob, {}) == b"p"


def _parse_context(data: bytes) -> dict[str, str]:
    """Reference decoder: if it inverts the encoding, the encoding is injective."""
    (count,) = struct.unpack_from(">H", data)
    offset, out = 2, {}
    for _ in range(count):
        fields = []
        for _ in range(2):
            (length,) = struct.unpack_from(">H", data, offset)
            fields.append(data[offset + 2 : offset + 2 + length].decode())
            offset += 2 + length
        out[fields[0]] = fields[1]
    assert offset == len(data)
    return out


_contexts = st.dictionaries(st.text(max_size=6), st.text(max_size=6), max_size=5)


@settings(deadline=None)
@given(_contexts)
def test_encoding_is_invertible(ctx: dict[str, str]) -> None:
    assert _parse_context(encode_encryption_context(ctx)) == ctx


@settings(deadline=None)
@given(_contexts, _contexts)
def test_encoding_is_injective(a: dict[str, str], b: dict[str, str]) -> None:
    assert (encode_encryption_context(a) == encode_encryption_context(b)) == (a == b)
