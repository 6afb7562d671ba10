"""``Limit`` / ``Marker`` / ``NextMarker`` / ``Truncated`` paging of KMS List* operations.

Items come sorted by a string key; a marker is that key of the last item shown with a short
checksum, base64url so it stays opaque and inside the Marker pattern. A page continues after
the marker, so an item deleted between two calls does not break paging. The checksum is no
secret: it tells a marker this service made from a made-up or mangled one, which AWS refuses
with ``InvalidMarkerException`` rather than answering a page from somewhere.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from latchkey.aws.errors import AwsError, validation_error

T = TypeVar("T")

MODEL_MAX = 1000  # LimitType in the API model


def limit_param(params: dict[str, Any], *, default: int, cap: int) -> int:
    """``Limit`` as the model bounds it (1..1000); above ``cap`` AWS returns at most ``cap``."""
    limit = params.get("Limit")
    if limit is None:
        return default
    if not isinstance(limit, int) or isinstance(limit, bool):
        raise AwsError("SerializationException", "Limit must be an integer")
    if limit < 1:
        raise validation_error("limit", limit, "Member must have value greater than or equal to 1")
    if limit > MODEL_MAX:
        raise validation_error(
            "limit", limit, f"Member must have value less than or equal to {MODEL_MAX}"
        )
    return min(limit, cap)


_CHECK = 4  # bytes of SHA-256 after the sort key


def _check(raw: bytes) -> bytes:
    return hashlib.sha256(b"latchkey-kms-marker\x00" + raw).digest()[:_CHECK]


def encode_marker(sort_key: str) -> str:
    raw = sort_key.encode()
    return base64.urlsafe_b64encode(raw + _check(raw)).decode("ascii")


def decode_marker(marker: object) -> str:
    invalid = AwsError("InvalidMarkerException", "Invalid marker")
    if not isinstance(marker, str) or not marker:
        raise invalid
    try:
        data = base64.urlsafe_b64decode(marker.encode("ascii"))
        raw, check = data[:-_CHECK], data[-_CHECK:]
        if len(data) <= _CHECK or not hmac.compare_digest(check, _check(raw)):
            raise invalid
        return raw.decode()
    except (binascii.Error, UnicodeError, ValueError):
        raise invalid from None


def page(
    items: Sequence[T],
    params: dict[str, Any],
    sort_key: Callable[[T], str],
    *,
    default: int,
    cap: int = MODEL_MAX,
) -> tuple[list[T], dict[str, Any]]:
    """One page of ``items`` (sorted by ``sort_key``) and the paging members of the answer."""
    limit = limit_param(params, default=default, cap=cap)
    rest: Sequence[T] = items
    if params.get("Marker") is not None:
        after = decode_marker(params["Marker"])
        rest = [item for item in items if sort_key(item) > after]
    shown = list(rest[:limit])
    truncated = len(rest) > limit
    members: dict[str, Any] = {"Truncated": truncated}
    if truncated:
        members["NextMarker"] = encode_marker(sort_key(shown[-1]))
    return shown, members
