"""STS operations: AssumeRoleWithWebIdentity (unsigned) and GetCallerIdentity."""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
import secrets
import string
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from latchkey.aws.errors import AwsError
from latchkey.aws.policy import (
    Decision,
    MalformedPolicyDocument,
    RequestContext,
    evaluate,
    parse_policy,
)
from latchkey.clock import Clock
from latchkey.cloud.iam.ops import int_param, provider_url_key
from latchkey.cloud.identity import ACCESS_KEY_KIND, Caller, hash_session_token
from latchkey.cloud.sts.discovery import DiscoveryError, JwksFetcher
from latchkey.crypto.jwt import InvalidToken, check_claims, verify_jwt
from latchkey.crypto.rootkey import RootKey
from latchkey.store.base import AccessKeyRecord, Store

NAMESPACE = "https://sts.amazonaws.com/doc/2011-06-15/"
SESSION_NAME = re.compile(r"[A-Za-z0-9_+=,.@-]{2,64}")
KEY_ALPHABET = string.ascii_uppercase + string.digits
MAX_TOKEN_BYTES = 20_000


@dataclass(frozen=True, slots=True)
class Call:
    caller: Caller | None  # None for the unsigned AssumeRoleWithWebIdentity
    store: Store
    root_key: RootKey
    clock: Clock
    jwks: JwksFetcher
    account: str
    params: Mapping[str, str]


Handler = Callable[[Call], Awaitable[dict[str, Any]]]


def _iso(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _unverified_issuer(token: str) -> str:
    """Read ``iss`` before verification, only to choose whose keys to verify with."""
    parts = token.split(".")
    if len(parts) != 3:
        raise AwsError("InvalidIdentityToken", "Couldn't parse the web identity token")
    try:
        padded = parts[1] + "=" * (-len(parts[1]) % 4)
        claims = json.loads(base64.urlsafe_b64decode(padded))
    except (ValueError, UnicodeDecodeError):
        raise AwsError("InvalidIdentityToken", "Couldn't parse the web identity token") from None
    issuer = claims.get("iss") if isinstance(claims, dict) else None
    if not isinstance(issuer, str):
        raise AwsError("InvalidIdentityToken", "The web identity token has no issuer")
    return issuer


def new_session_credentials() -> tuple[str, str, str]:
    access_key = "ASIA" + "".join(secrets.choice(KEY_ALPHABET) for _ in range(16))
    secret = base64.b64encode(secrets.token_bytes(30)).decode()
    token = "LKSTS" + base64.b64encode(secrets.token_bytes(96)).decode()
    return access_key, secret, token


async def assume_role_with_web_identity(call: Call) -> dict[str, Any]:
    p = call.params
    role_arn = p.get("RoleArn", "")
    session_name = p.get("RoleSessionName", "")
    token = p.get("WebIdentityToken", "")
    if not role_arn or not token or not session_name:
        raise AwsError(
            "ValidationError", "RoleArn, RoleSessionName and WebIdentityToken are required"
        )
    if not SESSION_NAME.fullmatch(session_name):
        raise AwsError(
            "ValidationError",
            f"1 validation error detected: Value '{session_name}' at 'roleSessionName' failed to "
            r"satisfy constraint: Member must satisfy regular expression pattern: [\w+=,.@-]*",
        )
    if len(token) > MAX_TOKEN_BYTES:
        raise AwsError("ValidationError", "WebIdentityToken is too long")

    issuer = _unverified_issuer(token)
    try:
        url_key = provider_url_key(issuer)
    except AwsError:
        raise AwsError("InvalidIdentityToken", "The issuer must be an https URL") from None
    provider_arn = f"arn:aws:iam::{call.account}:oidc-provider/{url_key}"
    provider = call.store.load_oidc_provider(provider_arn)
    if provider is None:
        raise AwsError(
            "InvalidIdentityToken", f"No OpenIDConnect provider found in your account for {issuer}"
        )
    try:
        jwks = await call.jwks.jwks(issuer)
        try:
            _header, claims = verify_jwt(token, jwks)
        except InvalidToken as exc:
            if exc.reason != "unknown_kid":
                raise
            _header, claims = verify_jwt(token, await call.jwks.jwks(issuer, refresh=True))
    except DiscoveryError as exc:
        raise AwsError("IDPCommunicationError", str(exc)) from None
    except InvalidToken as exc:
        raise AwsError(
            "InvalidIdentityToken", f"The web identity token is invalid ({exc.reason})"
        ) from None
    now = call.clock.now()
    try:
        check_claims(claims, issuer=issuer, audiences=provider.client_ids, now=now)
    except InvalidToken as exc:
        if exc.reason == "expired":
            raise AwsError("ExpiredTokenException", "Token expired") from None
        if exc.reason == "bad_audience":
            raise AwsError("InvalidIdentityToken", "Incorrect token audience") from None
        raise AwsError(
            "InvalidIdentityToken", f"The web identity token is invalid ({exc.reason})"
        ) from None

    role_name = role_arn.rsplit("/", 1)[-1]
    role = call.store.load_role(role_name)
    denied = AwsError(
        "AccessDenied", "Not authorized to perform sts:AssumeRoleWithWebIdentity", 403
    )
    if role is None or role.arn != role_arn:
        raise denied
    aud = claims.get("aud")
    audience = aud if isinstance(aud, str) else (aud[0] if isinstance(aud, list) and aud else "")
    subject = str(claims.get("sub", ""))
    keys: dict[str, str | list[str]] = {f"{url_key}:aud": audience, f"{url_key}:sub": subject}
    if isinstance(aud, list):
        keys[f"{url_key}:aud"] = [str(a) for a in aud]
    try:
        trust = parse_policy(role.trust_policy, require_principal=True)
    except MalformedPolicyDocument:
        raise denied from None
    ctx = RequestContext(
        action="sts:AssumeRoleWithWebIdentity",
        resource=role.arn,
        principals=frozenset({provider_arn}),
        keys=keys,
    )
    if evaluate(trust, ctx) is not Decision.ALLOW:
        raise denied

    duration = int_param(p, "DurationSeconds", 3600)
    if not 900 <= duration <= role.max_session_duration:
        raise AwsError(
            "ValidationError",
            "The requested DurationSeconds exceeds the MaxSessionDuration set for this role.",
        )
    expiration = now + dt.timedelta(seconds=duration)
    access_key, secret, session_token = new_session_credentials()
    assumed_arn = f"arn:aws:sts::{call.account}:assumed-role/{role.name}/{session_name}"
    context = {
        "role_id": role.role_id,
        "session_name": session_name,
        "web_identity": {"provider": provider_arn, "issuer": issuer, "sub": subject},
        "created": _iso(now),
    }
    call.store.save_access_key(
        AccessKeyRecord(
            access_key_id=access_key,
            wrapped_secret=call.root_key.wrap(ACCESS_KEY_KIND, access_key, secret.encode()),
            principal_arn=assumed_arn,
            kind="session",
            created=time.time(),
            expiration=expiration.timestamp(),
            session_token_sha256=hash_session_token(session_token),
            role_arn=role.arn,
            session_context=json.dumps(context),
        )
    )
    return {
        "Credentials": {
            "AccessKeyId": access_key,
            "SecretAccessKey": secret,
            "SessionToken": session_token,
            "Expiration": _iso(expiration),
        },
        "SubjectFromWebIdentityToken": subject,
        "AssumedRoleUser": {"AssumedRoleId": f"{role.role_id}:{session_name}", "Arn": assumed_arn},
        "Provider": url_key,
        "Audience": audience,
    }


async def get_caller_identity(call: Call) -> dict[str, Any]:
    caller = call.caller
    assert caller is not None
    return {"UserId": caller.user_id, "Account": caller.account, "Arn": caller.arn}


OPERATIONS: dict[str, Handler] = {
    "AssumeRoleWithWebIdentity": assume_role_with_web_identity,
    "GetCallerIdentity": get_caller_identity,
}
UNSIGNED = frozenset({"AssumeRoleWithWebIdentity"})
READ_ONLY = frozenset({"GetCallerIdentity"})
AUDITABLE_PARAMS = frozenset({"RoleArn", "RoleSessionName", "DurationSeconds", "ProviderId"})
# Response members that must never reach the audit trail.
SECRET_RESPONSE_MEMBERS = frozenset({"Credentials"})
