"""Tests for latchkey.crypto.jwk.SigningKey (the idp's ES256 and RS256 keys)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from joserfc.jwk import ECKey

from latchkey.crypto.jwk import SigningKey
from latchkey.crypto.jwt import verify_jwt

CLAIMS = {"iss": "https://idp.example", "sub": "workload-1", "aud": "sts.amazonaws.com"}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _ec_jwk(key: SigningKey) -> ECKey:
    return ECKey.import_key(key.private_pem())


@pytest.fixture(scope="module")
def key() -> SigningKey:
    return SigningKey.generate()


@pytest.mark.usefixtures("umask_zero")
def test_load_or_create_persists_a_0600_pem(tmp_path: Path) -> None:
    path = tmp_path / "idp.key"
    first = SigningKey.load_or_create(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert SigningKey.load_or_create(path).kid == first.kid


def test_load_refuses_garbage_and_non_p256(tmp_path: Path) -> None:
    path = tmp_path / "idp.key"
    path.write_bytes(b"not a pem")
    path.chmod(0o600)
    with pytest.raises(ValueError, match=r"idp\.key"):
        SigningKey.load_or_create(path)
    with pytest.raises(ValueError, match="P-256"):
        SigningKey(ec.generate_private_key(ec.SECP384R1()))


def test_kid_is_the_rfc7638_thumbprint(key: SigningKey) -> None:
    jwk = key.public_jwk()
    canonical = json.dumps(
        {"crv": jwk["crv"], "kty": jwk["kty"], "x": jwk["x"], "y": jwk["y"]},
        separators=(",", ":"),
        sort_keys=True,
    )
    assert key.kid == _b64(hashlib.sha256(canonical.encode()).digest())


def test_public_jwk_shape(key: SigningKey) -> None:
    jwk = key.public_jwk()
    assert set(jwk) == {"kty", "crv", "x", "y", "kid", "use", "alg"}
    assert (jwk["kty"], jwk["crv"], jwk["use"], jwk["alg"]) == ("EC", "P-256", "sig", "ES256")
    assert jwk["kid"] == key.kid
    assert key.jwks() == {"keys": [jwk]}


def test_repr_hides_the_key(key: SigningKey) -> None:
    assert repr(key) == f"SigningKey(kid={key.kid!r})"
    assert "PRIVATE" not in repr(key)
    assert str(_ec_jwk(key).as_dict(private=True)["d"]) not in repr(key)


def test_signed_token_verifies_against_its_own_jwks(key: SigningKey) -> None:
    header, claims = verify_jwt(key.sign_jwt(CLAIMS), key.jwks())
    assert header == {"alg": "ES256", "typ": "JWT", "kid": key.kid}
    assert claims == CLAIMS


# -- RS256 ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rsa_key() -> SigningKey:
    return SigningKey.generate("RS256")


def test_rs256_public_jwk_and_thumbprint(rsa_key: SigningKey) -> None:
    jwk = rsa_key.public_jwk()
    assert set(jwk) == {"kty", "n", "e", "kid", "use", "alg"}
    assert (jwk["kty"], jwk["e"], jwk["use"], jwk["alg"]) == ("RSA", "AQAB", "sig", "RS256")
    assert len(base64.urlsafe_b64decode(jwk["n"] + "==")) == 256  # 2048 bits
    canonical = json.dumps({"e": jwk["e"], "kty": "RSA", "n": jwk["n"]}, separators=(",", ":"))
    assert rsa_key.kid == jwk["kid"] == _b64(hashlib.sha256(canonical.encode()).digest())
    assert rsa_key.algorithm == "RS256"
    assert repr(rsa_key) == f"SigningKey(kid={rsa_key.kid!r})"


def test_rs256_token_verifies_against_its_own_jwks(rsa_key: SigningKey) -> None:
    header, claims = verify_jwt(rsa_key.sign_jwt(CLAIMS), rsa_key.jwks())
    assert header == {"alg": "RS256", "typ": "JWT", "kid": rsa_key.kid}
    assert claims == CLAIMS


@pytest.mark.usefixtures("umask_zero")
def test_rs256_persists_and_reloads(tmp_path: Path, rsa_key: SigningKey) -> None:
    path = tmp_path / "rsa.pem"
    made = SigningKey.load_or_create(path, "RS256")
    assert made.algorithm == "RS256"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert SigningKey.load(path).kid == made.kid
    assert SigningKey.from_pem(rsa_key.private_pem()).kid == rsa_key.kid


def test_small_rsa_and_unknown_algorithms_are_refused() -> None:
    from cryptography.hazmat.primitives.asymmetric import rsa

    with pytest.raises(ValueError, match="at least 2048"):
        SigningKey(rsa.generate_private_key(public_exponent=65537, key_size=1024))  # noqa: S505
    with pytest.raises(ValueError, match="unsupported signing algorithm"):
        SigningKey.generate("HS256")
    assert SigningKey.generate().algorithm == "ES256"
