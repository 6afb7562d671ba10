"""Policy variables: ``${key}`` in Resource and condition values of 2012-10-17 policies."""

from __future__ import annotations

import json
from typing import Any

import pytest

from latchkey.aws.policy import Decision, RequestContext, evaluate, parse_policy

USER = "arn:aws:iam::111122223333:user/alice"
KEYS = {"aws:username": "alice", "aws:PrincipalTag/team": "blue", "aws:TagKeys": ["a", "b"]}


def decide(
    statement: dict[str, Any],
    resource: str,
    version: str = "2012-10-17",
    keys: dict[str, Any] | None = None,
) -> Decision:
    full = {"Effect": "Allow", "Action": "iam:*", **statement}
    doc = parse_policy(json.dumps({"Version": version, "Statement": [full]}))
    request = KEYS if keys is None else keys
    return evaluate(doc, RequestContext(action="iam:GetUser", resource=resource, keys=request))


@pytest.mark.parametrize(
    ("resource_pattern", "resource", "allowed"),
    [
        ("arn:aws:iam::111122223333:user/${aws:username}", USER, True),
        ("arn:aws:iam::111122223333:user/${aws:username}", USER + "x", False),
        ("arn:aws:iam::111122223333:user/${AWS:UserName}", USER, True),  # names ignore case
        ("arn:aws:iam::*:user/${aws:PrincipalTag/team}-*", USER.replace("alice", "blue-1"), True),
        ("arn:aws:iam::111122223333:user/${aws:missing}", USER, False),
        ("arn:aws:iam::111122223333:user/${aws:missing}*", USER, False),  # not "user/*"
        ("arn:aws:iam::111122223333:user/${aws:missing, 'alice'}", USER, True),  # its default
        ("arn:aws:iam::111122223333:user/${aws:TagKeys}", USER, False),  # multivalued: no value
        ("arn:aws:iam::111122223333:user/a${*}b", "arn:aws:iam::111122223333:user/a*b", True),
        ("arn:aws:iam::111122223333:user/a${*}b", "arn:aws:iam::111122223333:user/axb", False),
        ("arn:aws:iam::111122223333:user/a${?}", "arn:aws:iam::111122223333:user/ax", False),
        ("arn:aws:iam::111122223333:user/a${$}", "arn:aws:iam::111122223333:user/a$", True),
    ],
)
def test_variables_in_resource(resource_pattern: str, resource: str, allowed: bool) -> None:
    got = decide({"Resource": resource_pattern}, resource)
    assert got is (Decision.ALLOW if allowed else Decision.IMPLICIT_DENY)


def test_variables_are_text_in_2008_policies() -> None:
    pattern = "arn:aws:iam::111122223333:user/${aws:username}"
    assert decide({"Resource": pattern}, USER, "2008-10-17") is Decision.IMPLICIT_DENY
    assert decide({"Resource": pattern}, pattern, "2008-10-17") is Decision.ALLOW


def test_a_substituted_value_is_literal_in_a_pattern() -> None:
    keys = {"aws:username": "a*"}
    pattern = "arn:aws:iam::111122223333:user/${aws:username}"
    assert decide({"Resource": pattern}, USER, keys=keys) is Decision.IMPLICIT_DENY
    literal = "arn:aws:iam::111122223333:user/a*"
    assert decide({"Resource": pattern}, literal, keys=keys) is Decision.ALLOW


def test_unresolved_not_resource_keeps_the_statement_out() -> None:
    stmt = {"NotResource": "arn:aws:iam::111122223333:user/${aws:missing}"}
    assert decide(stmt, USER) is Decision.IMPLICIT_DENY
    stmt = {"NotResource": "arn:aws:iam::111122223333:user/${aws:username}"}
    assert decide(stmt, USER) is Decision.IMPLICIT_DENY
    assert decide(stmt, USER + "2") is Decision.ALLOW


@pytest.mark.parametrize(
    ("condition", "allowed"),
    [
        ({"StringEquals": {"aws:PrincipalTag/team": "${aws:PrincipalTag/team}"}}, True),
        ({"StringEquals": {"aws:username": "${aws:PrincipalTag/team}"}}, False),
        ({"StringLike": {"aws:username": "${aws:username}"}}, True),
        ({"StringNotEquals": {"aws:username": "${aws:username}"}}, False),
        ({"StringEquals": {"aws:username": ["${aws:missing}", "alice"]}}, True),
        ({"StringEquals": {"aws:username": "${aws:missing}"}}, False),
        ({"StringNotEquals": {"aws:username": "${aws:missing}"}}, False),  # no value: no match
        ({"StringEquals": {"aws:username": "${aws:missing, 'alice'}"}}, True),
        ({"StringEquals": {"aws:username": "x${*}"}}, False),
        ({"ArnLike": {"aws:PrincipalArn": "arn:aws:iam::*:user/${aws:username}"}}, True),
    ],
)
def test_variables_in_conditions(condition: dict[str, Any], allowed: bool) -> None:
    keys = {**KEYS, "aws:PrincipalArn": USER}
    got = decide({"Resource": "*", "Condition": condition}, USER, keys=keys)
    assert got is (Decision.ALLOW if allowed else Decision.IMPLICIT_DENY)


def test_a_variable_makes_the_decision_depend_on_the_request() -> None:
    doc = parse_policy(
        json.dumps({"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": "*", "Resource": "arn:x:${aws:username}"}]}),
        require_principal=False,
    )  # fmt: skip
    ctx = RequestContext(action="iam:GetUser", resource="arn:x:alice", keys=KEYS)
    assert evaluate(doc, ctx) is Decision.ALLOW
    assert ctx.consulted  # callers must not remember the decision for another request
