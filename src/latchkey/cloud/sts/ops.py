"""STS operations by wire name. The handlers live in ``web_identity``, ``assume_role`` and
``session``; what they share (the call, validation, session policies) in ``common``."""

from __future__ import annotations

from latchkey.cloud.sts.assume_role import assume_role
from latchkey.cloud.sts.common import Call, Handler
from latchkey.cloud.sts.session import (
    caller_user_id,
    get_caller_identity,
    get_session_token,
    new_session_credentials,
)
from latchkey.cloud.sts.web_identity import assume_role_with_web_identity

__all__ = [
    "AUDITABLE_PARAMS",
    "CREDENTIAL_ACTIONS",
    "NAMESPACE",
    "OPERATIONS",
    "READ_ONLY",
    "SECRET_RESPONSE_MEMBERS",
    "UNSIGNED",
    "Call",
    "Handler",
    "caller_user_id",
    "new_session_credentials",
]

NAMESPACE = "https://sts.amazonaws.com/doc/2011-06-15/"

OPERATIONS: dict[str, Handler] = {
    "AssumeRole": assume_role,
    "AssumeRoleWithWebIdentity": assume_role_with_web_identity,
    "GetCallerIdentity": get_caller_identity,
    "GetSessionToken": get_session_token,
}
UNSIGNED = frozenset({"AssumeRoleWithWebIdentity"})
READ_ONLY = frozenset({"GetCallerIdentity"})
# Operations whose answer holds temporary credentials (audited as accessKeyId + expiration).
CREDENTIAL_ACTIONS = frozenset({"AssumeRole", "AssumeRoleWithWebIdentity", "GetSessionToken"})
# Request parameters safe to record (never WebIdentityToken, ExternalId, SerialNumber, TokenCode).
AUDITABLE_PARAMS = frozenset(
    {"RoleArn", "RoleSessionName", "DurationSeconds", "ProviderId", "SourceIdentity", "Policy"}
)
# Response members that must never reach the audit trail.
SECRET_RESPONSE_MEMBERS = frozenset({"Credentials"})
