"""Re-signing by payload mode: S3's encode-once paths, streaming modes, refusals."""

from __future__ import annotations

import datetime as dt
import hashlib
from unittest import mock
from urllib.parse import quote, urlsplit

import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as BotoCredentials

from latchkey.aws import sigv4, sigv4verify
from latchkey.aws.chunked import ChunkSigning, sign_chunks
from latchkey.edge.sign import (
    PayloadMode,
    Refusal,
    payload_mode,
    refusal_response,
    resign_body,
    resign_head,
)
from latchkey.http.h1 import Request

NOW = dt.datetime(2024, 5, 1, 12, 0, 0, tzinfo=dt.UTC)
LATER = NOW + dt.timedelta(minutes=2)
PLACEHOLDER = BotoCredentials("AKIDPLACEHOLDER", "placeholder-secret", "placeholder-token")
REAL = sigv4.Credentials("ASIAREALKEY", "real/secret+key", "real-session-token")
S3 = "s3.amazonaws.com"


def s3_request(method: str, key: str, body: bytes, sha: str | None = None) -> Request:
    url = f"https://{S3}/bucket/{quote(key, safe='/~')}"
    req = AWSRequest(method=method, url=url, data=body)
    with mock.patch("botocore.auth.get_current_datetime", return_value=NOW.replace(tzinfo=None)):
        S3SigV4Auth(PLACEHOLDER, "s3", "us-east-1").add_auth(req)
    parts = urlsplit(req.url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    headers = [(k, v) for k, v in req.headers.items() if k.lower() != "x-amz-content-sha256"]
    if sha is not None:  # what another client declared (the edge never checks the placeholder)
        headers.append(("x-amz-content-sha256", sha))
    return Request(method, target, [("Host", S3), *headers], body)


@pytest.mark.parametrize("key", ["plain.txt", "dir%2Fname", "with space", "a=b", "u@h", "a/./b"])
def test_s3_paths_are_signed_as_sent_like_botocore_does(key: str) -> None:
    request = s3_request("PUT", key, b"data")
    headers = resign_head(request, REAL, host=S3, now=LATER).headers
    expected = AWSRequest(method="PUT", url=f"https://{S3}{request.target}", data=b"data")
    with mock.patch("botocore.auth.get_current_datetime", return_value=LATER.replace(tzinfo=None)):
        real = BotoCredentials(REAL.access_key, REAL.secret_key, REAL.session_token)
        S3SigV4Auth(real, "s3", "us-east-1").add_auth(expected)
    assert dict(headers)["Authorization"] == expected.headers["Authorization"]


def test_other_services_encode_the_path_twice() -> None:
    request = Request("GET", "/2015-03-31/functions/a%3Ab/x", [("Host", "lambda.x")], b"")
    signed = sigv4.HttpRequest("GET", request.path, "", tuple(resign_head(
        request, REAL, host="lambda.us-west-2.amazonaws.com", now=NOW).headers))  # fmt: skip
    info = sigv4verify.parse_signed_request(signed)
    sigv4verify.verify_signature(signed, info, REAL.secret_key)  # the default rules: twice
    with pytest.raises(sigv4.SignatureMismatch):
        sigv4verify.verify_signature(signed, info, REAL.secret_key, encode_path=False)


@pytest.mark.parametrize(
    ("sha", "mode"),
    [
        (None, PayloadMode.HASH_BODY),
        (hashlib.sha256(b"x").hexdigest(), PayloadMode.DECLARED_HASH),
        ("UNSIGNED-PAYLOAD", PayloadMode.UNSIGNED),
        ("STREAMING-UNSIGNED-PAYLOAD-TRAILER", PayloadMode.UNSIGNED_TRAILER),
        ("STREAMING-AWS4-HMAC-SHA256-PAYLOAD", PayloadMode.SIGNED_CHUNKS),
        ("STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER", PayloadMode.SIGNED_CHUNKS_TRAILER),
    ],
)
def test_payload_modes(sha: str | None, mode: PayloadMode) -> None:
    request = s3_request("PUT", "k", b"x", sha)
    request.headers.append(("Content-Encoding", "aws-chunked"))
    assert payload_mode(request, "s3") is mode


def test_s3_without_a_declared_hash_gets_one() -> None:
    request = Request("PUT", "/b/k", [("Host", S3)], b"body")
    headers = dict(resign_head(request, REAL, host=S3, now=NOW).headers)
    assert headers["x-amz-content-sha256"] == hashlib.sha256(b"body").hexdigest()


@pytest.mark.parametrize(
    ("target", "headers", "words"),
    [
        ("/b/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=abc", [], "presigned"),
        ("/b/k?AWSAccessKeyId=AKID&Signature=abc&Expires=1", [], "presigned"),
        ("/", [("Content-Encoding", "gzip")], "AWS_DISABLE_REQUEST_COMPRESSION=true"),
        ("/", [("x-amz-content-sha256", "STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD")], "cannot"),
        ("/", [("x-amz-content-sha256", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD")], "aws-chunked"),
    ],
)
def test_what_cannot_be_resigned_is_refused_with_the_workaround(
    target: str, headers: list[tuple[str, str]], words: str
) -> None:
    request = Request("POST", target, [("Host", "kms.us-east-1.amazonaws.com"), *headers], b"")
    with pytest.raises(Refusal) as err:
        payload_mode(request, "kms")
    assert words in err.value.message
    response = refusal_response(err.value, request, "kms.us-east-1.amazonaws.com")
    assert response.status == 400
    assert words.encode() in response.body


def test_gzip_is_object_metadata_for_s3() -> None:
    request = s3_request("PUT", "k.gz", b"\x1f\x8b", "UNSIGNED-PAYLOAD")
    request.headers.append(("Content-Encoding", "gzip"))
    assert payload_mode(request, "s3") is PayloadMode.UNSIGNED


def test_chunk_chain_is_reseeded_from_the_new_signature() -> None:
    request = s3_request("PUT", "k", b"", "STREAMING-AWS4-HMAC-SHA256-PAYLOAD")
    request.headers += [("Content-Encoding", "aws-chunked"), ("x-amz-decoded-content-length", "5")]
    signed = resign_head(request, REAL, host=S3, now=LATER)
    assert signed.chunks is not None
    authorization = dict(signed.headers)["Authorization"]
    assert authorization.endswith(f"Signature={signed.chunks.seed_signature}")
    scope = sigv4.CredentialScope("20240501", "us-east-1", "s3")
    placeholder = ChunkSigning(b"k" * 32, "20240501T120000Z", scope, "0" * 64)
    body = sign_chunks([b"hello"], placeholder)
    expected = sign_chunks([b"hello"], signed.chunks)
    assert resign_body(body, signed, 1024) == expected
    assert signed.chunks.signing_key == sigv4.derive_signing_key(REAL.secret_key, scope)
    assert signed.chunks.amz_date == "20240501T120200Z"
    assert ("Expect", "100-continue") not in signed.headers
