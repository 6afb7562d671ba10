"""What every IAM handler shares: the call, authorization, parameter validation as IAM words
it, pagination and AWS's error codes."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import re
import secrets
import string
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar
from urllib.parse import urlsplit

from latchkey.aws.errors import AwsError
from latchkey.aws.policy import MalformedPolicyDocument, PolicyDocument
from latchkey.cloud.authz import ConditionKeys, authorize
from latchkey.cloud.identity import Caller
from latchkey.crypto.rootkey import RootKey
from latchkey.store.base import RoleRecord, Store, UserRecord

NAMESPACE = "https://iam.amazonaws.com/doc/2010-05-08/"
ID_ALPHABET = string.ascii_uppercase + string.digits
DENIED = ("AccessDenied", 403)
NAME_PATTERN = r"[\w+=,.@-]+"
_NAME = re.compile(r"[A-Za-z0-9_+=,.@-]+")
_PATH = re.compile(r"/|/[\x21-\x7e]+/")
_PATH_PREFIX = re.compile(r"/[\x21-\x7f]*")
_DESCRIPTION = re.compile(r"[\t\n\r\x20-\x7e\xa1-\xff]*")
_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class Call:
    caller: Caller
    store: Store
    account: str
    params: Mapping[str, str]
    root_key: RootKey | None = None  # app.py always passes it; CreateAccessKey needs it

    def wrapping_key(self) -> RootKey:
        """The root key that wraps new secrets (CreateAccessKey)."""
        if self.root_key is None:
            raise AwsError("ServiceFailure", "The root key is unavailable.", 500, sender=False)
        return self.root_key


Handler = Callable[[Call], Awaitable[dict[str, Any]]]


class Loader(Protocol):
    """Loads the role or user a call names, after authorizing ``action`` on it."""

    def __call__(
        self, call: Call, action: str, keys: ConditionKeys | None = None
    ) -> RoleRecord | UserRecord: ...


def check(call: Call, action: str, resource: str, keys: ConditionKeys | None = None) -> None:
    """IAM authorization: the root user may do everything, others need an identity allow."""
    authorize(call.store, call.caller, action, resource, keys=keys, denied=DENIED)


# -- errors ---------------------------------------------------------------------------------


def _field(name: str) -> str:
    return name[0].lower() + name[1:]


def validation(name: str, value: object, constraint: str) -> AwsError:
    return AwsError(
        "ValidationError",
        f"1 validation error detected: Value '{value}' at '{_field(name)}' failed to satisfy "
        f"constraint: {constraint}",
    )


def no_such_entity(message: str) -> AwsError:
    return AwsError("NoSuchEntity", message, 404)


def already_exists(message: str) -> AwsError:
    return AwsError("EntityAlreadyExists", message, 409)


def delete_conflict(message: str) -> AwsError:
    return AwsError("DeleteConflict", message, 409)


def refuse_delete_with_policies(owner: RoleRecord | UserRecord) -> None:
    """A role or user must lose its inline and attached policies before it is deleted."""
    if owner.inline_policies:
        raise delete_conflict("Cannot delete entity, must delete policies first.")
    if owner.attached_policies:
        raise delete_conflict("Cannot delete entity, must detach all policies first.")


def limit_exceeded(message: str) -> AwsError:
    return AwsError("LimitExceeded", message, 409)


def invalid_input(message: str) -> AwsError:
    return AwsError("InvalidInput", message)


def malformed(exc: MalformedPolicyDocument) -> AwsError:
    return AwsError("MalformedPolicyDocument", str(exc))


# -- parameters -----------------------------------------------------------------------------


def required(params: Mapping[str, str], name: str) -> str:
    value = params.get(name)
    if value is None:
        raise AwsError(
            "ValidationError",
            f"1 validation error detected: Value null at '{_field(name)}' "
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
        raise validation(name, raw, "Member must be a number") from None


def bool_param(params: Mapping[str, str], name: str) -> bool:
    raw = params.get(name, "false").lower()
    if raw not in ("true", "false"):
        raise validation(name, raw, "Member must be a boolean")
    return raw == "true"


def length(params: Mapping[str, str], name: str, low: int, high: int, default: str = "") -> str:
    value = params.get(name, default)
    if len(value) < low:
        raise validation(name, value, f"Member must have length greater than or equal to {low}")
    if len(value) > high:
        raise validation(name, value, f"Member must have length less than or equal to {high}")
    return value


def name_param(params: Mapping[str, str], name: str, high: int = 64) -> str:
    """An IAM entity name: 1..``high`` characters of ``[\\w+=,.@-]``."""
    value = length(params, name, 1, high, required(params, name))
    if not _NAME.fullmatch(value):
        raise validation(
            name, value, f"Member must satisfy regular expression pattern: {NAME_PATTERN}"
        )
    return value


def path_param(params: Mapping[str, str]) -> str:
    path = length(params, "Path", 1, 512, "/")
    if not _PATH.fullmatch(path):
        raise validation(
            "Path", path, "Member must satisfy regular expression pattern: "
            r"(\u002F)|(\u002F[\u0021-\u007E]+\u002F)",
        )  # fmt: skip
    return path


def path_prefix_param(params: Mapping[str, str]) -> str:
    prefix = length(params, "PathPrefix", 1, 512, "/")
    if not _PATH_PREFIX.fullmatch(prefix):
        raise validation(
            "PathPrefix", prefix,
            r"Member must satisfy regular expression pattern: \u002F[\u0021-\u007F]*",
        )  # fmt: skip
    return prefix


def description_param(params: Mapping[str, str]) -> str | None:
    if "Description" not in params:
        return None
    value = length(params, "Description", 0, 1000)
    if not _DESCRIPTION.fullmatch(value):
        raise validation(
            "Description", value, "Member must satisfy regular expression pattern: "
            r"[\u0009\u000A\u000D\u0020-\u007E\u00A1-\u00FF]*",
        )  # fmt: skip
    return value


def no_permissions_boundary(params: Mapping[str, str]) -> None:
    if params.get("PermissionsBoundary"):
        raise invalid_input(
            "Permissions boundaries are not supported by latchkey's local IAM; "
            "create the entity without PermissionsBoundary."
        )


def policy_text(
    params: Mapping[str, str], name: str, parse: Callable[[str], PolicyDocument]
) -> str:
    text = length(params, name, 1, 131072, required(params, name))
    try:
        parse(text)
    except MalformedPolicyDocument as exc:
        raise malformed(exc) from None
    return text


def policy_chars(text: str) -> int:
    """Policy size as IAM counts it for quotas: characters, whitespace not counted."""
    return sum(1 for ch in text if not ch.isspace())


def unique_id(prefix: str) -> str:
    return prefix + "".join(secrets.choice(ID_ALPHABET) for _ in range(17))


def iso(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def provider_url_key(url: str) -> str:
    """IAM's name for an OIDC provider URL: ``host[:port][/path]`` without the scheme.

    The host is lowercased (DNS names are case-insensitive); the path is kept exactly, since
    it is compared with the token's ``iss`` case-sensitively, and so is a trailing ``/`` (as
    AWS keeps it: ``https://tenant.auth0.com/`` is ``oidc-provider/tenant.auth0.com/``, and
    Auth0's tokens say ``"iss": "https://tenant.auth0.com/"``).
    """
    bad = "Invalid OpenID Connect Provider URL"
    if len(url) > 255:
        raise validation("Url", url, "Member must have length less than or equal to 255")
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError:
        raise AwsError("ValidationError", f"{bad}: {url!r} is not a URL") from None
    if parts.scheme != "https" or not host:
        raise AwsError("ValidationError", f"{bad}: must use https")
    if parts.query or parts.fragment or "?" in url or "#" in url or parts.username is not None:
        raise AwsError("ValidationError", f"{bad}: no user info, query or fragment")
    netloc = f"[{host}]" if ":" in host else host
    if port is not None:
        netloc += f":{port}"
    return netloc + parts.path


# -- pagination -----------------------------------------------------------------------------


def paginate(
    params: Mapping[str, str], items: Sequence[_T], key: Callable[[_T], str]
) -> tuple[list[_T], dict[str, Any]]:
    """One page of ``items`` (ordered by ``key``) and ``IsTruncated`` / ``Marker``.

    The marker is opaque to clients: the sort key of the next page's first item, so a page
    stays right when items before it are added or deleted between calls.
    """
    max_items = int_param(params, "MaxItems", 100)
    if not 1 <= max_items <= 1000:
        raise validation("MaxItems", max_items, "Member must have value between 1 and 1000")
    ordered = sorted(items, key=key)
    start = 0
    marker = params.get("Marker")
    if marker:
        try:
            after = base64.urlsafe_b64decode(marker.encode()).decode()
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise validation(
                "Marker", marker, "Member must be a marker from a previous call"
            ) from None
        start = next((i for i, item in enumerate(ordered) if key(item) >= after), len(ordered))
    page = ordered[start : start + max_items]
    extra: dict[str, Any] = {"IsTruncated": start + max_items < len(ordered)}
    if extra["IsTruncated"]:
        extra["Marker"] = base64.urlsafe_b64encode(
            key(ordered[start + max_items]).encode()
        ).decode()
    return page, extra
