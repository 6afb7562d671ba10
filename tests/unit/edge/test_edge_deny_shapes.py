"""Refusals reach the client in its own protocol's error shape, so the SDK raises the error
with the reason instead of a parse failure."""

from __future__ import annotations

import json
from xml.etree import ElementTree as ET

import pytest

from latchkey.control.model import AuthScheme, ServerWorkload
from latchkey.edge.decide import Denied, Reason
from latchkey.edge.server import deny_response
from latchkey.http.h1 import Request

DENIED = Denied(Reason.NO_MATCHING_POLICY, "no access policy lets client 'app' reach 'aws'")
SCOPE = "Credential=AKIAPLACEHOLDER/20260101/us-east-1/{service}/aws4_request"


def server(scheme: AuthScheme = AuthScheme.AWS_SIGV4) -> ServerWorkload:
    return ServerWorkload(
        name="aws", host="*.amazonaws.com", port=443, tls=True, app_protocol="http",
        forward_host="*.amazonaws.com", forward_port=443, forward_tls=True, tls_verify=True,
        auth_scheme=scheme,
    )  # fmt: skip


def request(service: str, headers: list[tuple[str, str]]) -> Request:
    auth = ("Authorization", "AWS4-HMAC-SHA256 " + SCOPE.format(service=service))
    return Request("POST", "/", [("Host", f"{service}.amazonaws.com"), auth, *headers])


def test_json_services_get_a_json_error() -> None:
    req = request("kms", [("X-Amz-Target", "TrentService.Decrypt"),
                          ("Content-Type", "application/x-amz-json-1.1")])  # fmt: skip
    resp = deny_response(server(), DENIED, req, "kms.us-east-1.amazonaws.com")
    assert resp.status == 403
    doc = json.loads(resp.body)
    assert doc["__type"] == "AccessDeniedException"
    assert "NoMatchingPolicy" in doc["message"]
    assert resp.header("x-latchkey-reason") == "NoMatchingPolicy"


@pytest.mark.parametrize(("service", "root"), [("sts", "ErrorResponse"), ("s3", "Error")])
def test_query_and_s3_get_xml(service: str, root: str) -> None:
    req = request(service, [("Content-Type", "application/x-www-form-urlencoded")])
    resp = deny_response(server(), DENIED, req, f"{service}.amazonaws.com")
    assert resp.header("Content-Type") in ("text/xml", "application/xml")
    doc = ET.fromstring(resp.body)  # noqa: S314 - our own output
    assert doc.tag == root
    assert doc.findtext(".//Code") == "AccessDenied"
    assert "NoMatchingPolicy" in (doc.findtext(".//Message") or "")


def test_credential_trouble_is_503_with_retry_after() -> None:
    denied = Denied(Reason.CREDENTIAL_UNAVAILABLE, "STS unreachable")
    req = request("sts", [("Content-Type", "application/x-www-form-urlencoded")])
    resp = deny_response(server(), denied, req, "sts.amazonaws.com", 503)
    assert (resp.status, resp.header("Retry-After")) == (503, "5")
    code = ET.fromstring(resp.body).findtext(".//Code")  # noqa: S314 - our own output
    assert code == "ServiceUnavailableException"


def test_non_aws_targets_get_plain_json() -> None:
    req = Request("GET", "/", [("Host", "api.example.com")])
    resp = deny_response(server(AuthScheme.BEARER), DENIED, req, "api.example.com")
    assert json.loads(resp.body)["reason"] == "NoMatchingPolicy"
