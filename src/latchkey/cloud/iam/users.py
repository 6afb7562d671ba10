"""IAM users: long-lived identities for people and CI, with their own policies and keys."""

from __future__ import annotations

import time
from typing import Any

from latchkey.aws.errors import AwsError
from latchkey.cloud.authz import ConditionKeys, resource_tag_keys
from latchkey.cloud.iam.common import (
    Call,
    already_exists,
    check,
    delete_conflict,
    iso,
    name_param,
    no_permissions_boundary,
    no_such_entity,
    paginate,
    path_param,
    path_prefix_param,
    refuse_delete_with_policies,
    unique_id,
)
from latchkey.cloud.iam.tags import add_tags, tag_keys_param, tags_param, tags_shape
from latchkey.store.base import Conflict, InUse, UserRecord

NOT_A_USER = "Must specify userName when calling with non-User credentials"


def user_arn(account: str, name: str, path: str = "/") -> str:
    return f"arn:aws:iam::{account}:user{path}{name}"


def user_shape(user: UserRecord, *, full: bool = True) -> dict[str, Any]:
    shape: dict[str, Any] = {
        "Path": user.path,
        "UserName": user.name,
        "UserId": user.user_id,
        "Arn": user.arn,
        "CreateDate": iso(user.created),
    }
    if full and user.tags:
        shape["Tags"] = tags_shape(user.tags)
    return shape


def target_user_name(call: Call) -> str:
    """``UserName``, or when omitted the calling IAM user (AWS's implicit user)."""
    if "UserName" in call.params:
        return name_param(call.params, "UserName")
    if call.caller.user_name is None:
        raise AwsError("ValidationError", NOT_A_USER)
    return call.caller.user_name


def load_user(
    call: Call, action: str, keys: ConditionKeys | None = None, *, name: str | None = None
) -> UserRecord:
    """The user named by ``UserName`` (or ``name``), after authorizing ``action`` on it (with
    its tags as ``aws:ResourceTag/<key>`` / ``iam:ResourceTag/<key>``)."""
    name = name if name is not None else name_param(call.params, "UserName")
    user = call.store.load_user(name)
    if user is None:
        check(call, action, user_arn(call.account, name), keys)
        raise no_such_entity(f"The user with name {name} cannot be found.")
    check(call, action, user.arn, {**resource_tag_keys(user.tags, "iam"), **(keys or {})})
    return user


async def create_user(call: Call) -> dict[str, Any]:
    name = name_param(call.params, "UserName")
    path = path_param(call.params)
    arn = user_arn(call.account, name, path)
    check(call, "iam:CreateUser", arn)
    no_permissions_boundary(call.params)
    tags = tuple(sorted(tags_param(call.params, arn)))
    user = UserRecord(name, arn, unique_id("AIDA"), path, time.time(), tags=tags)
    try:
        call.store.save_user(user)
    except Conflict:
        raise already_exists(f"User with name {name} already exists.") from None
    return {"User": user_shape(user)}


async def get_user(call: Call) -> dict[str, Any]:
    if "UserName" not in call.params and call.caller.is_root:
        # The root user describes itself: no name or path, its id is the account.
        check(call, "iam:GetUser", call.caller.arn)
        key = call.store.load_access_key(call.caller.access_key_id)
        created = iso(key.created) if key else None
        return {"User": {"UserId": call.account, "Arn": call.caller.arn, "CreateDate": created}}
    return {"User": user_shape(load_user(call, "iam:GetUser", name=target_user_name(call)))}


async def list_users(call: Call) -> dict[str, Any]:
    prefix = path_prefix_param(call.params)
    check(call, "iam:ListUsers", "*")
    users, extra = paginate(
        call.params, call.store.list_users(prefix), key=lambda u: u.name.lower()
    )
    return {"Users": [user_shape(u, full=False) for u in users], **extra}


async def delete_user(call: Call) -> dict[str, Any]:
    user = load_user(call, "iam:DeleteUser")
    refuse_delete_with_policies(user)
    if call.store.list_access_keys(user.arn):
        raise delete_conflict("Cannot delete entity, must delete access keys first.")
    try:
        call.store.delete_user(user.name)
    except InUse:
        raise delete_conflict("Cannot delete entity, must delete policies first.") from None
    return {}


async def tag_user(call: Call) -> dict[str, Any]:
    add_tags(call, load_user(call, "iam:TagUser").arn)
    return {}


async def untag_user(call: Call) -> dict[str, Any]:
    user = load_user(call, "iam:UntagUser")
    call.store.untag_resource(user.arn, tag_keys_param(call.params))
    return {}


async def list_user_tags(call: Call) -> dict[str, Any]:
    user = load_user(call, "iam:ListUserTags")
    page, extra = paginate(call.params, user.tags, key=lambda tag: tag[0].lower())
    return {"Tags": tags_shape(tuple(page)), **extra}
