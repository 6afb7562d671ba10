"""The AWS JSON 1.1 protocol (KMS): ``X-Amz-Target`` routing, bodies, errors. Pure.

Bodies are read strictly: UTF-8 only (no UTF-16/32 detection, no byte-order mark), no
``NaN``/``Infinity`` tokens, and no string (member name or value) holding a lone surrogate
escape such as ``"\\ud800"``, which no UTF-8 store or ciphertext could hold. Each is a
``SerializationException``, as any other body that is not JSON.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any

from latchkey.aws.errors import AwsError

CONTENT_TYPE = "application/x-amz-json-1.1"


def parse_target(value: str | None) -> tuple[str, str]:
    """``"TrentService.Encrypt"`` -> ``("TrentService", "Encrypt")``."""
    if not value or "." not in value:
        raise AwsError("UnknownOperationException", "")
    prefix, _, operation = value.rpartition(".")
    return prefix, operation


def _refuse_constant(token: str) -> Any:
    """``NaN``, ``Infinity`` and ``-Infinity`` are not JSON (Python's parser takes them)."""
    raise ValueError(f"not JSON: {token}")


_DECODER = json.JSONDecoder(parse_constant=_refuse_constant)

#: A ``\uD800``-``\uDFFF`` escape: the only way a surrogate gets into a decoded string (strict
#: UTF-8 refuses encoded ones). Searched for only when the body holds a backslash at all (a
#: one-byte ``in`` is a memchr; the common body has none and pays nothing more).
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def _has_lone_surrogate(value: object) -> bool:
    """Whether a string anywhere in ``value`` (map keys included) is not encodable as UTF-8.
    Iterative: the decoder's own nesting limit is as deep as it goes, a recursion might not."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode()
            except UnicodeEncodeError:
                return True
        elif isinstance(item, dict):
            stack.extend(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def decode_body(body: bytes) -> dict[str, Any]:
    """The request body as a JSON object; anything else is a SerializationException (as on
    AWS: no message for a body that is not JSON or not an object, one for a JSON list). Not
    JSON, here: a body that is not UTF-8, ``NaN``/``Infinity``, a lone surrogate escape."""
    if not body.strip():
        return {}
    try:
        value = _DECODER.decode(body.decode("utf-8"))
    except (ValueError, RecursionError):  # UnicodeDecodeError, JSONDecodeError, NaN, 4301 digits
        raise AwsError("SerializationException", "") from None
    if b"\\" in body and _SURROGATE_ESCAPE.search(body) and _has_lone_surrogate(value):
        raise AwsError("SerializationException", "")
    if isinstance(value, list):
        raise AwsError("SerializationException", "Start of list found where not expected")
    if not isinstance(value, dict):
        raise AwsError("SerializationException", "")
    return value


#: The content types AWS's JSON front end accepts; any other is no protocol it speaks.
JSON_CONTENT_TYPES = frozenset(
    {"application/x-amz-json-1.1", "application/x-amz-json-1.0", "application/json"}
)


#: The AWS JSON protocols' own content types: a request carrying one is a JSON call even
#: without ``X-Amz-Target`` (answered ``UnknownOperationException`` in JSON, never in XML).
AWS_JSON_CONTENT_TYPES = frozenset({"application/x-amz-json-1.1", "application/x-amz-json-1.0"})


def _media_type(value: str | None) -> str:
    return (value or "").split(";", 1)[0].strip().lower()


def is_aws_json(content_type: str | None) -> bool:
    """Whether ``content_type`` is an AWS JSON protocol's (parameters ignored)."""
    return _media_type(content_type) in AWS_JSON_CONTENT_TYPES


class ProtocolMismatch(AwsError):
    """A request no AWS protocol matched (no or a foreign Content-Type): AWS answers 404 with
    an empty ``<UnknownOperationException/>`` element."""

    def __init__(self) -> None:
        super().__init__("UnknownOperationException", "", 404)


def check_content_type(value: str | None) -> None:
    """``ProtocolMismatch`` unless ``value`` is a JSON content type (parameters ignored)."""
    if _media_type(value) not in JSON_CONTENT_TYPES:
        raise ProtocolMismatch()


def decode_blob(value: object, field: str) -> bytes:
    """A base64 ``Blob`` member."""
    if not isinstance(value, str):
        raise AwsError("SerializationException", f"Value for '{field}' must be a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise AwsError(
            "SerializationException", f"Value for '{field}' is not valid base64"
        ) from None


def encode_blob(value: bytes) -> str:
    return base64.b64encode(value).decode("ascii")


def encode_body(value: dict[str, Any]) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def encode_error(err: AwsError) -> tuple[int, list[tuple[str, str]], bytes]:
    """(status, headers, body) in the shape botocore's JSON error parser reads; an empty
    message is left out, as AWS leaves it out."""
    if isinstance(err, ProtocolMismatch):
        return err.status, [("Content-Type", "application/xml")], b"<UnknownOperationException/>\n"
    fields = {"__type": err.code, "message": err.message} if err.message else {"__type": err.code}
    headers = [("Content-Type", CONTENT_TYPE), ("x-amzn-ErrorType", err.code)]
    return err.status, headers, encode_body(fields)
