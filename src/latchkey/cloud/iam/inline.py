"""Inline policies of roles and users: Put/Get/Delete/List{Role,User}Policies.

Both entity kinds behave the same; an ``Owner`` says which store methods and words to use.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from latchkey.aws.policy import parse_identity_policy
from latchkey.cloud.iam.common import (
    Call,
    Loader,
    limit_exceeded,
    name_param,
    no_such_entity,
    paginate,
    policy_chars,
    policy_text,
)
from latchkey.cloud.iam.roles import load_role
from latchkey.cloud.iam.users import load_user
from latchkey.store.base import RoleRecord, UserRecord


@dataclass(frozen=True, slots=True)
class Owner:
    kind: str  # "Role" | "User"
    load: Loader
    max_chars: int  # aggregate inline policy size, whitespace not counted (AWS quota)

    def put(self, call: Call, name: str, policy: str, document: str) -> None:
        if self.kind == "Role":
            call.store.put_role_policy(name, policy, document)
        else:
            call.store.put_user_policy(name, policy, document)

    def delete(self, call: Call, name: str, policy: str) -> bool:
        if self.kind == "Role":
            return call.store.delete_role_policy(name, policy)
        return call.store.delete_user_policy(name, policy)


ROLE = Owner("Role", load_role, 10240)
USER = Owner("User", load_user, 2048)


def _policy_name(call: Call) -> str:
    return name_param(call.params, "PolicyName", 128)


async def _put(call: Call, owner: Owner) -> dict[str, Any]:
    entity = owner.load(call, f"iam:Put{owner.kind}Policy")
    policy_name = _policy_name(call)
    document = policy_text(call.params, "PolicyDocument", parse_identity_policy)
    others = sum(policy_chars(text) for name, text in entity.inline_policies if name != policy_name)
    if others + policy_chars(document) > owner.max_chars:
        raise limit_exceeded(
            f"Maximum policy size of {owner.max_chars} bytes exceeded for "
            f"{owner.kind.lower()} {entity.name}"
        )
    owner.put(call, entity.name, policy_name, document)
    return {}


def _find(entity: RoleRecord | UserRecord, owner: Owner, policy_name: str) -> str:
    for name, text in entity.inline_policies:
        if name == policy_name:
            return text
    raise no_such_entity(
        f"The {owner.kind.lower()} policy with name {policy_name} cannot be found."
    )


async def _get(call: Call, owner: Owner) -> dict[str, Any]:
    entity = owner.load(call, f"iam:Get{owner.kind}Policy")
    policy_name = _policy_name(call)
    document = _find(entity, owner, policy_name)
    return {
        f"{owner.kind}Name": entity.name,
        "PolicyName": policy_name,
        "PolicyDocument": quote(document, safe=""),
    }


async def _delete(call: Call, owner: Owner) -> dict[str, Any]:
    entity = owner.load(call, f"iam:Delete{owner.kind}Policy")
    policy_name = _policy_name(call)
    _find(entity, owner, policy_name)
    owner.delete(call, entity.name, policy_name)
    return {}


async def _list(call: Call, owner: Owner) -> dict[str, Any]:
    entity = owner.load(call, f"iam:List{owner.kind}Policies")
    names = [name for name, _text in entity.inline_policies]
    page, extra = paginate(call.params, names, key=lambda name: name)
    return {"PolicyNames": page, **extra}


async def put_role_policy(call: Call) -> dict[str, Any]:
    return await _put(call, ROLE)


async def get_role_policy(call: Call) -> dict[str, Any]:
    return await _get(call, ROLE)


async def delete_role_policy(call: Call) -> dict[str, Any]:
    return await _delete(call, ROLE)


async def list_role_policies(call: Call) -> dict[str, Any]:
    return await _list(call, ROLE)


async def put_user_policy(call: Call) -> dict[str, Any]:
    return await _put(call, USER)


async def get_user_policy(call: Call) -> dict[str, Any]:
    return await _get(call, USER)


async def delete_user_policy(call: Call) -> dict[str, Any]:
    return await _delete(call, USER)


async def list_user_policies(call: Call) -> dict[str, Any]:
    return await _list(call, USER)
