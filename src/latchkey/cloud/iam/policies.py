"""Customer managed policies and their attachment to roles and users."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from latchkey.aws.policy import parse_identity_policy
from latchkey.cloud.iam.common import (
    Call,
    Loader,
    already_exists,
    bool_param,
    check,
    delete_conflict,
    description_param,
    invalid_input,
    iso,
    length,
    limit_exceeded,
    name_param,
    no_such_entity,
    paginate,
    path_param,
    path_prefix_param,
    policy_chars,
    policy_text,
    required,
    unique_id,
    validation,
)
from latchkey.cloud.iam.roles import load_role
from latchkey.cloud.iam.tags import add_tags, tag_keys_param, tags_param, tags_shape
from latchkey.cloud.iam.users import load_user
from latchkey.store.base import (
    Conflict,
    InUse,
    LimitReached,
    ManagedPolicyRecord,
    Store,
)

MAX_POLICY_CHARS = 6144
MAX_ATTACHED = 10
_VERSION_ID = re.compile(r"v[1-9][0-9]*(\.[A-Za-z0-9-]*)?")
_POLICY_ARN = re.compile(r"arn:aws:iam::(\d{12}|aws):policy/([\x21-\x7e]+/)?[A-Za-z0-9_+=,.@-]+")


def policy_arn(account: str, name: str, path: str = "/") -> str:
    return f"arn:aws:iam::{account}:policy{path}{name}"


def policy_shape(policy: ManagedPolicyRecord, *, full: bool = True) -> dict[str, Any]:
    shape: dict[str, Any] = {
        "PolicyName": policy.name,
        "PolicyId": policy.policy_id,
        "Arn": policy.arn,
        "Path": policy.path,
        "DefaultVersionId": policy.default_version_id,
        "AttachmentCount": policy.attachment_count,
        "PermissionsBoundaryUsageCount": 0,
        "IsAttachable": True,
        "CreateDate": iso(policy.created),
        "UpdateDate": iso(policy.updated),
    }
    if full:
        shape["Description"] = policy.description or None
        shape["Tags"] = tags_shape(policy.tags) if policy.tags else None
    return shape


def _arn_param(call: Call) -> str:
    arn = length(call.params, "PolicyArn", 20, 2048, required(call.params, "PolicyArn"))
    if not _POLICY_ARN.fullmatch(arn):
        raise invalid_input(f"ARN {arn} is not valid.")
    return arn


def _load(call: Call, action: str) -> ManagedPolicyRecord:
    arn = _arn_param(call)
    check(call, action, arn)
    policy = call.store.load_managed_policy(arn)
    if policy is None:
        raise no_such_entity(f"Policy {arn} was not found.")
    return policy


async def create_policy(call: Call) -> dict[str, Any]:
    name = name_param(call.params, "PolicyName", 128)
    path = path_param(call.params)
    arn = policy_arn(call.account, name, path)
    check(call, "iam:CreatePolicy", arn)
    document = policy_text(call.params, "PolicyDocument", parse_identity_policy)
    if policy_chars(document) > MAX_POLICY_CHARS:
        raise limit_exceeded(f"Cannot exceed quota for PolicySize: {MAX_POLICY_CHARS}")
    now = time.time()
    policy = ManagedPolicyRecord(
        arn=arn,
        name=name,
        policy_id=unique_id("ANPA"),
        path=path,
        description=description_param(call.params) or "",
        default_version_id="v1",
        document=document,
        created=now,
        updated=now,
        tags=tuple(sorted(tags_param(call.params, arn))),
    )
    try:
        call.store.save_managed_policy(policy)
    except Conflict:
        raise already_exists(
            f"A policy called {name} already exists. Duplicate names are not allowed."
        ) from None
    return {"Policy": policy_shape(policy)}


async def get_policy(call: Call) -> dict[str, Any]:
    return {"Policy": policy_shape(_load(call, "iam:GetPolicy"))}


async def get_policy_version(call: Call) -> dict[str, Any]:
    policy = _load(call, "iam:GetPolicyVersion")
    version_id = required(call.params, "VersionId")
    if not _VERSION_ID.fullmatch(version_id):
        pattern = _VERSION_ID.pattern
        raise validation(
            "VersionId", version_id, f"Member must satisfy regular expression pattern: {pattern}"
        )
    version = call.store.load_policy_version(policy.arn, version_id)
    if version is None:
        raise no_such_entity(f"Policy {policy.arn} version {version_id} does not exist.")
    return {
        "PolicyVersion": {
            "Document": quote(version.document, safe=""),
            "VersionId": version.version_id,
            "IsDefaultVersion": version.is_default,
            "CreateDate": iso(version.created),
        }
    }


async def list_policies(call: Call) -> dict[str, Any]:
    scope = call.params.get("Scope", "All")
    if scope not in ("All", "AWS", "Local"):
        raise validation("Scope", scope, "Member must satisfy enum value set: [All, AWS, Local]")
    usage = call.params.get("PolicyUsageFilter", "PermissionsPolicy")
    if usage not in ("PermissionsPolicy", "PermissionsBoundary"):
        allowed = "[PermissionsPolicy, PermissionsBoundary]"
        raise validation(
            "PolicyUsageFilter", usage, f"Member must satisfy enum value set: {allowed}"
        )
    prefix = path_prefix_param(call.params)
    only_attached = bool_param(call.params, "OnlyAttached")
    check(call, "iam:ListPolicies", "*")
    policies: list[ManagedPolicyRecord] = []
    if scope != "AWS" and usage == "PermissionsPolicy":  # no AWS managed policies here
        policies = call.store.list_managed_policies(prefix, only_attached=only_attached)
    page, extra = paginate(call.params, policies, key=lambda p: p.name.lower())
    return {"Policies": [policy_shape(p, full=False) for p in page], **extra}


async def delete_policy(call: Call) -> dict[str, Any]:
    policy = _load(call, "iam:DeletePolicy")
    try:
        call.store.delete_managed_policy(policy.arn)
    except InUse:
        raise delete_conflict("Cannot delete a policy attached to entities.") from None
    return {}


async def tag_policy(call: Call) -> dict[str, Any]:
    add_tags(call, _load(call, "iam:TagPolicy").arn)
    return {}


async def untag_policy(call: Call) -> dict[str, Any]:
    policy = _load(call, "iam:UntagPolicy")
    call.store.untag_resource(policy.arn, tag_keys_param(call.params))
    return {}


async def list_policy_tags(call: Call) -> dict[str, Any]:
    policy = _load(call, "iam:ListPolicyTags")
    page, extra = paginate(call.params, policy.tags, key=lambda tag: tag[0])
    return {"Tags": tags_shape(tuple(page)), **extra}


# -- attachments ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Holder:
    kind: str  # "Role" | "User"
    load: Loader
    attach: Callable[[Store, str, str], bool]
    detach: Callable[[Store, str, str], bool]


ROLE = Holder(
    "Role",
    load_role,
    lambda store, name, arn: store.attach_role_policy(name, arn, limit=MAX_ATTACHED),
    lambda store, name, arn: store.detach_role_policy(name, arn),
)
USER = Holder(
    "User",
    load_user,
    lambda store, name, arn: store.attach_user_policy(name, arn, limit=MAX_ATTACHED),
    lambda store, name, arn: store.detach_user_policy(name, arn),
)


async def _attach(call: Call, holder: Holder) -> dict[str, Any]:
    arn = _arn_param(call)
    entity = holder.load(call, f"iam:Attach{holder.kind}Policy", {"iam:PolicyARN": arn})
    missing = no_such_entity(f"Policy {arn} does not exist or is not attachable.")
    if call.store.load_managed_policy(arn) is None:
        raise missing
    try:
        attached = holder.attach(call.store, entity.name, arn)
    except LimitReached:
        quota = f"PoliciesPer{holder.kind}: {MAX_ATTACHED}"
        raise limit_exceeded(f"Cannot exceed quota for {quota}") from None
    if not attached:
        raise missing
    return {}


async def _detach(call: Call, holder: Holder) -> dict[str, Any]:
    arn = _arn_param(call)
    entity = holder.load(call, f"iam:Detach{holder.kind}Policy", {"iam:PolicyARN": arn})
    if not holder.detach(call.store, entity.name, arn):
        raise no_such_entity(f"Policy {arn} was not found.")
    return {}


async def _list_attached(call: Call, holder: Holder) -> dict[str, Any]:
    entity = holder.load(call, f"iam:ListAttached{holder.kind}Policies")
    prefix = path_prefix_param(call.params)
    entries = []
    for arn in entity.attached_policies:
        policy = call.store.load_managed_policy(arn)
        if policy is not None and policy.path.startswith(prefix):
            entries.append({"PolicyName": policy.name, "PolicyArn": policy.arn})
    page, extra = paginate(call.params, entries, key=lambda e: e["PolicyName"].lower())
    return {"AttachedPolicies": page, **extra}


async def attach_role_policy(call: Call) -> dict[str, Any]:
    return await _attach(call, ROLE)


async def detach_role_policy(call: Call) -> dict[str, Any]:
    return await _detach(call, ROLE)


async def list_attached_role_policies(call: Call) -> dict[str, Any]:
    return await _list_attached(call, ROLE)


async def attach_user_policy(call: Call) -> dict[str, Any]:
    return await _attach(call, USER)


async def detach_user_policy(call: Call) -> dict[str, Any]:
    return await _detach(call, USER)


async def list_attached_user_policies(call: Call) -> dict[str, Any]:
    return await _list_attached(call, USER)
