"""Tags of KMS keys: TagResource, UntagResource, ListResourceTags, and CreateKey's ``Tags``.

Tag keys and values are case-sensitive; a key holds at most 50 tags; keys beginning with
``aws:`` (any case) are AWS's. Tags are condition keys of the key (``aws:ResourceTag/<key>``)
and of the request (``aws:RequestTag/<key>``, ``aws:TagKeys``).
"""

from __future__ import annotations

from typing import Any

from latchkey.aws.errors import AwsError, validation_error
from latchkey.cloud.authz import authorize
from latchkey.cloud.kms.common import Call, Handler, authorize_key
from latchkey.cloud.kms.keys import ALL_STATES, PENDING_DELETION, check_state
from latchkey.cloud.kms.paging import page
from latchkey.store.base import LimitReached, Tags

MAX_TAGS = 50
MAX_KEY, MAX_VALUE = 128, 256
RESERVED = "aws:"
NOT_PENDING_DELETION = ALL_STATES - {PENDING_DELETION}


def _tag_key(value: object, field: str) -> str:
    if value is None:
        raise validation_error(field, None, "Member must not be null")
    if not isinstance(value, str):
        raise AwsError("SerializationException", "TagKey must be a string")
    if not 1 <= len(value) <= MAX_KEY:
        bound = "greater than or equal to 1" if not value else f"less than or equal to {MAX_KEY}"
        raise validation_error(field, value, f"Member must have length {bound}")
    return value


def tags_param(params: dict[str, Any], *, required: bool) -> Tags:
    """``Tags``: a list of ``{TagKey, TagValue}``, validated as AWS KMS does."""
    raw = params.get("Tags")
    if raw is None:
        if required:
            raise validation_error("tags", None, "Member must not be null")
        return ()
    if not isinstance(raw, list) or not all(isinstance(t, dict) for t in raw):
        raise AwsError("SerializationException", "Tags must be a list of Tag structures")
    tags: list[tuple[str, str]] = []
    for n, tag in enumerate(raw, start=1):
        key = _tag_key(tag.get("TagKey"), f"tags.{n}.member.tagKey")
        value = tag.get("TagValue")
        field = f"tags.{n}.member.tagValue"
        if value is None:
            raise validation_error(field, None, "Member must not be null")
        if not isinstance(value, str):
            raise AwsError("SerializationException", "TagValue must be a string")
        if len(value) > MAX_VALUE:
            raise validation_error(
                field, value, f"Member must have length less than or equal to {MAX_VALUE}"
            )
        tags.append((key, value))
    if len({k for k, _ in tags}) < len(tags):
        raise AwsError("TagException", "Duplicate tag keys")
    if len(tags) > MAX_TAGS:
        raise AwsError("TagException", "Too many tags")
    if any(k.lower().startswith(RESERVED) for k, _ in tags):
        raise AwsError("TagException", "Tags beginning with aws: are reserved")
    return tuple(tags)


def request_tag_keys(tags: Tags) -> dict[str, Any]:
    keys: dict[str, Any] = {f"aws:RequestTag/{k}": v for k, v in tags}
    keys["aws:TagKeys"] = [k for k, _ in tags]
    return keys


def _save(call: Call, key_id: str, tags: Tags) -> None:
    try:
        call.keys.store.tag_kms_key(key_id, tags, limit=MAX_TAGS)
    except LimitReached:
        raise AwsError(
            "LimitExceededException",
            f"A KMS key can have at most {MAX_TAGS} tags; this request would exceed it.",
        ) from None


def create_key_tags(call: Call) -> Tags:
    """CreateKey's ``Tags``, validated before anything is made; tagging on creation needs
    ``kms:TagResource`` in an IAM policy too."""
    tags = tags_param(call.params, required=False)
    if tags:
        authorize(call.keys.store, call.caller, "kms:TagResource", "*", keys=request_tag_keys(tags))
    return tags


def save_key_tags(call: Call, key_id: str, tags: Tags) -> None:
    """Tag a key CreateKey has just made (``tags`` from ``create_key_tags``)."""
    if tags:
        _save(call, key_id, tags)


async def tag_resource(call: Call) -> dict[str, Any]:
    record = call.keys.resolve(call.params.get("KeyId"), aliases=False)
    tags = tags_param(call.params, required=True)
    authorize_key(call, "TagResource", record, **request_tag_keys(tags))
    check_state(record, NOT_PENDING_DELETION)
    _save(call, record.key_id, tags)
    return {}


async def untag_resource(call: Call) -> dict[str, Any]:
    record = call.keys.resolve(call.params.get("KeyId"), aliases=False)
    raw = call.params.get("TagKeys")
    if raw is None:
        raise validation_error("tagKeys", None, "Member must not be null")
    if not isinstance(raw, list):
        raise AwsError("SerializationException", "TagKeys must be a list of strings")
    tag_keys = [_tag_key(k, f"tagKeys.{n}.member") for n, k in enumerate(raw, start=1)]
    if any(k.lower().startswith(RESERVED) for k in tag_keys):
        raise AwsError("TagException", "Tags beginning with aws: are reserved")
    authorize_key(call, "UntagResource", record, **{"aws:TagKeys": tag_keys})
    check_state(record, NOT_PENDING_DELETION)
    call.keys.store.untag_kms_key(record.key_id, tag_keys)
    return {}


async def list_resource_tags(call: Call) -> dict[str, Any]:
    record = call.keys.resolve(call.params.get("KeyId"), aliases=False)
    authorize_key(call, "ListResourceTags", record)
    tags = call.keys.store.list_kms_key_tags(record.key_id)
    shown, members = page(tags, call.params, lambda t: t[0], default=MAX_TAGS, cap=MAX_TAGS)
    return {"Tags": [{"TagKey": k, "TagValue": v} for k, v in shown], **members}


OPERATIONS: dict[str, Handler] = {
    "TagResource": tag_resource,
    "UntagResource": untag_resource,
    "ListResourceTags": list_resource_tags,
}
READ_ONLY = frozenset({"ListResourceTags"})
# Tag values may be shown in CloudTrail (AWS says so); keys and values are recorded.
AUDITABLE_PARAMS = frozenset({"KeyId", "Tags", "TagKeys", "Limit", "Marker"})
