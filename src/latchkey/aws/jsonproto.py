"""The AWS JSON 1.1 protocol (KMS): ``X-Amz-Target`` routing, bodies, errors. Pure."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from latchkey.aws.errors import AwsError

CONTENT_TYPE = "application/x-amz-json-1.1"


def parse_target(value: str | None) -> tuple[str, str]:
    """``"TrentService.Encrypt"`` -> ``("TrentService", "Encrypt")``."""
    if not value or "." not in value:
        raise AwsError("UnknownOperationException", "")
    prefix, _, operation = value.rpartition(".")
    return prefix, operation


def decode_body(body: bytes) -> dict[str, Any]:
    """The request body as a JSON object; anything else is a SerializationException (as on
    AWS: no message for a body that is not JSON or not an object, one for a JSON list)."""
    if not body.strip():
        return {}
    try:
        value = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise AwsError("SerializationException", "") from None
    if isinstance(value, list):
        raise AwsError("SerializationException", "Start of list found where not expected")
    if not isinstance(value, dict):
        raise AwsError("SerializationException", "")
    return value


#: The content types AWS's JSON front end accepts; any other is no protocol it speaks.
JSON_CONTENT_TYPES = frozenset(
    {"application/x-amz-json-1.1", "application/x-amz-json-1.0", "application/json"}
)


class ProtocolMismatch(AwsError):
    """A request no AWS protocol matched (no or a foreign Content-Type): AWS answers 404 with
    an empty ``<UnknownOperationException/>`` element."""

    def __init__(self) -> None:
        super().__init__("UnknownOperationException", "", 404)


def check_content_type(value: str | None) -> None:
    """``ProtocolMismatch`` unless ``value`` is a JSON content type (parameters ignored)."""
    media = (value or "").split(";", 1)[0].strip().lower()
    if media not in JSON_CONTENT_TYPES:
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
