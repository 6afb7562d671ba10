"""parse_policy: JSON text in, frozen dataclasses out, or MalformedPolicyDocument."""

from __future__ import annotations

import dataclasses
import json
import re

import pytest

from latchkey.aws.policy import (
    Effect,
    MalformedPolicyDocument,
    PolicyDocument,
    Principal,
    parse_policy,
)

KMS_DEFAULT_KEY_POLICY = json.dumps(
    {
        "Version": "2012-10-17",
        "Id": "key-default-1",
        "Statement": [
            {
                "Sid": "Enable IAM User Permissions",
                "Effect": "Allow",
                "Principal": {"AWS": "arn:aws:iam::111122223333:root"},
                "Action": "kms:*",
                "Resource": "*",
            }
        ],
    }
)


def statement(**fields: object) -> str:
    """A one-statement document; ``fields`` override an Allow of kms:Encrypt."""
    body: dict[str, object] = {"Effect": "Allow", "Action": "kms:Encrypt", **fields}
    return json.dumps({"Version": "2012-10-17", "Statement": body})


def test_kms_default_key_policy_parses_with_id() -> None:
    doc = parse_policy(KMS_DEFAULT_KEY_POLICY, require_principal=True)
    assert doc.version == "2012-10-17"
    assert doc.id == "key-default-1"
    (stmt,) = doc.statements
    assert stmt.sid == "Enable IAM User Permissions"
    assert stmt.effect is Effect.ALLOW
    assert stmt.principal == Principal(wildcard=False, aws=("arn:aws:iam::111122223333:root",))
    assert stmt.not_principal is None
    assert stmt.actions == ("kms:*",)
    assert stmt.not_actions is None
    assert stmt.resources == ("*",)
    assert stmt.not_resources is None
    assert stmt.conditions == ()


def test_defaults_and_shorthands() -> None:
    doc = parse_policy('{"Statement": {"Effect": "Deny", "NotAction": ["kms:A", "kms:B"]}}')
    assert doc.version == "2008-10-17"
    assert doc.id is None
    (stmt,) = doc.statements
    assert stmt.effect is Effect.DENY
    assert stmt.actions is None
    assert stmt.not_actions == ("kms:A", "kms:B")
    assert stmt.resources is None  # absent: evaluation treats it as "*"
    assert stmt.not_resources is None


def test_statement_list_keeps_order() -> None:
    text = json.dumps(
        {
            "Statement": [
                {"Sid": "one", "Effect": "Allow", "Action": "kms:A"},
                {"Sid": "two", "Effect": "Deny", "Action": "kms:B", "NotResource": "arn:x"},
            ]
        }
    )
    doc = parse_policy(text)
    assert [s.sid for s in doc.statements] == ["one", "two"]
    assert doc.statements[1].not_resources == ("arn:x",)


@pytest.mark.parametrize(
    ("principal", "expected"),
    [
        pytest.param("*", Principal(wildcard=True), id="star"),
        pytest.param({"AWS": "*"}, Principal(wildcard=True, aws=("*",)), id="aws-star"),
        pytest.param(
            {"AWS": ["111122223333", "arn:aws:iam::444455556666:role/r"]},
            Principal(False, aws=("111122223333", "arn:aws:iam::444455556666:role/r")),
            id="aws-list",
        ),
        pytest.param(
            {"Federated": "arn:aws:iam::000000000000:oidc-provider/127.0.0.1:8443"},
            Principal(False, federated=("arn:aws:iam::000000000000:oidc-provider/127.0.0.1:8443",)),
            id="federated",
        ),
        pytest.param(
            {"Service": ["kms.amazonaws.com"], "AWS": "111122223333"},
            Principal(False, aws=("111122223333",), service=("kms.amazonaws.com",)),
            id="mixed",
        ),
    ],
)
def test_principal_forms(principal: object, expected: Principal) -> None:
    doc = parse_policy(statement(Principal=principal), require_principal=True)
    assert doc.statements[0].principal == expected


def test_not_principal_parses() -> None:
    doc = parse_policy(statement(NotPrincipal={"AWS": "111122223333"}), require_principal=True)
    assert doc.statements[0].principal is None
    assert doc.statements[0].not_principal == Principal(False, aws=("111122223333",))


def test_conditions_are_normalised_to_text() -> None:
    text = statement(
        Condition={
            "Bool": {"aws:SecureTransport": True},
            "NumericLessThan": {"kms:GrantCount": 5, "x:Ratio": 1.5},
            "ForAnyValue:StringLikeIfExists": {"kms:EncryptionContextKeys": ["app*", "env"]},
        }
    )
    conds = parse_policy(text).statements[0].conditions
    assert [(c.operator, c.key, c.values) for c in conds] == [
        ("Bool", "aws:SecureTransport", ("true",)),
        ("NumericLessThan", "kms:GrantCount", ("5",)),
        ("NumericLessThan", "x:Ratio", ("1.5",)),
        ("ForAnyValue:StringLikeIfExists", "kms:EncryptionContextKeys", ("app*", "env")),
    ]
    last = conds[-1]
    assert (last.base, last.if_exists, last.qualifier) == ("StringLike", True, "ForAnyValue")
    assert (conds[0].base, conds[0].if_exists, conds[0].qualifier) == ("Bool", False, None)


@pytest.mark.parametrize("require_principal", [None, True])
def test_principal_allowed_unless_identity_policy(require_principal: bool | None) -> None:
    parse_policy(statement(Principal="*"), require_principal=require_principal)


@pytest.mark.parametrize("require_principal", [None, False])
def test_principal_optional_unless_required(require_principal: bool | None) -> None:
    parse_policy(statement(), require_principal=require_principal)


def test_documents_are_frozen() -> None:
    doc = parse_policy(KMS_DEFAULT_KEY_POLICY)
    with pytest.raises(dataclasses.FrozenInstanceError):
        doc.version = "2008-10-17"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        doc.statements[0].sid = "x"  # type: ignore[misc]


def test_size_limit_is_32_kib_inclusive() -> None:
    base = statement()
    at_limit = base + " " * (32 * 1024 - len(base))
    assert isinstance(parse_policy(at_limit), PolicyDocument)
    with pytest.raises(MalformedPolicyDocument, match="32769 bytes, over the 32768-byte limit"):
        parse_policy(at_limit + " ")


def test_size_limit_counts_utf8_bytes() -> None:
    text = statement(Sid="é" * 16384)  # 2 bytes each in UTF-8
    with pytest.raises(MalformedPolicyDocument, match="over the 32768-byte limit"):
        parse_policy(text)


def test_malformed_is_a_value_error() -> None:
    assert issubclass(MalformedPolicyDocument, ValueError)


def two_statements(second: dict[str, object]) -> str:
    return json.dumps({"Statement": [{"Effect": "Allow", "Action": "kms:A"}, second]})


MALFORMED: list[tuple[str, str, bool | None, str]] = [
    # (id, document, require_principal, expected message, matched literally at the start)
    ("bad-json", '{"Statement": [', None, "Policy document is not valid JSON: "),
    (
        "nan",
        statement(Condition={"NumericEquals": {"k": float("nan")}}),
        None,
        "Policy document is not valid JSON: NaN",
    ),
    ("not-object", "[]", None, "Policy document must be a JSON object"),
    (
        "duplicate-key",
        '{"Statement": {"Effect": "Allow", "Effect": "Deny", "Action": "a:b"}}',
        None,
        "Policy document has a duplicate key 'Effect'",
    ),
    (
        "too-deep",
        '{"Statement": ' + "[" * 5000 + "]" * 5000 + "}",
        None,
        "Policy document is nested too deeply",
    ),
    (
        "unknown-top-key",
        '{"Statement": [], "Statment": []}',
        None,
        "Policy document has an unknown element 'Statment'",
    ),
    (
        "bad-version",
        '{"Version": "2012-10-18", "Statement": []}',
        None,
        "Policy document has an invalid Version '2012-10-18'",
    ),
    ("bad-id", '{"Id": 7, "Statement": []}', None, "Policy document has an invalid Id 7"),
    ("no-statement", '{"Version": "2012-10-17"}', None, "Policy document has no Statement"),
    ("statement-string", '{"Statement": "Allow"}', None, "Policy document's Statement must be"),
    (
        "statement-not-object",
        '{"Statement": [1]}',
        None,
        "Policy statement 1 must be a JSON object",
    ),
    (
        "bad-effect",
        two_statements({"Effect": "Alow", "Action": "kms:A"}),
        None,
        "Policy statement 2 has an invalid Effect 'Alow'",
    ),
    (
        "effect-case",
        statement(Effect="allow"),
        None,
        "Policy statement 1 has an invalid Effect 'allow'",
    ),
    ("no-effect", '{"Statement": {"Action": "kms:A"}}', None, "Policy statement 1 has no Effect"),
    ("bad-sid", statement(Sid=1), None, "Policy statement 1 has an invalid Sid 1"),
    (
        "unknown-statement-key",
        statement(Actions="kms:A"),
        None,
        "Policy statement 1 has an unknown element 'Actions'",
    ),
    (
        "action-and-not-action",
        statement(NotAction="kms:B"),
        None,
        "Policy statement 1 has both Action and NotAction",
    ),
    (
        "no-action",
        '{"Statement": {"Effect": "Allow", "Resource": "*"}}',
        None,
        "Policy statement 1 has neither Action nor NotAction",
    ),
    (
        "action-number",
        statement(Action=5),
        None,
        "Policy statement 1 has an invalid Action: expected a string or a list of strings",
    ),
    (
        "action-empty-list",
        statement(Action=[]),
        None,
        "Policy statement 1 has an empty Action list",
    ),
    (
        "action-empty-string",
        statement(Action=""),
        None,
        "Policy statement 1 has an empty string in Action",
    ),
    (
        "action-no-service",
        statement(Action="Encrypt"),
        None,
        "Policy statement 1 has an invalid Action 'Encrypt'",
    ),
    (
        "resource-and-not-resource",
        statement(Resource="*", NotResource="arn:x"),
        None,
        "Policy statement 1 has both Resource and NotResource",
    ),
    (
        "resource-nested-list",
        statement(Resource=[["*"]]),
        None,
        "Policy statement 1 has an invalid Resource",
    ),
    (
        "principal-and-not-principal",
        statement(Principal="*", NotPrincipal="*"),
        None,
        "Policy statement 1 has both Principal and NotPrincipal",
    ),
    (
        "principal-in-identity-policy",
        statement(Principal="*"),
        False,
        "Policy statement 1 has a Principal, which identity-based policies must not have",
    ),
    (
        "not-principal-in-identity-policy",
        statement(NotPrincipal={"AWS": "111122223333"}),
        False,
        "Policy statement 1 has a NotPrincipal",
    ),
    (
        "missing-principal",
        two_statements({"Effect": "Allow", "Action": "kms:A", "Principal": "*"}),
        True,
        "Policy statement 1 has no Principal or NotPrincipal",
    ),
    (
        "principal-bare-string",
        statement(Principal="arn:aws:iam::111122223333:root"),
        None,
        "Policy statement 1 has an invalid Principal",
    ),
    (
        "principal-empty-object",
        statement(Principal={}),
        None,
        "Policy statement 1 has an invalid Principal",
    ),
    (
        "principal-unknown-type",
        statement(Principal={"CanonicalUser": "abc"}),
        None,
        "Policy statement 1 has an unsupported Principal type 'CanonicalUser'",
    ),
    (
        "principal-empty-list",
        statement(Principal={"AWS": []}),
        None,
        "Policy statement 1 has an empty Principal AWS list",
    ),
    (
        "unknown-operator",
        statement(Condition={"StringEqual": {"k": "v"}}),
        None,
        "Policy statement 1 has an unknown condition operator 'StringEqual'",
    ),
    (
        "unknown-qualifier",
        statement(Condition={"ForSomeValues:StringEquals": {"k": "v"}}),
        None,
        "Policy statement 1 has an unknown condition operator 'ForSomeValues:StringEquals'",
    ),
    (
        "bare-if-exists",
        statement(Condition={"IfExists": {"k": "v"}}),
        None,
        "Policy statement 1 has an unknown condition operator 'IfExists'",
    ),
    (
        "null-if-exists",
        statement(Condition={"NullIfExists": {"k": "true"}}),
        None,
        "Policy statement 1 has an unknown condition operator 'NullIfExists'",
    ),
    (
        "condition-not-object",
        statement(Condition=["StringEquals"]),
        None,
        "Policy statement 1 has an invalid Condition: expected an object",
    ),
    (
        "operator-block-not-object",
        statement(Condition={"StringEquals": "v"}),
        None,
        "Policy statement 1 has an invalid Condition: 'StringEquals' must map",
    ),
    (
        "condition-value-object",
        statement(Condition={"StringEquals": {"k": {"a": "b"}}}),
        None,
        'Policy statement 1 has an invalid condition value {"a": "b"}',
    ),
    (
        "condition-value-null",
        statement(Condition={"StringEquals": {"k": None}}),
        None,
        "Policy statement 1 has an invalid condition value null",
    ),
    (
        "condition-value-nested",
        statement(Condition={"StringEquals": {"k": [["v"]]}}),
        None,
        'Policy statement 1 has an invalid condition value ["v"]',
    ),
    (
        "condition-values-empty",
        statement(Condition={"StringEquals": {"k": []}}),
        None,
        "Policy statement 1 has no values for condition key 'k'",
    ),
    (
        "condition-key-empty",
        statement(Condition={"StringEquals": {"": "v"}}),
        None,
        "Policy statement 1 has an empty condition key",
    ),
    (
        "numeric-value",
        statement(Condition={"NumericLessThan": {"k": "ten"}}),
        None,
        "Policy statement 1 has an invalid numeric value 'ten' for condition key 'k'",
    ),
    (
        "date-value",
        statement(Condition={"DateLessThan": {"k": "yesterday"}}),
        None,
        "Policy statement 1 has an invalid date value 'yesterday'",
    ),
    (
        "ip-value",
        statement(Condition={"IpAddress": {"k": "10.0.0.0/33"}}),
        None,
        "Policy statement 1 has an invalid IP address or CIDR value '10.0.0.0/33'",
    ),
    (
        "bool-value",
        statement(Condition={"Bool": {"k": "yes"}}),
        None,
        "Policy statement 1 has an invalid boolean value 'yes'",
    ),
    (
        "null-value",
        statement(Condition={"Null": {"k": "maybe"}}),
        None,
        "Policy statement 1 has an invalid boolean value 'maybe'",
    ),
]


@pytest.mark.parametrize(
    ("text", "require_principal", "message"),
    [pytest.param(text, req, msg, id=case_id) for case_id, text, req, msg in MALFORMED],
)
def test_malformed_documents(text: str, require_principal: bool | None, message: str) -> None:
    with pytest.raises(MalformedPolicyDocument, match="^" + re.escape(message)):
        parse_policy(text, require_principal=require_principal)
