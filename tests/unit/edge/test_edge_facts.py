"""What access conditions see of a request: its action and key, or why they are unclear."""

from __future__ import annotations

import datetime as dt

import pytest

from latchkey.control.conditions import AwsRequestRule, RequestFacts
from latchkey.edge.facts import request_facts
from latchkey.http.h1 import Request

NOW = dt.datetime(2026, 11, 29, 12, tzinfo=dt.UTC)
KMS = "kms.us-east-1.amazonaws.com"
FORM = [("Host", KMS), ("Content-Type", "application/x-www-form-urlencoded")]
JSON = [("Host", KMS), ("X-Amz-Target", "TrentService.Encrypt")]


def facts(target: str, headers: list[tuple[str, str]], body: bytes) -> RequestFacts:
    return request_facts(Request("POST", target, headers, body), KMS, NOW)


def test_json_action_and_key() -> None:
    got = facts("/", JSON, b'{"KeyId": "alias/a", "Plaintext": "eA=="}')
    assert (got.action, got.key_id, got.ambiguous) == ("kms:Encrypt", "alias/a", None)


def test_a_member_named_twice_is_ambiguous() -> None:
    got = facts("/", JSON, b'{"KeyId": "alias/a", "KeyId": "alias/b"}')
    assert got.key_id is None
    assert got.ambiguous == "the request body names a member more than once"
    rule = AwsRequestRule(actions=("kms:*",))  # whatever the rule allows
    assert rule.check(got.action, got.key_id, got.ambiguous) == got.ambiguous


@pytest.mark.parametrize(
    ("target", "body", "action", "ambiguous"),
    [
        ("/?Action=ListKeys", b"", "kms:ListKeys", None),
        ("/", b"Action=ListKeys&Version=1", "kms:ListKeys", None),
        ("/?Action=ListKeys", b"Action=ListKeys", "kms:ListKeys", None),  # the same twice
        ("/?Action=ListKeys", b"Action=ScheduleKeyDeletion", None, "more than one Action"),
        ("/?Action=ListKeys&Action=Decrypt", b"", None, "more than one Action"),
    ],
)
def test_query_actions(target: str, body: bytes, action: str | None, ambiguous: str | None) -> None:
    got = facts(target, FORM, body)
    assert got.action == action
    assert (got.ambiguous is None) == (ambiguous is None)
    if ambiguous is not None:
        assert ambiguous in str(got.ambiguous)
        assert "ScheduleKeyDeletion" not in str(got.ambiguous)  # the client's values: not echoed
