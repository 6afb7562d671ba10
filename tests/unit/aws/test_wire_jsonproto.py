"""AWS JSON 1.1 (KMS): what we encode, botocore's own parser reads; what we decode is strict."""

from __future__ import annotations

import json
from typing import Any

import botocore.session
import pytest
from botocore.parsers import create_parser

from latchkey.aws import jsonproto
from latchkey.aws.errors import AwsError, internal_error, validation_error

KMS = botocore.session.get_session().get_service_model("kms")


def botocore_reads(
    status: int, headers: list[tuple[str, str]], body: bytes, op: str
) -> dict[str, Any]:
    response = {"status_code": status, "headers": dict(headers), "body": body}
    return create_parser("json").parse(response, KMS.operation_model(op).output_shape)


ERRORS = [
    (AwsError("NotFoundException", "Key 'arn:aws:kms:us-east-1:0:key/x' not found"), "Decrypt"),
    (AwsError("InvalidCiphertextException", ""), "Decrypt"),
    (AwsError("AccessDeniedException", 'User: "a" is not <authorized> & "b"'), "Encrypt"),
    (AwsError("DisabledException", "clé désactivée ☃"), "Encrypt"),
    (AwsError("UnknownOperationException", "", 400), "ListKeys"),
    (validation_error("KeyId", "", "Member must have length greater than 0"), "Encrypt"),
    (internal_error("KMSInternalException"), "GenerateDataKey"),
    (AwsError("ThrottlingException", "Rate exceeded", 429), "Encrypt"),
]  # fmt: skip


@pytest.mark.parametrize(("err", "op"), ERRORS, ids=[e.code for e, _ in ERRORS])
def test_encode_error_parses_with_botocore(err: AwsError, op: str) -> None:
    status, headers, body = jsonproto.encode_error(err)
    assert status == err.status
    assert ("Content-Type", "application/x-amz-json-1.1") in headers
    parsed = botocore_reads(status, headers, body, op)
    assert parsed["Error"]["Code"] == err.code
    assert parsed["Error"]["Message"] == err.message
    assert parsed["ResponseMetadata"]["HTTPStatusCode"] == err.status


def test_encode_error_code_without_the_header() -> None:
    status, headers, body = jsonproto.encode_error(AwsError("KMSInvalidStateException", "m"))
    parsed = botocore_reads(
        status, [h for h in headers if h[0] != "x-amzn-ErrorType"], body, "Sign"
    )
    assert parsed["Error"]["Code"] == "KMSInvalidStateException"


def test_encode_body_and_blob_parse_with_botocore() -> None:
    body = jsonproto.encode_body(
        {
            "CiphertextBlob": jsonproto.encode_blob(b"\x00\x01\xfe\xff"),
            "KeyId": "arn:aws:kms:us-east-1:000000000000:key/k",
            "EncryptionAlgorithm": "SYMMETRIC_DEFAULT",
        }
    )
    assert b" " not in body
    parsed = botocore_reads(200, [("Content-Type", jsonproto.CONTENT_TYPE)], body, "Encrypt")
    assert parsed["CiphertextBlob"] == b"\x00\x01\xfe\xff"
    assert parsed["KeyId"] == "arn:aws:kms:us-east-1:000000000000:key/k"


@pytest.mark.parametrize(
    "body",
    [b"{", b"not json", b'{"a": }', b"\xff\xfe\x00", b"[]", b'"s"', b"1", b"null"],
)
def test_decode_body_refuses_anything_but_an_object(body: bytes) -> None:
    with pytest.raises(AwsError) as info:
        jsonproto.decode_body(body)
    assert info.value.code == "SerializationException"
    assert info.value.status == 400


@pytest.mark.parametrize(
    ("body", "value"),
    [
        (b"", {}),
        (b" \r\n\t", {}),
        (b"{}", {}),
        (b'{"KeyId": "alias/a", "N": 1}', {"KeyId": "alias/a", "N": 1}),
        ('{"K": "é"}'.encode(), {"K": "é"}),
    ],
)
def test_decode_body(body: bytes, value: dict[str, Any]) -> None:
    assert jsonproto.decode_body(body) == value


@pytest.mark.parametrize(
    ("value", "ok"),
    [("aGVsbG8=", True), ("", True), ("aGVsbG8", False), ("a b=", False), (5, False)],
)
def test_decode_blob(value: object, ok: bool) -> None:
    if ok:
        assert jsonproto.encode_blob(jsonproto.decode_blob(value, "Plaintext")) == value
        return
    with pytest.raises(AwsError, match="'Plaintext'") as info:
        jsonproto.decode_blob(value, "Plaintext")
    assert info.value.code == "SerializationException"


@pytest.mark.parametrize(
    ("value", "parsed"),
    [
        ("TrentService.Encrypt", ("TrentService", "Encrypt")),
        ("a.b.ListKeys", ("a.b", "ListKeys")),
    ],
)
def test_parse_target(value: str, parsed: tuple[str, str]) -> None:
    assert jsonproto.parse_target(value) == parsed


@pytest.mark.parametrize("value", [None, "", "TrentService"])
def test_parse_target_refusals(value: str | None) -> None:
    with pytest.raises(AwsError) as info:
        jsonproto.parse_target(value)
    assert info.value.code == "UnknownOperationException"


def test_error_body_is_compact_json() -> None:
    _, _, body = jsonproto.encode_error(AwsError("NotFoundException", "m"))
    assert json.loads(body) == {"__type": "NotFoundException", "message": "m"}
