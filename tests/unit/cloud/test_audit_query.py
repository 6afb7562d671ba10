"""``latchkey audit``'s filters, as pure functions: --since and --key."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from latchkey.cli.audit import format_row, mentions_key, parse_since

NOW = dt.datetime(2025, 6, 1, 12, 0, 0, tzinfo=dt.UTC)
KEY_ID = "1234abcd-12ab-34cd-56ef-1234567890ab"
KEY_ARN = f"arn:aws:kms:us-east-1:000000000000:key/{KEY_ID}"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("90s", "2025-06-01T11:58:30Z"),
        ("15m", "2025-06-01T11:45:00Z"),
        ("1h", "2025-06-01T11:00:00Z"),
        ("2d", "2025-05-30T12:00:00Z"),
        ("2025-05-01", "2025-05-01T00:00:00Z"),
        ("2025-05-01T10:20:30Z", "2025-05-01T10:20:30Z"),
        ("2025-05-01T12:20:30+02:00", "2025-05-01T10:20:30Z"),
    ],
)
def test_since_takes_durations_and_iso_times(value: str, expected: str) -> None:
    assert parse_since(value, NOW) == expected


@pytest.mark.parametrize("value", ["yesterday", "1w", "-1h", ""])
def test_since_refuses_anything_else(value: str) -> None:
    with pytest.raises(ValueError, match="ISO time or a duration"):
        parse_since(value, NOW)


def event(resources: list[str], **params: Any) -> dict[str, Any]:
    return {
        "eventTime": "2025-06-01T12:00:00Z",
        "eventSource": "kms.amazonaws.com",
        "eventName": "Encrypt",
        "userIdentity": {"arn": "arn:aws:iam::000000000000:root"},
        "resources": [{"ARN": arn} for arn in resources],
        "requestParameters": params or None,
    }


@pytest.mark.parametrize("key", [KEY_ID, KEY_ARN])
def test_a_key_matches_by_id_or_arn_in_resources_or_parameters(key: str) -> None:
    assert mentions_key(event([KEY_ARN]), key)
    assert mentions_key(event([], KeyId=KEY_ID), key)
    assert mentions_key(event([], KeyId=KEY_ARN), key)
    assert mentions_key(event([], DestinationKeyId=KEY_ID), key)
    assert not mentions_key(event([KEY_ARN.replace("1234abcd", "9999abcd")]), key)
    assert not mentions_key(event([], Description=KEY_ID), key)  # not a member naming a key


def test_an_alias_matches_by_name_or_arn() -> None:
    alias_arn = "arn:aws:kms:us-east-1:000000000000:alias/orders"
    assert mentions_key(event([KEY_ARN], KeyId="alias/orders"), "alias/orders")
    assert mentions_key(event([KEY_ARN], KeyId="alias/orders"), alias_arn)
    assert mentions_key(event([], AliasName="alias/orders"), "alias/orders")
    assert not mentions_key(event([KEY_ARN], KeyId="alias/order"), "alias/orders")
    assert not mentions_key(event([KEY_ARN], KeyId="alias/orders-old"), "alias/orders")


def test_a_row_shows_time_event_principal_key_and_error() -> None:
    row = format_row(event([KEY_ARN]) | {"errorCode": "AccessDeniedException"})
    assert row.split() == [
        "2025-06-01T12:00:00Z",
        "kms:Encrypt",
        "arn:aws:iam::000000000000:root",
        KEY_ID,
        "AccessDeniedException",
    ]
    unsigned = {"eventName": "AssumeRoleWithWebIdentity", "eventSource": "sts.amazonaws.com",
                "userIdentity": {}, "eventTime": "t"}  # fmt: skip
    assert format_row(unsigned).split() == ["t", "sts:AssumeRoleWithWebIdentity", "-", "-"]
