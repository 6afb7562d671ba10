"""IAM roles: what STS sessions assume, with a trust policy and permission policies."""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import quote

from latchkey.aws.policy import MalformedPolicyDocument, parse_trust_policy
from latchkey.cloud.authz import ConditionKeys, resource_tag_keys
from latchkey.cloud.iam.common import (
    Call,
    already_exists,
    check,
    delete_conflict,
    description_param,
    int_param,
    iso,
    limit_exceeded,
    malformed,
    name_param,
    no_permissions_boundary,
    no_such_entity,
    paginate,
    path_param,
    path_prefix_param,
    policy_chars,
    policy_text,
    refuse_delete_with_policies,
    unique_id,
    validation,
)
from latchkey.cloud.iam.principals import PrincipalNames, bind_principals
from latchkey.cloud.iam.tags import add_tags, tag_keys_param, tags_param, tags_shape
from latchkey.store.base import Conflict, InUse, RoleRecord

MIN_SESSION, MAX_SESSION = 3600, 43200
MAX_TRUST_POLICY_CHARS = 2048


def role_arn(account: str, name: str, path: str = "/") -> str:
    return f"arn:aws:iam::{account}:role{path}{name}"


def role_shape(role: RoleRecord, names: PrincipalNames, *, full: bool = True) -> dict[str, Any]:
    """A ``Role`` as GetRole answers it; ``full=False`` for list entries (no tags). ``names``
    shows the trust policy's principals as ARNs (they are stored as unique ids)."""
    shape: dict[str, Any] = {
        "Path": role.path,
        "RoleName": role.name,
        "RoleId": role.role_id,
        "Arn": role.arn,
        "CreateDate": iso(role.created),
        "AssumeRolePolicyDocument": quote(names.show(role.trust_policy), safe=""),
        "Description": role.description or None,
        "MaxSessionDuration": role.max_session_duration,
    }
    if full:
        shape["Tags"] = tags_shape(role.tags) if role.tags else None
        shape["RoleLastUsed"] = {}
    return shape


def load_role(call: Call, action: str, keys: ConditionKeys | None = None) -> RoleRecord:
    """The role named by ``RoleName``, after authorizing ``action`` on it (with its tags as
    ``aws:ResourceTag/<key>`` / ``iam:ResourceTag/<key>``)."""
    name = name_param(call.params, "RoleName")
    role = call.store.load_role(name)
    if role is None:
        check(call, action, role_arn(call.account, name), keys)
        raise no_such_entity(f"The role with name {name} cannot be found.")
    check(call, action, role.arn, {**resource_tag_keys(role.tags, "iam"), **(keys or {})})
    return role


def _max_session(call: Call, default: int | None) -> int | None:
    if "MaxSessionDuration" not in call.params:
        return default
    value = int_param(call.params, "MaxSessionDuration", MIN_SESSION)
    if not MIN_SESSION <= value <= MAX_SESSION:
        raise validation(
            "MaxSessionDuration", value,
            f"Member must have value between {MIN_SESSION} and {MAX_SESSION}",
        )  # fmt: skip
    return value


def _trust_policy(call: Call, name: str) -> str:
    """The trust policy parameter ``name``, validated, as it is stored (principals bound to
    their unique ids: ``principals.bind_principals``)."""
    text = policy_text(call.params, name, parse_trust_policy)
    if policy_chars(text) > MAX_TRUST_POLICY_CHARS:
        raise limit_exceeded(f"Cannot exceed quota for ACLSizePerRole: {MAX_TRUST_POLICY_CHARS}")
    try:
        return bind_principals(call.store, call.account, text)
    except MalformedPolicyDocument as exc:
        raise malformed(exc) from None


async def create_role(call: Call) -> dict[str, Any]:
    name = name_param(call.params, "RoleName")
    path = path_param(call.params)
    arn = role_arn(call.account, name, path)
    check(call, "iam:CreateRole", arn)
    no_permissions_boundary(call.params)
    trust = _trust_policy(call, "AssumeRolePolicyDocument")
    max_session = _max_session(call, MIN_SESSION)
    assert max_session is not None
    tags = tuple(sorted(tags_param(call.params, arn)))
    role = RoleRecord(
        name=name,
        arn=arn,
        role_id=unique_id("AROA"),
        path=path,
        trust_policy=trust,
        max_session_duration=max_session,
        created=time.time(),
        description=description_param(call.params) or "",
        tags=tags,
    )
    try:
        call.store.save_role(role)
    except Conflict:
        raise already_exists(f"Role with name {name} already exists.") from None
    return {"Role": role_shape(role, PrincipalNames(call.store))}


async def get_role(call: Call) -> dict[str, Any]:
    return {"Role": role_shape(load_role(call, "iam:GetRole"), PrincipalNames(call.store))}


async def list_roles(call: Call) -> dict[str, Any]:
    prefix = path_prefix_param(call.params)
    check(call, "iam:ListRoles", "*")
    roles, extra = paginate(
        call.params, call.store.list_roles(prefix), key=lambda r: r.name.lower()
    )
    names = PrincipalNames(call.store)
    return {"Roles": [role_shape(r, names, full=False) for r in roles], **extra}


async def delete_role(call: Call) -> dict[str, Any]:
    role = load_role(call, "iam:DeleteRole")
    refuse_delete_with_policies(role)
    try:
        call.store.delete_role(role.name)
    except InUse:
        raise delete_conflict("Cannot delete entity, must delete policies first.") from None
    return {}


async def update_assume_role_policy(call: Call) -> dict[str, Any]:
    role = load_role(call, "iam:UpdateAssumeRolePolicy")
    call.store.update_role_trust_policy(role.name, _trust_policy(call, "PolicyDocument"))
    return {}


async def update_role(call: Call) -> dict[str, Any]:
    role = load_role(call, "iam:UpdateRole")
    call.store.update_role(
        role.name,
        description=description_param(call.params),
        max_session_duration=_max_session(call, None),
    )
    return {}


async def update_role_description(call: Call) -> dict[str, Any]:
    role = load_role(call, "iam:UpdateRoleDescription")
    description = description_param(call.params)
    call.store.update_role(role.name, description=description or "")
    updated = call.store.load_role(role.name)
    return {"Role": role_shape(updated or role, PrincipalNames(call.store))}


async def list_instance_profiles_for_role(call: Call) -> dict[str, Any]:
    """This cloud has no EC2, so no instance profiles: a role's list is always empty (Terraform
    asks before it deletes a role)."""
    load_role(call, "iam:ListInstanceProfilesForRole")
    paginate(call.params, [], key=str)  # MaxItems and Marker validated as for any list
    return {"InstanceProfiles": [], "IsTruncated": False}


async def tag_role(call: Call) -> dict[str, Any]:
    add_tags(call, load_role(call, "iam:TagRole").arn)
    return {}


async def untag_role(call: Call) -> dict[str, Any]:
    role = load_role(call, "iam:UntagRole")
    call.store.untag_resource(role.arn, tag_keys_param(call.params))
    return {}


async def list_role_tags(call: Call) -> dict[str, Any]:
    role = load_role(call, "iam:ListRoleTags")
    page, extra = paginate(call.params, role.tags, key=lambda tag: tag[0].lower())
    return {"Tags": tags_shape(tuple(page)), **extra}
