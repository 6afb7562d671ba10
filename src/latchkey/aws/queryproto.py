"""The AWS query protocol (IAM, STS): form-encoded requests, XML responses and errors. Pure."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TypeAlias
from urllib.parse import parse_qsl
from xml.etree import ElementTree as ET

from latchkey.aws.errors import AwsError

CONTENT_TYPE = "text/xml"

# A result is a tree of these: mappings become elements, sequences become <member> lists.
Value: TypeAlias = "str | int | bool | Mapping[str, Value] | Sequence[Value] | None"


def decode_form(body: bytes, query: str = "") -> dict[str, str]:
    """Parameters from the query string and an ``application/x-www-form-urlencoded`` body."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise AwsError("MalformedQueryString", "request body is not UTF-8") from None
    params: dict[str, str] = {}
    for source in (query, text):
        for key, value in parse_qsl(source, keep_blank_values=True):
            params[key] = value
    return params


def member_list(params: Mapping[str, str], name: str) -> list[str]:
    """``Name.member.1``, ``Name.member.2``... in order."""
    out = []
    index = 1
    while f"{name}.member.{index}" in params:
        out.append(params[f"{name}.member.{index}"])
        index += 1
    return out


def _build(parent: ET.Element, value: Value) -> None:
    if value is None:
        return
    if isinstance(value, bool):
        parent.text = "true" if value else "false"
    elif isinstance(value, str | int):
        parent.text = str(value)
    elif isinstance(value, Mapping):
        for key, child in value.items():
            if child is None:
                continue
            _build(ET.SubElement(parent, key), child)
    else:
        for item in value:
            _build(ET.SubElement(parent, "member"), item)


def encode_result(
    action: str, namespace: str, result: Mapping[str, Value], request_id: str
) -> bytes:
    root = ET.Element(f"{action}Response", xmlns=namespace)
    _build(ET.SubElement(root, f"{action}Result"), result)
    meta = ET.SubElement(root, "ResponseMetadata")
    ET.SubElement(meta, "RequestId").text = request_id
    return bytes(ET.tostring(root, encoding="utf-8", xml_declaration=False))


def encode_error(
    err: AwsError, namespace: str, request_id: str
) -> tuple[int, list[tuple[str, str]], bytes]:
    """(status, headers, body) in the ``<ErrorResponse>`` shape botocore's query parser reads."""
    root = ET.Element("ErrorResponse", xmlns=namespace)
    error = ET.SubElement(root, "Error")
    ET.SubElement(error, "Type").text = "Sender" if err.sender else "Receiver"
    ET.SubElement(error, "Code").text = err.code
    ET.SubElement(error, "Message").text = err.message
    ET.SubElement(root, "RequestId").text = request_id
    body = bytes(ET.tostring(root, encoding="utf-8", xml_declaration=False))
    return err.status, [("Content-Type", CONTENT_TYPE)], body
