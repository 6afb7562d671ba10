"""Key policies: GetKeyPolicy, PutKeyPolicy, ListKeyPolicies.

A key has one policy you manage, ``default``. (``AWS_RAM`` exists only for keys shared
through RAM, which the local cloud does not do.)
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

from latchkey.aws.errors import AwsError, validation_error
from latchkey.aws.policy import MalformedPolicyDocument, PolicyDocument, parse_policy
from latchkey.cloud.iam.principals import bind_principals, show_principals
from latchkey.cloud.kms.common import (
    Call,
    Handler,
    authorize_key,
    bypass_keys,
    check_no_lockout,
)
from latchkey.cloud.kms.paging import page

DEFAULT = "default"
RAM = "AWS_RAM"
NAME_PATTERN = re.compile(r"^[\w]+$")
MAX_NAME = 128
MAX_POLICY_BYTES = 32768  # the key policy document quota
POLICY_PATTERN = re.compile(r"^[\u0009\u000A\u000D\u0020-\u00FF]+$")


def policy_name_param(params: dict[str, Any]) -> str:
    name = params.get("PolicyName")
    if name is None:
        return DEFAULT
    if not isinstance(name, str):
        raise AwsError("SerializationException", "PolicyName must be a string")
    if not 1 <= len(name) <= MAX_NAME or not NAME_PATTERN.match(name):
        raise validation_error(
            "policyName", name, "Member must satisfy regular expression pattern: [\\w]+"
        )
    return name


def _policy_param(params: dict[str, Any]) -> str:
    policy = params.get("Policy")
    if policy is None:
        raise validation_error("policy", None, "Member must not be null")
    if not isinstance(policy, str):
        raise AwsError("SerializationException", "Policy must be a string")
    if not POLICY_PATTERN.match(policy):
        raise validation_error(
            "policy",
            policy,
            "Member must satisfy regular expression pattern: "
            "[\\u0009\\u000A\\u000D\\u0020-\\u00FF]+",
        )
    if len(policy.encode()) > MAX_POLICY_BYTES:
        raise AwsError(
            "LimitExceededException",
            f"The key policy exceeds the maximum size of {MAX_POLICY_BYTES} bytes.",
        )
    return policy


INVALID_PRINCIPALS = "Policy contains a statement with one or more invalid principals."


def stored_policy(call: Call, policy: str) -> tuple[str, PolicyDocument]:
    """A key policy as it is kept: checked, with its IAM users and roles bound to their unique
    ids (as AWS binds them: a user or role deleted and re-created under the same name is not
    the one the policy named), and its parsed form."""
    try:
        parse_policy(policy, require_principal=True)
        bound = bind_principals(call.keys.store, call.keys.account, policy)
        return bound, parse_policy(bound, require_principal=True)
    except MalformedPolicyDocument as exc:
        message = str(exc)
        if message.startswith("Invalid principal in policy"):
            message = INVALID_PRINCIPALS  # (KMS's words for what IAM says so)
        raise AwsError("MalformedPolicyDocumentException", message) from None


async def get_key_policy(call: Call) -> dict[str, Any]:
    record = call.keys.resolve(call.params.get("KeyId"), aliases=False)
    name = policy_name_param(call.params)
    authorize_key(call, "GetKeyPolicy", record, **{"kms:PolicyName": name})
    if name != DEFAULT:
        raise AwsError("NotFoundException", f"No such policy exists: {name}")
    return {"Policy": show_principals(call.keys.store, record.policy), "PolicyName": DEFAULT}


async def put_key_policy(call: Call) -> dict[str, Any]:
    record = call.keys.resolve(call.params.get("KeyId"), aliases=False)
    name = policy_name_param(call.params)
    policy = _policy_param(call.params)
    keys = {"kms:PolicyName": name, **bypass_keys(call.params)}
    authorize_key(call, "PutKeyPolicy", record, **keys)
    if name == RAM:
        raise AwsError(
            "ValidationException", "The AWS_RAM policy can only be managed by the RAM service."
        )
    if name != DEFAULT:
        raise AwsError("NotFoundException", f"No such policy exists: {name}")
    policy, document = stored_policy(call, policy)
    if call.params.get("BypassPolicyLockoutSafetyCheck") is not True:
        check_no_lockout(call, record, document)
    call.keys.store.update_kms_key(replace(record, policy=policy))
    return {}


async def list_key_policies(call: Call) -> dict[str, Any]:
    record = call.keys.resolve(call.params.get("KeyId"), aliases=False)
    authorize_key(call, "ListKeyPolicies", record)
    shown, members = page([DEFAULT], call.params, lambda n: n, default=100)
    return {"PolicyNames": shown, **members}


OPERATIONS: dict[str, Handler] = {
    "GetKeyPolicy": get_key_policy,
    "PutKeyPolicy": put_key_policy,
    "ListKeyPolicies": list_key_policies,
}
READ_ONLY = frozenset({"GetKeyPolicy", "ListKeyPolicies"})
# The policy document itself is recorded: CloudTrail shows it for PutKeyPolicy.
AUDITABLE_PARAMS = frozenset(
    {"KeyId", "PolicyName", "Policy", "BypassPolicyLockoutSafetyCheck", "Limit", "Marker"}
)
