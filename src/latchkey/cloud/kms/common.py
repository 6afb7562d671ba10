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
from latchkey.cloud.kms.keys import KeyRing, key_policy
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
    checked, never needed: grants are effective at once."""
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
            lazy_keys=lambda: ring.resource_keys(record),  # aliases, tags: only if asked
        )
    except AccessRefused as refused:
        if refused.explicit or not allowed_by_grant(
            ring.store, call.caller, action, record, keys, call.params,
            session_allows=refused.session_allows,
        ):  # fmt: skip
            raise


def check_no_lockout(call: Call, document: PolicyDocument) -> None:
    """AWS refuses a key policy that would stop its own caller from changing it later."""
    try:
        authorize(
            call.keys.store,
            call.caller,
            "kms:PutKeyPolicy",
            f"arn:aws:kms:{call.keys.region}:{call.keys.account}:key/*",
            resource_policy=document,
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
