"""Re-signing: a botocore-signed placeholder request comes out signed with the real keys."""

from __future__ import annotations

import copy
import datetime as dt
from dataclasses import dataclass
from unittest import mock
from urllib.parse import urlsplit

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as BotoCredentials

from latchkey.aws import sigv4, sigv4verify
from latchkey.edge.sign import resign, scope_of
from latchkey.http.h1 import Request

NOW = dt.datetime(2024, 5, 1, 12, 0, 0, tzinfo=dt.UTC)
LATER = NOW + dt.timedelta(minutes=3)  # the edge re-signs a little after the client signed
PLACEHOLDER = BotoCredentials("AKIDPLACEHOLDER", "placeholder-secret", "placeholder-token")
REAL = sigv4.Credentials("ASIAREALKEY", "real/secret+key", "real-session-token")
REAL_NO_TOKEN = sigv4.Credentials("AKIAREALKEY", "another-real-secret")
PROXY_HEADERS = [
    ("Connection", "keep-alive"),
    ("Proxy-Authorization", "Basic dTpw"),
    ("Proxy-Connection", "keep-alive"),
]


@dataclass(frozen=True)
class Call:
    url: str
    region: str
    service: str
    headers: dict[str, str]
    body: bytes


CALLS = {
    "kms-json": Call(
        "https://kms.eu-west-1.amazonaws.com/",
        "eu-west-1",
        "kms",
        {"X-Amz-Target": "TrentService.Encrypt", "Content-Type": "application/x-amz-json-1.1"},
        b'{"KeyId":"alias/app","Plaintext":"aGVsbG8="}',
    ),
    "sts-query-form": Call(
        "https://sts.amazonaws.com/",
        "us-east-1",
        "sts",
        {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
        b"Action=GetCallerIdentity&Version=2011-06-15",
    ),
    "path-needing-encoding": Call(
        "https://lambda.us-west-2.amazonaws.com/2015-03-31/functions/my%20fn%3Av1/invocations"
        "?Qualifier=%24LATEST&x=a%2Fb%20c",
        "us-west-2",
        "lambda",
        {"Content-Type": "application/json", "X-Amz-Invocation-Type": "Event"},
        b'{"k": "v"}',
    ),
}


def botocore_sign(call: Call, creds: BotoCredentials, at: dt.datetime) -> AWSRequest:
    req = AWSRequest(method="POST", url=call.url, headers=dict(call.headers), data=call.body)
    with mock.patch("botocore.auth.get_current_datetime", return_value=at.replace(tzinfo=None)):
        SigV4Auth(creds, call.service, call.region).add_auth(req)
    return req


def as_h1(req: AWSRequest, extra: list[tuple[str, str]]) -> Request:
    """The request as the edge's parser hands it over: origin-form target, wire headers."""
    url = urlsplit(req.url)
    target = url.path + (f"?{url.query}" if url.query else "")
    headers = [("Host", url.netloc), *req.headers.items(), *extra]
    headers.append(("Content-Length", str(len(req.body))))
    return Request("POST", target, headers, req.body)


def verify(
    request: Request, headers: list[tuple[str, str]], secret: str
) -> sigv4.SignedRequestInfo:
    signed = sigv4.HttpRequest("POST", request.path, request.query, tuple(headers), request.body)
    info = sigv4verify.parse_signed_request(signed)
    sigv4verify.verify_signature(signed, info, secret)
    return info


def names(headers: list[tuple[str, str]]) -> set[str]:
    return {k.lower() for k, _ in headers}


@pytest.mark.parametrize("creds", [REAL, REAL_NO_TOKEN], ids=["session-token", "long-term"])
@pytest.mark.parametrize("call", CALLS.values(), ids=CALLS.keys())
def test_resigned_request_verifies_under_the_real_secret(
    call: Call, creds: sigv4.Credentials
) -> None:
    request = as_h1(botocore_sign(call, PLACEHOLDER, NOW), PROXY_HEADERS)
    host = urlsplit(call.url).netloc
    headers = resign(request, creds, host=host, now=LATER)

    info = verify(request, headers, creds.secret_key)
    assert (info.access_key, info.scope.region, info.scope.service) == (
        creds.access_key,
        call.region,
        call.service,
    )
    assert info.amz_date == "20240501T120300Z"
    assert info.session_token == creds.session_token
    with pytest.raises(sigv4.SignatureMismatch):
        verify(request, headers, PLACEHOLDER.secret_key)

    assert [k for k, _ in headers if k.lower() == "authorization"] == ["Authorization"]
    assert "AKIDPLACEHOLDER" not in repr(headers)
    assert "placeholder-token" not in repr(headers)
    tokens = [v for k, v in headers if k.lower() == "x-amz-security-token"]
    assert tokens == ([creds.session_token] if creds.session_token else [])
    assert not names(headers) & {"connection", "proxy-authorization", "proxy-connection"}
    assert "content-length" not in names(headers)  # the encoder writes the framing
    for name, value in call.headers.items():
        assert (name, value) in headers


@pytest.mark.parametrize("call", CALLS.values(), ids=CALLS.keys())
def test_resign_matches_botocore_signing_with_the_real_keys(call: Call) -> None:
    request = as_h1(botocore_sign(call, PLACEHOLDER, NOW), PROXY_HEADERS)
    headers = resign(request, REAL, host=urlsplit(call.url).netloc, now=LATER)
    real = BotoCredentials(REAL.access_key, REAL.secret_key, REAL.session_token)
    expected = botocore_sign(call, real, LATER)
    assert dict(headers)["Authorization"] == expected.headers["Authorization"]


def test_resign_does_not_mutate_the_request() -> None:
    request = as_h1(botocore_sign(CALLS["kms-json"], PLACEHOLDER, NOW), PROXY_HEADERS)
    before = copy.deepcopy(request)
    resign(request, REAL, host="kms.eu-west-1.amazonaws.com", now=LATER)
    assert request == before


def test_host_is_added_when_the_client_sent_none() -> None:
    request = Request("POST", "/", [("X-Amz-Target", "TrentService.ListKeys")], b"{}")
    headers = resign(request, REAL_NO_TOKEN, host="kms.us-east-2.amazonaws.com", now=NOW)
    assert headers[0] == ("Host", "kms.us-east-2.amazonaws.com")
    info = verify(request, headers, REAL_NO_TOKEN.secret_key)
    assert (info.scope.region, info.scope.service) == ("us-east-2", "kms")
    assert "host" in info.signed_headers


def test_fields_named_by_connection_are_not_forwarded() -> None:
    request = as_h1(
        botocore_sign(CALLS["kms-json"], PLACEHOLDER, NOW),
        [("Connection", "keep-alive, X-Client-Hop"), ("X-Client-Hop", "1")],
    )
    headers = resign(request, REAL, host="kms.eu-west-1.amazonaws.com", now=LATER)
    assert "x-client-hop" not in names(headers)


# --- scope_of ---------------------------------------------------------------------------------


def placeholder(scope: str) -> Request:
    auth = f"AWS4-HMAC-SHA256 Credential=AKID/{scope}, SignedHeaders=host, Signature=00"
    return Request("POST", "/", [("Authorization", auth)])


BARE = Request("GET", "/", [])
KMS_AP = "kms.ap-south-1.amazonaws.com"


@pytest.mark.parametrize(
    ("request_", "host", "scope"),
    [
        (placeholder("20240501/eu-central-1/kms/aws4_request"), "x.y.z", ("eu-central-1", "kms")),
        (
            placeholder("20240501/us-west-2/sts/aws4_request"),
            "sts.amazonaws.com",
            ("us-west-2", "sts"),
        ),
        (placeholder("20240501/eu-west-1/kms/not_terminated"), KMS_AP, ("ap-south-1", "kms")),
        (placeholder("eu-west-1/kms/aws4_request"), "sts.amazonaws.com", ("us-east-1", "sts")),
        (Request("GET", "/", [("Authorization", "Bearer abc")]), KMS_AP, ("ap-south-1", "kms")),
        (BARE, "kms.us-east-1.amazonaws.com", ("us-east-1", "kms")),
        (BARE, "KMS.EU-WEST-3.AMAZONAWS.COM", ("eu-west-3", "kms")),
        (BARE, "sts.amazonaws.com", ("us-east-1", "sts")),
        (BARE, "iam.amazonaws.com", ("us-east-1", "iam")),
        (BARE, "localhost", ("us-east-1", "localhost")),
    ],
)
def test_scope_of(request_: Request, host: str, scope: tuple[str, str]) -> None:
    assert scope_of(request_, host) == scope


@pytest.mark.parametrize(
    "host", ["kms.eu-west-1.amazonaws.com.", "kms.cn-north-1.amazonaws.com.cn"]
)
def test_scope_of_other_spellings(host: str) -> None:
    region = host.split(".")[1]
    assert scope_of(Request("GET", "/", []), host) == (region, "kms")
