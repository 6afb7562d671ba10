"""AWS JSON 1.1 bodies are read strictly: UTF-8 only, no ``NaN``/``Infinity``, no string that
UTF-8 cannot hold (a lone surrogate escape), integers within their Java type; and a request with
an AWS JSON content type is a JSON call whether or not it names an operation."""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.model import Shape

from latchkey.aws import jsonproto
from latchkey.aws.errors import AwsError
from latchkey.cloud.kms import validation


def refused(body: bytes) -> str:
    with pytest.raises(AwsError) as info:
        jsonproto.decode_body(body)
    assert info.value.code == "SerializationException"
    assert info.value.status == 400
    return info.value.message


# -- encodings ------------------------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le"])
def test_only_utf8_is_read(encoding: str) -> None:
    assert refused('{"Limit":5}'.encode(encoding)) == ""


def test_a_byte_order_mark_is_not_json() -> None:
    assert refused(b'\xef\xbb\xbf{"Limit":5}') == ""


@pytest.mark.parametrize(
    "body", [b'{"a":"\xe9"}', b'{"a":"\xed\xa0\x80"}', b'{"a":"\xc0\xaf"}', b'{"a":"\xff"}']
)
def test_bytes_that_are_not_utf8_are_refused(body: bytes) -> None:
    """Latin-1, an encoded surrogate (CESU-8), an overlong form, a stray byte."""
    assert refused(body) == ""


def test_utf8_text_is_read_raw_or_escaped() -> None:
    raw = jsonproto.decode_body('{"a":"café 中 \U0001f600"}'.encode())
    escaped = jsonproto.decode_body(json.dumps({"a": "café 中 \U0001f600"}).encode())
    assert raw == escaped == {"a": "café 中 \U0001f600"}


# -- NaN and Infinity -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [b'{"Limit":NaN}', b'{"Limit":Infinity}', b'{"Limit":-Infinity}',
     b'{"Foo":[1,{"x":NaN}],"Limit":2}', b"NaN"],
)  # fmt: skip
def test_nan_and_infinity_are_not_json(body: bytes) -> None:
    assert refused(body) == ""


def test_numbers_are_still_numbers() -> None:
    assert jsonproto.decode_body(b'{"a":1e400,"b":-0.0,"c":12}') == {
        "a": float("inf"),
        "b": -0.0,
        "c": 12,
    }  # 1e400 is a number (validation refuses it where an integer belongs)


def test_an_integer_too_long_to_convert_is_not_a_crash() -> None:
    assert refused(b'{"Limit":' + b"9" * 5000 + b"}") == ""


# -- lone surrogates ------------------------------------------------------------------------------

LONE = [
    '{"a":"\\ud800"}',
    '{"a":"\\uDBFF"}',
    '{"a":"x\\udc00y"}',
    '{"\\ud800":"a"}',
    '{"a":{"\\udfff":"b"}}',
    '{"a":[1,true,null,["\\ud800"]]}',
    '{"a":"\\ude00\\ud83d"}',  # a pair in the wrong order is two lone halves
    '{"a":"\\ud83d"}',
    '{"a":"\\\\\\ud800"}',  # an escaped backslash, then a lone surrogate
    '[{"a":"\\ud800"}]',
]


@pytest.mark.parametrize("body", LONE)
def test_a_lone_surrogate_escape_is_refused(body: str) -> None:
    assert refused(body.encode()) in ("", "Start of list found where not expected")


def test_a_lone_surrogate_deep_down_is_found() -> None:
    depth = 900
    body = '{"a":' + "[" * depth + '"\\ud800"' + "]" * depth + "}"
    assert refused(body.encode()) == ""


@pytest.mark.parametrize(
    ("body", "value"),
    [('{"a":"\\ud83d\\ude00"}', {"a": "\U0001f600"}),
     ('{"a":"\\uD83D\\uDE00"}', {"a": "\U0001f600"}),
     ('{"a":"\\\\ud800"}', {"a": "\\ud800"}),  # an escaped backslash: no escape at all
     ('{"a":"\\ud7ff\\ue000"}', {"a": "\ud7ff\ue000"}),  # either side of the surrogates
     ('{"a":"\\u00e9","b":["\\\\"]}', {"a": "é", "b": ["\\"]})],
)  # fmt: skip
def test_surrogate_pairs_and_other_escapes_are_fine(body: str, value: dict[str, Any]) -> None:
    assert jsonproto.decode_body(body.encode()) == value


def test_duplicate_members_keep_the_last_as_before() -> None:
    assert jsonproto.decode_body(b'{"Limit":0,"Limit":5}') == {"Limit": 5}


# -- routing --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content_type", "expected"),
    [("application/x-amz-json-1.1", True), ("application/x-amz-json-1.0", True),
     ("Application/X-Amz-Json-1.1; charset=utf-8", True), (" application/x-amz-json-1.0 ", True),
     ("application/json", False), ("application/x-www-form-urlencoded; charset=utf-8", False),
     ("text/plain", False), ("", False), (None, False)],
)  # fmt: skip
def test_is_aws_json(content_type: str | None, expected: bool) -> None:
    assert jsonproto.is_aws_json(content_type) is expected


# -- integers: a Java Integer or Long ------------------------------------------------------------


@pytest.mark.parametrize("value", [2**31, -(2**31) - 1, 2**31 + 0.5, 2**40, -(2**63)])
def test_an_integer_beyond_32_bits_does_not_parse(value: float) -> None:
    with pytest.raises(AwsError) as info:
        validation.validate("ListKeys", {"Limit": value})
    assert (info.value.code, info.value.message) == ("SerializationException", "")


@pytest.mark.parametrize("value", [2**31 - 1, -(2**31)])
def test_an_integer_within_32_bits_is_range_checked(value: int) -> None:
    with pytest.raises(AwsError) as info:
        validation.validate("ListKeys", {"Limit": value})
    assert info.value.code == "ValidationException"
    assert f"Value '{value}' at 'limit'" in info.value.message


def test_a_long_keeps_the_64_bit_bound() -> None:
    """KMS's input model has no ``long`` today; one would be a Java Long."""
    node = validation._Integer(Shape("L", {"type": "long", "max": 2**62}), False)
    errors = validation._Errors()
    assert node.check(2**40, "n", errors) == 2**40
    assert node.check(-(2**63), "n", errors) == -(2**63)
    assert errors.items == []
    node.check(2**63 - 1, "n", errors)
    assert len(errors.items) == 1  # a range failure, not a parse failure
    for beyond in (2**63, -(2**63) - 1):
        with pytest.raises(validation._Invalid):
            node.check(beyond, "n", errors)
    short = validation._Integer(Shape("I", {"type": "integer"}), False)
    with pytest.raises(validation._Invalid):
        short.check(2**31, "n", errors)
