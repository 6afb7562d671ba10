"""Scrub upstream error bodies that echo what the edge signed or sent.

AWS answers a signature mismatch with the canonical request and the string to sign it expected
(S3: ``<CanonicalRequest>``, ``<StringToSign>`` and their ``...Bytes`` twins, plus the access
key; JSON and query services: "The Canonical String for this request should have been ..." in
the message), and S3 answers an expired or invalid token with the token itself
(``<Token-0>``). Those were computed over the edge's re-signed request: they name the real
temporary access key and the security token, which the workload must never see. The workload
gets the error code and the first sentence; the rest is replaced by a note.

Beyond these known shapes, every exact occurrence of a credential the edge sent (the access key
id, the session token, a static secret; as sent and JSON-escaped) is removed from any error
body, whatever the upstream wrapped it in.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

NOTE = "(removed by latchkey: it described the request latchkey signed)"
REMOVED = b"(removed by latchkey)"
_XML_ELEMENTS = re.compile(
    rb"<(CanonicalRequest|CanonicalRequestBytes|StringToSign|StringToSignBytes|"
    rb"SignatureProvided|AWSAccessKeyId|Token-\d+)>.*?</\1>",
    re.DOTALL,
)
_ECHO_MARKERS = (
    b"The Canonical String for this request should have been",
    b"The String-to-Sign should have been",
)
_SHORTEST = 8  # a value shorter than this is no credential worth a search (and would over-match)


def scrub_error_body(body: bytes, sent: Iterable[str] = ()) -> bytes:
    """``body`` without what an upstream echoed of the signed request, nor any of the
    credentials in ``sent`` (unchanged if none)."""
    if b"<" in body:
        body = _XML_ELEMENTS.sub(lambda m: b"<%s>%s</%s>" % (m[1], NOTE.encode(), m[1]), body)
    json_body = body.lstrip()[:1] == b"{"
    for marker in _ECHO_MARKERS:
        at = body.find(marker)
        if at >= 0:
            end = _end_of_string(body, at, json_body)
            body = body[:at] + NOTE.encode() + body[end:]
    for value in sent:
        raw = value.encode("utf-8", "surrogateescape")
        if len(raw) < _SHORTEST:
            continue
        for form in {raw, raw.replace(b"/", b"\\/")}:  # JSON may escape the solidus
            body = body.replace(form, REMOVED)
    return body


def _end_of_string(body: bytes, start: int, json_body: bool) -> int:
    """Where the JSON string (or XML text) holding ``start`` ends: the next unescaped quote in
    JSON (where ``<`` may stand unescaped), the next ``<`` in XML; the end of the body
    otherwise."""
    stop = b'"' if json_body else b"<"
    i = start
    while i < len(body):
        c = body[i : i + 1]
        if json_body and c == b"\\":
            i += 2
            continue
        if c == stop:
            return i
        i += 1
    return len(body)
