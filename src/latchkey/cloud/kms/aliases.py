"""Aliases: CreateAlias, DeleteAlias, UpdateAlias, ListAliases.

An alias is its own resource: changing one needs ``kms:<Action>`` on the alias (IAM policy)
and on each key it names (key policy). ``KeyRing.resolve`` turns alias names and alias ARNs
into keys for the operations that take them.
"""

from __future__ import annotations

import re
from typing import Any

from latchkey.aws.errors import AwsError, validation_error
from latchkey.cloud.authz import authorize
from latchkey.cloud.kms.common import Call, Handler, authorize_key
from latchkey.cloud.kms.keys import ALIAS_PREFIX, ALL_STATES, PENDING_DELETION, check_state
from latchkey.cloud.kms.paging import page
from latchkey.store.base import Conflict, KmsAliasRecord, KmsKeyRecord, LimitReached

RESERVED_PREFIX = "alias/aws/"
NAME_PATTERN = re.compile(r"^[a-zA-Z0-9:/_-]+$")
MAX_NAME = 256
ALIASES_PER_KEY = 50
NOT_PENDING_DELETION = ALL_STATES - {PENDING_DELETION}


def alias_name_param(params: dict[str, Any]) -> str:
    """``AliasName`` as CreateAlias, UpdateAlias and DeleteAlias accept it."""
    name = params.get("AliasName")
    if name is None:
        raise validation_error("aliasName", None, "Member must not be null")
    if not isinstance(name, str):
        raise AwsError("SerializationException", "AliasName must be a string")
    if len(name) > MAX_NAME:
        raise validation_error(
            "aliasName", name, f"Member must have length less than or equal to {MAX_NAME}"
        )
    if not NAME_PATTERN.match(name):
        raise validation_error(
            "aliasName",
            name,
            f"Member must satisfy regular expression pattern: {NAME_PATTERN.pattern}",
        )
    if not name.startswith(ALIAS_PREFIX):
        raise AwsError(
            "ValidationException",
            'Alias must start with the prefix "alias/". Please see '
            "https://docs.aws.amazon.com/kms/latest/developerguide/kms-alias.html",
        )
    if name.startswith(RESERVED_PREFIX):
        raise AwsError("NotAuthorizedException", "")
    if ":" in name:
        raise AwsError("ValidationException", f"{name} contains invalid characters for an alias")
    if name == ALIAS_PREFIX:
        raise AwsError("InvalidAliasNameException", f"Alias name {name} is not valid.")
    return name


def _target(call: Call) -> KmsKeyRecord:
    """``TargetKeyId``: a key id or key ARN, never another alias."""
    target = call.params.get("TargetKeyId")
    if target is None:
        raise validation_error("targetKeyId", None, "Member must not be null")
    if isinstance(target, str) and (target.startswith(ALIAS_PREFIX) or ":alias/" in target):
        raise AwsError("ValidationException", "Aliases must refer to keys. Not aliases")
    return call.keys.resolve(target, aliases=False)


def _existing(call: Call, name: str) -> tuple[KmsAliasRecord, KmsKeyRecord]:
    keys = call.keys
    alias = keys.store.load_kms_alias(keys.account, keys.region, name)
    record = keys.store.load_kms_key(alias.key_id) if alias is not None else None
    if alias is None or record is None:
        raise AwsError("NotFoundException", f"Alias {keys.alias_arn(name)} is not found.")
    return alias, record


def _key_class(spec: str) -> str:
    if spec == "SYMMETRIC_DEFAULT":
        return "symmetric"
    return "HMAC" if spec.startswith("HMAC_") else "asymmetric"


def _too_many(record: KmsKeyRecord) -> AwsError:
    return AwsError(
        "LimitExceededException",
        f"Key {record.arn} already has the maximum of {ALIASES_PER_KEY} aliases.",
    )


async def create_alias(call: Call) -> dict[str, Any]:
    name = alias_name_param(call.params)
    record = _target(call)
    alias_arn = call.keys.alias_arn(name)
    authorize(call.keys.store, call.caller, "kms:CreateAlias", alias_arn)
    authorize_key(call, "CreateAlias", record)
    check_state(record, NOT_PENDING_DELETION)
    now = call.keys.now()
    alias = KmsAliasRecord(call.keys.account, call.keys.region, name, record.key_id, now, now)
    try:
        call.keys.store.save_kms_alias(alias, limit=ALIASES_PER_KEY)
    except LimitReached:
        raise _too_many(record) from None
    except Conflict:
        raise AwsError(
            "AlreadyExistsException", f"An alias with the name {alias_arn} already exists"
        ) from None
    return {}


async def delete_alias(call: Call) -> dict[str, Any]:
    name = alias_name_param(call.params)
    _alias, record = _existing(call, name)
    authorize(call.keys.store, call.caller, "kms:DeleteAlias", call.keys.alias_arn(name))
    authorize_key(call, "DeleteAlias", record)
    call.keys.store.delete_kms_alias(call.keys.account, call.keys.region, name)
    return {}


async def update_alias(call: Call) -> dict[str, Any]:
    name = alias_name_param(call.params)
    _alias, current = _existing(call, name)
    new = _target(call)
    authorize(call.keys.store, call.caller, "kms:UpdateAlias", call.keys.alias_arn(name))
    authorize_key(call, "UpdateAlias", current)
    authorize_key(call, "UpdateAlias", new)
    check_state(new, NOT_PENDING_DELETION)
    if _key_class(current.key_spec) != _key_class(new.key_spec) or (
        current.key_usage != new.key_usage
    ):
        raise AwsError(
            "ValidationException",
            f"Alias {name} cannot be changed from a {_key_class(current.key_spec)} "
            f"{current.key_usage} key to a {_key_class(new.key_spec)} {new.key_usage} key.",
        )
    keys = call.keys
    try:
        keys.store.update_kms_alias(
            keys.account, keys.region, name, new.key_id, keys.now(), limit=ALIASES_PER_KEY
        )
    except LimitReached:
        raise _too_many(new) from None
    return {}


async def list_aliases(call: Call) -> dict[str, Any]:
    keys = call.keys
    authorize(keys.store, call.caller, "kms:ListAliases", "*")
    key_id = None
    if call.params.get("KeyId") is not None:
        key_id = keys.resolve(call.params["KeyId"], aliases=False).key_id
    aliases = keys.store.list_kms_aliases(keys.account, keys.region, key_id)
    shown, members = page(aliases, call.params, lambda a: a.name, default=50, cap=100)
    entries = [
        {
            "AliasName": a.name,
            "AliasArn": keys.alias_arn(a.name),
            "TargetKeyId": a.key_id,
            "CreationDate": a.created,
            "LastUpdatedDate": a.updated,
        }
        for a in shown
    ]
    return {"Aliases": entries, **members}


OPERATIONS: dict[str, Handler] = {
    "CreateAlias": create_alias,
    "DeleteAlias": delete_alias,
    "UpdateAlias": update_alias,
    "ListAliases": list_aliases,
}
READ_ONLY = frozenset({"ListAliases"})
AUDITABLE_PARAMS = frozenset({"AliasName", "TargetKeyId", "KeyId", "Limit", "Marker"})
