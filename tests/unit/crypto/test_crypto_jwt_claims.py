"""Tests for latchkey.crypto.jwt.check_claims."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from latchkey.crypto.jwt import InvalidToken, check_claims

NOW = datetime(2025, 6, 1, 12, 0, 0, tzinfo=UTC)

ISS = "https://idp.example"
VALID = {"iss": ISS, "aud": "sts", "exp": NOW.timestamp() + 300, "iat": NOW.timestamp()}


def _claims_reason(claims: dict[str, object], **kwargs: object) -> str:
    options: dict[str, object] = {"issuer": ISS, "audiences": {"sts"}, "now": NOW, **kwargs}
    with pytest.raises(InvalidToken) as info:
        check_claims(claims, **options)  # type: ignore[arg-type]
    return info.value.reason


def test_valid_claims_pass() -> None:
    check_claims(VALID, issuer=ISS, audiences={"sts"}, now=NOW)
    check_claims({**VALID, "nbf": NOW.timestamp() + 30}, issuer=ISS, audiences=["sts"], now=NOW)


def test_expired() -> None:
    expired = {**VALID, "exp": NOW.timestamp() - 61}
    assert _claims_reason(expired) == "expired"
    check_claims({**VALID, "exp": NOW.timestamp() - 59}, issuer=ISS, audiences={"sts"}, now=NOW)
    assert _claims_reason({**VALID, "exp": NOW.timestamp() - 1}, leeway=timedelta(0)) == "expired"


def test_wrong_issuer() -> None:
    assert _claims_reason({**VALID, "iss": "https://evil.example"}) == "bad_issuer"
    assert _claims_reason({**VALID, "iss": ISS + "/"}) == "bad_issuer"


def test_audience_list_any_match() -> None:
    check_claims({**VALID, "aud": ["other", "sts"]}, issuer=ISS, audiences={"sts"}, now=NOW)
    assert _claims_reason({**VALID, "aud": ["other", "x"]}) == "bad_audience"
    assert _claims_reason({**VALID, "aud": "STS"}) == "bad_audience"
    assert _claims_reason({**VALID, "aud": []}) == "bad_audience"
    assert _claims_reason({**VALID, "aud": 7}) == "bad_audience"


def test_nbf_and_iat_in_the_future() -> None:
    assert _claims_reason({**VALID, "nbf": NOW.timestamp() + 120}) == "not_yet_valid"
    assert _claims_reason({**VALID, "iat": NOW.timestamp() + 120}) == "not_yet_valid"


@pytest.mark.parametrize("name", ["iss", "aud", "exp"])
def test_missing_claims(name: str) -> None:
    claims = {k: v for k, v in VALID.items() if k != name}
    assert _claims_reason(claims) == "missing_claim"


@pytest.mark.parametrize("value", ["1700000000", True, None, 10**400, [1]])
def test_non_numeric_times_are_malformed(value: object) -> None:
    assert _claims_reason({**VALID, "exp": value}) == "malformed"


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        check_claims(VALID, issuer=ISS, audiences={"sts"}, now=datetime(2025, 1, 1))


def test_invalid_token_message_is_the_reason() -> None:
    assert str(InvalidToken("expired")) == "expired"
    assert InvalidToken("missing_claim", "exp").reason == "missing_claim"


@pytest.mark.parametrize("sub", [None, "", 7, ["a"]])
def test_required_claims_must_be_non_empty_strings(sub: object) -> None:
    claims = {**VALID, "sub": sub} if sub is not None else dict(VALID)
    assert _claims_reason(claims, required=("sub",)) == "missing_claim"
    check_claims({**VALID, "sub": "workload"}, issuer=ISS, audiences={"sts"}, now=NOW,
                 required=("sub",))  # fmt: skip


def test_five_minutes_of_leeway_as_sts_uses_it() -> None:
    grace = timedelta(minutes=5)
    check_claims({**VALID, "exp": NOW.timestamp() - 240}, issuer=ISS, audiences={"sts"}, now=NOW,
                 leeway=grace)  # fmt: skip
    assert _claims_reason({**VALID, "exp": NOW.timestamp() - 360}, leeway=grace) == "expired"
    assert _claims_reason({**VALID, "exp": NOW.timestamp() - 300}, leeway=grace) == "expired"
    check_claims({**VALID, "nbf": NOW.timestamp() + 240, "iat": NOW.timestamp() + 240},
                 issuer=ISS, audiences={"sts"}, now=NOW, leeway=grace)  # fmt: skip
    for name in ("nbf", "iat"):
        claims = {**VALID, name: NOW.timestamp() + 360}
        assert _claims_reason(claims, leeway=grace) == "not_yet_valid"
