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
    """The request body as a JSON object; anything else is a SerializationException."""
    if not body.strip():
        return {}
    try:
        value = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise AwsError(
            "SerializationException", "Start of structure or map found where not expected."
        ) from None
    if not isinstance(value, dict):
        raise AwsError(
            "SerializationException", "Start of structure or map found where not expected."
        )
    return value


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
    """(status, headers, body) in the shape botocore's JSON error parser reads."""
    body = encode_body({"__type": err.code, "message": err.message})
    headers = [("Content-Type", CONTENT_TYPE), ("x-amzn-ErrorType", err.code)]
    return err.status, headers, body
