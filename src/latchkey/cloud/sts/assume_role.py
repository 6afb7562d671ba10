"""``AssumeRole`` (SigV4-signed): a root user, IAM user or role session becomes a role.

The role's trust policy is the resource policy: it must name the caller directly, or name the
caller's account while an identity policy of the caller allows ``sts:AssumeRole`` too
(``authz.authorize``). A ``SourceIdentity`` also needs ``sts:SetSourceIdentity``; once a session
has one, sessions chained from it keep it and may not change it. Role chaining (a role session
assuming a role) is limited to one hour.

latchkey lets the account root user assume roles, which AWS refuses ("Roles may not be assumed
by root accounts"): the root user's key is the only long-term key a fresh node has.
"""

from __future__ import annotations

import re
from typing import Any

from latchkey.aws.errors import AwsError
from latchkey.aws.policy import MalformedPolicyDocument, parse_policy
from latchkey.cloud.authz import authorize
from latchkey.cloud.identity import Caller
from latchkey.cloud.sts.common import (
    Call,
    Problems,
    check_session_policies,
    iso,
    policy_arns,
    refuse_unsupported,
    session_name,
    session_policy,
    session_policy_context,
    source_identity,
)
from latchkey.cloud.sts.session import assumed_role_user, issue_role_session, role_by_arn

ACTION = "sts:AssumeRole"
DENIED = ("AccessDenied", 403)
CHAINED_MAX = 3600
_EXTERNAL_ID = re.compile(r"[A-Za-z0-9_+=,.@:/-]*")


def _refused(caller: Caller, action: str, resource: str) -> AwsError:
    return AwsError(
        "AccessDenied",
        f"User: {caller.arn} is not authorized to perform: {action} on resource: {resource}",
        403,
    )


def _inherited_source_identity(caller: Caller) -> str | None:
    if caller.kind != "session":
        return None
    value = caller.session_context.get("source_identity")
    return value if isinstance(value, str) else None


async def assume_role(call: Call) -> dict[str, Any]:
    caller = call.caller
    assert caller is not None
    p = call.params
    refuse_unsupported(p)
    problems = Problems()
    role_arn = problems.text(p, "RoleArn", low=20, high=2048, required=True) or ""
    name = session_name(problems, p)
    duration = problems.number(p, "DurationSeconds", low=900, high=43200)
    external_id = problems.text(
        p, "ExternalId", low=2, high=1224, pattern=_EXTERNAL_ID, pattern_text=r"[\w+=,.@:\/-]*"
    )
    requested_source = p.get("SourceIdentity")
    source_identity(problems, requested_source)
    policy = session_policy(problems, p)
    arns = policy_arns(problems, p)
    problems.raise_any()
    packed = check_session_policies(policy, arns)

    role = role_by_arn(call, role_arn)
    if role is None:
        raise _refused(caller, ACTION, role_arn)
    try:
        trust = parse_policy(role.trust_policy, require_principal=True)
    except MalformedPolicyDocument:
        raise _refused(caller, ACTION, role.arn) from None
    inherited = _inherited_source_identity(caller)
    if inherited is not None and requested_source not in (None, inherited):
        raise AwsError(
            "AccessDenied",
            "SourceIdentity cannot be changed: the calling session's source identity is "
            f"{inherited}",
            403,
        )
    source = requested_source or inherited
    keys: dict[str, str] = {"sts:RoleSessionName": name}
    if external_id is not None:
        keys["sts:ExternalId"] = external_id
    if source is not None:
        keys["sts:SourceIdentity"] = source
    authorize(call.store, caller, ACTION, role.arn, resource_policy=trust, keys=keys, denied=DENIED)
    if source is not None:
        authorize(
            call.store, caller, "sts:SetSourceIdentity", role.arn, resource_policy=trust,
            keys=keys, denied=DENIED,
        )  # fmt: skip

    chained = caller.role_arn is not None
    seconds = duration if duration is not None else 3600
    if chained and seconds > CHAINED_MAX:
        raise AwsError(
            "ValidationError",
            "The requested DurationSeconds exceeds the 1 hour session limit for roles assumed "
            "by role chaining.",
        )
    now = call.clock.now()
    user = assumed_role_user(call, role, name)
    context: dict[str, Any] = {
        "issued_by": "AssumeRole",
        "role_id": role.role_id,
        "session_name": name,
        "source_arn": caller.arn,
        "chained": chained,
        "created": iso(now),
        **session_policy_context(policy, arns),
    }
    credentials = issue_role_session(
        call, role, user, seconds=seconds, context=context, source=source
    )
    return {
        "Credentials": credentials,
        "AssumedRoleUser": user,
        "PackedPolicySize": packed,
        "SourceIdentity": source,
    }
