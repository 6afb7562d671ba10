"""Scrub upstream error bodies that echo what the edge signed.

AWS answers a signature mismatch with the canonical request and the string to sign it expected
(S3: ``<CanonicalRequest>``, ``<StringToSign>`` and their ``...Bytes`` twins, plus the access
key; JSON and query services: "The Canonical String for this request should have been ..." in
the message). Those were computed over the edge's re-signed request: they name the real
temporary access key and the security token's scope, which the workload must never see. The
workload gets the error code and the first sentence; the rest is replaced by a note.
"""

from __future__ import annotations

import re

NOTE = "(removed by latchkey: it described the request latchkey signed)"
_XML_ELEMENTS = re.compile(
    rb"<(CanonicalRequest|CanonicalRequestBytes|StringToSign|StringToSignBytes|"
    rb"SignatureProvided|AWSAccessKeyId)>.*?</\1>",
    re.DOTALL,
)
_ECHO_MARKERS = (
    b"The Canonical String for this request should have been",
    b"The String-to-Sign should have been",
)


def scrub_error_body(body: bytes) -> bytes:
    """``body`` without what an upstream echoed of the signed request (unchanged if none)."""
    if b"<" in body:
        body = _XML_ELEMENTS.sub(lambda m: b"<%s>%s</%s>" % (m[1], NOTE.encode(), m[1]), body)
    for marker in _ECHO_MARKERS:
        at = body.find(marker)
        if at >= 0:
            end = _end_of_string(body, at)
            body = body[:at] + NOTE.encode() + body[end:]
    return body


def _end_of_string(body: bytes, start: int) -> int:
    """Where the JSON string (or XML text) holding ``start`` ends: the next unescaped quote
    or ``<``; the end of the body otherwise."""
    i = start
    while i < len(body):
        c = body[i : i + 1]
        if c == b"\\":
            i += 2
            continue
        if c in (b'"', b"<"):
            return i
        i += 1
    return len(body)
