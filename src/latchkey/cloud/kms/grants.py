"""Grants: CreateGrant, ListGrants, ListRetirableGrants, RetireGrant, RevokeGrant.

A grant gives one principal some operations on one key (``grantauth`` decides calls with
them). Grants are effective at once; ``GrantTokens`` are accepted and checked but never needed.
Limits: 50,000 grants per key (AWS's quota; ``LimitExceededException``). Grants are deleted with
their key. Service principals as grantee or retiring principal, and the ``SourceArn``
constraint that goes with them, are refused (``UnsupportedOperationException``): no AWS
service calls this cloud.
"""

from __future__ import annotations

import re
import secrets
import time
from typing import Any

from latchkey.aws.errors import AwsError, validation_error
from latchkey.cloud.authz import AccessRefused, authorize
from latchkey.cloud.kms.common import Call, Handler, authorize_key
from latchkey.cloud.kms.grantauth import (
    Constraints,
    decode_grant_token,
    encode_grant_token,
    grantee_is,
    operations_for,
    parse_constraints,
    parse_operations,
    unique_id,
)
from latchkey.cloud.kms.keys import check_usable
from latchkey.cloud.kms.paging import decode_marker, encode_marker, limit_param
from latchkey.store.base import KmsGrantRecord, KmsKeyRecord, LimitReached, Store

GRANTS_PER_KEY = 50_000
LIST_DEFAULT = 50
LIST_CAP = 100  # AWS documents Limit 1..100 for grant lists; a larger Limit returns 100

_PRINCIPAL = re.compile(r"[\w+=,.@:/-]{1,256}", re.ASCII)
_NAME = re.compile(r"[a-zA-Z0-9:/_-]{1,256}")
_GRANT_ID = re.compile(r"[0-9a-f]{64}")
_SERVICE_PRINCIPAL = re.compile(r"[a-z0-9-]+(\.[a-z0-9-]+)*\.amazonaws\.com(\.cn)?")
_NOT_FOUND = ""  # _principal_id: no such principal in this account


# -- parameters -----------------------------------------------------------------------------


def _principal_param(params: dict[str, Any], member: str, *, required: bool) -> str | None:
    value = params.get(member)
    field = member[0].lower() + member[1:]
    if value is None:
        if required:
            raise validation_error(field, None, "Member must not be null")
        return None
    if not isinstance(value, str):
        raise AwsError("SerializationException", f"{member} must be a string")
    if _PRINCIPAL.fullmatch(value) is None:
        raise validation_error(
            field, value, r"Member must satisfy regular expression pattern: ^[\w+=,.@:/-]+$"
        )
    return value


def _name_param(params: dict[str, Any]) -> str | None:
    name = params.get("Name")
    if name is None:
        return None
    if not isinstance(name, str) or _NAME.fullmatch(name) is None:
        raise validation_error(
            "name", name, "Member must satisfy regular expression pattern: ^[a-zA-Z0-9:/_-]+$"
        )
    return name


def _grant_id_param(value: object) -> str:
    if value is None:
        raise validation_error("grantId", None, "Member must not be null")
    if not isinstance(value, str) or _GRANT_ID.fullmatch(value) is None:
        raise AwsError("InvalidGrantIdException", "Invalid grant ID.")
    return value


def _key(call: Call, key_id: object) -> KmsKeyRecord:
    """A key by key id or key ARN; grant operations do not take aliases."""
    if isinstance(key_id, str) and (key_id.startswith("alias/") or ":alias/" in key_id):
        raise AwsError("InvalidArnException", "Key Aliases are not supported for this operation.")
    return call.keys.resolve(key_id)


def _dry_run(params: dict[str, Any]) -> None:
    if params.get("DryRun") is True:
        raise AwsError(
            "DryRunOperationException",
            "The request would have succeeded, but the DryRun option is set.",
            412,
        )


def _no_service_principals(params: dict[str, Any]) -> None:
    for member in ("GranteeServicePrincipal", "RetiringServicePrincipal"):
        if params.get(member) is not None:
            raise AwsError(
                "UnsupportedOperationException", f"{member} is not supported by this cloud."
            )


# -- principals -----------------------------------------------------------------------------


def _principal_id(store: Store, account: str, principal: str) -> str | None:
    """The unique id of an IAM role or user (also of a role's session ARN); ``None`` for the
    account root or an AWS service principal; ``_NOT_FOUND`` for anything else."""
    if _SERVICE_PRINCIPAL.fullmatch(principal):
        return None
    parts = principal.split(":", 5)
    if len(parts) != 6 or parts[:2] != ["arn", "aws"] or parts[3] or parts[4] != account:
        return _NOT_FOUND
    service, resource = parts[2], parts[5]
    if service == "iam" and resource == "root":
        return None
    if service == "iam" and resource.startswith("role/"):
        role = store.load_role(resource.rsplit("/", 1)[-1])
        return role.role_id if role is not None and role.arn == principal else _NOT_FOUND
    if service == "iam" and resource.startswith("user/"):
        user = store.load_user(resource.rsplit("/", 1)[-1])
        return user.user_id if user is not None and user.arn == principal else _NOT_FOUND
    bits = resource.split("/")
    if service == "sts" and len(bits) == 3 and bits[0] == "assumed-role" and all(bits):
        role = store.load_role(bits[1])
        return role.role_id if role is not None and role.name == bits[1] else _NOT_FOUND
    return _NOT_FOUND


def _existing_principal_id(store: Store, account: str, principal: str | None) -> str | None:
    if principal is None:
        return None
    found = _principal_id(store, account, principal)
    if found == _NOT_FOUND:
        raise AwsError(
            "InvalidArnException", f"ARN does not refer to a valid principal: {principal}"
        )
    return found


def _shown(store: Store, account: str, principal: str, bound: str | None) -> str:
    """The principal as ListGrants shows it: its unique id once the identity it named is gone
    (deleted, or re-created under the same name)."""
    if bound is None or _principal_id(store, account, principal) == bound:
        return principal
    return bound


def _is_caller(principal: str, bound: str | None, call: Call) -> bool:
    return principal in call.caller.principals and (
        bound is None or bound == unique_id(call.caller)
    )


# -- grants on the wire ---------------------------------------------------------------------


def _entry(call: Call, grant: KmsGrantRecord) -> dict[str, Any]:
    store, account = call.keys.store, call.keys.account
    out: dict[str, Any] = {
        "KeyId": call.keys.arn(grant.key_id),
        "GrantId": grant.grant_id,
        "Name": grant.name or "",
        "CreationDate": grant.created,
        "GranteePrincipal": _shown(store, account, grant.grantee_principal, grant.grantee_id),
        "IssuingAccount": grant.issuing_account,
        "Operations": list(grant.operations),
    }
    if grant.retiring_principal is not None:
        out["RetiringPrincipal"] = _shown(
            store, account, grant.retiring_principal, grant.retiring_id
        )
    constraints = Constraints.of(grant).wire()
    if constraints:
        out["Constraints"] = constraints
    return out


def _marker(params: dict[str, Any]) -> tuple[float, str] | None:
    if params.get("Marker") is None:
        return None
    created, _, grant_id = decode_marker(params["Marker"]).rpartition("/")
    try:
        return float(created), _grant_id_param(grant_id)
    except (ValueError, AwsError):
        raise AwsError("InvalidMarkerException", "Invalid marker") from None


def _page(call: Call, grants: list[KmsGrantRecord], limit: int) -> dict[str, Any]:
    shown = grants[:limit]
    out: dict[str, Any] = {
        "Grants": [_entry(call, g) for g in shown],
        "Truncated": len(grants) > limit,
    }
    if out["Truncated"]:
        out["NextMarker"] = encode_marker(f"{shown[-1].created!r}/{shown[-1].grant_id}")
    return out


# -- operations -----------------------------------------------------------------------------


async def create_grant(call: Call) -> dict[str, Any]:
    p = call.params
    _no_service_principals(p)
    grantee = _principal_param(p, "GranteePrincipal", required=True)
    assert grantee is not None
    retiring = _principal_param(p, "RetiringPrincipal", required=False)
    operations = parse_operations(p.get("Operations"))
    constraints = parse_constraints(p.get("Constraints"))
    name = _name_param(p)
    record = _key(call, p.get("KeyId"))
    keys: dict[str, Any] = {
        "kms:GrantOperations": list(operations),
        "kms:GranteePrincipal": grantee,
        "kms:GrantIsForAWSResource": False,
        **constraints.condition_keys(),
    }
    if retiring is not None:
        keys["kms:RetiringPrincipal"] = retiring
    authorize_key(call, "CreateGrant", record, **keys)
    check_usable(record)
    unsupported = [op for op in operations if op not in operations_for(record)]
    if unsupported:
        raise AwsError(
            "ValidationException",
            f"Grant operations [{', '.join(unsupported)}] are not supported for a KMS key with "
            f"KeySpec {record.key_spec} and KeyUsage {record.key_usage}.",
        )
    if not constraints.empty and record.key_spec != "SYMMETRIC_DEFAULT":
        raise AwsError(
            "ValidationException",
            "Encryption context grant constraints are supported only for symmetric encryption "
            "KMS keys.",
        )
    store, account = call.keys.store, call.keys.account
    grantee_id = _existing_principal_id(store, account, grantee)
    retiring_id = _existing_principal_id(store, account, retiring)
    _dry_run(p)
    grant = KmsGrantRecord(
        grant_id=secrets.token_hex(32),
        key_id=record.key_id,
        created=time.time(),
        grantee_principal=grantee,
        operations=operations,
        issuing_account=f"arn:aws:iam::{account}:root",
        name=name,
        retiring_principal=retiring,
        context_subset=constraints.subset,
        context_equals=constraints.equals,
        grantee_id=grantee_id,
        retiring_id=retiring_id,
    )
    try:
        saved = store.add_kms_grant(grant, limit=GRANTS_PER_KEY)
    except LimitReached:
        raise AwsError(
            "LimitExceededException",
            f"The KMS key {record.arn} already has the maximum number of grants "
            f"({GRANTS_PER_KEY}).",
        ) from None
    token = encode_grant_token(call.keys.root_key, account, call.keys.region, saved.grant_id)
    return {"GrantToken": token, "GrantId": saved.grant_id}


async def list_grants(call: Call) -> dict[str, Any]:
    p = call.params
    limit = limit_param(p, default=LIST_DEFAULT, cap=LIST_CAP)
    grantee = _principal_param(p, "GranteePrincipal", required=False)
    _no_service_principals(p)
    record = _key(call, p.get("KeyId"))
    authorize_key(call, "ListGrants", record, **{"kms:GrantIsForAWSResource": False})
    after = _marker(p)
    store = call.keys.store
    if p.get("GrantId") is not None:
        found = store.load_kms_grant(_grant_id_param(p["GrantId"]))
        wanted = (
            found is not None
            and found.key_id == record.key_id
            and (grantee is None or found.grantee_principal == grantee)
            and (after is None or (found.created, found.grant_id) > after)
        )
        grants = [found] if found is not None and wanted else []
    else:
        grantees = None if grantee is None else [grantee]
        grants = store.list_kms_grants(record.key_id, grantees=grantees, after=after,
                                       limit=limit + 1)  # fmt: skip
    return _page(call, grants, limit)


async def list_retirable_grants(call: Call) -> dict[str, Any]:
    p = call.params
    limit = limit_param(p, default=LIST_DEFAULT, cap=LIST_CAP)
    _no_service_principals(p)
    retiring = _principal_param(p, "RetiringPrincipal", required=True)
    assert retiring is not None
    parts = retiring.split(":", 5)
    if len(parts) != 6 or parts[0] != "arn" or parts[4] != call.caller.account:
        raise AwsError(
            "InvalidArnException", f"ARN does not refer to a principal in your account: {retiring}"
        )
    # An IAM permission on the retiring principal; no key is consulted.
    authorize(call.keys.store, call.caller, "kms:ListRetirableGrants", retiring)
    grants = call.keys.store.list_retirable_kms_grants(
        retiring, call.keys.account, call.keys.region, after=_marker(p), limit=limit + 1
    )
    return _page(call, grants, limit)


def _authorize_retire(call: Call, record: KmsKeyRecord, grant: KmsGrantRecord) -> None:
    """Who may retire: the retiring principal, the grantee when the grant allows RetireGrant,
    and the account (its root, or an IAM identity its policies allow ``kms:RetireGrant``).
    An explicit Deny of ``kms:RetireGrant`` in an IAM policy stops them all; the key policy
    plays no part."""
    try:
        authorize(call.keys.store, call.caller, "kms:RetireGrant", record.arn)
    except AccessRefused as refused:
        retiring = grant.retiring_principal is not None and _is_caller(
            grant.retiring_principal, grant.retiring_id, call
        )
        grantee = "RetireGrant" in grant.operations and grantee_is(grant, call.caller)
        if refused.explicit or not (retiring or grantee):
            raise


def _grant_not_found(grant_id: str) -> AwsError:
    return AwsError("NotFoundException", f"Grant ID {grant_id} not found.")


async def retire_grant(call: Call) -> dict[str, Any]:
    p = call.params
    token, key_id = p.get("GrantToken"), p.get("KeyId")
    grant_id = None if p.get("GrantId") is None else _grant_id_param(p["GrantId"])
    if token is None and (grant_id is None or key_id is None):
        raise AwsError("ValidationException", "Grant token OR (grant ID, key ID) must be specified")
    store, ring = call.keys.store, call.keys
    if token is not None:
        named = decode_grant_token(ring.root_key, ring.account, ring.region, token)
        if grant_id is not None and grant_id != named:
            raise AwsError(
                "InvalidGrantIdException", "The grant ID does not match the grant token."
            )
        grant_id = named
    assert grant_id is not None
    record = _key(call, key_id) if key_id is not None else None
    grant = store.load_kms_grant(grant_id)
    if grant is None or (record is not None and grant.key_id != record.key_id):
        raise _grant_not_found(grant_id)
    if record is None:
        record = ring.resolve(grant.key_id)
    _authorize_retire(call, record, grant)
    _dry_run(p)
    store.delete_kms_grant(grant.grant_id)
    return {}


async def revoke_grant(call: Call) -> dict[str, Any]:
    p = call.params
    grant_id = p.get("GrantId")
    if grant_id is None:
        raise validation_error("grantId", None, "Member must not be null")
    record = _key(call, p.get("KeyId"))
    authorize_key(call, "RevokeGrant", record, **{"kms:GrantIsForAWSResource": False})
    grant = call.keys.store.load_kms_grant(_grant_id_param(grant_id))
    if grant is None or grant.key_id != record.key_id:
        raise _grant_not_found(str(grant_id))
    _dry_run(p)
    call.keys.store.delete_kms_grant(grant.grant_id)
    return {}


OPERATIONS: dict[str, Handler] = {
    "CreateGrant": create_grant,
    "ListGrants": list_grants,
    "ListRetirableGrants": list_retirable_grants,
    "RetireGrant": retire_grant,
    "RevokeGrant": revoke_grant,
}
READ_ONLY = frozenset({"ListGrants", "ListRetirableGrants"})
# Never GrantToken or GrantTokens.
AUDITABLE_PARAMS = frozenset(
    {"KeyId", "GranteePrincipal", "RetiringPrincipal", "Operations", "Constraints", "Name",
     "GrantId", "Limit", "Marker", "DryRun"}
)  # fmt: skip
