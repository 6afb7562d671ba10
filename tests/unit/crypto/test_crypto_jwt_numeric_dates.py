"""NumericDate claims (``exp``, ``nbf``, ``iat``) must be finite numbers (RFC 7519 section 2).

JSON has no infinity, but ``1e400`` parses to ``inf``: an ``exp`` of ``1e400`` would never
expire, and ``-1e400`` broke whoever formatted the time (STS answered 500). Both are
``malformed``, also when read from a verified token's payload."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from joserfc import jws
from joserfc.jwk import ECKey

from latchkey.crypto.jwk import SigningKey
from latchkey.crypto.jwt import InvalidToken, check_claims, verify_jwt

NOW = datetime(2025, 6, 1, 12, 0, 0, tzinfo=UTC)
ISS = "https://idp.example"
VALID = {"iss": ISS, "aud": "sts", "exp": NOW.timestamp() + 300, "iat": NOW.timestamp()}
KEY = SigningKey.generate()


def reason(claims: dict[str, object], now: datetime = NOW) -> str:
    with pytest.raises(InvalidToken) as info:
        check_claims(claims, issuer=ISS, audiences={"sts"}, now=now)
    return info.value.reason


@pytest.mark.parametrize("name", ["exp", "nbf", "iat"])
@pytest.mark.parametrize("value", [float("inf"), float("-inf"), float("nan")])
def test_non_finite_times_are_malformed(name: str, value: float) -> None:
    assert reason({**VALID, name: value}) == "malformed"
    # also a century later, when a finite exp would long have expired
    assert reason({**VALID, name: value}, NOW + timedelta(days=36500)) == "malformed"


def test_an_infinite_start_is_malformed_even_when_the_token_has_expired() -> None:
    expired = {**VALID, "exp": NOW.timestamp() - 3600}
    assert reason(expired) == "expired"
    assert reason({**expired, "iat": float("inf")}) == "malformed"


def signed(payload: str) -> str:
    key = ECKey.import_key(KEY.private_pem())
    return jws.serialize_compact({"alg": "ES256", "kid": KEY.kid}, payload.encode(), key)


@pytest.mark.parametrize("exp", ["1e400", "-1e400"])
def test_an_overflowing_exp_in_a_verified_token(exp: str) -> None:
    claims = verify_jwt(signed(f'{{"iss": "{ISS}", "aud": "sts", "exp": {exp}}}'), KEY.jwks())[1]
    assert reason(claims) == "malformed"
    assert reason(claims, NOW + timedelta(days=365 * 100)) == "malformed"


def test_large_finite_times_still_work() -> None:
    check_claims({**VALID, "exp": 1e300}, issuer=ISS, audiences={"sts"}, now=NOW)
    check_claims({**VALID, "exp": 10**30}, issuer=ISS, audiences={"sts"}, now=NOW)
