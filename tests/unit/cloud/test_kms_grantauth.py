"""The pure rules of KMS grants: operations per key type, encryption context constraints and how
strict a child grant must be, condition keys, and grant tokens."""

from __future__ import annotations

import pytest

from latchkey.aws.errors import AwsError
from latchkey.cloud.kms.grantauth import (
    Constraints,
    check_grant_tokens,
    decode_grant_token,
    encode_grant_token,
    operations_for,
    parse_constraints,
    parse_operations,
)
from latchkey.crypto.rootkey import RootKey
from latchkey.store.base import KmsKeyRecord

ROOT_KEY = RootKey(b"k" * 32)
GRANT_ID = "ab" * 32


def key(spec: str, usage: str) -> KmsKeyRecord:
    return KmsKeyRecord("id", "arn", "0", "r", 0.0, "", spec, usage, "Enabled", "AWS_KMS", "{}", 1)


@pytest.mark.parametrize(
    ("spec", "usage", "allowed", "refused"),
    [
        ("SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT", {"GenerateDataKeyPair", "ReEncryptTo"},
         {"Sign", "GetPublicKey", "GenerateMac"}),
        ("RSA_2048", "ENCRYPT_DECRYPT", {"Encrypt", "GetPublicKey"}, {"GenerateDataKey", "Sign"}),
        ("ECC_NIST_P256", "SIGN_VERIFY", {"Sign", "Verify", "DescribeKey"}, {"Encrypt"}),
        ("HMAC_256", "GENERATE_VERIFY_MAC", {"GenerateMac", "VerifyMac"}, {"GetPublicKey"}),
        ("ECC_NIST_P256", "KEY_AGREEMENT", {"DeriveSharedSecret"}, {"Decrypt"}),
        ("ML_KEM_768", "ENCAPSULATE_DECAPSULATE", {"Decapsulate", "RetireGrant"}, {"Sign"}),
    ],
)  # fmt: skip
def test_operations_per_key_type(spec: str, usage: str, allowed: set[str],
                                 refused: set[str]) -> None:  # fmt: skip
    ops = operations_for(key(spec, usage))
    assert allowed <= ops
    assert not refused & ops
    assert {"CreateGrant", "RetireGrant", "DescribeKey"} <= ops


@pytest.mark.parametrize(
    ("value", "code"),
    [(None, "ValidationException"), ([], "ValidationException"),
     (["Encrypt", "Bogus"], "ValidationException"), (["CreateGrant"], "ValidationException"),
     ("Encrypt", "SerializationException")],
)  # fmt: skip
def test_bad_operations(value: object, code: str) -> None:
    with pytest.raises(AwsError) as err:
        parse_operations(value)
    assert err.value.code == code


def test_operations_keep_order_once() -> None:
    assert parse_operations(["Decrypt", "Encrypt", "Decrypt"]) == ("Decrypt", "Encrypt")


SUBSET = Constraints(subset=(("a", "1"),))
EQUALS = Constraints(equals=(("a", "1"),))


@pytest.mark.parametrize(
    ("constraints", "context", "holds"),
    [
        (Constraints(), {}, True),
        (SUBSET, {"a": "1", "b": "2"}, True),
        (SUBSET, {"b": "2"}, False),
        (SUBSET, {"a": "10"}, False),
        (EQUALS, {"a": "1"}, True),
        (EQUALS, {"a": "1", "b": "2"}, False),
        (EQUALS, {}, False),
        (Constraints(subset=(("a", "1"),), equals=(("a", "1"), ("b", "2"))), {"a": "1", "b": "2"},
         True),
        # Keys without case, values with it (API_GrantConstraints).
        (SUBSET, {"A": "1", "b": "2"}, True),
        (EQUALS, {"A": "1"}, True),
        (Constraints(equals=(("Dept", "x"),)), {"dept": "x"}, True),
        (Constraints(subset=(("Dept", "x"),)), {"dept": "X"}, False),
    ],
)  # fmt: skip
def test_constraints_hold(constraints: Constraints, context: dict[str, str], holds: bool) -> None:
    assert constraints.holds(context) is holds


@pytest.mark.parametrize(
    ("child", "parent", "ok"),
    [
        (Constraints(), Constraints(), True),
        (SUBSET, Constraints(), True),
        (Constraints(), SUBSET, False),
        (Constraints(subset=(("a", "1"), ("b", "2"))), SUBSET, True),  # adds pairs
        (Constraints(subset=(("b", "2"),)), SUBSET, False),  # drops one
        (Constraints(equals=(("a", "1"), ("b", "2"))), SUBSET, True),  # subset -> equals
        (SUBSET, EQUALS, False),  # equals -> subset
        (EQUALS, EQUALS, True),
        (Constraints(equals=(("a", "1"), ("b", "2"))), EQUALS, False),
        (Constraints(subset=(("A", "1"),)), SUBSET, True),
        (Constraints(equals=(("A", "1"),)), EQUALS, True),
        (Constraints(subset=(("A", "X"),)), Constraints(subset=(("a", "x"),)), False),
    ],
)
def test_child_constraints_must_be_as_strict(child: Constraints, parent: Constraints,
                                             ok: bool) -> None:  # fmt: skip
    assert child.as_strict_as(parent) is ok


def test_constraint_limits_and_condition_keys() -> None:
    too_many = {"EncryptionContextSubset": {f"k{i}": "v" for i in range(9)}}
    with pytest.raises(AwsError, match="at most 8"):
        parse_constraints(too_many)
    with pytest.raises(AwsError) as err:
        parse_constraints({"EncryptionContextEquals": {"k": "v" * 400}})
    assert err.value.code == "ValidationException"
    keys = parse_constraints({"EncryptionContextEquals": {"b": "2", "a": "1"}}).condition_keys()
    assert keys == {"kms:EncryptionContext:a": "1", "kms:EncryptionContext:b": "2",
                    "kms:EncryptionContextKeys": ["a", "b"],
                    "kms:GrantConstraintType": "EncryptionContextEquals"}  # fmt: skip
    assert Constraints().condition_keys() == {}


def test_grant_tokens() -> None:
    one = encode_grant_token(ROOT_KEY, "0", "us-east-1", GRANT_ID)
    two = encode_grant_token(ROOT_KEY, "0", "us-east-1", GRANT_ID)
    assert one != two  # a fresh token per CreateGrant
    assert GRANT_ID not in one
    assert decode_grant_token(ROOT_KEY, "0", "us-east-1", one) == GRANT_ID
    check_grant_tokens(ROOT_KEY, "0", "us-east-1", [one, two])
    tampered = one[:-2] + ("A" if one[-2] != "A" else "B") + one[-1]
    for bad in (tampered, "", "x" * 9000, 7, "not base64 !"):
        with pytest.raises(AwsError) as err:
            decode_grant_token(ROOT_KEY, "0", "us-east-1", bad)
        assert err.value.code == "InvalidGrantTokenException"
    with pytest.raises(AwsError):  # bound to its account and region, and to the root key
        decode_grant_token(ROOT_KEY, "0", "eu-west-1", one)
    with pytest.raises(AwsError):
        decode_grant_token(RootKey(b"o" * 32), "0", "us-east-1", one)
    with pytest.raises(AwsError) as err:
        check_grant_tokens(ROOT_KEY, "0", "us-east-1", [one] * 11)
    assert err.value.code == "ValidationException"
