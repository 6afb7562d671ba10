"""IAM users' access keys: AKIA... ids, 40-character secrets shown once, wrapped at rest."""

from __future__ import annotations

import base64
import json
import re
import secrets
import time
from typing import Any

from latchkey.aws.errors import AwsError
from latchkey.cloud.iam.common import (
    ID_ALPHABET,
    Call,
    check,
    iso,
    length,
    limit_exceeded,
    no_such_entity,
    paginate,
    required,
    validation,
)
from latchkey.cloud.iam.users import NOT_A_USER, load_user, target_user_name
from latchkey.cloud.identity import ACCESS_KEY_KIND
from latchkey.store.base import AccessKeyRecord, LimitReached, UserRecord

MAX_KEYS_PER_USER = 2
STATUSES = ("Active", "Inactive")
_KEY_ID = re.compile(r"\w+")
ROOT_KEYS = (
    "latchkey manages the account root user's access key itself (cloud-admin.json); "
    "specify UserName to manage an IAM user's keys"
)


def new_access_key() -> tuple[str, str]:
    """(AKIA + 16 characters, a 40-character secret) as AWS issues them."""
    key_id = "AKIA" + "".join(secrets.choice(ID_ALPHABET) for _ in range(16))
    return key_id, base64.b64encode(secrets.token_bytes(30)).decode()


def _user_for_change(call: Call, action: str) -> UserRecord:
    if "UserName" not in call.params and call.caller.is_root:
        raise AwsError("ValidationError", ROOT_KEYS)
    return load_user(call, action, name=target_user_name(call))


def _metadata(user_name: str | None, key: AccessKeyRecord) -> dict[str, Any]:
    return {
        "UserName": user_name,
        "AccessKeyId": key.access_key_id,
        "Status": key.status,
        "CreateDate": iso(key.created),
    }


def _key_of(call: Call, user: UserRecord) -> AccessKeyRecord:
    key_id = length(call.params, "AccessKeyId", 16, 128, required(call.params, "AccessKeyId"))
    if not _KEY_ID.fullmatch(key_id):
        raise validation(
            "AccessKeyId", key_id, r"Member must satisfy regular expression pattern: [\w]+"
        )
    key = call.store.load_access_key(key_id)
    if key is None or key.kind != "user" or key.principal_arn != user.arn:
        raise no_such_entity(f"The Access Key with id {key_id} cannot be found.")
    return key


async def create_access_key(call: Call) -> dict[str, Any]:
    user = _user_for_change(call, "iam:CreateAccessKey")
    key_id, secret = new_access_key()
    record = AccessKeyRecord(
        access_key_id=key_id,
        wrapped_secret=call.wrapping_key().wrap(ACCESS_KEY_KIND, key_id, secret.encode()),
        principal_arn=user.arn,
        kind="user",
        created=time.time(),
        session_context=json.dumps({"user_id": user.user_id, "user_name": user.name}),
    )
    try:
        call.store.add_access_key(record, limit=MAX_KEYS_PER_USER)
    except LimitReached:
        raise limit_exceeded(
            f"Cannot exceed quota for AccessKeysPerUser: {MAX_KEYS_PER_USER}"
        ) from None
    return {"AccessKey": {**_metadata(user.name, record), "SecretAccessKey": secret}}


async def list_access_keys(call: Call) -> dict[str, Any]:
    if "UserName" not in call.params and call.caller.is_root:
        check(call, "iam:ListAccessKeys", call.caller.arn)
        keys = call.store.list_access_keys(call.caller.arn)
        page, extra = paginate(call.params, keys, key=lambda k: k.access_key_id)
        return {"AccessKeyMetadata": [_metadata(None, k) for k in page], **extra}
    if "UserName" not in call.params and call.caller.user_name is None:
        raise AwsError("ValidationError", NOT_A_USER)
    user = load_user(call, "iam:ListAccessKeys", name=target_user_name(call))
    keys = call.store.list_access_keys(user.arn)
    page, extra = paginate(call.params, keys, key=lambda k: k.access_key_id)
    return {"AccessKeyMetadata": [_metadata(user.name, k) for k in page], **extra}


async def update_access_key(call: Call) -> dict[str, Any]:
    user = _user_for_change(call, "iam:UpdateAccessKey")
    status = required(call.params, "Status")
    if status not in STATUSES:
        raise validation("Status", status, "Member must satisfy enum value set: [Active, Inactive]")
    key = _key_of(call, user)
    call.store.set_access_key_status(key.access_key_id, status)
    return {}


async def delete_access_key(call: Call) -> dict[str, Any]:
    user = _user_for_change(call, "iam:DeleteAccessKey")
    key = _key_of(call, user)
    call.store.delete_access_key(key.access_key_id)
    return {}
