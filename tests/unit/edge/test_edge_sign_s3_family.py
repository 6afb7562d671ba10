"""The S3 family (s3, s3-object-lambda, s3-outposts, s3express) is re-signed with S3's rules,
exactly as botocore's ``S3SigV4Auth`` signs it."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from typing import Any
from unittest import mock
from urllib.parse import quote, urlsplit

import botocore.session
import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as BotoCredentials

from latchkey.aws import sigv4
from latchkey.edge.sign import (
    S3_FAMILY,
    PayloadMode,
    aws_error,
    payload_mode,
    resign_head,
    signs_like_s3,
)
from latchkey.http.h1 import Request

NOW = dt.datetime(2024, 5, 1, 12, 0, 0, tzinfo=dt.UTC)
LATER = NOW + dt.timedelta(minutes=2)
PLACEHOLDER = BotoCredentials("AKIDPLACEHOLDER", "placeholder-secret", "placeholder-token")
REAL = sigv4.Credentials("ASIAREALKEY", "real/secret+key", "real-session-token")
REAL_BOTO = BotoCredentials(REAL.access_key, REAL.secret_key, REAL.session_token)

# signing name -> (a host botocore sends that name's requests to, its region)
HOSTS = {
    "s3": ("mybucket.s3.us-west-2.amazonaws.com", "us-west-2"),
    "s3-object-lambda": ("ap-000000000000.s3-object-lambda.us-east-1.amazonaws.com", "us-east-1"),
    "s3-outposts": (
        "ap-000000000000.op-01234567890123456.s3-outposts.us-west-2.amazonaws.com",
        "us-west-2",
    ),
    "s3express": ("bucket--usw2-az1--x-s3.s3express-usw2-az1.us-west-2.amazonaws.com", "us-west-2"),
}
# keys whose paths the non-S3 rules sign differently: encoded again, '//' collapsed
KEYS = ["with space.txt", "dir/a=b@c.txt", "a//b.txt"]


def botocore_signed(
    service: str, path: str, body: bytes, creds: BotoCredentials, at: dt.datetime
) -> AWSRequest:
    host, region = HOSTS[service]
    req = AWSRequest(method="PUT", url=f"https://{host}{path}", data=body)
    with mock.patch("botocore.auth.get_current_datetime", return_value=at.replace(tzinfo=None)):
        S3SigV4Auth(creds, service, region).add_auth(req)
    return req


def as_h1(req: AWSRequest, *, unsigned: bool = False) -> Request:
    """What the edge's parser hands over; ``unsigned``: as a client without keys sends it."""
    url = urlsplit(req.url)
    headers = [("Host", url.netloc), *req.headers.items()]
    if unsigned:
        drop = {"authorization", "x-amz-date", "x-amz-security-token", "x-amz-content-sha256"}
        headers = [(k, v) for k, v in headers if k.lower() not in drop]
    return Request("PUT", url.path, [*headers, ("Content-Length", str(len(req.body)))], req.body)


@pytest.mark.parametrize("key", KEYS)
@pytest.mark.parametrize("service", HOSTS)
@pytest.mark.parametrize("unsigned", [False, True], ids=["placeholder-signed", "unsigned"])
def test_resign_matches_botocore_s3_signing(service: str, key: str, unsigned: bool) -> None:
    path = "/" + quote(key, safe="/~")  # as boto3 puts an object key on the wire
    request = as_h1(botocore_signed(service, path, b"data", PLACEHOLDER, NOW), unsigned=unsigned)
    host = HOSTS[service][0]
    # unsigned: the scope comes from the host name, and the edge hashes the body itself
    signed = resign_head(request, REAL, host=host, now=LATER)
    assert signed.mode is (PayloadMode.HASH_BODY if unsigned else PayloadMode.DECLARED_HASH)
    expected = botocore_signed(service, path, b"data", REAL_BOTO, LATER)
    assert dict(signed.headers)["Authorization"] == expected.headers["Authorization"]
    assert (
        dict(signed.headers)["x-amz-content-sha256" if unsigned else "X-Amz-Content-SHA256"]
        == (expected.headers["X-Amz-Content-SHA256"])
    )


@pytest.mark.parametrize("service", sorted(S3_FAMILY))
def test_content_encoding_is_object_metadata_in_the_s3_family(service: str) -> None:
    host = HOSTS[service][0]
    request = Request("PUT", "/k.gz", [("Host", host), ("Content-Encoding", "gzip")], b"\x1f\x8b")
    assert payload_mode(request, service) is PayloadMode.HASH_BODY
    assert aws_error("AccessDenied", "no", request, host)[0] == "application/xml"


def _signing_names(rules: Any) -> Iterator[str]:
    if isinstance(rules, dict):
        for name, value in rules.items():
            if name == "signingName" and isinstance(value, str):
                yield value
            else:
                yield from _signing_names(value)
    elif isinstance(rules, list):
        for value in rules:
            yield from _signing_names(value)


@pytest.mark.parametrize("client", ["s3", "s3control"])
def test_s3_family_is_every_name_botocore_signs_with_s3v4(client: str) -> None:
    """botocore's s3 and s3control clients sign with "s3v4" (S3SigV4Auth) whatever signing
    name their endpoint rules pick."""
    loader = botocore.session.get_session().get_component("data_loader")
    rules = loader.load_service_model(client, "endpoint-rule-set-1")
    names = set(_signing_names(json.loads(json.dumps(rules))))
    assert names
    assert names <= S3_FAMILY
    assert all(signs_like_s3(name) for name in names)
    assert not signs_like_s3("kms")
