"""AWS query protocol (STS, IAM): botocore's own parser reads our XML; forms decode strictly."""

from __future__ import annotations

import datetime as dt
from typing import Any

import botocore.session
import pytest
from botocore.model import ServiceModel
from botocore.parsers import create_parser

from latchkey.aws import queryproto
from latchkey.aws.errors import AwsError, internal_error

SESSION = botocore.session.get_session()
STS = SESSION.get_service_model("sts")
IAM = SESSION.get_service_model("iam")
STS_NS = "https://sts.amazonaws.com/doc/2011-06-15/"
IAM_NS = "https://iam.amazonaws.com/doc/2010-05-08/"


def botocore_reads(
    model: ServiceModel, op: str, status: int, headers: list[tuple[str, str]], body: bytes
) -> dict[str, Any]:
    response = {"status_code": status, "headers": dict(headers), "body": body}
    return create_parser("query").parse(response, model.operation_model(op).output_shape)


ERRORS = [
    (STS, STS_NS, "AssumeRoleWithWebIdentity", AwsError("InvalidIdentityToken", "<bad> & 'x'")),
    (STS, STS_NS, "AssumeRoleWithWebIdentity", AwsError("ExpiredTokenException", "Token expired")),
    (STS, STS_NS, "GetCallerIdentity", AwsError("InvalidClientTokenId", "token invalid", 403)),
    (STS, STS_NS, "AssumeRole", internal_error()),
    (IAM, IAM_NS, "GetRole", AwsError("NoSuchEntity", "The role with name r not found.", 404)),
    (IAM, IAM_NS, "CreateRole", AwsError("EntityAlreadyExists", "Rôle ☃ exists", 409)),
]  # fmt: skip


@pytest.mark.parametrize(("model", "ns", "op", "err"), ERRORS, ids=[e[3].code for e in ERRORS])
def test_encode_error_parses_with_botocore(
    model: ServiceModel, ns: str, op: str, err: AwsError
) -> None:
    status, headers, body = queryproto.encode_error(err, ns, "req-123")
    assert status == err.status
    assert headers == [("Content-Type", "text/xml")]
    parsed = botocore_reads(model, op, status, headers, body)
    assert parsed["Error"]["Code"] == err.code
    assert parsed["Error"]["Message"] == err.message
    assert parsed["Error"]["Type"] == ("Sender" if err.sender else "Receiver")
    assert parsed["ResponseMetadata"]["RequestId"] == "req-123"
    assert parsed["ResponseMetadata"]["HTTPStatusCode"] == err.status


CREDENTIALS = {
    "AccessKeyId": "ASIAIOSFODNN7EXAMPLE",
    "SecretAccessKey": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY",
    "SessionToken": "IQoJb3JpZ2lu+/=<&>",
    "Expiration": "2024-05-01T13:00:00Z",
}


def test_assume_role_with_web_identity_result_parses_with_botocore() -> None:
    result = {
        "Credentials": CREDENTIALS,
        "SubjectFromWebIdentityToken": "local-apps",
        "AssumedRoleUser": {
            "AssumedRoleId": "AROACLKWSDQRAOEXAMPLE:latchkey-local-apps",
            "Arn": "arn:aws:sts::000000000000:assumed-role/latchkey-kms/latchkey-local-apps",
        },
        "PackedPolicySize": 0,
        "Provider": "https://127.0.0.1:8443",
        "Audience": "sts.amazonaws.com",
        "SourceIdentity": None,  # omitted, not rendered empty
    }
    body = queryproto.encode_result("AssumeRoleWithWebIdentity", STS_NS, result, "req-9")
    assert b"SourceIdentity" not in body
    parsed = botocore_reads(STS, "AssumeRoleWithWebIdentity", 200, [], body)
    assert parsed["Credentials"] == {
        **CREDENTIALS,
        "Expiration": dt.datetime(2024, 5, 1, 13, 0, tzinfo=dt.UTC),
    }
    assert parsed["AssumedRoleUser"] == result["AssumedRoleUser"]
    assert parsed["PackedPolicySize"] == 0
    assert parsed["SubjectFromWebIdentityToken"] == "local-apps"
    assert parsed["ResponseMetadata"]["RequestId"] == "req-9"


def test_lists_and_booleans_parse_with_botocore() -> None:
    result = {"AccountAliases": ["alpha", "beta"], "IsTruncated": True, "Marker": "m&1"}
    body = queryproto.encode_result("ListAccountAliases", IAM_NS, result, "r")
    parsed = botocore_reads(IAM, "ListAccountAliases", 200, [], body)
    assert (parsed["AccountAliases"], parsed["IsTruncated"], parsed["Marker"]) == (
        ["alpha", "beta"],
        True,
        "m&1",
    )
    empty = queryproto.encode_result("ListAccountAliases", IAM_NS, {"AccountAliases": []}, "r")
    assert botocore_reads(IAM, "ListAccountAliases", 200, [], empty)["AccountAliases"] == []


def test_list_of_structures_parses_with_botocore() -> None:
    roles = [
        {"Path": "/", "RoleName": f"r{i}", "RoleId": f"AROA{i}", "Arn": f"arn:aws:iam::0:role/r{i}",
         "CreateDate": "2024-05-01T12:00:00Z"}
        for i in range(3)
    ]  # fmt: skip
    body = queryproto.encode_result(
        "ListRoles", IAM_NS, {"Roles": roles, "IsTruncated": False}, "r"
    )
    parsed = botocore_reads(IAM, "ListRoles", 200, [], body)
    assert [r["RoleName"] for r in parsed["Roles"]] == ["r0", "r1", "r2"]
    assert parsed["IsTruncated"] is False


# --- decoding forms ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "query", "params"),
    [
        (b"Action=GetCallerIdentity&Version=2011-06-15", "",
         {"Action": "GetCallerIdentity", "Version": "2011-06-15"}),
        (b"RoleSessionName=a+b%2Fc&Policy=%7B%22x%22%3A1%7D", "",
         {"RoleSessionName": "a b/c", "Policy": '{"x":1}'}),
        (b"", "Action=GetRole&RoleName=r", {"Action": "GetRole", "RoleName": "r"}),
        (b"Action=FromBody", "Action=FromQuery&X=1", {"Action": "FromBody", "X": "1"}),
        (b"Empty=&Flag", "", {"Empty": "", "Flag": ""}),
        ("Name=caf%C3%A9&Raw=ü".encode(), "", {"Name": "café", "Raw": "ü"}),
    ],
)  # fmt: skip
def test_decode_form(body: bytes, query: str, params: dict[str, str]) -> None:
    assert queryproto.decode_form(body, query) == params


def test_decode_form_refuses_bytes_that_are_not_utf8() -> None:
    with pytest.raises(AwsError) as info:
        queryproto.decode_form(b"Action=\xff\xfe")
    assert info.value.code == "MalformedQueryString"


@pytest.mark.parametrize(
    ("form", "expected"),
    [
        (b"Names.member.1=a&Names.member.2=b%20c&Names.member.3=", ["a", "b c", ""]),
        (b"Names.member.2=b&Names.member.1=a", ["a", "b"]),
        (b"Names.member.1=a&Names.member.2=b&Names.member.4=d", ["a", "b"]),  # stops at a gap
        (b"Names.member.2=b", []),
        (b"Names.member.0=z&Other.member.1=o", []),
        (b"", []),
    ],
)
def test_member_list(form: bytes, expected: list[str]) -> None:
    assert queryproto.member_list(queryproto.decode_form(form), "Names") == expected
