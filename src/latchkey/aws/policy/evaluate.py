"""Evaluation: explicit Deny beats Allow, and no matching Allow is an implicit deny."""

from __future__ import annotations

import enum
import functools
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from latchkey.aws.policy.conditions import (
    LITERAL_QMARK,
    LITERAL_STAR,
    OPERATORS,
    Condition,
    condition_holds,
    glob_match,
)
from latchkey.aws.policy.document import Effect, PolicyDocument, Principal, Statement

__all__ = ["Decision", "RequestContext", "evaluate", "evaluate_all", "statement_matches"]

_ACCOUNT_ID = re.compile(r"\d{12}")
KeyValue = str | Sequence[str] | bool | int


class Decision(enum.Enum):
    ALLOW = "Allow"
    EXPLICIT_DENY = "ExplicitDeny"
    IMPLICIT_DENY = "ImplicitDeny"


@dataclass(frozen=True, slots=True)
class RequestContext:
    """What is being asked, on what, by whom, and the request's condition keys.

    ``principals`` are every identifier the caller *is* (role ARN, assumed-role ARN, account
    id or ``arn:aws:iam::<id>:root``, federated provider ARN, service name). ``keys`` are
    looked up case-insensitively by name; an empty sequence counts as an absent key.
    ``consulted`` turns true once any condition key is looked up: until then, a decision
    depends on the principals, action and resource alone (callers may cache it).
    ``resource_used`` turns true once a ``Resource``/``NotResource`` other than a lone ``*``
    is matched against ``resource``: until then, the decision holds for any resource.
    """

    action: str
    resource: str
    principals: frozenset[str] = frozenset()
    keys: Mapping[str, str | Sequence[str] | bool | int] = field(default_factory=dict, hash=False)
    # More keys, computed only if a condition asks for a key ``keys`` lacks (they cost a
    # lookup, e.g. a KMS key's aliases and tags, and most policies never ask).
    lazy: Callable[[], Mapping[str, KeyValue]] | None = field(
        default=None, hash=False, compare=False, repr=False
    )
    _values: dict[str, tuple[str, ...]] | None = field(init=False, repr=False, compare=False)
    _identities: frozenset[str] = field(init=False, repr=False, compare=False)
    _lazy_done: bool = field(init=False, repr=False, compare=False)
    _resource_used: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_values", None)  # made when a condition first asks
        object.__setattr__(self, "_resource_used", False)
        object.__setattr__(self, "_identities", frozenset(map(_canonical, self.principals)))
        object.__setattr__(self, "_lazy_done", self.lazy is None)

    @property
    def consulted(self) -> bool:
        """Has any condition key been looked up?"""
        return self._values is not None

    @property
    def resource_used(self) -> bool:
        """Has a resource pattern other than ``*`` been matched against the resource?"""
        return self._resource_used

    def matches_resource(
        self, patterns: tuple[str, ...] | None, not_patterns: tuple[str, ...] | None
    ) -> bool:
        if patterns != ("*",) or not_patterns is not None:
            object.__setattr__(self, "_resource_used", True)
        return _listed(patterns, not_patterns, self.resource, ignore_case=False)

    def values(self, key: str) -> tuple[str, ...]:
        """The request's values for condition key ``key`` as text; ``()`` when absent."""
        if self._values is None:
            values = {name.lower(): _texts(value) for name, value in self.keys.items()}
            object.__setattr__(self, "_values", values)
        assert self._values is not None
        name = key.lower()
        found = self._values.get(name)
        if found is None and not self._lazy_done:
            object.__setattr__(self, "_lazy_done", True)
            assert self.lazy is not None
            for extra, value in self.lazy().items():
                self._values.setdefault(extra.lower(), _texts(value))
            found = self._values.get(name)
        return found or ()

    def is_principal(self, entry: str) -> bool:
        """Does a policy's principal entry name this caller?"""
        return entry == "*" or _canonical(entry) in self._identities


def evaluate(doc: PolicyDocument, ctx: RequestContext) -> Decision:
    """One document's verdict on one request."""
    allowed = False
    for stmt in doc.statements:
        if statement_matches(stmt, ctx):
            if stmt.effect is Effect.DENY:
                return Decision.EXPLICIT_DENY
            allowed = True
    return Decision.ALLOW if allowed else Decision.IMPLICIT_DENY


def evaluate_all(docs: Iterable[PolicyDocument], ctx: RequestContext) -> Decision:
    """Several documents together: any explicit Deny wins, else any Allow, else implicit deny."""
    allowed = False
    for doc in docs:
        decision = evaluate(doc, ctx)
        if decision is Decision.EXPLICIT_DENY:
            return decision
        allowed = allowed or decision is Decision.ALLOW
    return Decision.ALLOW if allowed else Decision.IMPLICIT_DENY


def statement_matches(stmt: Statement, ctx: RequestContext) -> bool:
    """Does ``stmt`` apply to ``ctx`` (principal, action, resource and every condition)?"""
    if stmt.principal is not None and not _principal_matches(stmt.principal, ctx):
        return False
    if stmt.not_principal is not None and _principal_matches(stmt.not_principal, ctx):
        return False
    if not _listed(stmt.actions, stmt.not_actions, ctx.action, ignore_case=True):
        return False
    if stmt.variables:
        return _matches_with_variables(stmt, ctx)
    if not ctx.matches_resource(stmt.resources, stmt.not_resources):
        return False
    return all(condition_holds(cond, ctx.values(cond.key)) for cond in stmt.conditions)


# -- policy variables -------------------------------------------------------------------------

_VARIABLE = re.compile(r"\$\{([^}]*)\}")
_WITH_DEFAULT = re.compile(r"\s*([^\s,]+)\s*,\s*'([^']*)'\s*")
_SPECIALS = {"*": LITERAL_STAR, "?": LITERAL_QMARK, "$": "$"}
_AS_LITERALS = str.maketrans({"*": LITERAL_STAR, "?": LITERAL_QMARK})


def _expand(template: str, ctx: RequestContext, *, pattern: bool) -> str | None:
    """``template`` with each ``${key}`` / ``${key, 'default'}`` replaced by the request's value
    of ``key``, or ``None`` when a key has no single value and no default (IAM: the element
    then does not match). ``${*}``, ``${?}``, ``${$}`` are those characters, literally; in a
    ``pattern`` (Resource, StringLike, Arn*) a substituted ``*`` or ``?`` stays literal too.
    """
    if "${" not in template:
        return template
    missing = False

    def value(match: re.Match[str]) -> str:
        nonlocal missing
        inner = match.group(1)
        if inner.strip() in _SPECIALS:
            return _SPECIALS[inner.strip()] if pattern else inner.strip()
        named = _WITH_DEFAULT.fullmatch(inner)
        name, default = (named.group(1), named.group(2)) if named else (inner.strip(), None)
        found = ctx.values(name)
        text = found[0] if len(found) == 1 else default  # multivalued keys are no variables
        if text is None:
            missing = True
            return ""
        return text.translate(_AS_LITERALS) if pattern else text

    expanded = _VARIABLE.sub(value, template)
    return None if missing else expanded


def _expanded(templates: tuple[str, ...], ctx: RequestContext) -> tuple[tuple[str, ...], bool]:
    """The patterns that resolve, and whether any did not."""
    out = [_expand(t, ctx, pattern=True) for t in templates]
    return tuple(p for p in out if p is not None), None in out


def _matches_with_variables(stmt: Statement, ctx: RequestContext) -> bool:
    resources = not_resources = None
    if stmt.resources is not None:
        resources, _ = _expanded(stmt.resources, ctx)  # an unresolved pattern matches nothing
    if stmt.not_resources is not None:
        not_resources, unresolved = _expanded(stmt.not_resources, ctx)
        if unresolved:
            return False  # "everything but <unknown>": the statement does not apply
    if not ctx.matches_resource(resources, not_resources):
        return False
    return all(_condition_with_variables(cond, ctx) for cond in stmt.conditions)


def _condition_with_variables(cond: Condition, ctx: RequestContext) -> bool:
    operator = OPERATORS.get(cond.base)
    if operator is None or operator.kind != "string" or not any("${" in v for v in cond.values):
        return condition_holds(cond, ctx.values(cond.key))
    values = [_expand(v, ctx, pattern=operator.glob) for v in cond.values]
    resolved = tuple(v for v in values if v is not None)
    if not resolved:
        return False  # no value to compare with: the condition (and its statement) fails
    return condition_holds(replace(cond, values=resolved), ctx.values(cond.key))


def _listed(
    patterns: tuple[str, ...] | None,
    not_patterns: tuple[str, ...] | None,
    value: str,
    *,
    ignore_case: bool,
) -> bool:
    """``patterns`` must match, ``not_patterns`` must not; neither given means everything."""
    if patterns is not None:
        return any(glob_match(p, value, ignore_case=ignore_case) for p in patterns)
    if not_patterns is not None:
        return not any(glob_match(p, value, ignore_case=ignore_case) for p in not_patterns)
    return True


def _principal_matches(principal: Principal, ctx: RequestContext) -> bool:
    if principal.wildcard:
        return True
    entries = (*principal.aws, *principal.federated, *principal.service)
    return any(ctx.is_principal(entry) for entry in entries)


@functools.lru_cache(maxsize=4096)
def _canonical(identifier: str) -> str:
    """A bare 12-digit account id means the account's root principal."""
    if _ACCOUNT_ID.fullmatch(identifier):
        return f"arn:aws:iam::{identifier}:root"
    return identifier


def _texts(value: object) -> tuple[str, ...]:
    if isinstance(value, str | bool | int | float):
        return (_text(value),)
    if isinstance(value, Iterable):
        return tuple(_text(item) for item in value)
    return (str(value),)


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
