"""IAM operations: one function each; wire names in OPERATIONS."""

from __future__ import annotations

import datetime as dt
import re
import secrets
import string
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

from latchkey.aws.errors import AwsError
from latchkey.aws.policy import MalformedPolicyDocument, parse_identity_policy, parse_trust_policy
from latchkey.aws.queryproto import member_list
from latchkey.cloud.authz import authorize
from latchkey.cloud.identity import Caller
from latchkey.store.base import Conflict, OidcProviderRecord, RoleRecord, Store

NAMESPACE = "https://iam.amazonaws.com/doc/2010-05-08/"
ID_ALPHABET = string.ascii_uppercase + string.digits
ROLE_NAME = re.compile(r"[A-Za-z0-9+=,.@_-]{1,64}")
DENIED = ("AccessDenied", 403)


@dataclass(frozen=True, slots=True)
class Call:
    caller: Caller
    store: Store
    account: str
    params: Mapping[str, str]


Handler = Callable[[Call], Awaitable[dict[str, Any]]]


def _required(params: Mapping[str, str], name: str) -> str:
    value = params.get(name)
    if not value:
        raise AwsError(
            "ValidationError",
            f"1 validation error detected: Value null at '{name[0].lower() + name[1:]}' "
            "failed to satisfy constraint: Member must not be null",
        )
    return value


def int_param(params: Mapping[str, str], name: str, default: int) -> int:
    """An integer query parameter; anything else is a ValidationError, not a 500."""
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise AwsError(
            "ValidationError",
            f"1 validation error detected: Value '{raw}' at '{name[0].lower() + name[1:]}' "
            "failed to satisfy constraint: Member must be a number",
        ) from None


def unique_id(prefix: str) -> str:
    return prefix + "".join(secrets.choice(ID_ALPHABET) for _ in range(17))


def provider_url_key(url: str) -> str:
    """IAM stores an OIDC provider URL without its scheme: ``host[:port][/path]``."""
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.netloc:
        raise AwsError("ValidationError", "Invalid OpenID Connect Provider URL: must use https")
    return (parts.netloc + parts.path).rstrip("/").lower()


def _iso(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def create_open_id_connect_provider(call: Call) -> dict[str, Any]:
    url = provider_url_key(_required(call.params, "Url"))
    arn = f"arn:aws:iam::{call.account}:oidc-provider/{url}"
    authorize(call.store, call.caller, "iam:CreateOpenIDConnectProvider", arn, denied=DENIED)
    client_ids = tuple(member_list(call.params, "ClientIDList"))
    thumbprints = tuple(member_list(call.params, "ThumbprintList"))
    if len(client_ids) > 100 or any(not 1 <= len(c) <= 255 for c in client_ids):
        raise AwsError("ValidationError", "ClientIDList entries must be 1 to 255 characters")
    try:
        call.store.save_oidc_provider(
            OidcProviderRecord(arn, url, client_ids, thumbprints, time.time())
        )
    except Conflict:
        raise AwsError(
            "EntityAlreadyExists", f"Provider with url https://{url} already exists.", 409
        ) from None
    return {"OpenIDConnectProviderArn": arn}


async def get_open_id_connect_provider(call: Call) -> dict[str, Any]:
    arn = _required(call.params, "OpenIDConnectProviderArn")
    authorize(call.store, call.caller, "iam:GetOpenIDConnectProvider", arn, denied=DENIED)
    provider = call.store.load_oidc_provider(arn)
    if provider is None:
        raise AwsError("NoSuchEntity", f"OpenIDConnect Provider not found for arn {arn}", 404)
    return {
        "Url": provider.url,
        "ClientIDList": list(provider.client_ids),
        "ThumbprintList": list(provider.thumbprints),
        "CreateDate": _iso(provider.created),
    }


def _role_shape(role: RoleRecord) -> dict[str, Any]:
    return {
        "Path": role.path,
        "RoleName": role.name,
        "RoleId": role.role_id,
        "Arn": role.arn,
        "CreateDate": _iso(role.created),
        "AssumeRolePolicyDocument": quote(role.trust_policy, safe=""),
        "MaxSessionDuration": role.max_session_duration,
    }


async def create_role(call: Call) -> dict[str, Any]:
    name = _required(call.params, "RoleName")
    if not ROLE_NAME.fullmatch(name):
        raise AwsError("ValidationError", f"Invalid role name {name!r}")
    path = call.params.get("Path", "/")
    if not path.startswith("/") or not path.endswith("/"):
        raise AwsError("ValidationError", "Path must begin and end with '/'")
    arn = f"arn:aws:iam::{call.account}:role{path}{name}"
    authorize(call.store, call.caller, "iam:CreateRole", arn, denied=DENIED)
    trust = _required(call.params, "AssumeRolePolicyDocument")
    try:
        parse_trust_policy(trust)
    except MalformedPolicyDocument as exc:
        raise AwsError("MalformedPolicyDocument", str(exc)) from None
    max_session = int_param(call.params, "MaxSessionDuration", 3600)
    if not 3600 <= max_session <= 43200:
        raise AwsError("ValidationError", "MaxSessionDuration must be between 3600 and 43200")
    role = RoleRecord(name, arn, unique_id("AROA"), path, trust, max_session, time.time())
    try:
        call.store.save_role(role)
    except Conflict:
        raise AwsError(
            "EntityAlreadyExists", f"Role with name {name} already exists.", 409
        ) from None
    return {"Role": _role_shape(role)}


async def get_role(call: Call) -> dict[str, Any]:
    name = _required(call.params, "RoleName")
    role = call.store.load_role(name)
    arn = role.arn if role else f"arn:aws:iam::{call.account}:role/{name}"
    authorize(call.store, call.caller, "iam:GetRole", arn, denied=DENIED)
    if role is None:
        raise AwsError("NoSuchEntity", f"The role with name {name} cannot be found.", 404)
    return {"Role": _role_shape(role)}


async def put_role_policy(call: Call) -> dict[str, Any]:
    name = _required(call.params, "RoleName")
    policy_name = _required(call.params, "PolicyName")
    document = _required(call.params, "PolicyDocument")
    role = call.store.load_role(name)
    arn = role.arn if role else f"arn:aws:iam::{call.account}:role/{name}"
    authorize(call.store, call.caller, "iam:PutRolePolicy", arn, denied=DENIED)
    if role is None:
        raise AwsError("NoSuchEntity", f"The role with name {name} cannot be found.", 404)
    try:
        parse_identity_policy(document)
    except MalformedPolicyDocument as exc:
        raise AwsError("MalformedPolicyDocument", str(exc)) from None
    call.store.put_role_policy(role.name, policy_name, document)
    return {}


OPERATIONS: dict[str, Handler] = {
    "CreateOpenIDConnectProvider": create_open_id_connect_provider,
    "GetOpenIDConnectProvider": get_open_id_connect_provider,
    "CreateRole": create_role,
    "GetRole": get_role,
    "PutRolePolicy": put_role_policy,
}
READ_ONLY = frozenset({"GetOpenIDConnectProvider", "GetRole"})
AUDITABLE_PARAMS = frozenset({"Url", "RoleName", "PolicyName", "Path", "OpenIDConnectProviderArn"})
