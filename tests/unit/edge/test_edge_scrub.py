"""Upstream error bodies that echo the re-signed request are scrubbed (AWS's real shapes)."""

from __future__ import annotations

import json

import pytest

from latchkey.edge.scrub import NOTE, scrub_error_body

S3_MISMATCH = b"""<?xml version="1.0" encoding="UTF-8"?>
<Error><Code>SignatureDoesNotMatch</Code><Message>The request signature we calculated does not
match the signature you provided. Check your key and signing method.</Message>
<AWSAccessKeyId>ASIAQEXAMPLEREALKEY1</AWSAccessKeyId><StringToSign>AWS4-HMAC-SHA256
20260101T000000Z
20260101/us-east-1/s3/aws4_request
abc</StringToSign><SignatureProvided>deadbeef</SignatureProvided><StringToSignBytes>41 57
</StringToSignBytes><CanonicalRequest>GET
/bucket/key

host:s3.amazonaws.com
x-amz-security-token:IQoJb3JpZ2luX2VjEXAMPLETOKEN
</CanonicalRequest><CanonicalRequestBytes>47 45 54</CanonicalRequestBytes>
<RequestId>R</RequestId></Error>"""


def test_s3_signature_mismatch() -> None:
    scrubbed = scrub_error_body(S3_MISMATCH)
    for secretish in (b"ASIAQEXAMPLEREALKEY1", b"IQoJb3JpZ2luX2VjEXAMPLETOKEN", b"deadbeef",
                      b"aws4_request", b"47 45 54"):  # fmt: skip
        assert secretish not in scrubbed
    assert b"<Code>SignatureDoesNotMatch</Code>" in scrubbed
    assert b"<StringToSign>" + NOTE.encode() + b"</StringToSign>" in scrubbed
    assert b"<RequestId>R</RequestId>" in scrubbed


def test_json_service_message() -> None:
    message = (
        "The request signature we calculated does not match the signature you provided. "
        "Check your AWS Secret Access Key and signing method.\n\nThe Canonical String for this "
        "request should have been\n'POST\n/\n\nhost:kms.us-east-1.amazonaws.com\n"
        "x-amz-security-token:IQoJb3JpZ2luX2VjEXAMPLETOKEN\n'\n\nThe String-to-Sign should "
        "have been\n'AWS4-HMAC-SHA256\n20260101T000000Z\n20260101/us-east-1/kms/aws4_request'\n"
    )
    body = json.dumps({"__type": "InvalidSignatureException", "message": message}).encode()
    scrubbed = scrub_error_body(body)
    doc = json.loads(scrubbed)  # still valid JSON
    assert doc["__type"] == "InvalidSignatureException"
    assert doc["message"].startswith("The request signature we calculated does not match")
    assert "IQoJb3JpZ2luX2VjEXAMPLETOKEN" not in scrubbed.decode()
    assert "aws4_request" not in scrubbed.decode()
    assert NOTE in doc["message"]


def test_other_errors_are_untouched() -> None:
    body = b'{"__type":"AccessDeniedException","message":"User: x is not authorized"}'
    assert scrub_error_body(body) == body
    assert scrub_error_body(b"") == b""


TOKEN = "IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLWVhc3QtMSJHMEUCIQ+abc/def=="


def test_s3_echoes_the_session_token_in_token_elements() -> None:
    body = (
        b"<?xml version='1.0' encoding='UTF-8'?><Error><Code>ExpiredToken</Code>"
        b"<Message>The provided token has expired.</Message><Token-0>%s</Token-0></Error>"
        % TOKEN.encode()
    )
    scrubbed = scrub_error_body(body)
    assert TOKEN.encode() not in scrubbed
    assert b"<Code>ExpiredToken</Code>" in scrubbed


def test_an_unescaped_angle_bracket_in_json_does_not_end_the_scrub() -> None:
    """In JSON a signed header value may hold '<'; the echo runs to the string's end."""
    body = (
        b'{"__type":"InvalidSignatureException","message":"The request signature we calculated '
        b"does not match. The Canonical String for this request should have been\\n'POST\\n/\\n\\n"
        b"a-note:<\\ncontent-type:application/x-amz-json-1.1\\nx-amz-security-token:SECRETTOKEN"
        b"\\n'\\n\\nThe String-to-Sign should have been\\n'AWS4-HMAC-SHA256\\n...'\"}"
    )
    scrubbed = scrub_error_body(body)
    assert b"SECRETTOKEN" not in scrubbed
    assert scrubbed.startswith(b'{"__type":"InvalidSignatureException"')
    assert scrubbed.endswith(b'"}')


@pytest.mark.parametrize(
    "echo",
    [TOKEN.encode(), TOKEN.replace("/", "\\/").encode()],  # as sent, and JSON-escaped
)
def test_every_credential_sent_is_removed_wherever_it_is_echoed(echo: bytes) -> None:
    body = b'{"message":"Invalid API key: %s (key ASIAREALKEY0000001)"}' % echo
    scrubbed = scrub_error_body(body, (TOKEN, "ASIAREALKEY0000001", "short"))
    assert TOKEN.encode() not in scrubbed
    assert echo not in scrubbed
    assert b"ASIAREALKEY0000001" not in scrubbed
    assert (
        scrubbed
        == b'{"message":"Invalid API key: (removed by latchkey) (key (removed by latchkey))"}'
    )


def test_values_too_short_to_be_credentials_are_left_alone() -> None:
    assert scrub_error_body(b'{"message":"no"}', ("no", "")) == b'{"message":"no"}'
