"""Condition operators, end to end: a one-condition policy decides a request's key."""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from latchkey.aws.policy import Decision, RequestContext, evaluate, parse_policy
from latchkey.aws.policy.conditions import glob_match

ABSENT = None  # the request does not carry the key at all

Value = str | bool | int | list[str] | None


def holds(operator: str, policy: object, request: Value, key: str = "k:Key") -> bool:
    """Does ``{operator: {key: policy}}`` hold for a request whose ``key`` is ``request``?"""
    text = json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": {
                "Effect": "Allow",
                "Action": "kms:Encrypt",
                "Condition": {operator: {key: policy}},
            },
        }
    )
    keys = {} if request is ABSENT else {"k:Key": request}
    ctx = RequestContext(action="kms:Encrypt", resource="*", keys=keys)
    return evaluate(parse_policy(text), ctx) is Decision.ALLOW


def cases(*rows: tuple[str, object, Value, bool]) -> pytest.MarkDecorator:
    return pytest.mark.parametrize(
        ("operator", "policy", "request_value", "expected"),
        [pytest.param(*row, id=f"{row[0]}-{row[1]}-{row[2]}") for row in rows],
    )


def check(operator: str, policy: object, request_value: Value, expected: bool) -> None:
    assert holds(operator, policy, request_value) is expected


@cases(
    ("StringEquals", "a", "a", True),
    ("StringEquals", "a", "A", False),
    ("StringEquals", "a", ABSENT, False),
    ("StringEquals", ["a", "b"], "b", True),
    ("StringEquals", "a", ["x", "a"], True),  # multi-valued key, single-valued operator
    ("StringEquals", "${aws:username}", "${aws:username}", False),  # a variable, unset here
    ("StringEquals", "${k:Key}", "v", True),  # a variable: the request's value of k:Key
    ("StringEquals", "true", True, True),  # request booleans are "true"/"false"
    ("StringEquals", 42, 42, True),
    ("StringNotEquals", "a", "b", True),
    ("StringNotEquals", "a", "a", False),
    ("StringNotEquals", "a", ABSENT, True),
    ("StringNotEquals", ["a", "b"], "b", False),
    ("StringNotEquals", "a", ["x", "a"], False),
    ("StringEqualsIgnoreCase", "Hello", "hELLO", True),
    ("StringEqualsIgnoreCase", "Hello", "Help", False),
    ("StringEqualsIgnoreCase", "Hello", ABSENT, False),
    ("StringNotEqualsIgnoreCase", "Hello", "hello", False),
    ("StringNotEqualsIgnoreCase", "Hello", "bye", True),
    ("StringNotEqualsIgnoreCase", "Hello", ABSENT, True),
    ("StringLike", "a*c", "abbc", True),
    ("StringLike", "a?c", "abbc", False),
    ("StringLike", "a?c", "abc", True),
    ("StringLike", "A*", "abc", False),  # case-sensitive
    ("StringLike", "*", "", True),
    ("StringLike", "a*", ABSENT, False),
    ("StringNotLike", "a*", "bcd", True),
    ("StringNotLike", "a*", "abc", False),
    ("StringNotLike", "a*", ABSENT, True),
)
def test_string_operators(
    operator: str, policy: object, request_value: Value, expected: bool
) -> None:
    check(operator, policy, request_value, expected)


ROLE = "arn:aws:iam::111122223333:role/app-1"


@cases(
    ("ArnEquals", ROLE, ROLE, True),
    ("ArnEquals", ROLE, ROLE.upper(), False),
    ("ArnEquals", "arn:aws:iam::*:role/app-?", ROLE, True),
    ("ArnLike", "arn:aws:iam::*:role/app-*", ROLE, True),
    ("ArnLike", "arn:aws:iam::*:role/*", "arn:aws:sts::111122223333:assumed-role/r/s", False),
    ("ArnLike", "arn:aws:*:us-east-1:*:*", "arn:aws:kms:us-east-1:1:key/a", True),
    # "*" stays inside its component: it cannot swallow the colon after the region
    ("ArnLike", "arn:aws:kms:*:111122223333:key/*", "arn:aws:kms:r:x:111122223333:key/k", False),
    ("ArnLike", "arn:aws:kms:*:111122223333:key/*", "arn:aws:kms:r:111122223333:key/a:b", True),
    ("ArnLike", "arn:aws:iam::*:role/*", "not-an-arn", False),
    ("ArnLike", ROLE, ABSENT, False),
    ("ArnNotEquals", ROLE, ROLE, False),
    ("ArnNotEquals", ROLE, "arn:aws:iam::111122223333:role/other", True),
    ("ArnNotLike", "arn:aws:iam::*:role/admin", ROLE, True),
    ("ArnNotLike", "arn:aws:iam::*:role/app-*", ROLE, False),
    ("ArnNotLike", ROLE, ABSENT, True),
)
def test_arn_operators(operator: str, policy: object, request_value: Value, expected: bool) -> None:
    check(operator, policy, request_value, expected)


@cases(
    ("NumericEquals", "10", 10, True),
    ("NumericEquals", 10, "10.0", True),
    ("NumericEquals", 10, "11", False),
    ("NumericEquals", 10, "ten", False),
    ("NumericEquals", 10, ABSENT, False),
    ("NumericNotEquals", 10, 11, True),
    ("NumericNotEquals", 10, 10, False),
    ("NumericNotEquals", 10, ABSENT, True),
    ("NumericLessThan", 10, 9, True),
    ("NumericLessThan", 10, 10, False),
    ("NumericLessThan", 1.5, "1.25", True),
    ("NumericLessThanEquals", 10, 10, True),
    ("NumericLessThanEquals", 10, 11, False),
    ("NumericGreaterThan", 10, 11, True),
    ("NumericGreaterThan", 10, 10, False),
    ("NumericGreaterThanEquals", 10, 10, True),
    ("NumericGreaterThanEquals", 10, -3, False),
    ("NumericGreaterThanEquals", 10, ABSENT, False),
)
def test_numeric_operators(
    operator: str, policy: object, request_value: Value, expected: bool
) -> None:
    check(operator, policy, request_value, expected)


JAN_1 = "2024-01-01T00:00:00Z"
JAN_1_EPOCH = 1704067200


@cases(
    ("DateEquals", JAN_1, str(JAN_1_EPOCH), True),  # ISO policy, epoch request
    ("DateEquals", str(JAN_1_EPOCH), JAN_1, True),  # epoch policy, ISO request
    ("DateEquals", JAN_1_EPOCH, JAN_1_EPOCH, True),  # JSON number, int key
    ("DateEquals", JAN_1, "2024-01-01T01:00:00+01:00", True),  # offsets are honoured
    ("DateEquals", JAN_1, "2024-01-01T00:00:00", True),  # naive means UTC
    ("DateEquals", JAN_1, "2024-01-01", True),
    ("DateEquals", JAN_1, "2024-01-01T00:00:01Z", False),
    ("DateEquals", JAN_1, "not a date", False),
    ("DateEquals", JAN_1, ABSENT, False),
    ("DateNotEquals", JAN_1, "2024-01-02T00:00:00Z", True),
    ("DateNotEquals", JAN_1, str(JAN_1_EPOCH), False),
    ("DateNotEquals", JAN_1, ABSENT, True),
    ("DateLessThan", "2030-01-01T00:00:00Z", "2024-05-01T12:00:00Z", True),
    ("DateLessThan", JAN_1, JAN_1, False),
    ("DateLessThanEquals", JAN_1, JAN_1_EPOCH, True),
    ("DateLessThanEquals", JAN_1, JAN_1_EPOCH + 1, False),
    ("DateGreaterThan", JAN_1, 1735689600, True),  # 2025-01-01 as epoch seconds
    ("DateGreaterThan", JAN_1, "2023-12-31T23:59:59Z", False),
    ("DateGreaterThanEquals", JAN_1, JAN_1, True),
    ("DateGreaterThanEquals", JAN_1, ABSENT, False),
)
def test_date_operators(
    operator: str, policy: object, request_value: Value, expected: bool
) -> None:
    check(operator, policy, request_value, expected)


@cases(
    ("Bool", "true", True, True),
    ("Bool", True, "true", True),
    ("Bool", "true", "TRUE", True),
    ("Bool", "false", True, False),
    ("Bool", False, False, True),
    ("Bool", "true", "yes", False),
    ("Bool", "true", ABSENT, False),
)
def test_bool_operator(operator: str, policy: object, request_value: Value, expected: bool) -> None:
    check(operator, policy, request_value, expected)


@cases(
    ("IpAddress", "203.0.113.0/24", "203.0.113.7", True),
    ("IpAddress", "203.0.113.0/24", "198.51.100.1", False),
    ("IpAddress", "10.0.0.1", "10.0.0.1", True),  # a bare address is a /32
    ("IpAddress", "10.0.0.1/8", "10.200.0.1", True),  # host bits are ignored
    ("IpAddress", "2001:db8::/32", "2001:db8::1", True),
    ("IpAddress", "2001:db8::/32", "2001:db9::1", False),
    ("IpAddress", "0.0.0.0/0", "2001:db8::1", False),  # versions never mix
    ("IpAddress", ["10.0.0.0/8", "2001:db8::/32"], "2001:db8::5", True),
    ("IpAddress", "10.0.0.0/8", "not-an-ip", False),
    ("IpAddress", "10.0.0.0/8", ABSENT, False),
    ("NotIpAddress", "10.0.0.0/8", "192.168.0.1", True),
    ("NotIpAddress", "10.0.0.0/8", "10.1.2.3", False),
    ("NotIpAddress", "2001:db8::/32", "2001:db8::1", False),
    ("NotIpAddress", "10.0.0.0/8", ABSENT, True),
)
def test_ip_operators(operator: str, policy: object, request_value: Value, expected: bool) -> None:
    check(operator, policy, request_value, expected)


@cases(
    ("Null", "true", ABSENT, True),
    ("Null", "true", "x", False),
    ("Null", "true", [], True),  # an empty multi-valued key counts as absent
    ("Null", True, ABSENT, True),
    ("Null", "false", "x", True),
    ("Null", "false", ABSENT, False),
    ("Null", False, "", True),  # present, though empty
)
def test_null_operator(operator: str, policy: object, request_value: Value, expected: bool) -> None:
    check(operator, policy, request_value, expected)


@cases(
    ("StringEqualsIfExists", "a", ABSENT, True),
    ("StringEqualsIfExists", "a", "a", True),
    ("StringEqualsIfExists", "a", "b", False),
    ("StringNotEqualsIfExists", "a", ABSENT, True),
    ("StringNotEqualsIfExists", "a", "a", False),
    ("StringLikeIfExists", "a*", ABSENT, True),
    ("ArnLikeIfExists", ROLE, ABSENT, True),
    ("NumericLessThanIfExists", 10, ABSENT, True),
    ("NumericLessThanIfExists", 10, 11, False),
    ("DateGreaterThanIfExists", JAN_1, ABSENT, True),
    ("BoolIfExists", "true", ABSENT, True),
    ("BoolIfExists", "true", False, False),
    ("IpAddressIfExists", "10.0.0.0/8", ABSENT, True),
    ("IpAddressIfExists", "10.0.0.0/8", "192.168.0.1", False),
    ("NotIpAddressIfExists", "10.0.0.0/8", ABSENT, True),
)
def test_if_exists(operator: str, policy: object, request_value: Value, expected: bool) -> None:
    check(operator, policy, request_value, expected)


ANY = "ForAnyValue:StringEquals"
ALL = "ForAllValues:StringEquals"


@cases(
    (ANY, ["app", "env"], ["tenant", "env"], True),
    (ANY, ["app", "env"], ["tenant", "x"], False),
    (ANY, ["app", "env"], "env", True),
    (ANY, ["app"], ABSENT, False),
    (ANY, ["app"], [], False),
    ("ForAnyValue:StringEqualsIfExists", ["app"], ABSENT, True),
    ("ForAnyValue:StringLike", ["app*"], ["x", "application"], True),
    ("ForAnyValue:StringNotEquals", ["app"], ["app", "env"], True),  # env is not app
    ("ForAnyValue:StringNotEquals", ["app"], ["app"], False),
    (ALL, ["app", "env"], ["app", "env"], True),
    (ALL, ["app", "env"], ["app"], True),
    (ALL, ["app", "env"], ["app", "tenant"], False),
    (ALL, ["app"], ABSENT, True),
    (ALL, ["app"], [], True),
    ("ForAllValues:StringLike", ["aws:*"], ["aws:a", "aws:b"], True),
    ("ForAllValues:StringLike", ["aws:*"], ["aws:a", "x:b"], False),
    ("ForAllValues:StringNotEquals", ["app"], ["env", "tenant"], True),
    ("ForAllValues:StringNotEquals", ["app"], ["env", "app"], False),
    ("ForAllValues:NumericLessThan", 10, ["1", "2"], True),
    ("ForAllValues:IpAddress", "10.0.0.0/8", ["10.0.0.1", "10.9.9.9"], True),
)
def test_set_operators(operator: str, policy: object, request_value: Value, expected: bool) -> None:
    check(operator, policy, request_value, expected)


def test_key_names_are_case_insensitive() -> None:
    ctx = RequestContext("kms:Encrypt", "*", keys={"AWS:SOURCEIP": "10.1.2.3"})
    assert ctx.values("aws:SourceIp") == ("10.1.2.3",)
    assert ctx.values("aws:sourceip") == ("10.1.2.3",)
    assert ctx.values("aws:Other") == ()
    assert holds("IpAddress", "10.0.0.0/8", "10.1.2.3", key="K:KEY")


def test_all_conditions_must_hold() -> None:
    text = json.dumps(
        {
            "Statement": {
                "Effect": "Allow",
                "Action": "kms:Decrypt",
                "Condition": {
                    "StringEquals": {"kms:ViaService": "s3.us-east-1.amazonaws.com"},
                    "Bool": {"aws:SecureTransport": "true"},
                },
            }
        }
    )
    doc = parse_policy(text)
    both: dict[str, str | bool] = {
        "kms:ViaService": "s3.us-east-1.amazonaws.com",
        "aws:SecureTransport": True,
    }
    assert evaluate(doc, RequestContext("kms:Decrypt", "*", keys=both)) is Decision.ALLOW
    for missing in both:
        keys = {k: v for k, v in both.items() if k != missing}
        assert (
            evaluate(doc, RequestContext("kms:Decrypt", "*", keys=keys)) is Decision.IMPLICIT_DENY
        )


@pytest.mark.parametrize(
    ("pattern", "value", "ignore_case", "expected"),
    [
        ("*", "", False, True),
        ("a*", "a", False, True),
        ("a?", "a", False, False),
        ("?", "", False, False),
        ("*b*", "abc", False, True),
        ("a*b*c", "axxbyyc", False, True),
        ("a*b", "abx", False, False),
        ("**", "x", False, True),
        ("a.c", "abc", False, False),  # regex characters are literal
        ("[ab]", "a", False, False),
        ("KMS:Gen*", "kms:GenerateDataKey", True, True),
        ("KMS:Gen*", "kms:GenerateDataKey", False, False),
    ],
)
def test_glob_match(pattern: str, value: str, ignore_case: bool, expected: bool) -> None:
    assert glob_match(pattern, value, ignore_case=ignore_case) is expected


def _reference_glob(pattern: str, value: str) -> bool:
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, re.DOTALL) is not None


@settings(database=None, max_examples=300, deadline=None)
@given(st.text(alphabet="ab*?", max_size=8), st.text(alphabet="ab", max_size=10))
def test_glob_match_agrees_with_a_regex(pattern: str, value: str) -> None:
    assert glob_match(pattern, value) is _reference_glob(pattern, value)
