"""The KMS wire protocol at the local cloud's door: content types, X-Amz-Target (a JSON request
without one is answered in JSON, never STS's XML), the unsigned-request message, malformed and
mistyped bodies (strict UTF-8, no NaN, no lone surrogate escapes, integers within 32 bits),
model validation (AWS's ValidationException wording, nothing sensitive echoed), and the
operations the cloud does not offer.

boto3 validates parameters itself, so refused values are sent either as hand-made JSON requests
signed by botocore's ``SigV4Auth`` over ``http.client``, or through boto3 with
``parameter_validation=False``."""

from __future__ import annotations

import base64
import http.client
import json
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlsplit
from xml.etree import ElementTree as ET

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config as BotoConfig
from botocore.credentials import Credentials

from latchkey.cloud.kms import unsupported
from latchkey_testing import (
    FORM,
    Cloud,
    error_response,
    refused,
    start_node_thread,
    stop_node_thread,
)

KMS_JSON = "application/x-amz-json-1.1"
MISSING_TOKEN = "Request is missing Authentication Token"


class Answer(NamedTuple):
    status: int
    headers: dict[str, str]
    body: bytes

    def error(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.body)
        return parsed


def post(
    cloud: Cloud,
    target: str | None,
    body: bytes | dict[str, Any] = b"{}",
    *,
    content_type: str | None = KMS_JSON,
    signed: bool = True,
) -> Answer:
    """A hand-made JSON 1.1 request, signed (unless ``signed=False``) with the admin key."""
    data = json.dumps(body).encode() if isinstance(body, dict) else body
    headers = {}
    if target is not None:
        headers["X-Amz-Target"] = target
    if content_type is not None:
        headers["Content-Type"] = content_type
    req = AWSRequest(method="POST", url=cloud.node.info.cloud + "/", data=data, headers=headers)
    if signed:
        admin = cloud.node.admin()
        creds = Credentials(admin["AccessKeyId"], admin["SecretAccessKey"])
        SigV4Auth(creds, "kms", "us-east-1").add_auth(req)
    parts = urlsplit(cloud.node.info.cloud)
    ctx = ssl.create_default_context(cafile=cloud.node.info.ca_bundle)
    conn = http.client.HTTPSConnection(str(parts.hostname), parts.port, context=ctx, timeout=10)
    try:
        conn.request("POST", "/", body=data, headers=dict(req.headers.items()))
        resp = conn.getresponse()
        return Answer(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
    finally:
        conn.close()


def kms_error(answer: Answer) -> tuple[int, str, str | None]:
    """(status, __type, message or None when the body has none)."""
    body = answer.error()
    return answer.status, body["__type"], body.get("message")


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    """One node for the tests that change nothing in it (a node per case would cost more than
    the cases)."""
    handle, thread = start_node_thread(tmp_path_factory.mktemp("kms-protocol") / "data")
    made = Cloud(handle)
    try:
        yield made
    finally:
        made.close()
        stop_node_thread(handle, thread)


# -- routing: content type and X-Amz-Target ------------------------------------------------------


@pytest.mark.parametrize(
    "content_type", ["application/x-amz-json-1.1", "application/x-amz-json-1.0",
                     "application/json", "Application/X-Amz-Json-1.1; charset=utf-8"],
)  # fmt: skip
def test_json_content_types_are_accepted(shared: Cloud, content_type: str) -> None:
    answer = post(shared, "TrentService.ListKeys", content_type=content_type)
    assert answer.status == 200
    assert answer.error() == {"Keys": [], "Truncated": False}


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded"])
def test_other_content_types_match_no_protocol(cloud: Cloud, content_type: str | None) -> None:
    answer = post(cloud, "TrentService.CreateKey", content_type=content_type)
    assert answer.status == 404
    assert answer.body == b"<UnknownOperationException/>\n"
    assert cloud.client("kms").list_keys()["Keys"] == []


@pytest.mark.parametrize(
    "target",
    ["TrentService.NoSuchOperation", "TrentService.listKeys", "trentservice.ListKeys",
     "DynamoDB_20120810.ListKeys", "TrentService", "TrentService.", ""],
)  # fmt: skip
def test_unknown_operation(shared: Cloud, target: str) -> None:
    answer = post(shared, target)
    assert kms_error(answer) == (400, "UnknownOperationException", None)


def test_unknown_operation_is_answered_before_authentication(shared: Cloud) -> None:
    answer = post(shared, "TrentService.NoSuchOperation", signed=False)
    assert kms_error(answer) == (400, "UnknownOperationException", None)
    answer = post(shared, "TrentService.ListKeys", signed=False)
    assert kms_error(answer)[:2] == (400, "MissingAuthenticationTokenException")


def test_the_body_is_read_only_after_authentication(shared: Cloud) -> None:
    answer = post(shared, "TrentService.CreateKey", {"KeySpec": "nope"}, signed=False)
    assert kms_error(answer)[:2] == (400, "MissingAuthenticationTokenException")


def test_an_unsigned_request_is_told_what_aws_says(shared: Cloud) -> None:
    """In JSON for KMS; in XML for a form body without a target, which is still STS's."""
    answer = post(shared, "TrentService.ListKeys", signed=False)
    assert kms_error(answer) == (400, "MissingAuthenticationTokenException", MISSING_TOKEN)
    assert answer.headers["content-type"] == KMS_JSON
    sts = post(shared, None, b"Action=GetCallerIdentity&Version=2011-06-15",
               content_type=FORM, signed=False)  # fmt: skip
    assert sts.status == 403
    error = ET.fromstring(sts.body).find("{*}Error")  # noqa: S314 (our own node's answer)
    assert error is not None
    assert error.findtext("{*}Code") == "MissingAuthenticationToken"
    assert error.findtext("{*}Message") == MISSING_TOKEN


@pytest.mark.parametrize(
    "content_type", ["application/x-amz-json-1.1", "application/x-amz-json-1.0",
                     "Application/X-Amz-Json-1.1; charset=utf-8"],
)  # fmt: skip
@pytest.mark.parametrize("signed", [True, False])
def test_a_json_request_without_a_target_is_answered_in_json(
    shared: Cloud, content_type: str, signed: bool
) -> None:
    """Never routed to STS (whose XML ``InvalidAction`` or auth error no KMS client reads):
    the operation is unknown, checked before the signature as for any unknown target."""
    answer = post(shared, None, content_type=content_type, signed=signed)
    assert kms_error(answer) == (400, "UnknownOperationException", None)
    assert answer.headers["content-type"] == KMS_JSON
    assert answer.headers["x-amzn-errortype"] == "UnknownOperationException"


# -- malformed and mistyped bodies ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "message"),
    [(b"{", None), (b"not json", None), (b'"a string"', None), (b"null", None),
     (b"[]", "Start of list found where not expected"), (b"[" * 100_000, None),
     # Strictly UTF-8 (no UTF-16/32 detection, no byte-order mark), and no NaN or Infinity:
     ('{"Limit":5}'.encode("utf-16"), None), ('{"Limit":5}'.encode("utf-16-le"), None),
     ('{"Limit":5}'.encode("utf-32"), None), (b'\xef\xbb\xbf{"Limit":5}', None),
     (b'{"Marker":"\xe9"}', None), (b'{"Limit":NaN}', None), (b'{"Foo":Infinity,"Limit":2}', None),
     (b'{"Foo":[-Infinity]}', None), (b'{"Limit":' + b"1" * 5000 + b"}", None)],
)  # fmt: skip
def test_malformed_body(shared: Cloud, body: bytes, message: str | None) -> None:
    assert kms_error(post(shared, "TrentService.ListKeys", body)) == (
        400, "SerializationException", message,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("operation", "body", "message"),
    [("ListKeys", {"Limit": "5"}, "STRING_VALUE can not be converted to an Integer"),
     ("ListKeys", {"Limit": True}, "TRUE_VALUE can not be converted to an Integer"),
     ("DescribeKey", {"KeyId": 42}, "NUMBER_VALUE can not be converted to a String"),
     ("DescribeKey", {"KeyId": {"id": "x"}}, "Start of structure or map found where not expected."),
     ("CreateKey", {"Tags": "a=b"}, "Expected list or null"),
     ("Encrypt", {"KeyId": "k", "Plaintext": "YQ==", "EncryptionContext": ["a"]},
      "Start of list found where not expected")],
)  # fmt: skip
def test_wrong_json_types(
    shared: Cloud, operation: str, body: dict[str, Any], message: str
) -> None:
    answer = post(shared, f"TrentService.{operation}", body)
    assert kms_error(answer) == (400, "SerializationException", message)


def test_lone_surrogate_escapes_are_refused_before_anything_happens(cloud: Cloud) -> None:
    """A string no UTF-8 can hold, anywhere in the body: refused as the body is read, not a
    KMSInternalException (500, retried by every SDK) from the ciphertext or the store."""
    key_id = cloud.client("kms").create_key(Description="before")["KeyMetadata"]["KeyId"]
    key = f'"KeyId":"{key_id}"'
    encrypt = f'{key},"Plaintext":"QQ==","EncryptionContext"'
    bodies = [
        ("CreateKey", '"Description":"\\ud800"'),
        ("CreateKey", '"Tags":[{"TagKey":"k","TagValue":"a\\uDFFFb"}]'),
        ("Encrypt", encrypt + ':{"a":"\\ud800"}'),
        ("Encrypt", encrypt + ':{"\\udc00":"x"}'),
        ("TagResource", key + ',"Tags":[{"TagKey":"k","TagValue":"\\ud800"}]'),
        ("UpdateKeyDescription", key + ',"Description":"\\ud800"'),
        ("DescribeKey", '"KeyId":"alias/\\ud800"'),
        ("ListKeys", '"Unknown":{"deep":[["\\ud800"]]}'),
    ]
    for operation, members in bodies:
        answer = post(cloud, f"TrentService.{operation}", ("{" + members + "}").encode())
        assert kms_error(answer) == (400, "SerializationException", None), (operation, members)
    kms = cloud.client("kms")
    assert [k["KeyId"] for k in kms.list_keys()["Keys"]] == [key_id]
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["Description"] == "before"
    assert kms.list_resource_tags(KeyId=key_id)["Tags"] == []
    # A surrogate pair is one character, and an escaped backslash is no escape: both are fine.
    body = "{" + key + ',"Description":"\\ud83d\\ude00 \\\\ud800"}'
    answer = post(cloud, "TrentService.UpdateKeyDescription", body.encode())
    assert answer.status == 200
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["Description"] == "\U0001f600 \\ud800"


def test_boto3_is_refused_a_lone_surrogate_without_retrying(cloud: Cloud) -> None:
    key_id = cloud.client("kms").create_key()["KeyMetadata"]["KeyId"]
    retrying = cloud.client("kms", BotoConfig(retries={"mode": "standard", "max_attempts": 4}))
    response = error_response(
        retrying.encrypt, KeyId=key_id, Plaintext=b"hi", EncryptionContext={"tenant": "a\ud800"}
    )
    assert response["Error"]["Code"] == "SerializationException"
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert response["ResponseMetadata"]["RetryAttempts"] == 0


def test_unknown_members_are_ignored_and_nulls_are_absent(cloud: Cloud) -> None:
    answer = post(cloud, "TrentService.ListKeys", {"Limit": None, "Marker": None, "Extra": [1]})
    assert answer.status == 200
    created = post(cloud, "TrentService.CreateKey", {"Description": None, "keySpec": "RSA_2048"})
    assert created.status == 200
    metadata = created.error()["KeyMetadata"]
    assert metadata["KeySpec"] == "SYMMETRIC_DEFAULT"
    assert metadata["Description"] == ""


def test_a_decimal_is_read_as_an_integer(cloud: Cloud) -> None:
    kms = cloud.client("kms")
    for _ in range(3):
        kms.create_key()
    answer = post(cloud, "TrentService.ListKeys", {"Limit": 1.9})
    assert answer.status == 200
    assert len(answer.error()["Keys"]) == 1


@pytest.mark.parametrize(
    ("operation", "body"),
    [("ListKeys", {"Limit": 2**31}), ("ListKeys", {"Limit": -(2**31) - 1}),
     ("ListKeys", {"Limit": 2**31 + 0.5}), ("GenerateRandom", {"NumberOfBytes": 2**40}),
     ("ScheduleKeyDeletion", {"KeyId": "alias/none", "PendingWindowInDays": 2**32})],
)  # fmt: skip
def test_an_integer_beyond_32_bits_does_not_parse(
    shared: Cloud, operation: str, body: dict[str, Any]
) -> None:
    """An ``integer`` shape is a Java Integer: beyond it the body does not parse (no range
    check, no ValidationException echoing the value)."""
    answer = post(shared, f"TrentService.{operation}", body)
    assert kms_error(answer) == (400, "SerializationException", None)


def test_an_integer_within_32_bits_is_range_checked(shared: Cloud) -> None:
    answer = post(shared, "TrentService.ListKeys", {"Limit": 2**31 - 1})
    assert kms_error(answer) == (
        400, "ValidationException",
        "1 validation error detected: Value '2147483647' at 'limit' failed to satisfy "
        "constraint: Member must have value less than or equal to 1000",
    )  # fmt: skip
    answer = post(shared, "TrentService.ListKeys", {"Limit": -(2**31)})
    assert kms_error(answer)[:2] == (400, "ValidationException")


# -- model validation -----------------------------------------------------------------------------


def test_enum_is_validated_before_anything_happens(shared: Cloud) -> None:
    answer = post(shared, "TrentService.GenerateDataKey", {"KeyId": "alias/none", "KeySpec": "AES"})
    assert kms_error(answer) == (
        400,
        "ValidationException",
        "1 validation error detected: Value 'AES' at 'keySpec' failed to satisfy constraint: "
        "Member must satisfy enum value set: [AES_256, AES_128]",
    )


def test_several_errors_with_nested_paths(cloud: Cloud) -> None:
    body = {"Tags": [{"TagKey": "ok", "TagValue": "v"}, {"TagKey": "", "TagValue": "v"}],
            "KeyUsage": "ENCRYPT"}  # fmt: skip
    answer = post(cloud, "TrentService.CreateKey", body)
    status, code, message = kms_error(answer)
    assert (status, code) == (400, "ValidationException")
    assert message is not None
    assert message.startswith("2 validation errors detected: Value 'ENCRYPT' at 'keyUsage' ")
    assert message.endswith(
        "; Value '' at 'tags.2.member.tagKey' failed to satisfy constraint: Member must have "
        "length greater than or equal to 1"
    )
    assert cloud.client("kms").list_keys()["Keys"] == []


def test_validation_error_status_and_shape_for_boto3(shared: Cloud) -> None:
    kms = shared.unvalidated("kms")
    err = refused(kms.create_key, KeySpec="AES_256")
    assert err[:2] == ("ValidationException", 400)
    assert err.message.startswith(
        "1 validation error detected: Value 'AES_256' at 'keySpec' failed to satisfy "
        "constraint: Member must satisfy enum value set: [RSA_2048, "
    )
    err = refused(kms.generate_random, NumberOfBytes=0)
    assert err == (
        "ValidationException", 400,
        "1 validation error detected: Value '0' at 'numberOfBytes' failed to satisfy "
        "constraint: Member must have value greater than or equal to 1",
    )  # fmt: skip
    err = refused(kms.create_alias, AliasName="alias/has space", TargetKeyId="")
    assert err.message.startswith("2 validation errors detected: Value 'alias/has space' at ")
    err = refused(kms.describe_key)
    assert err.message == (
        "1 validation error detected: Value null at 'keyId' failed to satisfy constraint: "
        "Member must not be null"
    )


def test_list_items_are_validated_as_one_error(cloud: Cloud) -> None:
    kms = cloud.unvalidated("kms")
    key_id = cloud.client("kms").create_key()["KeyMetadata"]["KeyId"]
    err = refused(
        kms.create_grant, KeyId=key_id, GranteePrincipal="arn:aws:iam::000000000000:root",
        Operations=["Encrypt", "Decrypt", "Destroy"],
    )  # fmt: skip
    assert err[:2] == ("ValidationException", 400)
    assert err.message.startswith(
        "1 validation error detected: Value '[Encrypt, Decrypt, Destroy]' at 'operations' "
        "failed to satisfy constraint: Member must satisfy constraint: [Member must satisfy "
        "enum value set: [Decrypt, Encrypt, "
    )


def data_files(data_dir: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(data_dir.rglob("*")) if p.is_file())


def test_plaintext_is_never_echoed_nor_stored(cloud: Cloud) -> None:
    kms = cloud.unvalidated("kms")
    key_id = cloud.client("kms").create_key()["KeyMetadata"]["KeyId"]
    secret = b"never-echo-this-secret:" + bytes(range(256)) * 16  # > 4,096 bytes
    err = refused(kms.encrypt, KeyId=key_id, Plaintext=secret)
    assert err == (
        "ValidationException", 400,
        "1 validation error detected: Value at 'plaintext' failed to satisfy constraint: "
        "Member must have length less than or equal to 4096",
    )  # fmt: skip
    err = refused(kms.generate_mac, KeyId=key_id, Message=secret, MacAlgorithm="HMAC_SHA_256")
    assert err.message.startswith("1 validation error detected: Value at 'message' failed")
    answer = post(cloud, "TrentService.Encrypt", {"KeyId": key_id, "Plaintext": b64(secret)[1:]})
    assert kms_error(answer)[:2] == (400, "SerializationException")
    assert b"never-echo" not in answer.body
    assert b64(secret)[1:20].encode() not in answer.body
    stored = data_files(cloud.node.data_dir)
    assert b"never-echo-this-secret" not in stored
    assert b64(secret)[:24].encode() not in stored


def test_sensitive_strings_are_never_echoed(cloud: Cloud) -> None:
    kms = cloud.unvalidated("kms")
    password = "this-password-is-far-too-long-for-a-key-store"
    err = refused(kms.create_custom_key_store, CustomKeyStoreName="s", KeyStorePassword=password)
    assert err == (
        "ValidationException", 400,
        "1 validation error detected: Value at 'keyStorePassword' failed to satisfy "
        "constraint: Member must have length less than or equal to 32",
    )  # fmt: skip
    assert password.encode() not in data_files(cloud.node.data_dir)


def test_validation_refusals_are_audited(cloud: Cloud) -> None:
    post(cloud, "TrentService.GenerateRandom", {"NumberOfBytes": 5000})
    lines = (cloud.node.data_dir / "audit" / "cloud.jsonl").read_text().splitlines()
    events = [json.loads(line) for line in lines]
    refused_events = [e for e in events if e.get("eventName") == "GenerateRandom"]
    assert len(refused_events) == 1
    assert refused_events[0]["errorCode"] == "ValidationException"
    assert "numberOfBytes" in refused_events[0]["errorMessage"]


# -- the operations the local cloud does not offer ------------------------------------------------

UNSUPPORTED_CALLS = [
    ("create_custom_key_store", {"CustomKeyStoreName": "hsm"}),
    ("connect_custom_key_store", {"CustomKeyStoreId": "cks-1234567890abcdef0"}),
    ("disconnect_custom_key_store", {"CustomKeyStoreId": "cks-1234567890abcdef0"}),
    ("update_custom_key_store", {"CustomKeyStoreId": "cks-1234567890abcdef0",
                                 "NewCustomKeyStoreName": "renamed"}),
    ("delete_custom_key_store", {"CustomKeyStoreId": "cks-1234567890abcdef0"}),
    ("replicate_key", {"KeyId": "mrk-1234abcd12ab34cd56ef1234567890ab",
                       "ReplicaRegion": "eu-west-1"}),
    ("update_primary_region", {"KeyId": "mrk-1234abcd12ab34cd56ef1234567890ab",
                               "PrimaryRegion": "eu-west-1"}),
]  # fmt: skip


@pytest.mark.parametrize(
    ("method", "params"), UNSUPPORTED_CALLS, ids=[m for m, _ in UNSUPPORTED_CALLS]
)
def test_unsupported_operations_say_why(shared: Cloud, method: str, params: dict[str, Any]) -> None:
    err = refused(getattr(shared.client("kms"), method), **params)
    assert err[:2] == ("UnsupportedOperationException", 400)
    assert err.message in set(unsupported.REASONS.values())
    assert "not supported by the latchkey local cloud" in err.message


def test_unsupported_operations_still_validate_first(shared: Cloud) -> None:
    err = refused(shared.unvalidated("kms").replicate_key, KeyId="k", ReplicaRegion="Mars")
    assert err[:2] == ("ValidationException", 400)
    assert "at 'replicaRegion'" in err.message


def test_describe_custom_key_stores_has_none(cloud: Cloud) -> None:
    kms = cloud.client("kms")
    answer = kms.describe_custom_key_stores()
    assert answer["CustomKeyStores"] == []
    assert answer["Truncated"] is False
    err = refused(kms.describe_custom_key_stores, CustomKeyStoreId="cks-1234567890abcdef0")
    assert err[:2] == ("CustomKeyStoreNotFoundException", 400)
    err = refused(kms.describe_custom_key_stores, CustomKeyStoreName="hsm")
    assert err[:2] == ("CustomKeyStoreNotFoundException", 400)


def test_describe_custom_key_stores_needs_an_iam_allow(cloud: Cloud) -> None:
    iam = cloud.client("iam")
    iam.create_user(UserName="nobody")
    key = iam.create_access_key(UserName="nobody")["AccessKey"]
    err = refused(cloud.as_key("kms", key).describe_custom_key_stores)
    assert err[:2] == ("AccessDeniedException", 400)
    assert "kms:DescribeCustomKeyStores" in err.message
