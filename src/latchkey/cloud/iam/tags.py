"""Tags of IAM resources (roles, users, managed policies, OIDC providers): parameters, limits
and their shape in responses."""

from __future__ import annotations

from collections.abc import Mapping

from latchkey.cloud.iam.common import Call, invalid_input, limit_exceeded, validation
from latchkey.store.base import LimitReached, Tags, tag_key_match

MAX_TAGS = 50
_TAG_PUNCTUATION = set("_.:/=+-@")
_TAG_RULE = r"Member must satisfy regular expression pattern: [\p{L}\p{Z}\p{N}_.:/=+\-@]*"


def _tag_text(value: str) -> bool:
    return all(ch.isalnum() or ch.isspace() or ch in _TAG_PUNCTUATION for ch in value)


def tags_param(params: Mapping[str, str], arn: str) -> list[tuple[str, str]]:
    """``Tags.member.N.Key`` / ``.Value`` for the resource ``arn``, validated; duplicate keys
    (ignoring case for roles and users) are refused."""
    tags: list[tuple[str, str]] = []
    index = 1
    while f"Tags.member.{index}.Key" in params:
        key = params[f"Tags.member.{index}.Key"]
        value = params.get(f"Tags.member.{index}.Value", "")
        where = f"tags.{index}.member"
        if not 1 <= len(key) <= 128 or not _tag_text(key):
            raise validation(f"{where}.key", key, f"{_TAG_RULE} with length 1 to 128")
        if len(value) > 256 or not _tag_text(value):
            raise validation(f"{where}.value", value, f"{_TAG_RULE} with length 0 to 256")
        if key.lower().startswith("aws:"):
            raise invalid_input(f"User-defined tag keys can't start with 'aws:' ({key}).")
        tags.append((key, value))
        index += 1
    if len({tag_key_match(arn, key) for key, _ in tags}) != len(tags):
        raise invalid_input(
            "Duplicate tag keys found. Please note that Tag keys are case insensitive."
        )
    if len(tags) > MAX_TAGS:
        raise limit_exceeded(f"The number of tags has reached the maximum limit of {MAX_TAGS}.")
    return tags


def tag_keys_param(params: Mapping[str, str]) -> list[str]:
    keys = []
    index = 1
    while f"TagKeys.member.{index}" in params:
        keys.append(params[f"TagKeys.member.{index}"])
        index += 1
    if len(keys) > MAX_TAGS:
        raise validation(
            "TagKeys", keys, f"Member must have length less than or equal to {MAX_TAGS}"
        )
    return keys


def add_tags(call: Call, arn: str) -> None:
    """TagRole, TagUser, TagPolicy...: add or overwrite ``Tags``, at most 50 in all."""
    try:
        call.store.tag_resource(arn, tags_param(call.params, arn), limit=MAX_TAGS)
    except LimitReached:
        raise limit_exceeded(
            f"The number of tags has reached the maximum limit of {MAX_TAGS}."
        ) from None


def tags_shape(tags: Tags) -> list[dict[str, str]]:
    return [{"Key": key, "Value": value} for key, value in tags]
