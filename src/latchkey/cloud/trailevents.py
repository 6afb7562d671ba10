"""How the cloud's calls appear in their CloudTrail-shaped audit events: which request
parameters are recorded and how they are named, the caller's ``userIdentity``, the STS answer's
``responseElements``, and the second line of defence that keeps secrets out of every event.
(The KMS side's parameters and answers: ``kms/validation.trail_parameters`` and
``kms/usage.describe_call``.)
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from typing import Any

from latchkey.cloud.audit import trail_members, trail_time
from latchkey.cloud.identity import Caller
from latchkey.cloud.sts import ops as sts_ops

AUDIT_VALUE_CHARS = 4096
_ROLE_ARN = re.compile(r"arn:aws:iam::\d{12}:role/[!-~]+", re.ASCII)  # IAM paths: any printable
_DURATION = re.compile(r"\d{1,10}", re.ASCII)


def safe_params(params: Mapping[str, Any], allowed: frozenset[str]) -> dict[str, Any]:
    return {k: v for k, v in params.items() if k in allowed}


def camel(params: Mapping[str, Any]) -> dict[str, Any]:
    """Query parameters named as CloudTrail names them (``RoleArn`` -> ``roleArn``)."""
    return {k[:1].lower() + k[1:]: v for k, v in params.items()}


# Members never written to the audit trail, wherever they appear (compared case-insensitively):
# a second line of defence behind the allow-lists and response shaping below.
SECRET_MEMBERS = frozenset(
    {
        "secretaccesskey",
        "sessiontoken",
        "webidentitytoken",
        "password",
        "privatekey",
        "tokencode",
        "plaintext",
        "granttoken",
        "granttokens",
        "importtoken",
        "privatekeyplaintext",
    }
)


def redacted(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: redacted(v) for k, v in value.items() if str(k).lower() not in SECRET_MEMBERS}
    if isinstance(value, list | tuple):
        return [redacted(v) for v in value]
    return value


def _identity_type(caller: Caller) -> str:
    if caller.kind == "session" and caller.role_arn is not None:
        return "AssumedRole"
    if caller.arn.endswith(":root"):
        return "Root"
    return "IAMUser"


def user_identity(caller: Caller) -> dict[str, Any]:
    """CloudTrail's userIdentity for a caller."""
    identity: dict[str, Any] = {
        "type": _identity_type(caller),
        "principalId": sts_ops.caller_user_id(caller),
        "arn": caller.arn,
        "accountId": caller.account,
        "accessKeyId": caller.access_key_id,
    }
    if identity["type"] == "IAMUser" and caller.user_name is not None:
        identity["userName"] = caller.user_name  # CloudTrail names IAM users (and their sessions)
    if caller.kind == "session":
        ctx = caller.session_context
        session: dict[str, Any] = {
            "attributes": {"creationDate": ctx.get("created"), "mfaAuthenticated": "false"}
        }
        if caller.role_arn is not None:
            session["sessionIssuer"] = {
                "type": "Role",
                "principalId": ctx.get("role_id"),
                "arn": caller.role_arn,
                "accountId": caller.account,
                "userName": caller.role_arn.rsplit("/", 1)[-1],
            }
            web = ctx.get("web_identity")  # CloudTrail's shape: the provider, no claims
            session["webIdFederationData"] = (
                {"federatedProvider": web.get("provider"), "attributes": {}}
                if isinstance(web, dict)
                else {}
            )
        if isinstance(ctx.get("source_identity"), str):
            session["sourceIdentity"] = ctx["source_identity"]
        identity["sessionContext"] = session
    return identity


def web_identity_user(provider: str, audience: str, subject: str) -> dict[str, Any]:
    """CloudTrail's userIdentity for the unsigned AssumeRoleWithWebIdentity."""
    return {
        "type": "WebIdentityUser",
        "principalId": f"{provider}:{audience}:{subject}",
        "userName": subject,
        "identityProvider": provider,
    }


def role_resources(role_arn: str | None, account: str) -> list[dict[str, str]]:
    """The role an AssumeRole* call names, when it is a role ARN (never an unchecked value)."""
    if role_arn is None or not _ROLE_ARN.fullmatch(role_arn):
        return []
    return [{"accountId": account, "type": "AWS::IAM::Role", "ARN": role_arn}]


def _trail_time(iso: str) -> str:
    """``2016-03-23T02:39:51Z`` as CloudTrail writes a credential expiration
    (``audit.trail_time``); the text itself if it is no such time."""
    try:
        when = dt.datetime.strptime(iso, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
    except ValueError:
        return iso
    return trail_time(when)


def sts_parameters(params: Mapping[str, str]) -> dict[str, Any]:
    """The request parameters safe to record, bounded (unsigned callers choose them), named as
    CloudTrail names them, ``durationSeconds`` a number as CloudTrail writes it."""
    recorded: dict[str, Any] = {
        k: v[:AUDIT_VALUE_CHARS] for k, v in safe_params(params, sts_ops.AUDITABLE_PARAMS).items()
    }
    duration = recorded.get("DurationSeconds")
    if isinstance(duration, str) and _DURATION.fullmatch(duration):
        recorded["DurationSeconds"] = int(duration)
    names = (f"PolicyArns.member.{n}.arn" for n in range(1, 11))
    policy_arns = [params[name][:AUDIT_VALUE_CHARS] for name in names if name in params]
    if policy_arns:  # CloudTrail's shape: a list of {arn}
        recorded["PolicyArns"] = [{"arn": arn} for arn in policy_arns]
    return camel(recorded)


def sts_elements(result: Mapping[str, Any]) -> dict[str, Any]:
    """responseElements of an answer with credentials: named by access key id and expiration,
    never a secret."""
    elements = trail_members(
        {
            k: v
            for k, v in result.items()
            if k not in sts_ops.SECRET_RESPONSE_MEMBERS and v is not None
        }
    )
    elements["credentials"] = {
        "accessKeyId": result["Credentials"]["AccessKeyId"],
        "expiration": _trail_time(result["Credentials"]["Expiration"]),
    }
    return dict(elements)
