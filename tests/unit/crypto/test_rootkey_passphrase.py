"""Tests for the root key's passphrase derivation (scrypt) and its check value."""

from __future__ import annotations

import os

import pytest

from latchkey.crypto.rootkey import RootKey, ScryptParams

SALT = bytes(range(16))
CHEAP = {"n": 2**10, "r": 8, "p": 1}  # tests only; the default cost is N=2**17


def test_scrypt_matches_the_rfc_7914_vector() -> None:
    # RFC 7914 section 12, second vector: P="password", S="NaCl", N=1024, r=8, p=16, dkLen=64;
    # a root key is its first 32 bytes. The salt is below our 16-byte minimum, so the check
    # goes through a params object built without validation.
    params = object.__new__(ScryptParams)
    for name, value in (("salt", b"NaCl"), ("n", 1024), ("r", 8), ("p", 16)):
        object.__setattr__(params, name, value)
    key = RootKey.from_passphrase(b"password", params)
    expected = bytes.fromhex("fdbabe1c9d3472007856e7190d01e9fe7c6ad7cbc8237830e77376634b373162")
    assert key.same_key(RootKey.from_bytes(expected))


def test_same_passphrase_and_salt_give_the_same_key() -> None:
    a = RootKey.from_passphrase(b"correct horse", ScryptParams(SALT, **CHEAP))
    b = RootKey.from_passphrase(b"correct horse", ScryptParams(SALT, **CHEAP))
    assert a.same_key(b)
    assert b.unwrap("k", "r", a.wrap("k", "r", b"material")) == b"material"


@pytest.mark.parametrize(
    ("passphrase", "salt", "n"),
    [
        (b"correct horsf", SALT, 2**10),
        (b"correct horse", bytes(16), 2**10),
        (b"correct horse", SALT, 2**11),
    ],
)
def test_any_change_gives_another_key(passphrase: bytes, salt: bytes, n: int) -> None:
    base = RootKey.from_passphrase(b"correct horse", ScryptParams(SALT, **CHEAP))
    other = RootKey.from_passphrase(passphrase, ScryptParams(salt, n=n))
    assert not base.same_key(other)
    assert not other.opens(base.check_value())


def test_empty_passphrase_is_refused() -> None:
    with pytest.raises(ValueError, match="empty"):
        RootKey.from_passphrase(b"", ScryptParams(SALT, **CHEAP))


def test_generated_params_are_random_with_the_default_cost() -> None:
    a, b = ScryptParams.generate(), ScryptParams.generate()
    assert a.salt != b.salt
    assert len(a.salt) == 16
    assert (a.n, a.r, a.p) == (2**17, 8, 1)
    assert a.salt.hex() not in repr(a)


@pytest.mark.parametrize(
    ("salt", "n", "r", "p"),
    [(bytes(15), 2**10, 8, 1), (SALT, 1000, 8, 1), (SALT, 1, 8, 1), (SALT, 2**23, 8, 1),
     (SALT, 2**10, 0, 1), (SALT, 2**10, 33, 1), (SALT, 2**10, 8, 0), (SALT, 2**10, 8, 17),
     (SALT, 2**21, 8, 1), (SALT, 2**19, 32, 1)],
)  # fmt: skip
def test_bad_params_are_refused(salt: bytes, n: int, r: int, p: int) -> None:
    with pytest.raises(ValueError, match="scrypt"):
        ScryptParams(salt, n=n, r=r, p=p)


def test_check_value_opens_only_with_its_key() -> None:
    key = RootKey.from_bytes(os.urandom(32))
    check = key.check_value()
    assert check != key.check_value()  # randomised, like every wrap
    assert key.opens(check)
    assert RootKey.from_bytes(key_bytes := os.urandom(32)).opens(check) is False
    assert key_bytes not in check
    for i in range(len(check)):
        tampered = bytearray(check)
        tampered[i] ^= 0x01
        assert not key.opens(bytes(tampered))
    assert not key.opens(b"")


def test_check_value_is_not_any_other_wrapped_value() -> None:
    key = RootKey.from_bytes(os.urandom(32))
    # the same plaintext wrapped for another record is no check value
    assert not key.opens(key.wrap("kms-key-material", "latchkey", b"latchkey root key check v1"))


def test_same_key() -> None:
    raw = os.urandom(32)
    assert RootKey.from_bytes(raw).same_key(RootKey.from_bytes(raw))
    assert not RootKey.from_bytes(raw).same_key(RootKey.from_bytes(os.urandom(32)))
