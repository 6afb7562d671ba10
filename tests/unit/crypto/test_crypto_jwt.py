"""Tests for latchkey.crypto.jwt.verify_jwt: signatures, algorithms, headers, keys."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import warnings
from collections.abc import Mapping

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from joserfc import jws
from joserfc import jwt as jose_jwt
from joserfc.jwk import ECKey, RSAKey
from joserfc.registry import HeaderParameter

from latchkey.crypto.jwk import SigningKey
from latchkey.crypto.jwt import (
    ALLOWED_ALGORITHMS,
    InvalidToken,
    peek_claims,
    peek_header,
    verify_jwt,
)

CLAIMS = {"iss": "https://idp.example", "sub": "workload-1", "aud": "sts.amazonaws.com"}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64json(obj: object) -> str:
    return _b64(json.dumps(obj).encode())


def _ec_jwk(key: SigningKey) -> ECKey:
    return ECKey.import_key(key.private_pem())


def _reason(token: str, jwks: Mapping[str, object], **kwargs: object) -> str:
    with pytest.raises(InvalidToken) as info:
        verify_jwt(token, jwks, **kwargs)  # type: ignore[arg-type]
    return info.value.reason


@pytest.fixture(scope="module")
def key() -> SigningKey:
    return SigningKey.generate()


@pytest.fixture(scope="module")
def jwks(key: SigningKey) -> dict[str, object]:
    return {"keys": [key.public_jwk()]}


def test_sign_and_verify(key: SigningKey, jwks: dict[str, object]) -> None:
    header, claims = verify_jwt(key.sign_jwt(CLAIMS), jwks)
    assert header == {"alg": "ES256", "typ": "JWT", "kid": key.kid}
    assert claims == CLAIMS


def test_tampered_payload_is_bad_signature(key: SigningKey, jwks: dict[str, object]) -> None:
    head, _, sig = key.sign_jwt(CLAIMS).split(".")
    forged = f"{head}.{_b64json({**CLAIMS, 'sub': 'admin'})}.{sig}"
    assert _reason(forged, jwks) == "bad_signature"


def test_tampered_signature_is_bad_signature(key: SigningKey, jwks: dict[str, object]) -> None:
    head, body, sig = key.sign_jwt(CLAIMS).split(".")
    raw = bytearray(base64.urlsafe_b64decode(sig + "=="))
    raw[5] ^= 1
    assert _reason(f"{head}.{body}.{_b64(bytes(raw))}", jwks) == "bad_signature"


def test_alg_none_is_unsupported(key: SigningKey, jwks: dict[str, object]) -> None:
    for alg in ("none", "None", "NONE"):
        token = f"{_b64json({'alg': alg, 'typ': 'JWT', 'kid': key.kid})}.{_b64json(CLAIMS)}."
        assert _reason(token, jwks) == "unsupported_alg"


def test_hs256_signed_with_the_public_key_is_unsupported(
    key: SigningKey, jwks: dict[str, object]
) -> None:
    public_pem = _ec_jwk(key).as_pem(private=False)
    signing_input = f"{_b64json({'alg': 'HS256', 'kid': key.kid})}.{_b64json(CLAIMS)}"
    mac = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    token = f"{signing_input}.{_b64(mac)}"
    assert _reason(token, jwks) == "unsupported_alg"
    # even when a careless caller allows it explicitly
    assert _reason(token, jwks, algorithms=["HS256", "ES256"]) == "unsupported_alg"


def test_algorithm_allow_list_is_respected(key: SigningKey, jwks: dict[str, object]) -> None:
    assert _reason(key.sign_jwt(CLAIMS), jwks, algorithms=["RS256"]) == "unsupported_alg"
    assert verify_jwt(key.sign_jwt(CLAIMS), jwks, algorithms=["ES256"])[1] == CLAIMS


@pytest.mark.parametrize(
    "extra",
    [
        {"jku": "https://attacker.example/jwks.json"},
        {"x5u": "https://attacker.example/cert.pem"},
        {"x5c": ["MIIB"]},
        {"crit": ["kid"]},
        {"crit": ["exp"], "exp": 1},
        {"b64": True, "crit": ["b64"]},
        {"b64": False, "crit": ["b64"]},
    ],
)
def test_forbidden_headers(
    key: SigningKey, jwks: dict[str, object], extra: dict[str, object]
) -> None:
    header = {"alg": "ES256", "kid": key.kid, **extra}
    registry = jws.JWSRegistry({"exp": HeaderParameter("test extension", "int")})
    token = jose_jwt.encode(header, CLAIMS, _ec_jwk(key), registry=registry)
    assert _reason(token, jwks) == "forbidden_header"


def test_embedded_jwk_header_is_forbidden(jwks: dict[str, object]) -> None:
    attacker = SigningKey.generate()
    header = {"alg": "ES256", "kid": attacker.kid, "jwk": attacker.public_jwk()}
    token = jose_jwt.encode(header, CLAIMS, _ec_jwk(attacker))
    assert _reason(token, jwks) == "forbidden_header"
    assert _reason(token, attacker.jwks()) == "forbidden_header"


def test_unknown_kid(jwks: dict[str, object]) -> None:
    assert _reason(SigningKey.generate().sign_jwt(CLAIMS), jwks) == "unknown_kid"


def test_no_kid_uses_the_single_key_of_the_right_type(
    key: SigningKey, jwks: dict[str, object]
) -> None:
    token = jose_jwt.encode({"alg": "ES256"}, CLAIMS, _ec_jwk(key))
    assert verify_jwt(token, jwks)[1] == CLAIMS
    rsa_key = RSAKey.generate_key(2048)
    mixed = {"keys": [key.public_jwk(), rsa_key.as_dict(private=False)]}
    assert verify_jwt(token, mixed)[1] == CLAIMS  # the RSA key is not a candidate for ES256
    two = {"keys": [key.public_jwk(), SigningKey.generate().public_jwk()]}
    assert _reason(token, two) == "unknown_kid"


def test_key_type_must_match_alg(key: SigningKey) -> None:
    rsa_only = {"keys": [{**RSAKey.generate_key(2048).as_dict(private=False), "kid": key.kid}]}
    assert _reason(key.sign_jwt(CLAIMS), rsa_only) == "unknown_kid"
    enc_only = {"keys": [{**key.public_jwk(), "use": "enc"}]}
    assert _reason(key.sign_jwt(CLAIMS), enc_only) == "unknown_kid"


@pytest.mark.parametrize("alg", ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"])
def test_rsa_tokens_verify(alg: str) -> None:
    rsa_key = RSAKey.generate_key(2048, parameters={"kid": "rsa-1"})
    token = jose_jwt.encode({"alg": alg, "kid": "rsa-1"}, CLAIMS, rsa_key, algorithms=[alg])
    header, claims = verify_jwt(token, {"keys": [rsa_key.as_dict(private=False)]})
    assert header["alg"] == alg
    assert claims == CLAIMS


@pytest.mark.parametrize(("alg", "crv"), [("ES384", "P-384"), ("ES512", "P-521")])
def test_other_ec_curves_verify(alg: str, crv: str) -> None:
    ec_key = ECKey.generate_key(crv, parameters={"kid": "ec-1"})
    token = jose_jwt.encode({"alg": alg, "kid": "ec-1"}, CLAIMS, ec_key, algorithms=[alg])
    assert verify_jwt(token, {"keys": [ec_key.as_dict(private=False)]})[1] == CLAIMS


def test_weak_rsa_keys_are_ignored() -> None:
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        weak_jwk = RSAKey.import_key(weak, parameters={"kid": "weak"})
        token = jose_jwt.encode({"alg": "RS256", "kid": "weak"}, CLAIMS, weak_jwk)
    assert _reason(token, {"keys": [weak_jwk.as_dict(private=False)]}) == "unknown_kid"


@pytest.mark.parametrize(
    "token",
    [
        "",
        "abc",
        "a.b",
        "a.b.c",
        "a.b.c.d",
        f"{_b64(b'not json')}.{_b64json(CLAIMS)}.sig",
        f"{_b64json(['alg'])}.{_b64json(CLAIMS)}.sig",
        f"{_b64json({'typ': 'JWT'})}.{_b64json(CLAIMS)}.sig",
        f"{_b64json({'alg': 'ES256', 'kid': 7})}.{_b64json(CLAIMS)}.sig",
        "ünïcode.token.here",
    ],
)
def test_malformed_tokens(jwks: dict[str, object], token: str) -> None:
    assert _reason(token, jwks) == "malformed"


@pytest.mark.parametrize("payload", [b"not json", b"[1, 2]", b'"str"', b'{"exp": NaN}'])
def test_signed_but_non_object_claims_are_malformed(
    key: SigningKey, jwks: dict[str, object], payload: bytes
) -> None:
    token = jws.serialize_compact({"alg": "ES256", "kid": key.kid}, payload, _ec_jwk(key))
    assert _reason(token, jwks) == "malformed"


def test_allowed_algorithms_constant() -> None:
    assert ALLOWED_ALGORITHMS == (
        "RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256", "PS384", "PS512",
    )  # fmt: skip
    assert not any(a.startswith("HS") or a == "none" for a in ALLOWED_ALGORITHMS)


def _segments(token: str) -> list[str]:
    return token.split(".")


@pytest.mark.parametrize(
    "mangle",
    [
        lambda h, p, s: f"{h}=.{p}.{s}",  # padding is not base64url
        lambda h, p, s: f"{h}.{p}==.{s}",
        lambda h, p, s: f"{h}.{p}.{s}==",
        lambda h, p, s: f"{h}.{p}.{s.replace('-', '+').replace('_', '/')}+/",  # standard alphabet
        lambda h, p, s: f"{h}.{p[:-1]}.{s}" if len(p) % 4 != 2 else f"{h}.{p[:-2]}.{s}",
        lambda h, p, s: f"{h}.{p} .{s}",
        lambda h, p, s: f".{p}.{s}",
        lambda h, p, s: f"{h}..{s}",
    ],
    ids=["padded-header", "padded-payload", "padded-signature", "standard-alphabet",
         "truncated-payload", "space", "empty-header", "empty-payload"],
)  # fmt: skip
def test_non_canonical_segments_are_malformed(
    key: SigningKey, jwks: dict[str, object], mangle: object
) -> None:
    h, p, s = _segments(key.sign_jwt(CLAIMS))
    token = mangle(h, p, s)  # type: ignore[operator]
    assert _reason(token, jwks) == "malformed"


def test_stray_bits_in_the_last_character_are_malformed(
    key: SigningKey, jwks: dict[str, object]
) -> None:
    h, p, s = _segments(key.sign_jwt(CLAIMS))
    # Find a last character whose spare low bits are set but which decodes to the same bytes.
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    for ch in alphabet:
        variant = p[:-1] + ch
        if variant == p:
            continue
        try:
            same = base64.urlsafe_b64decode(variant + "=" * (-len(variant) % 4)) == (
                base64.urlsafe_b64decode(p + "=" * (-len(p) % 4))
            )
        except ValueError:
            continue
        if same:
            assert _reason(f"{h}.{variant}.{s}", jwks) == "malformed"
            return
    pytest.skip("payload length leaves no spare bits")


def test_truncated_signature_is_refused(key: SigningKey, jwks: dict[str, object]) -> None:
    token = key.sign_jwt(CLAIMS)
    assert _reason(token[:-4], jwks) in ("bad_signature", "malformed")
    assert _reason(token[:-1], jwks) in ("bad_signature", "malformed")


@pytest.mark.parametrize("kid", ["../../x", "a/../b", "has space", "tab\t", "\u00e9", "k" * 257])
def test_unusable_kids_are_malformed(kid: str) -> None:
    attacker = SigningKey.generate()
    token = jose_jwt.encode({"alg": "ES256", "kid": kid}, CLAIMS, _ec_jwk(attacker))
    assert _reason(token, {"keys": [{**attacker.public_jwk(), "kid": kid}]}) == "malformed"


def test_kids_real_issuers_use_are_fine() -> None:
    signer = RSAKey.generate_key(2048)
    for kid in ("abc123", "key-1", "a+b/c=", "2024_01.rsa"):
        jwk = {**signer.as_dict(private=False), "kid": kid}
        token = jose_jwt.encode({"alg": "RS256", "kid": kid}, CLAIMS, signer)
        assert verify_jwt(token, {"keys": [jwk]})[1] == CLAIMS


def test_deeply_nested_header_is_malformed(jwks: dict[str, object]) -> None:
    header = _b64(b'{"alg": "ES256", "x": ' + b"[" * 5000 + b"]" * 5000 + b"}")
    assert _reason(f"{header}.{_b64json(CLAIMS)}.{_b64(b'sig')}", jwks) == "malformed"


def test_peek_reads_without_verifying(key: SigningKey) -> None:
    forged = SigningKey.generate().sign_jwt(CLAIMS)
    assert peek_claims(forged) == CLAIMS
    assert peek_header(forged)["alg"] == "ES256"
    for bad in ("a.b", f"{_b64json({'alg': 'ES256'})}.{_b64(b'[1]')}.", "x.y.z="):
        with pytest.raises(InvalidToken):
            peek_claims(bad)
    with pytest.raises(InvalidToken):
        peek_header(f"{_b64(b'not json')}.{_b64json(CLAIMS)}.")
