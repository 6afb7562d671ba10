"""Authorization as AWS evaluates it: resource policy, identity policies, session policies,
explicit Deny wins."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from latchkey.aws.errors import AwsError
from latchkey.aws.policy import (
    Decision,
    Effect,
    MalformedPolicyDocument,
    PolicyDocument,
    RequestContext,
    evaluate,
    evaluate_all,
    parse_policy,
    statement_matches,
)
from latchkey.clock import Clock, SystemClock
from latchkey.cloud.identity import Caller
from latchkey.store.base import RoleRecord, Store, UserRecord
from latchkey.store.sqlitedb import KEY_CACHE_SIZE

KeyValue = str | Sequence[str] | bool | int
ConditionKeys = Mapping[str, KeyValue]


def _parse_all(texts: Iterable[str]) -> list[PolicyDocument]:
    docs = []
    for text in texts:
        try:
            docs.append(parse_policy(text, require_principal=False))
        except MalformedPolicyDocument:
            continue  # validated on write; an unreadable one grants nothing
    return docs


def _managed(store: Store, arns: Iterable[str]) -> list[str]:
    """The default-version documents of managed policies; an unknown ARN contributes nothing."""
    texts = []
    for arn in arns:
        policy = store.load_managed_policy(arn)
        if policy is not None:
            texts.append(policy.document)
    return texts


def caller_entity(store: Store, caller: Caller) -> RoleRecord | UserRecord | None:
    """The role (role sessions) or IAM user (its keys, its GetSessionToken sessions) the
    credentials were issued for, or ``None``: the root user, or an entity that is gone.

    A role or user deleted and re-created under the same name is another identity (AWS binds
    sessions to the unique id): the new one is not the old one's credentials' entity.
    """
    ctx = caller.session_context
    entity: RoleRecord | UserRecord | None
    if caller.role_arn is not None:
        entity = store.load_role(caller.role_arn.rsplit("/", 1)[-1])
        recorded, arn = ctx.get("role_id"), caller.role_arn
    else:
        name = caller.user_name
        entity = store.load_user(name) if name is not None else None
        recorded, arn = ctx.get("user_id"), caller.arn
    if entity is None or entity.arn != arn:
        return None
    own_id = entity.role_id if isinstance(entity, RoleRecord) else entity.user_id
    if isinstance(recorded, str) and recorded != own_id:
        return None
    return entity


def identity_policies(store: Store, caller: Caller) -> list[PolicyDocument]:
    """The IAM policies of the caller's identity: inline and attached managed policies of the
    role (role sessions) or of the IAM user (the user's keys, or its GetSessionToken session);
    none when that role or user is gone (``caller_entity``)."""
    return _policies_of(store, caller_entity(store, caller))


def _policies_of(store: Store, entity: RoleRecord | UserRecord | None) -> list[PolicyDocument]:
    if entity is None:
        return []
    inline, attached = entity.inline_policies, entity.attached_policies
    return _parse_all([*(text for _name, text in inline), *_managed(store, attached)])


def current_principals(caller: Caller, entity: RoleRecord | UserRecord | None) -> frozenset[str]:
    """``caller.principals``, without the role's or user's ARN and unique id when ``entity``
    (``caller_entity``) says that role or user is gone: a session of a deleted role, or of a
    user deleted and re-created, no longer matches a policy that names the role or user."""
    if caller.is_root or entity is not None:
        return caller.principals
    gone = {caller.role_arn if caller.role_arn is not None else caller.arn, caller.unique_id}
    return caller.principals - gone


def session_policies(store: Store, caller: Caller) -> list[PolicyDocument] | None:
    """The session policies the session was made with (inline JSON and managed policy ARNs,
    the ARNs resolved now), or ``None`` when it was made without any."""
    ctx = caller.session_context
    inline = ctx.get("session_policies")
    arns = ctx.get("session_policy_arns")
    texts = [t for t in inline if isinstance(t, str)] if isinstance(inline, list) else []
    names = [a for a in arns if isinstance(a, str)] if isinstance(arns, list) else []
    if not inline and not arns:
        return None
    return _parse_all([*texts, *_managed(store, names)])


KMS_DENIED = ("AccessDeniedException", 400)


class AccessRefused(AwsError):
    """A refusal by policy. ``explicit``: a policy explicitly denies the call, so nothing else
    (not even a KMS grant) may allow it. ``session_allows``: the caller's session policies, if
    it has any, allow the call (they limit a grant as they limit a key policy naming the role).
    """

    def __init__(self, err: AwsError, *, explicit: bool, session_allows: bool) -> None:
        super().__init__(err.code, err.message, err.status)
        self.explicit = explicit
        self.session_allows = session_allows


def _denied(
    caller: Caller, action: str, resource: str, why: str, code: tuple[str, int]
) -> AwsError:
    return AwsError(
        code[0],
        f"User: {caller.arn} is not authorized to perform: {action} on resource: {resource} "
        f"because {why}",
        code[1],
    )


def principal_type(caller: Caller) -> str:
    """aws:PrincipalType: ``Account`` (the root user), ``User``, ``AssumedRole``."""
    if caller.is_root:
        return "Account"
    return "AssumedRole" if caller.role_arn is not None else "User"


def _condition_keys(caller: Caller, keys: ConditionKeys | None) -> dict[str, KeyValue]:
    """The request's condition keys: the call's own, then the global ones AWS puts in every
    signed request (aws:CurrentTime and the principal's tags come later, only if asked)."""
    base: dict[str, KeyValue] = dict(keys or {})
    base.setdefault("aws:PrincipalArn", caller.role_arn or caller.arn)
    base.setdefault("aws:PrincipalAccount", caller.account)
    base.setdefault("aws:PrincipalType", principal_type(caller))
    base.setdefault("aws:userid", caller.user_id)
    if caller.user_name is not None:
        base.setdefault("aws:username", caller.user_name)
    base.setdefault("aws:PrincipalIsAWSService", False)
    base.setdefault("aws:ViaAWSService", False)
    base.setdefault("kms:CallerAccount", caller.account)
    if caller.source_ip:
        base.setdefault("aws:SourceIp", caller.source_ip)
    if caller.region is not None:
        base.setdefault("aws:RequestedRegion", caller.region)
    if caller.secure_transport is not None:
        base.setdefault("aws:SecureTransport", caller.secure_transport)
    ctx = caller.session_context
    if caller.kind == "session":
        # Temporary credentials carry MFA's presence (false: latchkey has no MFA devices);
        # long-term keys leave the key absent, as AWS does.
        base.setdefault("aws:MultiFactorAuthPresent", ctx.get("mfa_authenticated") is True)
        if isinstance(ctx.get("created"), str):
            base.setdefault("aws:TokenIssueTime", str(ctx["created"]))
        if isinstance(ctx.get("source_identity"), str):
            base.setdefault("aws:SourceIdentity", str(ctx["source_identity"]))
        web = ctx.get("web_identity")
        if isinstance(web, dict) and isinstance(web.get("provider"), str):
            base.setdefault("aws:FederatedProvider", str(web["provider"]))
    # kms:ViaService and aws:SourceVpc stay absent: no AWS service calls this cloud for a
    # caller (conditions on them behave as AWS's do for a direct call; ...IfExists passes).
    return base


def request_time_keys(clock: Clock | None) -> dict[str, KeyValue]:
    """aws:CurrentTime (ISO 8601, UTC) and aws:EpochTime (seconds) of a request now."""
    now = (clock or SystemClock()).now()
    return {
        "aws:CurrentTime": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "aws:EpochTime": str(int(now.timestamp())),
    }


def _late_keys(caller: Caller, entity: RoleRecord | UserRecord | None) -> dict[str, KeyValue]:
    """Keys made only when a condition asks for a key the request lacks: the time, and the
    principal's tags (aws:PrincipalTag/<key>: its IAM user's or role's)."""
    found = request_time_keys(caller.clock)
    for key, value in entity.tags if entity is not None else ():
        found[f"aws:PrincipalTag/{key}"] = value
    return found


def resource_tag_keys(tags: Iterable[tuple[str, str]], service: str) -> dict[str, KeyValue]:
    """aws:ResourceTag/<key> and <service>:ResourceTag/<key> for a tagged resource."""
    keys: dict[str, KeyValue] = {}
    for key, value in tags:
        keys[f"aws:ResourceTag/{key}"] = value
        keys[f"{service}:ResourceTag/{key}"] = value
    return keys


@dataclass(frozen=True, slots=True)
class _Outcome:
    refusal: tuple[str, bool, bool] | None  # (why, explicit, session_allows); None: allowed
    cacheable: bool  # no condition key was looked up: the decision holds until a store write
    per_resource: bool  # a resource pattern other than "*" was matched against the resource
    resource_policy: PolicyDocument | None  # kept alive: the cache key holds its id()


def _remembered(
    store: Store, name: str, key: tuple[object, ...], decide: Callable[[], _Outcome]
) -> _Outcome:
    """The remembered decision, or a new one (remembered unless it read a condition key; a
    per-resource one is remembered under a resource-free key only as that fact)."""
    made: list[_Outcome] = []

    def load() -> _Outcome | None:
        made.append(decide())
        return made[0] if made[0].cacheable else None

    found = store.cached(name, key, load, size=KEY_CACHE_SIZE)
    if made:
        return made[0]
    return found if found is not None else decide()


def _memo(load: Callable[[], ConditionKeys]) -> Callable[[], ConditionKeys]:
    """``load`` called at most once (several contexts of one call share it)."""
    done: list[ConditionKeys] = []

    def once() -> ConditionKeys:
        if not done:
            done.append(load())
        return done[0]

    return once


def authorize(
    store: Store,
    caller: Caller,
    action: str,
    resource: str,
    *,
    resource_policy: PolicyDocument | None = None,
    keys: ConditionKeys | None = None,
    lazy_keys: Callable[[], ConditionKeys] | None = None,
    denied: tuple[str, int] = KMS_DENIED,
) -> None:
    """Raise ``denied`` (default KMS's ``AccessDeniedException``) unless policy allows it.

    Identity side: the account root user may do everything; anyone else needs an identity
    policy allow. A session made with session policies also needs a session policy allow.
    With a resource policy (a KMS key policy, a role trust policy) the call needs the resource
    policy to allow the caller directly, or to allow the caller's account (delegating to IAM)
    *and* the identity side to allow it. Session policies limit a direct grant to the role or
    user, not one naming the session's own ARN. An explicit Deny anywhere wins.

    A decision that looked up no condition key depends only on the caller's credentials, the
    action, the resource and what the store holds, so it is remembered until the store's next
    write (one that did is made again on every call); one that matched no resource pattern
    but ``*`` is remembered for every resource at once (a default key policy and an IAM policy
    on ``Resource: *`` cost one evaluation for all of an account's keys).
    """
    general = (caller.access_key_id, caller.arn, action, id(resource_policy), denied)

    def decide() -> _Outcome:
        return _decide(store, caller, action, resource, resource_policy, keys, lazy_keys)

    outcome = _remembered(store, "authz", general, decide)
    if outcome.cacheable and outcome.per_resource:  # its verdict is for one resource only
        outcome = _remembered(store, "authz-resource", (*general, resource), decide)
    if outcome.refusal is not None:
        why, explicit, session_allows = outcome.refusal
        err = _denied(caller, action, resource, why, denied)
        raise AccessRefused(err, explicit=explicit, session_allows=session_allows)


def _decide(
    store: Store,
    caller: Caller,
    action: str,
    resource: str,
    resource_policy: PolicyDocument | None,
    keys: ConditionKeys | None,
    lazy_keys: Callable[[], ConditionKeys] | None,
) -> _Outcome:
    base = _condition_keys(caller, keys)
    entity = None if caller.is_root else caller_entity(store, caller)

    def late() -> ConditionKeys:
        found = _late_keys(caller, entity)
        if lazy_keys is not None:
            found.update(lazy_keys())
        return found

    lazy = _memo(late)
    contexts: list[RequestContext] = []

    def context(principals: frozenset[str]) -> RequestContext:
        ctx = RequestContext(
            action=action, resource=resource, principals=principals, keys=base, lazy=lazy
        )
        contexts.append(ctx)
        return ctx

    def outcome(refusal: tuple[str, bool, bool] | None) -> _Outcome:
        cacheable = not any(ctx.consulted for ctx in contexts)
        per_resource = any(ctx.resource_used for ctx in contexts)
        return _Outcome(refusal, cacheable, per_resource, resource_policy)

    ctx = context(current_principals(caller, entity))
    iam = Decision.ALLOW if caller.is_root else evaluate_all(_policies_of(store, entity), ctx)
    limits = session_policies(store, caller)
    session = None if limits is None else evaluate_all(limits, ctx)

    def refuse(why: str, *, explicit: bool = False) -> _Outcome:
        allows = session is None or session is Decision.ALLOW
        return outcome((why, explicit, allows))

    if iam is Decision.EXPLICIT_DENY:
        return refuse("of an explicit deny in an identity-based policy", explicit=True)
    if session is Decision.EXPLICIT_DENY:
        return refuse("of an explicit deny in a session policy", explicit=True)
    no_identity = f"no identity-based policy allows the {action} action"
    no_session = f"no session policy allows the {action} action"

    def identity_allows() -> _Outcome:
        if iam is not Decision.ALLOW:
            return refuse(no_identity)
        if session is not None and session is not Decision.ALLOW:
            return refuse(no_session)
        return outcome(None)

    if resource_policy is None:
        return identity_allows()
    resource_deny = "of an explicit deny in a resource-based policy"
    direct = evaluate(resource_policy, ctx)
    if direct is Decision.EXPLICIT_DENY:
        return refuse(resource_deny, explicit=True)
    account = frozenset({caller.account, f"arn:aws:iam::{caller.account}:root"})
    if direct is Decision.ALLOW:
        if _denies(resource_policy, lambda: context(account)):
            return refuse(resource_deny, explicit=True)
        if session is None or session is Decision.ALLOW:
            return outcome(None)
        as_session = context(frozenset({caller.arn}))
        if caller.role_arn is not None and evaluate(resource_policy, as_session) is Decision.ALLOW:
            return outcome(None)  # the resource policy names the session itself: not limited
        return refuse(no_session)
    for_account = evaluate(resource_policy, context(account))
    if for_account is Decision.EXPLICIT_DENY:
        return refuse(resource_deny, explicit=True)
    if for_account is Decision.ALLOW:
        return identity_allows()
    return refuse(f"no resource-based policy allows the {action} action")


def _denies(document: PolicyDocument, as_account: Callable[[], RequestContext]) -> bool:
    """Whether a Deny statement applies to the caller's account (``as_account``, made only if
    the document has a Deny): one naming the account, or a NotPrincipal Deny sparing the caller
    but not its account, applies to everyone in it, so it beats even an Allow naming the caller
    (an explicit Deny in any applicable statement wins)."""
    denials = [stmt for stmt in document.statements if stmt.effect is Effect.DENY]
    if not denials:
        return False
    ctx = as_account()
    return any(statement_matches(stmt, ctx) for stmt in denials)
