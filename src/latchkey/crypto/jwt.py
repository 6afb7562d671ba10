"""JWT verification for STS (AssumeRoleWithWebIdentity) and friends.

:func:`verify_jwt` checks the signature only; the caller then runs
:func:`check_claims` with its own clock.  Only asymmetric algorithms are ever
accepted (never ``none``, never ``HS*``), keys come only from the JWKS the caller
passes (headers that point elsewhere -- ``jwk``, ``jku``, ``x5u``, ``x5c`` -- are
refused, as are ``crit`` and ``b64``), and every failure is an
:class:`InvalidToken` with a short machine-readable ``reason``.

Compact serialisation is parsed strictly before anything else: exactly three
segments of unpadded base64url in canonical form (no ``=``, no stray bits), so a
padded or truncated segment is ``malformed`` rather than silently repaired.
:func:`peek_claims` / :func:`peek_header` read a token *without* verifying it, only to
decide whose keys to verify it with.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import JWKRegistry, Key

from latchkey.crypto.jwk import SigningKey

__all__ = [
    "ALLOWED_ALGORITHMS",
    "InvalidToken",
    "SigningKey",
    "check_claims",
    "peek_claims",
    "peek_header",
    "verify_jwt",
]

ALLOWED_ALGORITHMS = (
    "RS256",
    "RS384",
    "RS512",
    "ES256",
    "ES384",
    "ES512",
    "PS256",
    "PS384",
    "PS512",
)
_FORBIDDEN_HEADERS = frozenset({"jwk", "jku", "x5u", "x5c", "crit", "b64"})
_EC_CURVES = {"ES256": "P-256", "ES384": "P-384", "ES512": "P-521"}
_PUBLIC_FIELDS = {"RSA": ("kty", "n", "e"), "EC": ("kty", "crv", "x", "y")}
_MIN_RSA_MODULUS_B64 = 342  # base64url length of a 2048-bit modulus
# Parses and type-checks registered headers; unknown extra headers are tolerated
# (real IdPs add some), while "crit" is refused outright above.
_PARSER = jws.JWSRegistry(strict_check_header=False)
_SEGMENT = re.compile(r"[A-Za-z0-9_-]+")
# A key id is looked up, never used as a path or URL; still, refuse anything that looks like
# one (or like an injection) before it reaches a JWKS lookup or a log line.
_KID = re.compile(r"[\x21-\x7e]{1,256}")
_MAX_TOKEN_CHARS = 64 * 1024


class InvalidToken(Exception):
    """A rejected token.  ``reason`` is short and machine-readable, e.g. ``"expired"``."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


def _usable(entry: object, alg: str, kid: str | None) -> bool:
    if not isinstance(entry, Mapping):
        return False
    kty = "EC" if alg.startswith("ES") else "RSA"
    return (
        entry.get("kty") == kty
        and (kty != "EC" or entry.get("crv") == _EC_CURVES[alg])
        and entry.get("use", "sig") == "sig"
        and entry.get("alg", alg) == alg
        and (kid is None or entry.get("kid") == kid)
    )


def _import_public(entry: Mapping[str, Any]) -> Key | None:
    fields: dict[str, str] = {}
    for name in _PUBLIC_FIELDS[entry["kty"]]:
        value = entry.get(name)
        if not isinstance(value, str):
            return None
        fields[name] = value
    if fields["kty"] == "RSA" and len(fields["n"]) < _MIN_RSA_MODULUS_B64:
        return None  # RSA keys under 2048 bits are not trusted
    try:
        return JWKRegistry.import_key(dict(fields))
    except (JoseError, ValueError, TypeError, KeyError):
        return None


def _select_key(jwks: Mapping[str, object], alg: str, kid: str | None) -> Key:
    entries = jwks.get("keys")
    if not isinstance(entries, list):
        entries = []
    keys = [key for e in entries if _usable(e, alg, kid) and (key := _import_public(e))]
    if kid is not None and keys:
        return keys[0]
    if kid is None and len(keys) == 1:
        return keys[0]
    raise InvalidToken("unknown_kid")


def _reject_constant(name: str) -> None:
    raise ValueError(f"non-finite number {name}")


def _split(token: str) -> list[str]:
    if not isinstance(token, str) or len(token) > _MAX_TOKEN_CHARS:
        raise InvalidToken("malformed")
    parts = token.split(".")
    if len(parts) != 3:
        raise InvalidToken("malformed")
    return parts


def _decode(part: str, *, empty_ok: bool = False) -> bytes:
    """One segment: unpadded base64url in canonical form, else ``malformed``."""
    if not part and empty_ok:
        return b""
    if not _SEGMENT.fullmatch(part) or len(part) % 4 == 1:
        raise InvalidToken("malformed")
    try:
        raw = base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
    except (binascii.Error, ValueError):
        raise InvalidToken("malformed") from None
    if base64.urlsafe_b64encode(raw).rstrip(b"=").decode() != part:
        raise InvalidToken("malformed")  # stray bits in the last character
    return raw


def _json_object(raw: bytes) -> dict[str, object]:
    try:
        value = json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, TypeError, RecursionError) as exc:
        raise InvalidToken("malformed") from exc
    if not isinstance(value, dict):
        raise InvalidToken("malformed")
    return value


def peek_claims(token: str) -> dict[str, object]:
    """The claims of a strictly well-formed compact JWT, NOT verified.

    Only for choosing whose keys to verify with (``iss``); never trust what it returns.
    """
    parts = _split(token)
    _decode(parts[0])
    return _json_object(_decode(parts[1]))


def peek_header(token: str) -> dict[str, object]:
    """The JOSE header of a strictly well-formed compact JWT, NOT verified."""
    parts = _split(token)
    _decode(parts[1])
    return _json_object(_decode(parts[0]))


def verify_jwt(
    token: str,
    jwks: Mapping[str, object],
    *,
    algorithms: Sequence[str] = ALLOWED_ALGORITHMS,
) -> tuple[dict[str, object], dict[str, object]]:
    """Verify a compact JWS JWT against ``jwks``; return ``(header, claims)``.

    ``algorithms`` is intersected with :data:`ALLOWED_ALGORITHMS`.  A ``kid``
    must name a key in the JWKS; without one, the JWKS must hold exactly one
    key usable with the token's ``alg``.  Claims (``exp``, ``iss``...) are NOT
    checked here: use :func:`check_claims`.
    """
    allowed = [name for name in algorithms if name in ALLOWED_ALGORITHMS]
    parts = _split(token)
    _decode(parts[0])
    try:
        obj = jws.extract_compact(token.encode("ascii"), registry=_PARSER)
        header = obj.headers()
        if not isinstance(header, dict):
            raise TypeError("header is not a JSON object")
    except (JoseError, ValueError, TypeError, AttributeError, RecursionError) as exc:
        raise InvalidToken("malformed") from exc
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in allowed:
        raise InvalidToken("unsupported_alg")
    if _FORBIDDEN_HEADERS & header.keys():
        raise InvalidToken("forbidden_header")
    try:
        _PARSER.check_header(header)  # types of registered headers, e.g. "kid" is a string
    except JoseError as exc:
        raise InvalidToken("malformed") from exc
    _decode(parts[1])
    _decode(parts[2], empty_ok=True)  # an empty signature fails verification below
    kid = header.get("kid")
    if kid is not None and (not isinstance(kid, str) or not _KID.fullmatch(kid) or ".." in kid):
        raise InvalidToken("malformed", "unusable kid")
    key = _select_key(jwks, alg, kid)
    try:
        registry = jws.JWSRegistry(algorithms=[alg], strict_check_header=False)
        valid = jws.validate_compact(obj, key, registry=registry)
    except (JoseError, ValueError, TypeError):
        valid = False
    if not valid:
        raise InvalidToken("bad_signature")
    return dict(header), _json_object(obj.payload)


def _number(claims: Mapping[str, object], name: str) -> float:
    """A NumericDate claim as a finite float (RFC 7519 section 2); else ``malformed``.

    JSON has no infinity, but ``1e400`` parses to ``inf`` (and ``-1e400`` to ``-inf``): such a
    token would never expire, or break whoever formats the time.
    """
    value = claims[name]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidToken("malformed", f"{name} is not a number")
    try:
        number = float(value)
    except OverflowError:
        raise InvalidToken("malformed", f"{name} is out of range") from None
    if not math.isfinite(number):
        raise InvalidToken("malformed", f"{name} is out of range")
    return number


def check_claims(
    claims: Mapping[str, object],
    *,
    issuer: str,
    audiences: Collection[str],
    now: datetime,
    leeway: timedelta = timedelta(seconds=60),
    required: Collection[str] = (),
) -> None:
    """Check ``iss``, ``aud``, ``exp`` (all required), ``nbf`` and ``iat`` at ``now``.

    Reasons: ``missing_claim`` (also for each name in ``required``, e.g. ``"sub"``, which
    must then be a non-empty string), ``bad_issuer``, ``bad_audience`` (``aud`` may be a
    string or a list; one match is enough), ``expired`` (``now`` at or past ``exp + leeway``),
    ``not_yet_valid`` (``nbf``/``iat`` later than ``now + leeway``), ``malformed``
    (non-numeric or non-finite times, e.g. ``1e400``; every time claim present is checked).
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be a timezone-aware datetime")
    for name in ("iss", "aud", "exp"):
        if name not in claims:
            raise InvalidToken("missing_claim", name)
    for name in required:
        value = claims.get(name)
        if not isinstance(value, str) or not value:
            raise InvalidToken("missing_claim", name)
    if claims["iss"] != issuer:
        raise InvalidToken("bad_issuer")
    aud = claims["aud"]
    token_audiences = [aud] if isinstance(aud, str) else aud
    if not isinstance(token_audiences, list) or not any(
        isinstance(a, str) and a in audiences for a in token_audiences
    ):
        raise InvalidToken("bad_audience")
    ts, slack = now.timestamp(), leeway.total_seconds()
    exp = _number(claims, "exp")
    starts = [(name, _number(claims, name)) for name in ("nbf", "iat") if name in claims]
    if ts >= exp + slack:
        raise InvalidToken("expired")
    for name, value in starts:
        if value > ts + slack:
            raise InvalidToken("not_yet_valid", name)
