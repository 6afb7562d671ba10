"""SigV4 at the local cloud's door: wrong secrets, unknown keys, stale or tampered signatures,
each answered with the error code (and status) the real service uses for its protocol.

Hand-made requests are signed by botocore's own ``SigV4Auth`` and sent over raw TLS with
``http.client``, so nothing of latchkey's is on the client side."""

from __future__ import annotations

import datetime as dt
import http.client
import json
import ssl
from collections.abc import Callable
from typing import Any, NamedTuple
from unittest import mock
from urllib.parse import urlsplit
from xml.etree import ElementTree as ET

import botocore.auth
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

import latchkey_testing
from latchkey_testing import FORM, Cloud

KMS_JSON = "application/x-amz-json-1.1"
CALLER_IDENTITY = b"Action=GetCallerIdentity&Version=2011-06-15"
BAD_SIGNATURE = "The request signature we calculated does not match the signature you provided."


class Answer(NamedTuple):
    status: int
    code: str
    message: str


def refused(call: Callable[..., Any], **kwargs: Any) -> Answer:
    """``latchkey_testing.refused``, as this module's status/code/message ``Answer``."""
    err = latchkey_testing.refused(call, **kwargs)
    return Answer(err.status, err.code, err.message)


def admin_creds(cloud: Cloud, **override: str) -> Credentials:
    admin = cloud.node.admin()
    return Credentials(
        override.get("key", admin["AccessKeyId"]), override.get("secret", admin["SecretAccessKey"])
    )


def kms_request(cloud: Cloud, operation: str = "ListKeys", body: bytes = b"{}") -> AWSRequest:
    headers = {"X-Amz-Target": f"TrentService.{operation}", "Content-Type": KMS_JSON}
    return AWSRequest(method="POST", url=cloud.node.info.cloud + "/", data=body, headers=headers)


def sts_request(cloud: Cloud) -> AWSRequest:
    url = cloud.node.info.cloud + "/"
    return AWSRequest(method="POST", url=url, data=CALLER_IDENTITY, headers={"Content-Type": FORM})


def sign(req: AWSRequest, creds: Credentials, service: str, *, skew: float = 0) -> AWSRequest:
    """Sign with botocore as if the client's clock were ``skew`` seconds off."""
    when = dt.datetime.now(dt.UTC).replace(tzinfo=None) + dt.timedelta(seconds=skew)
    with mock.patch.object(botocore.auth, "get_current_datetime", return_value=when):
        SigV4Auth(creds, service, "us-east-1").add_auth(req)
    return req


def send(cloud: Cloud, req: AWSRequest, body: bytes | None = None) -> Answer:
    """Send over TLS with http.client; the body may be swapped after signing."""
    parts = urlsplit(cloud.node.info.cloud)
    ctx = ssl.create_default_context(cafile=cloud.node.info.ca_bundle)
    conn = http.client.HTTPSConnection(str(parts.hostname), parts.port, context=ctx, timeout=10)
    try:
        payload = req.data if body is None else body
        conn.request(req.method, "/", body=payload, headers=dict(req.headers.items()))
        resp = conn.getresponse()
        status, raw = resp.status, resp.read()
    finally:
        conn.close()
    if status == 200:
        return Answer(status, "", "")
    if resp.getheader("Content-Type", "").startswith(KMS_JSON):
        doc = json.loads(raw)
        return Answer(status, doc["__type"], doc.get("message", ""))
    root = ET.fromstring(raw)  # noqa: S314 -- our own server's answer
    return Answer(status, root.findtext(".//{*}Code") or "", root.findtext(".//{*}Message") or "")


# -- boto3 with bad credentials -----------------------------------------------------------------

BAD_CREDENTIALS = [
    ("kms", "wrong-secret", 400, "InvalidSignatureException"),
    ("kms", "unknown-key", 400, "UnrecognizedClientException"),
    ("sts", "wrong-secret", 403, "SignatureDoesNotMatch"),
    ("sts", "unknown-key", 403, "InvalidClientTokenId"),
    ("iam", "wrong-secret", 403, "SignatureDoesNotMatch"),
    ("iam", "unknown-key", 403, "InvalidClientTokenId"),
]
CALLS = {
    "kms": ("list_keys", {}),
    "sts": ("get_caller_identity", {}),
    "iam": ("get_role", {"RoleName": "latchkey-kms"}),
}


@pytest.mark.parametrize(("service", "bad", "status", "code"), BAD_CREDENTIALS)
def test_bad_credentials(cloud: Cloud, service: str, bad: str, status: int, code: str) -> None:
    admin = cloud.node.admin()
    creds = {
        "aws_access_key_id": admin["AccessKeyId"],
        "aws_secret_access_key": "wrong" + admin["SecretAccessKey"][5:],
    }
    if bad == "unknown-key":
        creds = {"aws_access_key_id": "AKIAUNKNOWNUNKNOWN00", "aws_secret_access_key": "x" * 40}
    name, params = CALLS[service]
    answer = refused(getattr(cloud.client(service, **creds), name), **params)
    assert answer[:2] == (status, code)
    if bad == "wrong-secret":
        assert answer.message.startswith(BAD_SIGNATURE)
    good = cloud.client(service)  # the admin's real keys still work
    getattr(good, name)(**params)


# -- hand-signed requests -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("service", "skew", "status", "code", "starts"),
    [("kms", -360, 400, "InvalidSignatureException", "Signature expired"),
     ("kms", +360, 400, "InvalidSignatureException", "Signature not yet current"),
     ("kms", -240, 200, "", ""),
     ("sts", -20 * 60, 403, "SignatureDoesNotMatch", "Signature expired"),
     ("sts", -60, 200, "", "")],
)  # fmt: skip
def test_signing_time_window(
    cloud: Cloud, service: str, skew: float, status: int, code: str, starts: str
) -> None:
    req = kms_request(cloud) if service == "kms" else sts_request(cloud)
    answer = send(cloud, sign(req, admin_creds(cloud), service, skew=skew))
    assert answer[:2] == (status, code)
    assert answer.message.startswith(starts)


def test_hand_signed_request_is_served(cloud: Cloud) -> None:
    assert send(cloud, sign(kms_request(cloud), admin_creds(cloud), "kms")).status == 200
    assert send(cloud, sign(sts_request(cloud), admin_creds(cloud), "sts")).status == 200


@pytest.mark.parametrize(
    "header", ["X-Amz-Meta-Extra", "X-Amz-Security-Token", "x-amz-content-sha256"]
)
def test_amz_header_added_after_signing(cloud: Cloud, header: str) -> None:
    req = sign(kms_request(cloud), admin_creds(cloud), "kms")
    req.headers[header] = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert send(cloud, req)[:2] == (400, "InvalidSignatureException")


def test_body_swapped_after_signing(cloud: Cloud) -> None:
    req = sign(kms_request(cloud, "ListKeys", b'{"Limit": 5}'), admin_creds(cloud), "kms")
    answer = send(cloud, req, body=b'{"Limit": 6}')
    assert answer[:2] == (400, "InvalidSignatureException")
    assert answer.message.startswith(BAD_SIGNATURE)


def test_operation_swapped_after_signing(cloud: Cloud) -> None:
    req = sign(kms_request(cloud, "ListKeys"), admin_creds(cloud), "kms")
    req.headers.replace_header("X-Amz-Target", "TrentService.CreateKey")
    assert send(cloud, req)[:2] == (400, "InvalidSignatureException")
    assert cloud.client("kms").list_keys()["Keys"] == []  # no key was made


@pytest.mark.parametrize("scope_service", ["sts", "kms-other"])
def test_signed_for_another_service(cloud: Cloud, scope_service: str) -> None:
    answer = send(cloud, sign(kms_request(cloud), admin_creds(cloud), scope_service))
    assert answer[:2] == (400, "InvalidSignatureException")
    assert answer.message.startswith("Credential should be scoped to correct service: 'kms'")


@pytest.mark.parametrize(
    ("make", "status", "code"),
    [(kms_request, 400, "MissingAuthenticationTokenException"),
     (sts_request, 403, "MissingAuthenticationToken")],
)  # fmt: skip
def test_missing_authorization(
    cloud: Cloud, make: Callable[[Cloud], AWSRequest], status: int, code: str
) -> None:
    assert send(cloud, make(cloud))[:2] == (status, code)


@pytest.mark.parametrize(
    "authorization",
    ["AWS4-HMAC-SHA256 Credential=AKIAEXAMPLE/20240101/us-east-1/kms/aws4_request",
     "AWS4-HMAC-SHA256 Credential=AKIA/x/us-east-1/kms/aws4_request, SignedHeaders=host, "
     "Signature=00"],
)  # fmt: skip
def test_malformed_authorization(cloud: Cloud, authorization: str) -> None:
    req = sign(kms_request(cloud), admin_creds(cloud), "kms")
    req.headers.replace_header("Authorization", authorization)
    assert send(cloud, req)[:2] == (400, "IncompleteSignatureException")


def test_unknown_key_on_a_hand_signed_request(cloud: Cloud) -> None:
    creds = admin_creds(cloud, key="AKIAUNKNOWNUNKNOWN00")
    answer = send(cloud, sign(kms_request(cloud), creds, "kms"))
    assert answer[:2] == (400, "UnrecognizedClientException")
    answer = send(cloud, sign(sts_request(cloud), creds, "sts"))
    assert answer[:2] == (403, "InvalidClientTokenId")
