"""Temporary credentials: issuing them, ``GetSessionToken`` and ``GetCallerIdentity``."""

from __future__ import annotations

import base64
import datetime as dt
import json
import secrets
import string
from typing import Any

from latchkey.aws.errors import AwsError
from latchkey.cloud.identity import ACCESS_KEY_KIND, Caller, hash_session_token
from latchkey.cloud.sts.common import Call, Problems, iso, refuse_unsupported
from latchkey.store.base import AccessKeyRecord, RoleRecord

KEY_ALPHABET = string.ascii_uppercase + string.digits
GET_SESSION_TOKEN_DEFAULT = 43_200
GET_SESSION_TOKEN_MAX = 129_600
ROOT_SESSION_MAX = 3_600  # AWS caps the account root user's session tokens at one hour


def new_session_credentials() -> tuple[str, str, str]:
    access_key = "ASIA" + "".join(secrets.choice(KEY_ALPHABET) for _ in range(16))
    secret = base64.b64encode(secrets.token_bytes(30)).decode()
    token = "LKSTS" + base64.b64encode(secrets.token_bytes(96)).decode()
    return access_key, secret, token


def issue(
    call: Call,
    *,
    principal_arn: str,
    role_arn: str | None,
    expiration: dt.datetime,
    context: dict[str, Any],
) -> dict[str, str]:
    """Store a new session key (secret wrapped, token hashed); return the ``Credentials``."""
    access_key, secret, session_token = new_session_credentials()
    call.store.save_access_key(
        AccessKeyRecord(
            access_key_id=access_key,
            wrapped_secret=call.root_key.wrap(ACCESS_KEY_KIND, access_key, secret.encode()),
            principal_arn=principal_arn,
            kind="session",
            created=call.clock.now().timestamp(),
            expiration=expiration.timestamp(),
            session_token_sha256=hash_session_token(session_token),
            role_arn=role_arn,
            session_context=json.dumps(context, sort_keys=True),
        )
    )
    return {
        "AccessKeyId": access_key,
        "SecretAccessKey": secret,
        "SessionToken": session_token,
        "Expiration": iso(expiration),
    }


def issue_role_session(
    call: Call,
    role: RoleRecord,
    user: dict[str, str],
    *,
    seconds: int,
    context: dict[str, Any],
    source: str | None,
) -> dict[str, str]:
    """Check the duration against the role, record SourceIdentity, issue the credentials."""
    if seconds > role.max_session_duration:
        raise AwsError(
            "ValidationError",
            "The requested DurationSeconds exceeds the MaxSessionDuration set for this role.",
        )
    if source is not None:
        context["source_identity"] = source
    return issue(
        call,
        principal_arn=user["Arn"],
        role_arn=role.arn,
        expiration=call.clock.now() + dt.timedelta(seconds=seconds),
        context=context,
    )


def role_by_arn(call: Call, arn: str) -> RoleRecord | None:
    """The role an ARN names in this account, or ``None`` (also for a path that differs)."""
    if not arn.startswith(f"arn:aws:iam::{call.account}:role/"):
        return None
    role = call.store.load_role(arn.rsplit("/", 1)[-1])
    return role if role is not None and role.arn == arn else None


def assumed_role_user(call: Call, role: RoleRecord, session_name: str) -> dict[str, str]:
    return {
        "AssumedRoleId": f"{role.role_id}:{session_name}",
        "Arn": f"arn:aws:sts::{call.account}:assumed-role/{role.name}/{session_name}",
    }


def caller_user_id(caller: Caller) -> str:
    """GetCallerIdentity's ``UserId``: the account id for root, ``AIDA...`` for an IAM user
    (and GetSessionToken sessions of either), ``AROA...:session`` for a role session."""
    if caller.kind == "session" and caller.role_arn is None:
        user_id = caller.session_context.get("user_id")
        return user_id if isinstance(user_id, str) and user_id else caller.account
    return caller.user_id


async def get_session_token(call: Call) -> dict[str, Any]:
    caller = call.caller
    assert caller is not None
    if caller.kind == "session":
        raise AwsError("AccessDenied", "Cannot call GetSessionToken with session credentials", 403)
    refuse_unsupported(call.params)
    problems = Problems()
    duration = problems.number(call.params, "DurationSeconds", low=900, high=GET_SESSION_TOKEN_MAX)
    problems.raise_any()
    seconds = duration if duration is not None else GET_SESSION_TOKEN_DEFAULT
    if caller.kind == "root":
        seconds = min(seconds, ROOT_SESSION_MAX)
    now = call.clock.now()
    expiration = now + dt.timedelta(seconds=seconds)
    context = {
        "issued_by": "GetSessionToken",
        "user_id": caller_user_id(caller),
        "parent_kind": caller.kind,
        "parent_access_key_id": caller.access_key_id,
        "created": iso(now),
    }
    credentials = issue(
        call, principal_arn=caller.arn, role_arn=None, expiration=expiration, context=context
    )
    return {"Credentials": credentials}


async def get_caller_identity(call: Call) -> dict[str, Any]:
    caller = call.caller
    assert caller is not None
    return {"UserId": caller_user_id(caller), "Account": caller.account, "Arn": caller.arn}
