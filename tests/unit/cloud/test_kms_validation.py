"""KMS request validation from botocore's model: AWS's ValidationException and
SerializationException wording, paths, redaction; and the docs' operation table against the
model and the operation table (so neither can drift)."""

from __future__ import annotations

import base64
import re
import time
from pathlib import Path
from typing import Any

import pytest

from latchkey.aws.errors import AwsError
from latchkey.cloud.kms import ops, unsupported
from latchkey.cloud.kms.validation import (
    MAX_ECHO,
    MAX_REPORTED,
    OPERATION_NAMES,
    load_model,
    trail_parameters,
    validate,
)

DOC = Path(__file__).parents[3] / "docs" / "kms.md"
KEY = "arn:aws:kms:us-east-1:000000000000:key/11111111-2222-3333-4444-555555555555"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def refusal(operation: str, params: dict[str, Any]) -> tuple[str, str]:
    with pytest.raises(AwsError) as info:
        validate(operation, params)
    assert info.value.status == 400
    return info.value.code, info.value.message


def one(message: str) -> str:
    return f"1 validation error detected: {message}"


# -- ValidationException: each constraint kind -------------------------------------------------

CONSTRAINTS = [
    pytest.param(
        "CreateKey", {"KeySpec": "AES_256"},
        "Value 'AES_256' at 'keySpec' failed to satisfy constraint: Member must satisfy enum "
        "value set: [RSA_2048, RSA_3072, RSA_4096, ECC_NIST_P256, ECC_NIST_P384, ECC_NIST_P521, "
        "ECC_SECG_P256K1, SYMMETRIC_DEFAULT, HMAC_224, HMAC_256, HMAC_384, HMAC_512, SM2, "
        "ML_DSA_44, ML_DSA_65, ML_DSA_87, ECC_NIST_EDWARDS25519, ML_KEM_512, ML_KEM_768, "
        "ML_KEM_1024]",
        id="enum",
    ),
    pytest.param(
        "GenerateDataKey", {"KeyId": KEY, "KeySpec": "AES_512"},
        "Value 'AES_512' at 'keySpec' failed to satisfy constraint: Member must satisfy enum "
        "value set: [AES_256, AES_128]",
        id="enum-data-key",
    ),
    pytest.param(
        "DescribeKey", {},
        "Value null at 'keyId' failed to satisfy constraint: Member must not be null",
        id="required",
    ),
    pytest.param(
        "DescribeKey", {"KeyId": None},
        "Value null at 'keyId' failed to satisfy constraint: Member must not be null",
        id="required-null",
    ),
    pytest.param(
        "DescribeKey", {"KeyId": ""},
        "Value '' at 'keyId' failed to satisfy constraint: Member must have length greater "
        "than or equal to 1",
        id="string-min",
    ),
    pytest.param(
        "DescribeKey", {"KeyId": "k" * 2049},
        f"Value '{'k' * 2049}' at 'keyId' failed to satisfy constraint: Member must have length "
        "less than or equal to 2048",
        id="string-max",
    ),
    pytest.param(
        "DeleteAlias", {"AliasName": "alias/a b"},
        "Value 'alias/a b' at 'aliasName' failed to satisfy constraint: Member must satisfy "
        "regular expression pattern: ^[a-zA-Z0-9:/_-]+$",
        id="pattern",
    ),
    pytest.param(
        "GetKeyPolicy", {"KeyId": KEY, "PolicyName": "default\n"},
        "Value 'default\n' at 'policyName' failed to satisfy constraint: Member must satisfy "
        "regular expression pattern: [\\w]+",
        id="pattern-whole-value",
    ),
    pytest.param(
        "GenerateRandom", {"NumberOfBytes": 0},
        "Value '0' at 'numberOfBytes' failed to satisfy constraint: Member must have value "
        "greater than or equal to 1",
        id="integer-min",
    ),
    pytest.param(
        "GenerateRandom", {"NumberOfBytes": 1025},
        "Value '1025' at 'numberOfBytes' failed to satisfy constraint: Member must have value "
        "less than or equal to 1024",
        id="integer-max",
    ),
    pytest.param(
        "Decrypt", {"CiphertextBlob": ""},
        "Value at 'ciphertextBlob' failed to satisfy constraint: Member must have length "
        "greater than or equal to 1",
        id="blob-min",
    ),
    pytest.param(
        "Decrypt", {"CiphertextBlob": b64(bytes(6145))},
        "Value at 'ciphertextBlob' failed to satisfy constraint: Member must have length less "
        "than or equal to 6144",
        id="blob-max",
    ),
    pytest.param(
        "Verify", {"KeyId": KEY, "Message": "YQ==", "SigningAlgorithm": "ECDSA_SHA_256"},
        "Value null at 'signature' failed to satisfy constraint: Member must not be null",
        id="blob-required",
    ),
    pytest.param(
        "Encrypt", {"KeyId": KEY},
        "Value at 'plaintext' failed to satisfy constraint: Member must not be null",
        id="sensitive-required",
    ),
    pytest.param(
        "CreateKey", {"Tags": [{"TagKey": "a", "TagValue": "b"}, {"TagKey": "", "TagValue": ""}]},
        "Value '' at 'tags.2.member.tagKey' failed to satisfy constraint: Member must have "
        "length greater than or equal to 1",
        id="nested-path",
    ),
    pytest.param(
        "TagResource", {"KeyId": KEY, "Tags": [{"TagValue": "v"}]},
        "Value null at 'tags.1.member.tagKey' failed to satisfy constraint: Member must not be "
        "null",
        id="nested-required",
    ),
    pytest.param(
        "CreateGrant",
        {"KeyId": KEY, "GranteePrincipal": "arn:aws:iam::000000000000:root",
         "Operations": ["Encrypt", "Encrypts"]},
        "Value '[Encrypt, Encrypts]' at 'operations' failed to satisfy constraint: Member must "
        "satisfy constraint: [Member must satisfy enum value set: [Decrypt, Encrypt, "
        "GenerateDataKey, GenerateDataKeyWithoutPlaintext, ReEncryptFrom, ReEncryptTo, Sign, "
        "Verify, GetPublicKey, CreateGrant, RetireGrant, DescribeKey, GenerateDataKeyPair, "
        "GenerateDataKeyPairWithoutPlaintext, GenerateMac, VerifyMac, DeriveSharedSecret, "
        "Encapsulate, Decapsulate]]",
        id="list-item-enum",
    ),
    pytest.param(
        "ListRetirableGrants", {"RetiringPrincipal": "p", "Limit": 1001},
        "Value '1001' at 'limit' failed to satisfy constraint: Member must have value less than "
        "or equal to 1000",
        id="limit",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("operation", "params", "message"), CONSTRAINTS)
def test_constraint_messages(operation: str, params: dict[str, Any], message: str) -> None:
    assert refusal(operation, params) == ("ValidationException", one(message))


def test_several_errors_in_model_order() -> None:
    code, message = refusal("CreateAlias", {"TargetKeyId": "", "AliasName": "bad name"})
    assert code == "ValidationException"
    assert message == (
        "2 validation errors detected: Value 'bad name' at 'aliasName' failed to satisfy "
        "constraint: Member must satisfy regular expression pattern: ^[a-zA-Z0-9:/_-]+$; "
        "Value '' at 'targetKeyId' failed to satisfy constraint: Member must have length "
        "greater than or equal to 1"
    )


def test_one_value_breaking_two_constraints_is_two_errors() -> None:
    _, message = refusal("CreateAlias", {"TargetKeyId": KEY, "AliasName": ""})
    assert message == (
        "2 validation errors detected: Value '' at 'aliasName' failed to satisfy constraint: "
        "Member must have length greater than or equal to 1; Value '' at 'aliasName' failed to "
        "satisfy constraint: Member must satisfy regular expression pattern: ^[a-zA-Z0-9:/_-]+$"
    )


def test_at_most_ten_errors_are_reported() -> None:
    tags = [{"TagKey": "", "TagValue": "v"} for _ in range(MAX_REPORTED + 3)]
    _, message = refusal("CreateKey", {"Tags": tags})
    assert message.startswith(f"{MAX_REPORTED} validation errors detected: ")
    assert message.count("failed to satisfy constraint") == MAX_REPORTED
    assert f"tags.{MAX_REPORTED}.member.tagKey" in message
    assert f"tags.{MAX_REPORTED + 1}.member" not in message


def test_long_values_are_echoed_cut() -> None:
    policy = "{" + " " * 200_000 + "}"
    _, message = refusal("PutKeyPolicy", {"KeyId": KEY, "Policy": policy})
    assert message == one(
        f"Value '{policy[:MAX_ECHO]}...' at 'policy' failed to satisfy constraint: Member must "
        "have length less than or equal to 131072"
    )


# -- what is never echoed ------------------------------------------------------------------------


def test_plaintext_is_never_echoed() -> None:
    secret = b"correct horse battery staple " * 200  # > 4096 bytes
    _, message = refusal("Encrypt", {"KeyId": KEY, "Plaintext": b64(secret)})
    assert message == one(
        "Value at 'plaintext' failed to satisfy constraint: Member must have length less than "
        "or equal to 4096"
    )
    assert "horse" not in message
    assert b64(secret)[:16] not in message


@pytest.mark.parametrize("operation", ["Sign", "GenerateMac"])
def test_sensitive_message_member_is_never_echoed(operation: str) -> None:
    secret = b64(b"S3CR3T!" * 700)
    params = {"KeyId": KEY, "Message": secret, "SigningAlgorithm": "ECDSA_SHA_256",
              "MacAlgorithm": "HMAC_SHA_256"}  # fmt: skip
    _, message = refusal(operation, params)
    assert message.startswith("1 validation error detected: Value at 'message' failed")
    assert secret[:12] not in message


def test_sensitive_strings_are_never_echoed_even_nested() -> None:
    params = {
        "CustomKeyStoreName": "store",
        "KeyStorePassword": "hunter2-but-much-longer-than-32-characters",
        "XksProxyAuthenticationCredential": {
            "AccessKeyId": "lowercase-is-wrong-here",
            "RawSecretAccessKey": "too short but secret",
        },
    }
    code, message = refusal("CreateCustomKeyStore", params)
    assert code == "ValidationException"
    assert message.startswith("4 validation errors detected: ")
    assert (
        "Value at 'keyStorePassword' failed to satisfy constraint: Member must have length less "
        "than or equal to 32" in message
    )
    assert "Value at 'xksProxyAuthenticationCredential.rawSecretAccessKey' failed" in message
    assert "Value at 'xksProxyAuthenticationCredential.accessKeyId' failed" in message
    for secret in ("hunter2", "lowercase-is-wrong", "too short but secret"):
        assert secret not in message


def test_grant_tokens_are_never_echoed() -> None:
    tokens = [f"grant-token-{i}" for i in range(11)]
    _, message = refusal("Encrypt", {"KeyId": KEY, "Plaintext": "YQ==", "GrantTokens": tokens})
    assert message == one(
        "Value at 'grantTokens' failed to satisfy constraint: Member must have length less "
        "than or equal to 10"
    )
    _, message = refusal("Encrypt", {"KeyId": KEY, "Plaintext": "YQ==", "GrantTokens": [""]})
    assert message == one(
        "Value at 'grantTokens' failed to satisfy constraint: Member must satisfy constraint: "
        "[Member must have length less than or equal to 8192, Member must have length greater "
        "than or equal to 1]"
    )


def test_invalid_base64_is_not_echoed() -> None:
    code, message = refusal("Encrypt", {"KeyId": KEY, "Plaintext": "not base64 at all!!"})
    assert code == "SerializationException"
    assert "not base64" not in message
    assert message.startswith("Value at 'plaintext' can not be converted to a Blob")


# -- SerializationException: wrong JSON types ----------------------------------------------------

SERIALIZATION = [
    ("GenerateRandom", {"NumberOfBytes": "32"}, "STRING_VALUE can not be converted to an Integer"),
    ("GenerateRandom", {"NumberOfBytes": True}, "TRUE_VALUE can not be converted to an Integer"),
    ("GenerateRandom", {"NumberOfBytes": [1]}, "Start of list found where not expected"),
    ("GenerateRandom", {"NumberOfBytes": {}},
     "Start of structure or map found where not expected."),
    ("GenerateRandom", {"NumberOfBytes": 2**63}, ""),
    ("DescribeKey", {"KeyId": 5}, "NUMBER_VALUE can not be converted to a String"),
    ("DescribeKey", {"KeyId": 5.5}, "NUMBER_VALUE can not be converted to a String"),
    ("DescribeKey", {"KeyId": False}, "FALSE_VALUE can not be converted to a String"),
    ("DescribeKey", {"KeyId": ["k"]}, "Start of list found where not expected"),
    ("CreateKey", {"BypassPolicyLockoutSafetyCheck": "true"},
     "STRING_VALUE can not be converted to a Boolean"),
    ("CreateKey", {"Tags": "a=b"}, "Expected list or null"),
    ("CreateKey", {"Tags": {"a": "b"}}, "Start of structure or map found where not expected."),
    ("CreateKey", {"Tags": ["a"]}, "Expected null"),
    ("CreateKey", {"Tags": [[]]}, "Start of list found where not expected"),
    ("Encrypt", {"KeyId": KEY, "Plaintext": "YQ==", "EncryptionContext": "a=b"},
     "Expected map or null"),
    ("Encrypt", {"KeyId": KEY, "Plaintext": "YQ==", "EncryptionContext": {"a": 1}},
     "NUMBER_VALUE can not be converted to a String"),
    ("Encrypt", {"KeyId": KEY, "Plaintext": 7}, "NUMBER_VALUE can not be converted to a Blob"),
    ("Encrypt", {"KeyId": KEY, "Plaintext": "YWJj="},
     "Value at 'plaintext' can not be converted to a Blob: Base64 encoded length is expected a "
     "multiple of 4 bytes but found: 5"),
    ("DeriveSharedSecret", {"KeyId": KEY, "KeyAgreementAlgorithm": "ECDH", "PublicKey": "YQ==",
                            "Recipient": "enclave"}, "Expected null"),
    ("ImportKeyMaterial", {"KeyId": KEY, "ImportToken": "YQ==", "EncryptedKeyMaterial": "YQ==",
                           "ValidTo": "tomorrow"},
     "STRING_VALUE can not be converted to a Timestamp"),
]  # fmt: skip


@pytest.mark.parametrize(("operation", "params", "message"), SERIALIZATION)
def test_wrong_json_types(operation: str, params: dict[str, Any], message: str) -> None:
    assert refusal(operation, params) == ("SerializationException", message)


def test_a_wrong_type_anywhere_wins_over_constraint_errors() -> None:
    params = {"AliasName": "bad name", "TargetKeyId": 12}
    assert refusal("CreateAlias", params)[0] == "SerializationException"


# -- what is accepted, and normalised as AWS reads it ------------------------------------------


def test_valid_requests_pass_untouched() -> None:
    params = {
        "KeyId": "alias/app",
        "Plaintext": b64(b"x" * 4096),
        "EncryptionContext": {"tenant": "t-1", "": ""},
        "GrantTokens": ["t"] * 10,
        "EncryptionAlgorithm": "SYMMETRIC_DEFAULT",
        "DryRun": False,
    }
    before = dict(params)
    validate("Encrypt", params)
    assert params == before


def test_unknown_members_are_ignored_and_kept() -> None:
    params = {"KeyId": KEY, "keyid": 5, "Surprise": {"deep": [1]}}
    validate("DescribeKey", params)
    assert params["Surprise"] == {"deep": [1]}


def test_nulls_are_absent_and_decimals_truncated() -> None:
    params: dict[str, Any] = {"Limit": 2.9, "Marker": None}
    validate("ListKeys", params)
    assert params == {"Limit": 2}
    assert type(params["Limit"]) is int
    tags: dict[str, Any] = {"Tags": [None, {"TagKey": "a", "TagValue": "b"}, None]}
    validate("CreateKey", tags)
    assert tags == {"Tags": [{"TagKey": "a", "TagValue": "b"}]}
    ctx: dict[str, Any] = {"KeyId": KEY, "Plaintext": "YQ==", "EncryptionContext": {"a": None}}
    validate("Encrypt", ctx)
    assert ctx["EncryptionContext"] == {}


def test_truncated_decimal_is_then_range_checked() -> None:
    _, message = refusal("GenerateRandom", {"NumberOfBytes": 0.9})
    assert message == one(
        "Value '0' at 'numberOfBytes' failed to satisfy constraint: Member must have value "
        "greater than or equal to 1"
    )


def test_an_operation_outside_the_model_is_not_checked_here() -> None:
    validate("NoSuchOperation", {"anything": object()})


def test_every_operation_compiles_and_refuses_only_required_members() -> None:
    model = load_model()
    assert set(OPERATION_NAMES) == set(model.operation_names)
    for name in OPERATION_NAMES:
        required = model.operation_model(name).input_shape.required_members
        if not required:
            validate(name, {})
            continue
        code, message = refusal(name, {})
        assert code == "ValidationException"
        assert message.count("Member must not be null") == len(required), name


def test_validation_is_cheap() -> None:
    """It runs on every request: a typical Encrypt must cost microseconds, not milliseconds."""
    params = {"KeyId": KEY, "Plaintext": b64(b"k" * 32), "EncryptionContext": {"a": "b"}}
    rounds = 20_000
    start = time.perf_counter()
    for _ in range(rounds):
        validate("Encrypt", dict(params))
    per_call = (time.perf_counter() - start) / rounds
    assert per_call < 100e-6, f"{per_call * 1e6:.1f} µs per Encrypt"


# -- the docs' support table, the operation table and the model agree -----------------------------

ROW = re.compile(r"^\| `(\w+)` \| (implemented|unsupported)\b", re.MULTILINE)


def doc_table() -> dict[str, str]:
    text = DOC.read_text()
    section = text.split("## Operations", 1)[1].split("\n## ", 1)[0]
    rows = ROW.findall(section)
    table = dict(rows)
    assert len(table) == len(rows), "an operation is listed twice"
    return table


def test_doc_lists_every_operation_of_the_model_once() -> None:
    assert sorted(doc_table()) == sorted(OPERATION_NAMES)


def test_doc_marks_exactly_the_unsupported_operations() -> None:
    marked = {name for name, status in doc_table().items() if status == "unsupported"}
    assert marked == set(unsupported.REASONS)


def test_every_operation_of_the_model_is_answered() -> None:
    """No operation of the model falls through to UnknownOperationException."""
    missing = sorted(set(OPERATION_NAMES) - set(ops.OPERATIONS))
    assert missing == []
    assert set(ops.OPERATIONS) <= set(OPERATION_NAMES)


def test_trail_parameters_use_cloudtrail_names_and_keep_map_keys() -> None:
    params = {
        "KeyId": "k",
        "GranteePrincipal": "arn:aws:iam::111122223333:role/app",
        "Operations": ["Encrypt", "Decrypt"],
        "Constraints": {"EncryptionContextSubset": {"Tenant": "a", "KeyId": "x"}},
    }
    assert trail_parameters("CreateGrant", params) == {
        "keyId": "k",
        "granteePrincipal": "arn:aws:iam::111122223333:role/app",
        "operations": ["Encrypt", "Decrypt"],
        "constraints": {"encryptionContextSubset": {"Tenant": "a", "KeyId": "x"}},
    }
    tags = {"Tags": [{"TagKey": "team", "TagValue": "payments"}]}
    assert trail_parameters("CreateKey", tags) == {
        "tags": [{"tagKey": "team", "tagValue": "payments"}]
    }
    assert trail_parameters("Encrypt", {"EncryptionContext": {"App": "x"}}) == {
        "encryptionContext": {"App": "x"},
        "encryptionAlgorithm": "SYMMETRIC_DEFAULT",  # CloudTrail shows the default
    }
    assert trail_parameters("Decrypt", {}) == {"encryptionAlgorithm": "SYMMETRIC_DEFAULT"}
    assert trail_parameters("Decrypt", {"EncryptionAlgorithm": "RSAES_OAEP_SHA_256"}) == {
        "encryptionAlgorithm": "RSAES_OAEP_SHA_256"
    }
    assert trail_parameters("ReEncrypt", {}) == {
        "sourceEncryptionAlgorithm": "SYMMETRIC_DEFAULT",
        "destinationEncryptionAlgorithm": "SYMMETRIC_DEFAULT",
    }
