"""Authorization as AWS evaluates it: resource policy, identity policies, explicit Deny wins."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from latchkey.aws.errors import AwsError
from latchkey.aws.policy import (
    Decision,
    MalformedPolicyDocument,
    PolicyDocument,
    RequestContext,
    evaluate,
    evaluate_all,
    parse_policy,
)
from latchkey.cloud.identity import Caller
from latchkey.store.base import Store

ConditionKeys = Mapping[str, str | Sequence[str] | bool | int]


def identity_policies(store: Store, caller: Caller) -> list[PolicyDocument]:
    """The IAM policies attached to the caller (inline role policies for now)."""
    if caller.role_arn is None:
        return []
    role = store.load_role(caller.role_arn.rsplit("/", 1)[-1])
    if role is None:
        return []
    docs = []
    for _name, text in role.inline_policies:
        try:
            docs.append(parse_policy(text, require_principal=False))
        except MalformedPolicyDocument:
            continue  # validated on write; an unreadable one grants nothing
    return docs


KMS_DENIED = ("AccessDeniedException", 400)


def _denied(
    caller: Caller, action: str, resource: str, why: str, code: tuple[str, int]
) -> AwsError:
    return AwsError(
        code[0],
        f"User: {caller.arn} is not authorized to perform: {action} on resource: {resource} "
        f"because {why}",
        code[1],
    )


def authorize(
    store: Store,
    caller: Caller,
    action: str,
    resource: str,
    *,
    resource_policy: PolicyDocument | None = None,
    keys: ConditionKeys | None = None,
    denied: tuple[str, int] = KMS_DENIED,
) -> None:
    """Raise ``AccessDeniedException`` unless policy allows ``caller`` to do ``action``.

    With a resource policy (a KMS key policy) the call needs the resource policy to allow the
    caller directly, or to allow the caller's account (delegating to IAM) *and* an identity
    policy to allow it. The account's root user is the account. No policy: identity only.
    """
    base = dict(keys or {})
    base.setdefault("aws:PrincipalArn", caller.role_arn or caller.arn)
    base.setdefault("kms:CallerAccount", caller.account)
    ctx = RequestContext(action=action, resource=resource, principals=caller.principals, keys=base)
    iam = (
        Decision.ALLOW
        if caller.kind == "root"
        else evaluate_all(identity_policies(store, caller), ctx)
    )

    def refuse(why: str) -> AwsError:
        return _denied(caller, action, resource, why, denied)

    if iam is Decision.EXPLICIT_DENY:
        raise refuse("of an explicit deny in an identity-based policy")
    no_identity = f"no identity-based policy allows the {action} action"
    if resource_policy is None:
        if iam is Decision.ALLOW:
            return
        raise refuse(no_identity)
    direct = evaluate(resource_policy, ctx)
    if direct is Decision.EXPLICIT_DENY:
        raise refuse("of an explicit deny in a resource-based policy")
    if direct is Decision.ALLOW:
        return
    account_ctx = RequestContext(
        action=action,
        resource=resource,
        principals=frozenset({caller.account, f"arn:aws:iam::{caller.account}:root"}),
        keys=base,
    )
    if evaluate(resource_policy, account_ctx) is Decision.ALLOW:
        if iam is Decision.ALLOW:
            return
        raise refuse(no_identity)
    raise refuse(f"no resource-based policy allows the {action} action")
