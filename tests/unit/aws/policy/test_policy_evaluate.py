"""evaluate / evaluate_all: principals, actions, resources, and how decisions combine."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from latchkey.aws.policy import (
    Decision,
    PolicyDocument,
    RequestContext,
    evaluate,
    evaluate_all,
    parse_policy,
    statement_matches,
)

ACCOUNT = "111122223333"
ROOT = f"arn:aws:iam::{ACCOUNT}:root"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/app"
SESSION = f"arn:aws:sts::{ACCOUNT}:assumed-role/app/session-1"
KEY = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
OTHER_KEY = f"arn:aws:kms:us-east-1:{ACCOUNT}:key/secret"

KMS_DEFAULT_KEY_POLICY = parse_policy(
    json.dumps(
        {
            "Version": "2012-10-17",
            "Id": "key-default-1",
            "Statement": [
                {
                    "Sid": "Enable IAM User Permissions",
                    "Effect": "Allow",
                    "Principal": {"AWS": ROOT},
                    "Action": "kms:*",
                    "Resource": "*",
                }
            ],
        }
    ),
    require_principal=True,
)

PROVIDER = "arn:aws:iam::000000000000:oidc-provider/127.0.0.1:8443"
OIDC_TRUST_POLICY = parse_policy(
    json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Federated": PROVIDER},
                    "Action": "sts:AssumeRoleWithWebIdentity",
                    "Condition": {
                        "StringEquals": {
                            "127.0.0.1:8443:aud": "sts.amazonaws.com",
                            "127.0.0.1:8443:sub": "local-apps",
                        }
                    },
                }
            ],
        }
    ),
    require_principal=True,
)


def policy(*statements: dict[str, object]) -> PolicyDocument:
    return parse_policy(json.dumps({"Version": "2012-10-17", "Statement": list(statements)}))


def ctx(action: str = "kms:Encrypt", resource: str = KEY, *principals: str) -> RequestContext:
    return RequestContext(action=action, resource=resource, principals=frozenset(principals))


ALLOW_ENCRYPT = policy({"Effect": "Allow", "Action": "kms:Encrypt", "Resource": "*"})
DENY_ENCRYPT = policy({"Effect": "Deny", "Action": "kms:Encrypt", "Resource": "*"})
ALLOW_DECRYPT = policy({"Effect": "Allow", "Action": "kms:Decrypt", "Resource": "*"})


def test_decision_values() -> None:
    assert [d.value for d in Decision] == ["Allow", "ExplicitDeny", "ImplicitDeny"]


@pytest.mark.parametrize(
    ("principals", "action", "expected"),
    [
        pytest.param({ROOT}, "kms:Encrypt", Decision.ALLOW, id="root"),
        pytest.param({ACCOUNT}, "kms:CreateGrant", Decision.ALLOW, id="bare-account-id"),
        pytest.param({ROLE}, "kms:Encrypt", Decision.IMPLICIT_DENY, id="unlisted-role"),
        pytest.param({"arn:aws:iam::444455556666:root"}, "kms:Encrypt", Decision.IMPLICIT_DENY,
                     id="other-account"),
        pytest.param(set(), "kms:Encrypt", Decision.IMPLICIT_DENY, id="anonymous"),
        pytest.param({ROOT}, "s3:GetObject", Decision.IMPLICIT_DENY, id="other-service"),
    ],
)  # fmt: skip
def test_kms_default_key_policy(principals: set[str], action: str, expected: Decision) -> None:
    assert evaluate(KMS_DEFAULT_KEY_POLICY, ctx(action, KEY, *principals)) is expected


AUD, SUB = "127.0.0.1:8443:aud", "127.0.0.1:8443:sub"
GOOD = {AUD: "sts.amazonaws.com", SUB: "local-apps"}
WEB_IDENTITY = "sts:AssumeRoleWithWebIdentity"


@pytest.mark.parametrize(
    ("keys", "principal", "action", "expected"),
    [
        pytest.param(GOOD, PROVIDER, WEB_IDENTITY, Decision.ALLOW, id="match"),
        pytest.param({AUD.upper(): "sts.amazonaws.com", SUB.title(): "local-apps"},
                     PROVIDER, WEB_IDENTITY, Decision.ALLOW, id="key-names-ignore-case"),
        pytest.param({**GOOD, SUB: "other"}, PROVIDER, WEB_IDENTITY, Decision.IMPLICIT_DENY,
                     id="wrong-sub"),
        pytest.param({**GOOD, SUB: "LOCAL-APPS"}, PROVIDER, WEB_IDENTITY, Decision.IMPLICIT_DENY,
                     id="values-are-case-sensitive"),
        pytest.param({**GOOD, AUD: "other"}, PROVIDER, WEB_IDENTITY, Decision.IMPLICIT_DENY,
                     id="wrong-aud"),
        pytest.param({SUB: "local-apps"}, PROVIDER, WEB_IDENTITY, Decision.IMPLICIT_DENY,
                     id="missing-aud"),
        pytest.param({AUD: "sts.amazonaws.com"}, PROVIDER, WEB_IDENTITY, Decision.IMPLICIT_DENY,
                     id="missing-sub"),
        pytest.param(GOOD, "arn:aws:iam::000000000000:oidc-provider/other", WEB_IDENTITY,
                     Decision.IMPLICIT_DENY, id="other-provider"),
        pytest.param(GOOD, PROVIDER, "sts:AssumeRole", Decision.IMPLICIT_DENY, id="other-action"),
    ],
)  # fmt: skip
def test_oidc_trust_policy(
    keys: dict[str, str], principal: str, action: str, expected: Decision
) -> None:
    request = RequestContext(action, "*", frozenset({principal}), keys)
    assert evaluate(OIDC_TRUST_POLICY, request) is expected


@pytest.mark.parametrize(
    ("docs", "expected"),
    [
        pytest.param([], Decision.IMPLICIT_DENY, id="no-documents"),
        pytest.param([ALLOW_ENCRYPT], Decision.ALLOW, id="allow"),
        pytest.param([ALLOW_DECRYPT], Decision.IMPLICIT_DENY, id="nothing-matches"),
        pytest.param([ALLOW_DECRYPT, ALLOW_ENCRYPT], Decision.ALLOW, id="one-allow-is-enough"),
        pytest.param([ALLOW_ENCRYPT, DENY_ENCRYPT], Decision.EXPLICIT_DENY, id="deny-after-allow"),
        pytest.param([DENY_ENCRYPT, ALLOW_ENCRYPT], Decision.EXPLICIT_DENY, id="deny-before-allow"),
    ],
)
def test_evaluate_all(docs: list[PolicyDocument], expected: Decision) -> None:
    assert evaluate_all(docs, ctx()) is expected
    assert evaluate_all(iter(docs), ctx()) is expected  # any iterable


def test_deny_beats_allow_within_one_document() -> None:
    doc = policy(
        {"Effect": "Allow", "Action": "kms:*", "Resource": "*"},
        {"Effect": "Deny", "Action": "kms:Encrypt", "Resource": KEY},
    )
    assert evaluate(doc, ctx("kms:Encrypt", KEY)) is Decision.EXPLICIT_DENY
    assert evaluate(doc, ctx("kms:Encrypt", OTHER_KEY)) is Decision.ALLOW
    assert evaluate(doc, ctx("kms:Decrypt", KEY)) is Decision.ALLOW


@pytest.mark.parametrize(
    ("pattern", "action", "expected"),
    [
        ("kms:*", "kms:Encrypt", True),
        ("*", "sts:AssumeRole", True),
        ("KMS:encrypt", "kms:Encrypt", True),
        ("kms:Encrypt", "KMS:ENCRYPT", True),
        ("kms:Generate*", "kms:GenerateDataKeyWithoutPlaintext", True),
        ("kms:Generate*", "kms:Encrypt", False),
        ("kms:?ecrypt", "kms:Decrypt", True),
        ("kms:Encrypt", "kms:EncryptX", False),
        ("s3:*", "kms:Encrypt", False),
    ],
)
def test_action_matching(pattern: str, action: str, expected: bool) -> None:
    (stmt,) = policy({"Effect": "Allow", "Action": pattern}).statements
    assert statement_matches(stmt, ctx(action)) is expected


@pytest.mark.parametrize(
    ("pattern", "resource", "expected"),
    [
        ("*", KEY, True),
        (KEY, KEY, True),
        (f"arn:aws:kms:*:{ACCOUNT}:key/*", KEY, True),
        (f"arn:aws:kms:us-east-?:{ACCOUNT}:key/*", KEY, True),
        (KEY.upper(), KEY, False),  # resources are case-sensitive
        (f"arn:aws:kms:*:{ACCOUNT}:alias/*", KEY, False),
    ],
)
def test_resource_matching(pattern: str, resource: str, expected: bool) -> None:
    (stmt,) = policy({"Effect": "Allow", "Action": "*", "Resource": pattern}).statements
    assert statement_matches(stmt, ctx("kms:Encrypt", resource)) is expected


def test_absent_resource_means_every_resource() -> None:
    doc = policy({"Effect": "Allow", "Action": "kms:Encrypt"})
    assert evaluate(doc, ctx("kms:Encrypt", OTHER_KEY)) is Decision.ALLOW


def test_not_action() -> None:
    doc = policy({"Effect": "Allow", "NotAction": ["kms:ScheduleKey*", "kms:Disable*"]})
    assert evaluate(doc, ctx("kms:Encrypt")) is Decision.ALLOW
    assert evaluate(doc, ctx("kms:ScheduleKeyDeletion")) is Decision.IMPLICIT_DENY
    assert evaluate(doc, ctx("KMS:disableKey")) is Decision.IMPLICIT_DENY


def test_not_resource() -> None:
    doc = policy({"Effect": "Allow", "Action": "kms:*", "NotResource": OTHER_KEY})
    assert evaluate(doc, ctx("kms:Encrypt", KEY)) is Decision.ALLOW
    assert evaluate(doc, ctx("kms:Encrypt", OTHER_KEY)) is Decision.IMPLICIT_DENY


def test_not_principal() -> None:
    doc = policy(
        {"Effect": "Allow", "Principal": "*", "Action": "kms:*"},
        {"Effect": "Deny", "NotPrincipal": {"AWS": [ROLE, ACCOUNT]}, "Action": "kms:*"},
    )
    assert evaluate(doc, ctx("kms:Encrypt", KEY, ROLE)) is Decision.ALLOW
    assert evaluate(doc, ctx("kms:Encrypt", KEY, ROOT)) is Decision.ALLOW  # via the account id
    other = "arn:aws:iam::111122223333:role/other"
    assert evaluate(doc, ctx("kms:Encrypt", KEY, other)) is Decision.EXPLICIT_DENY
    assert evaluate(doc, ctx("kms:Encrypt", KEY)) is Decision.EXPLICIT_DENY


@pytest.mark.parametrize(
    ("principal", "caller", "expected"),
    [
        pytest.param("*", set(), True, id="star-matches-anonymous"),
        pytest.param({"AWS": "*"}, {ROLE}, True, id="aws-star"),
        pytest.param({"AWS": ACCOUNT}, {ROOT}, True, id="account-id-is-root"),
        pytest.param({"AWS": ROOT}, {ACCOUNT}, True, id="root-is-account-id"),
        pytest.param({"AWS": ROOT}, {ROLE}, False, id="root-is-not-a-role"),
        pytest.param({"AWS": ROLE}, {SESSION}, False, id="session-is-not-its-role"),
        pytest.param({"AWS": ROLE}, {SESSION, ROLE}, True, id="caller-lists-its-role"),
        pytest.param({"AWS": ROLE.upper()}, {ROLE}, False, id="exact-string"),
        pytest.param({"Service": "kms.amazonaws.com"}, {"kms.amazonaws.com"}, True, id="service"),
        pytest.param({"Service": "kms.amazonaws.com"}, {"s3.amazonaws.com"}, False,
                     id="other-service"),
        pytest.param({"Federated": PROVIDER}, {PROVIDER}, True, id="federated"),
        pytest.param({"Federated": PROVIDER, "AWS": ROLE}, {ROLE}, True, id="any-entry"),
    ],
)  # fmt: skip
def test_principal_matching(principal: object, caller: set[str], expected: bool) -> None:
    (stmt,) = policy({"Effect": "Allow", "Principal": principal, "Action": "kms:*"}).statements
    assert statement_matches(stmt, ctx("kms:Encrypt", KEY, *caller)) is expected


def test_identity_policy_statements_apply_to_anyone() -> None:
    (stmt,) = ALLOW_ENCRYPT.statements
    assert statement_matches(stmt, ctx()) is True
    assert statement_matches(stmt, ctx("kms:Encrypt", KEY, ROLE)) is True


def test_encryption_context_keys() -> None:
    doc = policy(
        {
            "Effect": "Allow",
            "Action": "kms:Encrypt",
            "Condition": {
                "ForAllValues:StringEquals": {"kms:EncryptionContextKeys": ["app", "env"]}
            },
        },
        {
            "Effect": "Deny",
            "Action": "kms:*",
            "Condition": {"ForAnyValue:StringLike": {"kms:EncryptionContextKeys": "secret*"}},
        },
    )

    def decide(context_keys: list[str]) -> Decision:
        keys = {"kms:EncryptionContextKeys": context_keys}
        return evaluate(doc, RequestContext("kms:Encrypt", KEY, keys=keys))

    assert decide(["app"]) is Decision.ALLOW
    assert decide([]) is Decision.ALLOW
    assert decide(["app", "tenant"]) is Decision.IMPLICIT_DENY
    assert decide(["app", "secret-x"]) is Decision.EXPLICIT_DENY


def test_request_context_is_frozen_and_hashable() -> None:
    request = RequestContext("kms:Encrypt", KEY, frozenset({ROLE}), {"k": "v"})
    assert hash(request) == hash(RequestContext("kms:Encrypt", KEY, frozenset({ROLE}), {"k": "v"}))
    assert request == RequestContext("kms:Encrypt", KEY, frozenset({ROLE}), {"k": "v"})
    with pytest.raises(AttributeError):
        request.action = "kms:Decrypt"  # type: ignore[misc]


# Property: adding a Deny statement never turns a decision into Allow, and a Deny that
# matches always yields an explicit deny; a Deny that does not match changes nothing.

ACTIONS = ["kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey", "sts:AssumeRole"]
PATTERNS = ["*", "kms:*", "kms:Encrypt", "KMS:decrypt", "kms:Gen*", "kms:?ncrypt", "sts:*"]
RESOURCES = [KEY, OTHER_KEY, f"arn:aws:kms:*:{ACCOUNT}:key/*", "*"]
PRINCIPALS = [ROOT, ROLE, ACCOUNT, "kms.amazonaws.com"]
CONDITIONS = [
    {"StringEquals": {"kms:ViaService": "s3.us-east-1.amazonaws.com"}},
    {"Bool": {"aws:SecureTransport": "true"}},
    {"Null": {"kms:ViaService": "true"}},
    {"StringNotEqualsIfExists": {"kms:ViaService": "ec2.us-east-1.amazonaws.com"}},
]
KEYS = {"kms:ViaService": "s3.us-east-1.amazonaws.com", "aws:SecureTransport": True}


@st.composite
def statements(draw: st.DrawFn, effect: str | None = None) -> dict[str, object]:
    stmt: dict[str, object] = {"Effect": effect or draw(st.sampled_from(["Allow", "Deny"]))}
    stmt[draw(st.sampled_from(["Action", "NotAction"]))] = draw(
        st.lists(st.sampled_from(PATTERNS), min_size=1, max_size=3)
    )
    if draw(st.booleans()):
        stmt[draw(st.sampled_from(["Resource", "NotResource"]))] = draw(st.sampled_from(RESOURCES))
    principal = draw(st.sampled_from([None, "*", *({"AWS": p} for p in PRINCIPALS)]))
    if principal is not None:
        stmt[draw(st.sampled_from(["Principal", "NotPrincipal"]))] = principal
    stmt["Condition"] = draw(st.sampled_from([{}, *CONDITIONS]))
    return stmt


requests = st.builds(
    RequestContext,
    action=st.sampled_from(ACTIONS),
    resource=st.sampled_from([KEY, OTHER_KEY]),
    principals=st.frozensets(st.sampled_from(PRINCIPALS), max_size=2),
    keys=st.dictionaries(st.sampled_from(list(KEYS)), st.sampled_from(list(KEYS.values()))),
)


@settings(database=None, max_examples=300, deadline=None)
@given(st.lists(statements(), max_size=4), statements(effect="Deny"), requests)
def test_adding_a_deny_never_allows(
    base: list[dict[str, object]], deny: dict[str, object], request: RequestContext
) -> None:
    before = evaluate(policy(*base), request)
    with_deny = policy(*base, deny)
    after = evaluate(with_deny, request)
    assert evaluate_all([policy(*base), policy(deny)], request) is after
    if statement_matches(with_deny.statements[-1], request):
        assert after is Decision.EXPLICIT_DENY
    else:
        assert after is before
    assert after is not Decision.ALLOW or before is Decision.ALLOW
