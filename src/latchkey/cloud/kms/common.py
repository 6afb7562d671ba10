"""What every KMS operation shares: the call, encryption context, authorization of a key."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from latchkey.aws.errors import AwsError, validation_error
from latchkey.aws.jsonproto import decode_blob
from latchkey.aws.policy import PolicyDocument
from latchkey.cloud.authz import AccessRefused, authorize
from latchkey.cloud.identity import Caller
from latchkey.cloud.kms.grantauth import allowed_by_grant, check_grant_tokens
from latchkey.cloud.kms.keys import KeyRing, key_policy, record_keys
from latchkey.store.base import KmsKeyRecord

MAX_PLAINTEXT = 4096


@dataclass(frozen=True, slots=True)
class Call:
    caller: Caller
    keys: KeyRing
    params: dict[str, Any]


Handler = Callable[[Call], Awaitable[dict[str, Any]]]


def encryption_context(params: dict[str, Any]) -> dict[str, str]:
    ctx = params.get("EncryptionContext") or {}
    if not isinstance(ctx, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in ctx.items()
    ):
        raise AwsError("SerializationException", "EncryptionContext must map strings to strings")
    return ctx


def context_keys(ctx: dict[str, str]) -> dict[str, str | list[str]]:
    keys: dict[str, str | list[str]] = {f"kms:EncryptionContext:{k}": v for k, v in ctx.items()}
    keys["kms:EncryptionContextKeys"] = sorted(ctx)
    return keys


def authorize_key(call: Call, action: str, record: KmsKeyRecord, **keys: Any) -> None:
    """``kms:<action>`` on the key: key policy, the caller's IAM policies, and grants (which
    allow what policy does not, unless a policy denies it explicitly). ``GrantTokens`` are
    checked, never needed: grants are effective at once. ``kms:RequestAlias`` comes from the
    ``KeyId`` parameter unless ``keys`` has it (ReEncrypt names its keys otherwise)."""
    ring = call.keys
    check_grant_tokens(ring.root_key, ring.account, ring.region, call.params.get("GrantTokens"))
    own = ring.request_keys(call.params.get("KeyId"))
    try:
        authorize(
            call.keys.store,
            call.caller,
            f"kms:{action}",
            record.arn,
            resource_policy=key_policy(record),
            keys={"kms:KeySpec": record.key_spec, "kms:KeyUsage": record.key_usage, **own, **keys},
            # Origin, multi-Region, the deprecated names, aliases, tags: only if a policy asks
            # (this runs on every Encrypt; most policies never look).
            lazy_keys=lambda: {**record_keys(record), **ring.resource_keys(record)},
        )
    except AccessRefused as refused:
        if refused.explicit or not allowed_by_grant(
            ring.store, call.caller, action, record, keys, call.params,
            session_allows=refused.session_allows,
        ):  # fmt: skip
            raise


def bypass_keys(params: dict[str, Any]) -> dict[str, Any]:
    """``kms:BypassPolicyLockoutSafetyCheck`` (CreateKey, PutKeyPolicy): present, true or false
    as given, only when the request has the parameter (AWS's own example allows PutKeyPolicy
    only while it is ``Null``)."""
    value = params.get("BypassPolicyLockoutSafetyCheck")
    return {} if value is None else {"kms:BypassPolicyLockoutSafetyCheck": bool(value)}


def check_no_lockout(call: Call, record: KmsKeyRecord, document: PolicyDocument) -> None:
    """AWS refuses a key policy that would stop its own caller from changing it later: the
    later PutKeyPolicy is simulated on ``record`` (the key, or the one CreateKey is making),
    with its ARN and condition keys, so a policy conditioned on them is judged as it will be."""
    ring = call.keys
    try:
        authorize(
            ring.store,
            call.caller,
            "kms:PutKeyPolicy",
            record.arn,
            resource_policy=document,
            keys={**record_keys(record), "kms:PolicyName": "default"},
            lazy_keys=lambda: ring.resource_keys(record),
        )
    except AwsError:
        raise AwsError(
            "MalformedPolicyDocumentException",
            "The new key policy will not allow you to update the key policy in the future.",
        ) from None


def plaintext_param(params: dict[str, Any]) -> bytes:
    if "Plaintext" not in params:
        raise validation_error("plaintext", None, "Member must not be null")
    data = decode_blob(params["Plaintext"], "Plaintext")
    if not 1 <= len(data) <= MAX_PLAINTEXT:
        raise AwsError(
            "ValidationException",
            "1 validation error detected: Value at 'plaintext' failed to satisfy constraint: "
            "Member must have length between 1 and 4096",
        )
    return data


def check_symmetric_algorithm(params: dict[str, Any]) -> None:
    algorithm = params.get("EncryptionAlgorithm", "SYMMETRIC_DEFAULT")
    if algorithm != "SYMMETRIC_DEFAULT":
        raise AwsError(
            "InvalidKeyUsageException",
            f"{algorithm} is not a supported encryption algorithm for this key.",
        )
